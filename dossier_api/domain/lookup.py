"""Finding the dossier a message from outside is for: by its mail address, or by the INS
it names (through the blind index: no identity is opened); the possible duplicates of an
identity (identity vigilance, same way). The one owner of these queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dossier_api.domain.ins import QUALIFIED, matricule_index
from dossier_api.domain.models import Dossier
from maillon.shared.crypto import KeyRing


def open_dossier_by_mail_localpart(session: Session, localpart: str) -> tuple[str, str] | None:
    """(dossier id, room id) of the open dossier with a room whose address this is."""
    row = session.execute(
        select(Dossier.id, Dossier.room_id, Dossier.status).where(
            Dossier.mail_localpart == localpart
        )
    ).first()
    if row is None or row.room_id is None or row.status != "open":
        return None
    return row.id, row.room_id


def open_dossier_by_ins(
    session: Session, keys: KeyRing, matricules: Iterable[str]
) -> tuple[str, str] | None:
    """(dossier id, room id) of the one open dossier with a room and a qualified identity
    whose matricule is among ``matricules``; None if none or several."""
    digests = {d for d in (matricule_index(keys, m) for m in matricules) if d is not None}
    if not digests:
        return None
    rows = session.execute(
        select(Dossier.id, Dossier.room_id)
        .where(
            Dossier.ins_index.in_(digests),
            Dossier.identity_status == QUALIFIED,
            Dossier.status == "open",
            Dossier.room_id.is_not(None),
        )
        .limit(2)
    ).all()
    if len(rows) != 1 or rows[0].room_id is None:
        return None
    return rows[0].id, rows[0].room_id


def open_dossiers_carrying_ins(session: Session, keys: KeyRing, matricules: Iterable[str]) -> int:
    """How many open dossiers carry one of these matricules, whatever their identity status
    (by the blind index of every dossier's matricule), counted up to 2: more than one is a
    possible duplicate that no mail is routed to."""
    digests = {d for d in (matricule_index(keys, m) for m in matricules) if d is not None}
    if not digests:
        return 0
    rows = session.execute(
        select(Dossier.id)
        .where(Dossier.matricule_index.in_(digests), Dossier.status == "open")
        .limit(2)
    ).all()
    return len(rows)


def mail_localpart_of_room(session: Session, room_id: str) -> str | None:
    """The address local part of the dossier whose room this is."""
    return session.scalar(select(Dossier.mail_localpart).where(Dossier.room_id == room_id))


@dataclass(frozen=True)
class Candidate:
    """A dossier that may be of the same person (its columns in clear only)."""

    id: str
    structure_id: str | None
    pathway: str
    status: str
    opened_at: dt.datetime
    same_ins: bool


def possible_duplicates(
    session: Session, matricule_digest: str | None, traits_digest: str | None, limit: int = 20
) -> list[Candidate]:
    """Dossiers with the same matricule or the same traits (by their blind indexes: no
    identity is opened), oldest first."""
    clauses = [
        column == digest
        for column, digest in (
            (Dossier.matricule_index, matricule_digest),
            (Dossier.traits_index, traits_digest),
        )
        if digest is not None
    ]
    if not clauses:
        return []
    rows = session.execute(
        select(
            Dossier.id,
            Dossier.structure_id,
            Dossier.pathway,
            Dossier.status,
            Dossier.opened_at,
            Dossier.matricule_index,
        )
        .where(or_(*clauses))
        .order_by(Dossier.opened_at, Dossier.id)
        .limit(limit)
    ).all()
    return [
        Candidate(
            r.id,
            r.structure_id,
            r.pathway,
            r.status,
            r.opened_at,
            matricule_digest is not None and r.matricule_index == matricule_digest,
        )
        for r in rows
    ]
