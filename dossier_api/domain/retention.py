"""Retention of closed dossiers (each pathway's ``retention:`` section): a closed dossier is
archived (read-only, out of the lists) ``archive_after_months`` after its closure, then
purged ``purge_after_years`` after its closure, unless a legal hold is set.

A purge deletes every row of the dossier's health data from the store (identity, notes and
their documents, forms, PPCS, agenda, alerts, tasks, consent and identity records, the
blind-index rows of its names, the mail relay's rows), keeps the dossier's audit trail (no
health data) with one stub entry of the purge, and queues its rooms for the homeserver to
delete with their history and media (``RoomPurge``; the appservice talks to Synapse). Freed
database pages are then overwritten (SQLite ``secure_delete`` and ``VACUUM``; PostgreSQL
``VACUUM FULL`` of the touched tables), so the purged text survives nowhere in the database files.

Patient rooms without any event for ``inactive_room_weeks`` are reported to the dossier's
coordinators (a task), once, before the same policy applies to the dossier.

Every function takes ``now``: the clock is injected (tests, dry runs at a given date)."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Engine, Table, delete, func, select, text, update
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore
from dossier_api.domain.indicators import forget_sealed
from dossier_api.domain.mail.models import MailOutbox, MailSpool, MailThread
from dossier_api.domain.models import (
    AuditEntry,
    CircleMember,
    Dossier,
    DossierRoom,
    RoomActivity,
    RoomMedia,
    RoomPurge,
    Task,
)
from dossier_api.domain.pathways import PATHWAYS, Retention
from dossier_api.domain.rooms import ROOMS, enqueue, reference
from dossier_api.domain.shapes import LegalHoldOut, RetentionOut, RetentionStepOut
from maillon.shared.clock import utcnow
from maillon.shared.dates_fr import PARIS, format_date
from maillon.shared.store import Base

Action = Literal["archive", "purge", "hold"]
ACTOR = "maillon-retention"  # the audit's actor of the daily job
INACTIVE_TASK = "Salle du dossier inactive depuis {weeks} semaines : clore le dossier ou relancer"


def months_later(when: dt.datetime, months: int) -> dt.datetime:
    """``when`` plus whole calendar months (the 31st becomes the month's last day)."""
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def policy(pathway: str) -> Retention:
    found = PATHWAYS.get(pathway)
    return found.retention if found is not None else Retention()


@dataclass(frozen=True)
class Step:
    """What the policy does (or would do) to one dossier on a date."""

    dossier_id: str
    action: Action
    due: dt.datetime
    rows: dict[str, int] = field(default_factory=dict)  # purge: rows deleted, per table
    rooms: tuple[str, ...] = ()  # purge: rooms the homeserver deletes

    def french(self) -> str:
        """One line of the CLI's report (the dossier by its reference, no health data)."""
        ref, due = reference(self.dossier_id), format_date(self.due.date())
        if self.action == "archive":
            return f"archivage  {ref} : conservation active échue le {due}"
        if self.action == "hold":
            return f"gel        {ref} : purge échue le {due}, suspendue (gel juridique)"
        rows = ", ".join(f"{table} {n}" for table, n in sorted(self.rows.items()))
        return f"purge      {ref} : échue le {due} ; {rows} ; salles : {len(self.rooms)}"

    def to_json(self) -> RetentionStepOut:
        return {
            "dossier_id": self.dossier_id,
            "action": self.action,
            "due": self.due.isoformat(timespec="seconds"),
            "rows": self.rows,
            "rooms": list(self.rooms),
        }


def _health_tables() -> list[Table]:
    """Tables holding rows of one dossier (a foreign key to ``dossiers``), children first.
    The audit log has no such key: it stays."""
    found = []
    for table in reversed(Base.metadata.sorted_tables):
        column = table.columns.get("dossier_id")
        if column is not None and any(
            fk.column.table.name == "dossiers" for fk in column.foreign_keys
        ):
            found.append(table)
    return found


# The mail relay's rows of a dossier (no foreign key: a mail may name an unknown dossier).
MAIL_BY_DOSSIER = (MailSpool.__tablename__,)
MAIL_BY_ROOM = (MailThread.__tablename__, MailOutbox.__tablename__)


def _selections(dossier_id: str, rooms: tuple[str, ...]) -> list[tuple[Table, Any]]:
    """Every table holding rows of the dossier, children first, with the rows' condition."""
    found: list[tuple[Table, Any]] = [(t, t.c.dossier_id == dossier_id) for t in _health_tables()]
    tables = Base.metadata.tables
    found += [(tables[n], tables[n].c.dossier_id == dossier_id) for n in MAIL_BY_DOSSIER]
    found += [(tables[n], tables[n].c.room_id.in_(rooms)) for n in MAIL_BY_ROOM]
    return found


def _counts(session: Session, dossier_id: str, rooms: tuple[str, ...]) -> dict[str, int]:
    counts = {}
    for table, where in _selections(dossier_id, rooms):
        n = session.scalar(select(func.count()).select_from(table).where(where))
        if n:
            counts[table.name] = int(n)
    counts["dossiers"] = 1
    return counts


def _rooms(session: Session, dossier_id: str, main_room: str | None) -> tuple[str, ...]:
    ids = set(
        session.scalars(
            select(DossierRoom.room_id).where(
                DossierRoom.dossier_id == dossier_id, DossierRoom.room_id.is_not(None)
            )
        )
    )
    if main_room:
        ids.add(main_room)
    return tuple(sorted(i for i in ids if i))


def plan(session: Session, now: dt.datetime) -> list[Step]:
    """What the policy does on ``now``: archives, purges, and purges withheld by a hold
    (read from dates and flags: no identity is opened)."""
    steps = []
    rows = session.execute(
        select(
            Dossier.id,
            Dossier.pathway,
            Dossier.status,
            Dossier.closed_at,
            Dossier.legal_hold,
            Dossier.room_id,
        )
        .where(Dossier.status.in_(("closed", "archived")), Dossier.closed_at.is_not(None))
        .order_by(Dossier.closed_at, Dossier.id)
    ).all()
    for dossier_id, pathway, status, closed_at, legal_hold, main_room in rows:
        assert closed_at is not None  # the query's condition
        rules = policy(pathway)
        purge_due = months_later(closed_at, 12 * rules.purge_after_years)
        archive_due = months_later(closed_at, rules.archive_after_months)
        if purge_due <= now:
            if legal_hold:
                steps.append(Step(dossier_id, "hold", purge_due))
            else:
                rooms = _rooms(session, dossier_id, main_room)
                counts = _counts(session, dossier_id, rooms)
                steps.append(Step(dossier_id, "purge", purge_due, counts, rooms))
        elif status == "closed" and archive_due <= now:
            steps.append(Step(dossier_id, "archive", archive_due))
    return steps


def _audit(session: Session, dossier_id: str, action: str, actor: str, detail: str) -> None:
    session.add(
        AuditEntry(
            dossier_id=dossier_id,
            actor=actor,
            basis="retention",
            action=action,
            component="retention",
            allowed=True,
            detail=detail[:500],
        )
    )


def _archive(session: Session, step: Step, actor: str) -> None:
    session.execute(
        update(Dossier)
        .where(Dossier.id == step.dossier_id, Dossier.status == "closed")
        .values(status="archived")
    )
    enqueue(session, step.dossier_id, ROOMS)  # the rooms learn the status (read-only)
    detail = f"durée de conservation active échue le {step.due.date().isoformat()}"
    _audit(session, step.dossier_id, "dossier.archive", actor, detail)


def _purge(session: Session, step: Step, actor: str) -> None:
    for table, where in _selections(step.dossier_id, step.rooms):
        session.execute(delete(table).where(where))
    session.execute(delete(Dossier).where(Dossier.id == step.dossier_id))
    forget_sealed(session)  # the past's counts lost the dossier's facts
    for room_id in step.rooms:
        if session.get(RoomPurge, room_id) is None:
            session.add(RoomPurge(room_id=room_id, dossier_id=step.dossier_id))
    counts = ", ".join(f"{name} {n}" for name, n in sorted(step.rows.items()))
    _audit(
        session,
        step.dossier_id,
        "dossier.purge",
        actor,
        f"purgé ({counts}) ; salles à supprimer : {len(step.rooms)}",
    )


def scrub(engine: Engine, tables: set[str]) -> None:
    """Overwrite what the deleted rows left in the database files."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    # A plain VACUUM leaves the dead tuples' bytes in the pages; FULL rewrites the tables.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in sorted(tables):
            conn.execute(text(f'VACUUM FULL "{name}"'))
        for statement in statistics_scrub(sorted(tables)):
            conn.execute(text(statement))


def statistics_scrub(tables: list[str]) -> list[str]:
    """PostgreSQL keeps samples of column values in its planner statistics
    (``pg_statistic``: most common values, histograms): new statistics of the rewritten
    tables replace them, and rewriting ``pg_statistic`` drops the old rows' bytes (done by a
    superuser; for another role the server only warns and skips it)."""
    return [*(f'ANALYZE "{name}"' for name in tables), "VACUUM FULL pg_catalog.pg_statistic"]


def apply(
    engine: Engine, now: dt.datetime, dry_run: bool = False, actor: str = ACTOR
) -> list[Step]:
    """Run the policy on ``now`` (or only list it, ``dry_run``); each dossier in its own
    transaction, audited. Returns the steps (``hold`` ones are listed, never acted on)."""
    with Session(engine) as session:
        steps = plan(session, now)
    if dry_run:
        return steps
    touched: set[str] = set()
    for step in steps:
        if step.action == "hold":
            continue
        with Session(engine) as session, session.begin():
            if step.action == "archive":
                _archive(session, step, actor)
            else:
                _purge(session, step, actor)
                touched |= set(step.rows)
    if touched:
        scrub(engine, touched)
    return steps


def inactive_rooms(session: Session, now: dt.datetime) -> list[tuple[str, dt.datetime, int]]:
    """Open dossiers whose rooms had no event for the pathway's ``inactive_room_weeks``
    (the last event, or the dossier's opening when there was none)."""
    last = (
        select(RoomActivity.dossier_id, func.max(RoomActivity.at).label("at"))
        .group_by(RoomActivity.dossier_id)
        .subquery()
    )
    rows = session.execute(
        select(Dossier.id, Dossier.pathway, Dossier.opened_at, last.c.at)
        .outerjoin(last, last.c.dossier_id == Dossier.id)
        .where(Dossier.status == "open")
    ).all()
    found = []
    for dossier_id, pathway, opened_at, at in rows:
        since, weeks = at or opened_at, policy(pathway).inactive_room_weeks
        if since + dt.timedelta(weeks=weeks) <= now:
            found.append((dossier_id, since, weeks))
    return found


def report_inactive(engine: Engine, now: dt.datetime) -> list[str]:
    """A task to each inactive dossier's coordinators, due the day it is reported (so in
    their "À faire" worklist), once per period of inactivity; returns the dossiers
    reported."""
    reported = []
    with Session(engine) as session, session.begin():
        for dossier_id, since, weeks in inactive_rooms(session, now):
            title = INACTIVE_TASK.format(weeks=weeks)
            already = session.scalar(
                select(func.count())
                .select_from(Task)
                .where(
                    Task.dossier_id == dossier_id,
                    Task.created_by == ACTOR,
                    Task.created_at >= since,
                )
            )
            if already:
                continue
            coordinators = session.scalars(
                select(CircleMember.user_id).where(
                    CircleMember.dossier_id == dossier_id,
                    CircleMember.coordinator.is_(True),
                    CircleMember.removed_at.is_(None),
                )
            ).all()
            for user_id in sorted(set(coordinators)):
                session.add(
                    Task(
                        dossier_id=dossier_id,
                        title={"text": title},
                        assignee=user_id,
                        created_by=ACTOR,
                        created_at=now,
                        # Due the day it is reported: in the coordinators' "À faire".
                        due=now.astimezone(PARIS).date(),
                    )
                )
            detail = f"salle inactive depuis le {since.date().isoformat()}"
            _audit(session, dossier_id, "dossier.inactive", ACTOR, detail)
            reported.append(dossier_id)
    return reported


class RetentionOperations(ServiceCore):
    """The administrators' side of the policy: a legal hold on a dossier, the dry run and
    the run of the policy (``maillon dossiers purge``, ``/v1/admin/retention``)."""

    @staticmethod
    def _administrator(caller: Caller) -> None:
        if not caller.is_admin:
            raise ApiError(403, "M_FORBIDDEN", "réservé aux administrateurs")

    def set_legal_hold(self, caller: Caller, dossier_id: str, hold: bool) -> LegalHoldOut:
        self._administrator(caller)
        with self.acting(caller, "dossier.legal_hold", dossier_id) as act:
            act.dossier.legal_hold = hold
            act.detail = "gel juridique posé" if hold else "gel juridique levé"
            return {"dossier_id": dossier_id, "legal_hold": hold}

    def run_retention(
        self, caller: Caller, dry_run: bool, now: dt.datetime | None = None
    ) -> RetentionOut:
        self._administrator(caller)
        steps = apply(self._engine, now or utcnow(), dry_run, actor=caller.user_id)
        return {"dry_run": dry_run, "steps": [s.to_json() for s in steps]}


def pending_room_purges(engine: Engine, limit: int = 20) -> list[str]:
    """Rooms of purged dossiers the homeserver has not deleted yet."""
    with Session(engine) as session:
        return list(
            session.scalars(
                select(RoomPurge.room_id)
                .where(RoomPurge.done_at.is_(None))
                .order_by(RoomPurge.requested_at)
                .limit(limit)
            )
        )


def record_room_media(engine: Engine, room_id: str, mxc: str) -> None:
    """A file sent in a dossier's room (once per address)."""
    if not mxc.startswith("mxc://") or len(mxc) > 500:
        return
    with Session(engine) as session, session.begin():
        if session.get(RoomMedia, (room_id, mxc)) is None:
            session.add(RoomMedia(room_id=room_id, mxc=mxc))


def room_media(engine: Engine, room_id: str) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(RoomMedia.mxc).where(RoomMedia.room_id == room_id)))


def room_purge_result(engine: Engine, room_id: str, error: str | None = None) -> None:
    with Session(engine) as session, session.begin():
        purge = session.get(RoomPurge, room_id)
        if purge is None:
            return
        if error is None:
            purge.done_at = utcnow()
            session.execute(delete(RoomMedia).where(RoomMedia.room_id == room_id))
        else:
            purge.attempts += 1
            purge.last_error = error[:500]


def daily(engine: Engine, now: dt.datetime) -> list[Step]:
    """The daily job: inactive rooms reported, then the policy applied."""
    report_inactive(engine, now)
    return apply(engine, now)
