"""Documents attached to notes of the cahier de liaison: stored sealed in the dossier store
(``NoteAttachment``), listed with their note, downloaded by whoever may read the note (the
role-restricted visibility of the note applies), every download audited. The operations are
the ``AttachmentOperations`` mixin of ``DossierService``; recognising a document's type from
its bytes is a module function."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain import visibility
from dossier_api.domain.access import Caller
from dossier_api.domain.core import Act, ApiError, ServiceCore, _iso
from dossier_api.domain.models import ATTACHMENT_CONTENT, Note, NoteAttachment, new_id
from dossier_api.domain.shapes import DocumentOut
from maillon.shared.sealed import key_ring

# The first bytes of each media type Maillon accepts (the declared type must match them).
SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
MAX_NAME = 200


def sniff(content: bytes) -> str | None:
    """The media type the bytes are, among those Maillon recognises (else None)."""
    for media_type, prefixes in SIGNATURES.items():
        if content.startswith(prefixes):
            return media_type
    return None


def clean_name(name: str) -> str:
    """A file name as stored and offered back: no directory, no control character."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in base if ch.isprintable()).strip()
    return text[:MAX_NAME] or "document"


@dataclass(frozen=True)
class Download:
    name: str
    media_type: str
    content: bytes


def attachment_json(row: NoteAttachment) -> DocumentOut:
    return {
        "id": row.id,
        "note_id": row.note_id,
        "name": row.meta.get("name", "document"),
        "media_type": row.media_type,
        "size": row.size,
        "sha256": row.meta.get("sha256"),
        "uploaded_by": row.uploaded_by,
        "uploaded_at": _iso(row.uploaded_at),
        "url": f"/v1/dossiers/{row.dossier_id}/notes/{row.note_id}/attachments/{row.id}",
    }


def documents_of(session: Session, note_ids: Iterable[str]) -> dict[str, list[DocumentOut]]:
    """The documents of these notes (their bytes are not loaded), oldest first."""
    ids = list(note_ids)
    found: dict[str, list[DocumentOut]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = session.scalars(
        select(NoteAttachment)
        .where(NoteAttachment.note_id.in_(ids))
        .order_by(NoteAttachment.uploaded_at, NoteAttachment.id)
    ).all()
    for row in rows:
        found[row.note_id].append(attachment_json(row))
    return found


class AttachmentOperations(ServiceCore):
    """Upload and download of a note's documents, each in one ``self.acting`` transaction."""

    def _readable_note(self, session: Session, dossier_id: str, note_id: str, act: Act) -> Note:
        reader = visibility.reader_of(session, dossier_id, act.access)
        note = visibility.readable_note(session, dossier_id, note_id[:32], reader)
        if note is None:
            raise ApiError(404, "M_NOT_FOUND", "note inconnue dans ce dossier")
        return note

    def add_attachment(
        self,
        caller: Caller,
        dossier_id: str,
        note_id: str,
        name: str,
        media_type: str,
        content: bytes,
    ) -> DocumentOut:
        """Attach a document to one's own note: its type recognised from its bytes and
        allowed by the settings, its size within ``attachments.max_bytes``."""
        limits = self._attachment_settings
        with self.acting(caller, "notes.attach", dossier_id, "write") as act:
            session = act.session
            act.detail = f"note {note_id[:32]}"
            if act.dossier.status != "open":
                raise ApiError(
                    409, "M_CONFLICT", "le dossier est clos : le cahier est en lecture seule"
                )
            note = self._readable_note(session, dossier_id, note_id, act)
            if note.author != caller.user_id:
                raise ApiError(
                    403, "M_FORBIDDEN", "seul l'auteur d'une note peut y joindre un document"
                )
            if len(content) > limits.max_bytes:
                raise ApiError(
                    413,
                    "M_TOO_LARGE",
                    f"document trop volumineux : {len(content)} octets, au plus "
                    f"{limits.max_bytes} octets",
                )
            if not content:
                raise ApiError(400, "M_INVALID_PARAM", "document vide")
            found = sniff(content)
            if found is None or found not in limits.media_types:
                raise ApiError(
                    415,
                    "M_UNSUPPORTED_TYPE",
                    "type de document non accepté (types acceptés : "
                    + ", ".join(limits.media_types)
                    + ")",
                )
            declared = media_type.split(";", 1)[0].strip().lower()
            if declared not in ("", "application/octet-stream", found):
                raise ApiError(
                    415,
                    "M_UNSUPPORTED_TYPE",
                    f"le contenu du document ({found}) ne correspond pas au type annoncé "
                    f"({declared})",
                )
            row_id = new_id()
            row = NoteAttachment(
                id=row_id,
                note_id=note.id,
                dossier_id=dossier_id,
                media_type=found,
                size=len(content),
                meta={"name": clean_name(name), "sha256": hashlib.sha256(content).hexdigest()},
                content=ATTACHMENT_CONTENT.seal(key_ring(), content, row_id),
                uploaded_by=caller.user_id,
            )
            session.add(row)
            session.flush()
            act.detail = f"note {note.id} document {row_id}"
            return attachment_json(row)

    def attachment(
        self, caller: Caller, dossier_id: str, note_id: str, attachment_id: str
    ) -> Download:
        """A document of a note the caller may read (else 404, as if unknown); audited."""
        with self.acting(caller, "notes.attachment.read", dossier_id, "read") as act:
            session = act.session
            act.detail = f"note {note_id[:32]} document {attachment_id[:32]}"
            note = self._readable_note(session, dossier_id, note_id, act)
            row = session.get(NoteAttachment, attachment_id[:32])
            if row is None or row.note_id != note.id:
                raise ApiError(404, "M_NOT_FOUND", "document inconnu pour cette note")
            content = ATTACHMENT_CONTENT.open(key_ring(), row.content, row.id)
            return Download(row.meta.get("name", "document"), row.media_type, content)
