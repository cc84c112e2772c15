"""INS of the patient named in an IHE_XDM package (``IHE_XDM.ZIP`` attachment of MSSanté
mails, or a ``METADATA.XML`` attached directly): the values of the ``patientId`` and
``sourcePatientId`` identifiers whose assigning authority is an INS OID."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable

from defusedxml import ElementTree

from appservice.mail.parse import Attachment

INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9")  # NIR, NIA
# CX value: ID^^^&OID&ISO (HL7 v2), e.g. 241033155500112^^^&1.2.250.1.213.1.4.8&ISO
_CX_RE = re.compile(r"^\s*([0-9A-Za-z]{13,15})\^\^\^&([0-9.]+)&ISO")
MAX_METADATA_BYTES = 5 * 1024 * 1024


def _metadata_documents(attachments: Iterable[Attachment]) -> list[bytes]:
    found: list[bytes] = []
    for attachment in attachments:
        name = attachment.filename.upper()
        if name.endswith("METADATA.XML"):
            found.append(attachment.data)
        elif name.endswith(".ZIP") or attachment.content_type in (
            "application/zip",
            "application/x-zip-compressed",
        ):
            try:
                with zipfile.ZipFile(io.BytesIO(attachment.data)) as archive:
                    for info in archive.infolist():
                        upper = info.filename.upper()
                        if upper.startswith("IHE_XDM/") and upper.endswith("/METADATA.XML"):
                            if info.file_size <= MAX_METADATA_BYTES:
                                found.append(archive.read(info))
            except (zipfile.BadZipFile, OSError, ValueError):
                continue
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
    """INS matricules named in the IHE_XDM metadata of these attachments."""
    ins: set[str] = set()
    for document in _metadata_documents(attachments):
        for value in _values(document):
            match = _CX_RE.match(value)
            if match and match.group(2) in INS_OIDS:
                ins.add(match.group(1))
    return ins
