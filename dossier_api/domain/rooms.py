"""The dossier side of the dossier ↔ room link (the appservice carries it into Matrix):

- an outbox of changes to carry into the dossier's rooms, written in the same database
  transaction as the change itself, so a change is never lost and never reordered;
- what each room should show (its link, audience, the circle as the dossier knows it);
- what the rooms tell the dossier: circle changes made in the room, the room history
  (invites, joins, departures) and message activity, each recorded once per event id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from dossier_api.domain.models import (
    AuditEntry,
    CircleMember,
    Dossier,
    DossierRoom,
    RoomActivity,
    RoomSyncJob,
)
from dossier_api.domain.pathways import PATHWAYS, Pathway
from maillon.shared.circle import CircleEntry, DossierLink
from maillon.shared.clock import utcnow
from maillon.shared.store import insert_once, insert_or_skip

ROOMS = "rooms"  # job subject: the rooms themselves (creation, status, links)
MAX_ATTEMPTS = 20  # then the job stays in the outbox with its last error, for a person


def enqueue(session: Session, dossier_id: str, subject: str) -> None:
    """Record that ``subject`` (ROOMS or a member's user id) changed for this dossier."""
    session.add(RoomSyncJob(dossier_id=dossier_id, subject=subject))


def entry_of(member: CircleMember) -> CircleEntry:
    return CircleEntry(
        user_id=member.user_id,
        role=member.role,
        coordinator=member.coordinator,
        since=member.since,
        until=member.until,
        added_by=member.added_by,
        active=member.removed_at is None,
        removed_by=member.removed_by,
        removed_at=member.removed_at,
    )


def same_entry(a: CircleEntry | None, b: CircleEntry | None) -> bool:
    """Same membership as far as the room is concerned (role, rights, period, status)."""
    if a is None or b is None:
        return a is b
    return (a.role, a.coordinator, a.until, a.active) == (b.role, b.coordinator, b.until, b.active)


@dataclass(frozen=True)
class RoomPlan:
    key: str
    kind: str
    label: str
    audience: str
    room_id: str | None
    creation_started: bool


@dataclass(frozen=True)
class DossierPlan:
    """What the dossier's rooms should show (no health data beyond the room name)."""

    dossier_id: str
    pathway: str
    pathway_version: int
    status: str
    referent: str
    name_fields: dict[str, str]
    rooms: tuple[RoomPlan, ...]
    # Merged into another dossier: that dossier and its patient room (the pointer).
    merged_into: str | None = None
    merged_room: str | None = None
    share_outside: bool = False

    def link(self, room: RoomPlan) -> DossierLink:
        pathway = self.followed
        template = pathway.room_template if pathway else None
        return DossierLink(
            dossier_id=self.dossier_id,
            allow_patient=bool(template and template.allow_patient),
            allow_knock=bool(template and template.allow_knock) and room.kind == "main",
            status=self.status,
            kind=room.kind,
            room_key=room.key,
            audience=room.audience,
            share_outside=self.share_outside,
        )

    @property
    def followed(self) -> Pathway | None:
        """The version of its pathway the dossier follows."""
        return PATHWAYS.version(self.pathway, self.pathway_version)

    @property
    def main_room_id(self) -> str | None:
        return next((r.room_id for r in self.rooms if r.kind == "main"), None)


def reference(dossier_id: str) -> str:
    """The one reference of a dossier shown to people: in its room's name, on the pages,
    in the bot's answers."""
    return dossier_id[:6].upper()


def name_fields(dossier: Dossier) -> dict[str, str]:
    """Variables of a room-name template (``ROOM_NAME_FIELDS``). Room names are not
    end-to-end encrypted (the homeserver and its peers store them): initials, birth year and
    the dossier's reference only."""
    identity = dossier.identity
    last = str(identity.get("used_name") or identity.get("birth_name") or "?")
    first = str(identity.get("first_names") or "").split(" ")[0]
    birth = str(identity.get("birth_date") or "")
    return {
        "initiales": f"{first[:1].upper()}. {last[:1].upper()}." if first else f"{last[:1]}.",
        "annee": birth[:4],
        "ref": reference(dossier.id),
    }


class RoomLinks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- outbox --------------------------------------------------------------------------

    def pending(self, limit: int = 500) -> list[tuple[str, list[int], set[str]]]:
        """Pending jobs grouped by dossier, dossiers in the order of their first job."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(RoomSyncJob.seq, RoomSyncJob.dossier_id, RoomSyncJob.subject)
                .where(RoomSyncJob.done_at.is_(None), RoomSyncJob.attempts < MAX_ATTEMPTS)
                .order_by(RoomSyncJob.seq)
                .limit(limit)
            ).all()
        grouped: dict[str, tuple[list[int], set[str]]] = {}
        for seq, dossier_id, subject in rows:
            seqs, subjects = grouped.setdefault(dossier_id, ([], set()))
            seqs.append(seq)
            subjects.add(subject)
        return [(d, seqs, subjects) for d, (seqs, subjects) in grouped.items()]

    def pending_for(self, dossier_id: str) -> tuple[list[int], set[str]]:
        with Session(self._engine) as session:
            rows = session.execute(
                select(RoomSyncJob.seq, RoomSyncJob.subject).where(
                    RoomSyncJob.dossier_id == dossier_id,
                    RoomSyncJob.done_at.is_(None),
                    RoomSyncJob.attempts < MAX_ATTEMPTS,
                )
            ).all()
        return [seq for seq, _ in rows], {subject for _, subject in rows}

    def done(self, seqs: Iterable[int]) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(RoomSyncJob)
                .where(RoomSyncJob.seq.in_(list(seqs)))
                .values(done_at=utcnow(), attempts=RoomSyncJob.attempts + 1)
            )

    def failed(self, seqs: Iterable[int], reason: str) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(RoomSyncJob)
                .where(RoomSyncJob.seq.in_(list(seqs)))
                .values(attempts=RoomSyncJob.attempts + 1, last_error=reason[:500])
            )

    def backlog(self) -> int:
        with Session(self._engine) as session:
            count = session.scalar(
                select(func.count()).select_from(RoomSyncJob).where(RoomSyncJob.done_at.is_(None))
            )
        return int(count or 0)

    # -- what the rooms should show ------------------------------------------------------

    def plan(self, dossier_id: str) -> DossierPlan | None:
        with Session(self._engine) as session:
            dossier = session.get(Dossier, dossier_id)
            if dossier is None:
                return None
            rooms = session.scalars(
                select(DossierRoom)
                .where(DossierRoom.dossier_id == dossier_id)
                .order_by(DossierRoom.created_at, DossierRoom.id)
            ).all()
            return DossierPlan(
                dossier_id=dossier.id,
                pathway=dossier.pathway,
                pathway_version=dossier.pathway_version,
                status=dossier.status,
                referent=dossier.referent,
                name_fields=name_fields(dossier),
                rooms=tuple(
                    RoomPlan(
                        r.id,
                        r.kind,
                        r.label,
                        r.audience,
                        r.room_id,
                        r.creation_started_at is not None,
                    )
                    for r in rooms
                ),
                merged_into=dossier.merged_into,
                merged_room=(
                    session.scalar(
                        select(DossierRoom.room_id).where(
                            DossierRoom.dossier_id == dossier.merged_into,
                            DossierRoom.kind == "main",
                        )
                    )
                    if dossier.merged_into
                    else None
                ),
                share_outside=dossier.consent_share_outside and not dossier.opposition,
            )

    def circle(self, dossier_id: str, users: Iterable[str] | None = None) -> list[CircleEntry]:
        """The dossier's latest entry for each person (active or ended)."""
        with Session(self._engine) as session:
            query = select(CircleMember).where(CircleMember.dossier_id == dossier_id)
            if users is not None:
                query = query.where(CircleMember.user_id.in_(list(users)))
            latest: dict[str, CircleMember] = {}
            for member in session.scalars(query.order_by(CircleMember.id)):
                latest[member.user_id] = member
        return [entry_of(m) for m in latest.values()]

    def start_creation(self, key: str) -> None:
        with Session(self._engine) as session, session.begin():
            room = session.get(DossierRoom, key)
            if room is not None and room.creation_started_at is None:
                room.creation_started_at = utcnow()

    def room_created(self, key: str, room_id: str) -> None:
        with Session(self._engine) as session, session.begin():
            room = session.get(DossierRoom, key)
            if room is None or room.room_id is not None:
                return
            room.room_id = room_id
            if room.kind == "main":
                dossier = session.get(Dossier, room.dossier_id)
                if dossier is not None:
                    dossier.room_id = room_id

    def link_of_room(self, room_id: str) -> tuple[str, str] | None:
        """(dossier id, room kind) of a dossier room."""
        with self._engine.connect() as connection:
            return links_of_rooms(connection, [room_id]).get(room_id)

    # -- what the rooms tell the dossier -------------------------------------------------

    def apply_room_entry(self, dossier_id: str, entry: CircleEntry) -> bool:
        """Carry a circle change made in the main room (invite or removal by a coordinator,
        departure, exit date) into the dossier. Stale changes (older than the dossier's own
        last change for that person) are ignored; returns whether the dossier changed."""
        now = utcnow()
        with Session(self._engine) as session, session.begin():
            rows = session.scalars(
                select(CircleMember)
                .where(CircleMember.dossier_id == dossier_id, CircleMember.user_id == entry.user_id)
                .order_by(CircleMember.id)
            ).all()
            latest = rows[-1] if rows else None
            if entry.active:
                if latest is not None and latest.removed_at is None:
                    return False
                removed_at = latest.removed_at if latest is not None else None
                if removed_at is not None and entry.since is not None and removed_at > entry.since:
                    return False
                session.add(
                    CircleMember(
                        dossier_id=dossier_id,
                        user_id=entry.user_id,
                        role=entry.role,
                        coordinator=entry.coordinator,
                        since=entry.since or now,
                        until=entry.until,
                        added_by=entry.added_by or entry.user_id,
                    )
                )
                actor, action = entry.added_by or entry.user_id, "circle.add"
            else:
                if latest is None or latest.removed_at is not None:
                    return False
                since = latest.since
                if entry.removed_at is not None and since is not None and since > entry.removed_at:
                    return False
                latest.removed_at = entry.removed_at or now
                latest.removed_by = entry.removed_by or entry.user_id
                actor, action = latest.removed_by, "circle.remove"
            session.add(
                AuditEntry(
                    dossier_id=dossier_id,
                    actor=actor,
                    basis="room",
                    action=action,
                    component="appservice",
                    allowed=True,
                    detail=entry.user_id,
                )
            )
            enqueue(session, dossier_id, entry.user_id)  # the side rooms follow
        return True

    def record_activity(
        self,
        dossier_id: str,
        event: dict[str, Any],
        kind: str,
        subject: str | None = None,
    ) -> bool:
        """Record one room event (metadata only) once; False if it was already recorded."""
        with self._engine.begin() as connection:
            return insert_once(
                connection, RoomActivity, activity_row(dossier_id, event, kind, subject)
            )


def links_of_rooms(connection: Connection, room_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(dossier id, room kind) of those of ``room_ids`` that are dossier rooms."""
    wanted = set(room_ids)
    if not wanted:
        return {}
    rows = connection.execute(
        select(DossierRoom.room_id, DossierRoom.dossier_id, DossierRoom.kind).where(
            DossierRoom.room_id.in_(wanted)
        )
    ).all()
    return {room_id: (dossier_id, kind) for room_id, dossier_id, kind in rows if room_id}


def activity_row(
    dossier_id: str, event: dict[str, Any], kind: str, subject: str | None = None
) -> dict[str, Any]:
    """The room activity one event records (metadata only)."""
    ts = event.get("origin_server_ts")
    at = dt.datetime.fromtimestamp(ts / 1000, dt.UTC) if isinstance(ts, int) else utcnow()
    return {
        "event_id": event["event_id"],
        "dossier_id": dossier_id,
        "room_id": event["room_id"],
        "kind": kind,
        "sender": event["sender"],
        "subject": subject,
        "at": at,
    }


def record_activities(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Record room activities (``activity_row``) in the caller's database transaction, each
    once per event id (in one statement)."""
    if rows:
        connection.execute(insert_or_skip(connection, RoomActivity).values(rows))
