"""Who may read which entry of the cahier de liaison: the one visibility rule that every read
path (notes, FHIR export, widget, bot answers…) calls. A note restricted to some roles
(``visible_to_roles``) is read only by its author and by the circle members who currently
hold one of those roles; the structure's staff and the administrator hold no role, so they
never read a restricted note. A delegate reads with the roles of the person they act for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Access
from dossier_api.domain.circle_members import active_members
from dossier_api.domain.models import DossierRoom, Note
from maillon.shared.circle import in_audience


@dataclass(frozen=True)
class Reader:
    """Someone who will read what a path returns: who they are (and for whom they act),
    with the circle roles they currently hold."""

    people: frozenset[str]
    roles: frozenset[str]


def restricted_to(note: Note) -> frozenset[str]:
    """The roles a note is restricted to (empty: the whole circle reads it)."""
    return frozenset(r for r in (note.visible_to_roles or "").split(",") if r)


def may_read(note: Note, reader: Reader) -> bool:
    roles = restricted_to(note)
    return not roles or note.author in reader.people or bool(roles & reader.roles)


def _active_roles(session: Session, dossier_id: str, user_id: str) -> frozenset[str]:
    return frozenset(m.role for m in active_members(session, dossier_id, user_id))


def reader_of(session: Session, dossier_id: str, access: Access) -> Reader:
    """The reader behind an access (a delegate reads with the roles of their delegator)."""
    who = access.on_behalf_of or access.user_id
    people = frozenset(p for p in (access.user_id, access.on_behalf_of) if p)
    return Reader(people, _active_roles(session, dossier_id, who))


def room_readers(session: Session, dossier_id: str, audience: str) -> list[Reader]:
    """Everyone of the circle who reads a dossier room of this audience: what is posted in
    the room must be readable by each of them."""
    roles: dict[str, set[str]] = {}
    for m in active_members(session, dossier_id):
        if in_audience(audience, m.role, m.coordinator):
            roles.setdefault(m.user_id, set()).add(m.role)
    return [Reader(frozenset({user}), frozenset(r)) for user, r in roles.items()]


def readable_notes(session: Session, dossier_id: str, readers: Iterable[Reader]) -> list[Note]:
    """The dossier's notes, oldest first, that every one of ``readers`` may read."""
    everyone = list(readers)
    rows = session.scalars(
        select(Note).where(Note.dossier_id == dossier_id).order_by(Note.created_at, Note.id)
    ).all()
    return [n for n in rows if all(may_read(n, r) for r in everyone)]


def readable_note(session: Session, dossier_id: str, note_id: str, reader: Reader) -> Note | None:
    """One note of the dossier if the reader may read it (else None, as if unknown)."""
    note = session.get(Note, note_id)
    if note is None or note.dossier_id != dossier_id or not may_read(note, reader):
        return None
    return note


def room_notes(
    session: Session, dossier_id: str, room_id: str, reader: Reader
) -> tuple[list[Note], int]:
    """What may be posted in a dossier room for ``reader`` (a bot answer): the notes the
    reader may read that everyone of the circle sitting in that room may read too; and how
    many of the reader's notes were held back for that reason."""
    audience = session.scalar(
        select(DossierRoom.audience).where(
            DossierRoom.room_id == room_id, DossierRoom.dossier_id == dossier_id
        )
    )
    mine = readable_notes(session, dossier_id, [reader])
    everyone = room_readers(session, dossier_id, audience or "circle")
    shown = [n for n in mine if all(may_read(n, r) for r in everyone)]
    return shown, len(mine) - len(shown)
