"""INS of the patient named in an IHE_XDM package (``IHE_XDM.ZIP`` attachment of MSSanté
mails, or a ``METADATA.XML`` attached directly): the values of the ``patientId`` and
``sourcePatientId`` identifiers whose assigning authority is an INS OID."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Iterable

from defusedxml import ElementTree

from appservice.mail.parse import Attachment

log = logging.getLogger(__name__)

INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9")  # NIR, NIA
# CX value: ID^^^&OID&ISO (HL7 v2), e.g. 241033155500112^^^&1.2.250.1.213.1.4.8&ISO
_CX_RE = re.compile(r"^\s*([0-9A-Za-z]{13,15})\^\^\^&([0-9.]+)&ISO")
# Bounds of what one mail may make us decompress (an IHE_XDM package holds a few
# documents and one METADATA.XML per submission set; metadata is a few kilobytes).
MAX_ZIP_ENTRIES = 1000
MAX_METADATA_FILES = 20
MAX_METADATA_BYTES = 1024 * 1024
MAX_METADATA_TOTAL = 4 * 1024 * 1024


class XdmTooLarge(ValueError):
    """An IHE_XDM package beyond the bounds; the message (French) says which."""


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes: the directory's sizes may lie."""
    with archive.open(info) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise XdmTooLarge(
            f"métadonnées IHE_XDM trop volumineuses (plus de {limit} octets décompressés)"
        )
    return data


def _from_zip(data: bytes, budget: list[int]) -> list[bytes]:
    found: list[bytes] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = archive.infolist()
        if len(entries) > MAX_ZIP_ENTRIES:
            raise XdmTooLarge(f"archive IHE_XDM de plus de {MAX_ZIP_ENTRIES} fichiers")
        wanted = [
            info
            for info in entries
            if info.filename.upper().startswith("IHE_XDM/")
            and info.filename.upper().endswith("/METADATA.XML")
        ]
        if len(wanted) > MAX_METADATA_FILES:
            raise XdmTooLarge(f"plus de {MAX_METADATA_FILES} fichiers METADATA.XML")
        for info in wanted:  # sizes of the directory first: nothing read beyond them
            if info.file_size > MAX_METADATA_BYTES:
                raise XdmTooLarge(
                    f"METADATA.XML de {info.file_size} octets (au plus {MAX_METADATA_BYTES})"
                )
        if sum(info.file_size for info in wanted) > budget[0]:
            raise XdmTooLarge(f"métadonnées IHE_XDM de plus de {MAX_METADATA_TOTAL} octets")
        for info in wanted:
            document = _read_bounded(archive, info, min(MAX_METADATA_BYTES, budget[0]))
            budget[0] -= len(document)
            found.append(document)
    return found


def _metadata_documents(attachments: Iterable[Attachment]) -> list[bytes]:
    """The METADATA.XML documents; raise :class:`XdmTooLarge` beyond the bounds."""
    found: list[bytes] = []
    budget = [MAX_METADATA_TOTAL]  # decompressed bytes left for this mail
    for attachment in attachments:
        name = attachment.filename.upper()
        if name.endswith("METADATA.XML"):
            found.append(attachment.data)
        elif name.endswith(".ZIP") or attachment.content_type in (
            "application/zip",
            "application/x-zip-compressed",
        ):
            try:
                found.extend(_from_zip(attachment.data, budget))
            except XdmTooLarge:
                raise
            except Exception as exc:  # not a zip we can read (corrupt, encrypted…): no INS
                log.info("IHE_XDM attachment unreadable: %s", type(exc).__name__)
                continue
        if len(found) > MAX_METADATA_FILES:
            raise XdmTooLarge(f"plus de {MAX_METADATA_FILES} fichiers METADATA.XML")
    return found


def _values(document: bytes) -> set[str]:
    try:
        root = ElementTree.fromstring(document)
    except Exception:  # defused or malformed XML: no INS from it
        return set()
    values: set[str] = set()
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "ExternalIdentifier":
            value = element.get("value")
            if value:
                values.add(value)
        elif tag == "Slot" and element.get("name") == "sourcePatientId":
            for child in element.iter():
                if child.tag.rsplit("}", 1)[-1] == "Value" and child.text:
                    values.add(child.text)
    return values


def ins_from_attachments(attachments: Iterable[Attachment]) -> set[str]:
    """INS matricules named in the IHE_XDM metadata of these attachments; raise
    :class:`XdmTooLarge` for a package beyond the bounds (refused, never decompressed)."""
    ins: set[str] = set()
    for document in _metadata_documents(attachments):
        for value in _values(document):
            match = _CX_RE.match(value)
            if match and match.group(2) in INS_OIDS:
                ins.add(match.group(1))
    return ins
