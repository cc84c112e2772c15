"""Activity indicators of a structure, a pathway or the region, computed by SQL aggregates
over clear columns only (dates, statuses, counts): no sealed column is ever read, so no
identity, note, task title or mail is opened to count them.

Resource-team solicitations are counted by the month they were sent (``created_at``), with
their outcome as it stands (accepted: someone of the team took it, whatever came next;
declined: everyone told declined; expired: no one answered in time), and their response
time from sending to the team's acceptance (median and 90th percentile, nearest rank)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from dossier_api.domain.mail.models import MailOutbox, MailSpool
from dossier_api.domain.models import (
    CircleMember,
    Dossier,
    DossierRoom,
    IndicatorMonth,
    Note,
    RoomActivity,
    SealedMonth,
    Solicitation,
    SolicitationEvent,
    Task,
)
from dossier_api.domain.pathways import PATHWAYS, Measure

log = logging.getLogger(__name__)

# The solicitation counts of ``activity``, in this order (sent, then its outcomes).
SOLICITED = (
    "solicitations",
    "solicitations_accepted",
    "solicitations_declined",
    "solicitations_expired",
)
# The activity counts of dated facts that never change once their month is over (a note,
# a message, a mail in or out): counted once per closed month (``indicator_months``).
SEALED = ("notes", "urgent_notes", "messages", "mails_in", "mails_out")
# Measures that are durations: none without a case (not 0).
DURATIONS = ("first_join_hours", "response_median_minutes")
SMALL_CELL = 5  # aggregates sent outside the structure show "< 5" for 1 to 4
MAX_MONTHS = 36


@dataclass(frozen=True)
class Scope:
    """Whose dossiers: a structure's, a pathway's (both: a pathway within a structure), or
    the region's (neither)."""

    structure_id: str | None = None
    pathway: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.structure_id is not None:
            conditions.append(Dossier.structure_id == self.structure_id)
        if self.pathway is not None:
            conditions.append(Dossier.pathway == self.pathway)
        return conditions


@dataclass(frozen=True)
class Period:
    """Whole months, ``start`` (first day of a month) included, ``end`` excluded."""

    start: dt.date
    end: dt.date

    def months(self) -> list[tuple[dt.datetime, dt.datetime]]:
        bounds = []
        day = self.start
        while day < self.end:
            following = next_month(day)
            bounds.append((moment(day), moment(min(following, self.end))))
            day = following
        return bounds

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


def moment(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_period(year: int, month: int) -> Period:
    start = dt.date(year, month, 1)
    return Period(start, next_month(start))


def previous_month(today: dt.date) -> Period:
    first = today.replace(day=1)
    last_month = (first - dt.timedelta(days=1)).replace(day=1)
    return Period(last_month, first)


def parse_period(start: str | None, end: str | None, today: dt.date) -> Period:
    """``du`` and ``au`` as ``AAAA-MM`` (the ``au`` month included); by default the last
    12 months including the current one. ``ValueError`` with a French message."""

    def month(value: str, key: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value + "-01")
        except ValueError:
            raise ValueError(f"paramètre {key} : un mois AAAA-MM attendu") from None

    last = month(end, "au") if end else today.replace(day=1)
    index = last.year * 12 + last.month - 1 - 11
    first = month(start, "du") if start else dt.date(index // 12, index % 12 + 1, 1)
    if first > last:
        raise ValueError("période : le mois « du » doit précéder le mois « au »")
    period = Period(first, next_month(last))
    if len(period.months()) > MAX_MONTHS:
        raise ValueError(f"période : {MAX_MONTHS} mois au plus")
    return period


# The summary figures, in order, with their labels (French, English): one list for the
# pages, the extraction checks and the monthly PDF.
LABELS: dict[str, tuple[str, str]] = {
    "opened": ("Dossiers ouverts", "Records opened"),
    "active": ("Dossiers actifs", "Active records"),
    "closed": ("Dossiers clos", "Records closed"),
    "first_join_hours": (
        "Délai médian avant le premier membre (heures)",
        "Median time to the first member joining (hours)",
    ),
    "tasks_done": ("Tâches faites", "Tasks done"),
    "tasks_overdue": ("Tâches en retard", "Overdue tasks"),
    "urgent_notes": ("Notes urgentes", "Urgent notes"),
    "messages": ("Messages", "Messages"),
    "mails": ("Courriels", "Mails"),
    "messages_per_dossier": ("Messages par dossier actif", "Messages per active record"),
    "mails_per_dossier": ("Courriels par dossier actif", "Mails per active record"),
    "solicitations": ("Sollicitations des équipes ressources", "Resource-team solicitations"),
    "solicitations_accepted": ("Sollicitations acceptées", "Solicitations accepted"),
    "solicitations_declined": ("Sollicitations refusées", "Solicitations declined"),
    "solicitations_expired": ("Sollicitations expirées", "Solicitations expired"),
    "response_median_minutes": (
        "Délai médian de réponse des équipes (minutes)",
        "Median team response time (minutes)",
    ),
    "response_p90_minutes": (
        "Délai de réponse des équipes, 90e centile (minutes)",
        "Team response time, 90th percentile (minutes)",
    ),
}


@dataclass(frozen=True)
class MonthFigures:
    month: dt.date
    opened: int
    closed: int
    active: int
    solicitations: int = 0
    solicitations_accepted: int = 0


@dataclass(frozen=True)
class Indicators:
    """The figures of a scope over a period."""

    scope: Scope
    period: Period
    months: tuple[MonthFigures, ...]
    opened: int
    closed: int
    active: int
    joined: int  # dossiers opened in the period whose circle has had a member join
    first_join_hours: float | None  # median, over those
    tasks_done: int
    tasks_overdue: int
    urgent_notes: int
    messages: int
    mails: int
    solicitations: int = 0
    solicitations_accepted: int = 0
    solicitations_declined: int = 0
    solicitations_expired: int = 0
    response_median_minutes: float | None = None  # sent to accepted, over the accepted
    response_p90_minutes: float | None = None
    # The same figures for each pathway of the scope.
    by_pathway: Mapping[str, Indicators] = field(default_factory=dict)

    @property
    def messages_per_dossier(self) -> float:
        return round(self.messages / self.active, 2) if self.active else 0.0

    @property
    def mails_per_dossier(self) -> float:
        return round(self.mails / self.active, 2) if self.active else 0.0

    def summary(self) -> list[tuple[str, float | int | None]]:
        """(key of ``LABELS``, value) of the summary figures."""
        figures = self.to_json()
        return [(key, figures[key]) for key in LABELS]

    def measure(self, name: Measure) -> float | None:
        return {
            "dossiers_opened": float(self.opened),
            "dossiers_closed": float(self.closed),
            "dossiers_active": float(self.active),
            "first_join_hours": self.first_join_hours,
            "tasks_done": float(self.tasks_done),
            "tasks_overdue": float(self.tasks_overdue),
            "urgent_notes": float(self.urgent_notes),
            "messages": float(self.messages),
            "mails": float(self.mails),
            "solicitations": float(self.solicitations),
            "solicitations_accepted": float(self.solicitations_accepted),
            "response_median_minutes": self.response_median_minutes,
        }[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "months": [
                {
                    "month": m.month.isoformat()[:7],
                    "opened": m.opened,
                    "closed": m.closed,
                    "active": m.active,
                    "solicitations": m.solicitations,
                    "solicitations_accepted": m.solicitations_accepted,
                }
                for m in self.months
            ],
            "opened": self.opened,
            "closed": self.closed,
            "active": self.active,
            "joined": self.joined,
            "first_join_hours": self.first_join_hours,
            "tasks_done": self.tasks_done,
            "tasks_overdue": self.tasks_overdue,
            "urgent_notes": self.urgent_notes,
            "messages": self.messages,
            "mails": self.mails,
            "messages_per_dossier": self.messages_per_dossier,
            "mails_per_dossier": self.mails_per_dossier,
            "solicitations": self.solicitations,
            "solicitations_accepted": self.solicitations_accepted,
            "solicitations_declined": self.solicitations_declined,
            "solicitations_expired": self.solicitations_expired,
            "response_median_minutes": self.response_median_minutes,
            "response_p90_minutes": self.response_p90_minutes,
        }


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@dataclass(frozen=True)
class Counted:
    """One activity count: rows of a table (``id``) belonging to a dossier (``dossier_id``,
    reached through ``via`` — (table, joined table, on) — when the table does not name it)
    that meet ``condition``."""

    id: Any
    dossier_id: Any
    condition: ColumnElement[bool]
    via: tuple[Any, Any, Any] | None = None

    def joined(self, statement: Any) -> Any:
        if self.via is None:
            return statement
        table, target, on = self.via
        return statement.select_from(table).join(target, on)


def activity(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict[str, Counted]:
    """The one definition of each activity count over [start, end): the indicators count
    them over a scope, the extraction per dossier. A task is overdue when it was due before
    the period's end (or now, if sooner) and was not done by then."""
    as_of = min(now, end)
    sent = and_(Solicitation.created_at >= start, Solicitation.created_at < end)
    return {
        "notes": Counted(
            Note.id, Note.dossier_id, and_(Note.created_at >= start, Note.created_at < end)
        ),
        "urgent_notes": Counted(
            Note.id,
            Note.dossier_id,
            and_(
                Note.urgent.is_(True),
                Note.corrects.is_(None),
                Note.created_at >= start,
                Note.created_at < end,
            ),
        ),
        "tasks_done": Counted(
            Task.id,
            Task.dossier_id,
            and_(Task.status == "done", Task.done_at >= start, Task.done_at < end),
        ),
        "tasks_overdue": Counted(
            Task.id,
            Task.dossier_id,
            and_(
                Task.due.is_not(None),
                Task.due < as_of.date(),
                Task.created_at < end,
                or_(Task.status == "todo", and_(Task.status == "done", Task.done_at >= as_of)),
            ),
        ),
        "messages": Counted(
            RoomActivity.event_id,
            RoomActivity.dossier_id,
            and_(RoomActivity.kind == "message", RoomActivity.at >= start, RoomActivity.at < end),
        ),
        "mails_in": Counted(
            MailSpool.id,
            MailSpool.dossier_id,
            and_(
                MailSpool.kind == "mail",
                MailSpool.accepted_at >= start,
                MailSpool.accepted_at < end,
            ),
        ),
        "mails_out": Counted(
            MailOutbox.id,
            DossierRoom.dossier_id,
            and_(MailOutbox.sent_at >= start, MailOutbox.sent_at < end),
            via=(MailOutbox, DossierRoom, DossierRoom.room_id == MailOutbox.room_id),
        ),
        "solicitations": Counted(Solicitation.id, Solicitation.dossier_id, sent),
        "solicitations_accepted": Counted(
            Solicitation.id,
            Solicitation.dossier_id,
            and_(sent, Solicitation.accepted_by.is_not(None)),
        ),
        "solicitations_declined": Counted(
            Solicitation.id, Solicitation.dossier_id, and_(sent, Solicitation.status == "refusee")
        ),
        "solicitations_expired": Counted(
            Solicitation.id, Solicitation.dossier_id, and_(sent, Solicitation.status == "expiree")
        ),
    }


def active_in(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    """A dossier open at some moment of [start, end)."""
    return and_(
        Dossier.opened_at < end, or_(Dossier.closed_at.is_(None), Dossier.closed_at >= start)
    )


def compute(
    session: Session, scope: Scope, period: Period, now: dt.datetime, sealed: bool = True
) -> Indicators:
    """Every indicator of the scope over the period, in a handful of aggregate queries
    grouped by pathway: the scope's figures are their sums, and each pathway's figures
    (``by_pathway``) feed its configured indicators without another query. The month-final
    counts of closed months (``SEALED``) are read from ``indicator_months`` (``sealed=False``:
    counted live too, the same figures)."""
    months = period.months()
    start, end = moment(period.start), moment(period.end)
    in_scope = scope.where()
    columns = []
    for m_start, m_end in months:
        columns += [
            _count(and_(Dossier.opened_at >= m_start, Dossier.opened_at < m_end)),
            _count(and_(Dossier.closed_at >= m_start, Dossier.closed_at < m_end)),
            _count(active_in(m_start, m_end)),
        ]
    columns += [
        _count(and_(Dossier.opened_at >= start, Dossier.opened_at < end)),
        _count(and_(Dossier.closed_at >= start, Dossier.closed_at < end)),
        _count(active_in(start, end)),
    ]
    dossier_counts = {
        str(row[0]): [int(v) for v in row[1:]]
        for row in session.execute(
            select(Dossier.pathway, *columns).where(*in_scope).group_by(Dossier.pathway)
        )
    }

    # Time from opening to the first circle member joining a room of the dossier.
    joined_at = func.min(RoomActivity.at)
    first_join = (
        select(Dossier.pathway, _hours(session, Dossier.opened_at, joined_at))
        .join(RoomActivity, RoomActivity.dossier_id == Dossier.id)
        .join(
            CircleMember,
            and_(
                CircleMember.dossier_id == Dossier.id, CircleMember.user_id == RoomActivity.sender
            ),
        )
        .where(
            *in_scope,
            RoomActivity.kind == "join",
            Dossier.opened_at >= start,
            Dossier.opened_at < end,
        )
        .group_by(Dossier.id, Dossier.pathway, Dossier.opened_at)
    )
    delays: dict[str, list[float]] = {}
    for pathway, hours in session.execute(first_join):
        delays.setdefault(str(pathway), []).append(max(0.0, float(hours)))

    # The solicitations' counts per month (the activity's definitions, month by month) in
    # one scan: the period's are their sums. Then each accepted one's response time.
    month_columns = []
    for m_start, m_end in months:  # each month's definitions built once (not per key)
        defined = activity(m_start, m_end, now)
        month_columns += [_count(defined[key].condition) for key in SOLICITED]
    solicited = {
        str(row[0]): [int(v) for v in row[1:]]
        for row in session.execute(
            select(Dossier.pathway, *month_columns)
            .join(Dossier, Dossier.id == Solicitation.dossier_id)
            .where(*in_scope, Solicitation.created_at >= start, Solicitation.created_at < end)
            .group_by(Dossier.pathway)
        )
    }
    accepted_at = func.min(SolicitationEvent.at)
    responses: dict[str, list[float]] = {}
    for pathway, hours in session.execute(
        select(Dossier.pathway, _hours(session, Solicitation.created_at, accepted_at))
        .select_from(Solicitation)
        .join(Dossier, Dossier.id == Solicitation.dossier_id)
        .join(SolicitationEvent, SolicitationEvent.solicitation_id == Solicitation.id)
        .where(
            *in_scope,
            SolicitationEvent.status == "acceptee",
            Solicitation.created_at >= start,
            Solicitation.created_at < end,
        )
        .group_by(Solicitation.id, Dossier.pathway, Solicitation.created_at)
    ):
        responses.setdefault(str(pathway), []).append(max(0.0, float(hours)) * 60.0)

    # The other activity counts: those of the closed months read from ``indicator_months``
    # (``SEALED``), the rest — and the months not over — counted live, a table's counts in
    # one scan (e.g. notes and urgent notes).
    closed = [
        (a, b) for a, b in months if sealed and b <= now and b == moment(next_month(a.date()))
    ]
    closed = sealed_run(session, closed, now)
    live_start = closed[-1][1] if closed else start
    period_activity = activity(start, end, now)
    live = {k: c for k, c in period_activity.items() if k not in (*SOLICITED, *SEALED)}
    if live_start < end:
        live.update({k: c for k, c in activity(live_start, end, now).items() if k in SEALED})
    counts: dict[str, dict[str, int]] = {}
    for (pathway,), found in table_counts(session, live, in_scope, [Dossier.pathway]):
        for key, count in found.items():
            counts.setdefault(str(pathway), {})[key] = count
    for pathway, key, count in sealed_counts(session, scope, closed):
        of = counts.setdefault(pathway, {})
        of[key] = of.get(key, 0) + count

    def figures(pathways: list[str], of: Scope) -> Indicators:
        values = [
            sum(dossier_counts.get(p, [0] * len(columns))[n] for p in pathways)
            for n in range(len(columns))
        ]
        waited = sorted(d for p in pathways for d in delays.get(p, []))
        total = {
            key: sum(counts.get(p, {}).get(key, 0) for p in pathways) for key in period_activity
        }
        per_month = [
            sum(solicited.get(p, [0] * len(month_columns))[n] for p in pathways)
            for n in range(len(month_columns))
        ]
        for n, key in enumerate(SOLICITED):
            total[key] = sum(per_month[n :: len(SOLICITED)])
        answered = sorted(r for p in pathways for r in responses.get(p, []))
        return Indicators(
            scope=of,
            period=period,
            months=tuple(
                MonthFigures(
                    months[i][0].date(),
                    *values[3 * i : 3 * i + 3],
                    *per_month[len(SOLICITED) * i : len(SOLICITED) * i + 2],
                )
                for i in range(len(months))
            ),
            opened=values[-3],
            closed=values[-2],
            active=values[-1],
            joined=len(waited),
            first_join_hours=round(statistics.median(waited), 1) if waited else None,
            tasks_done=total["tasks_done"],
            tasks_overdue=total["tasks_overdue"],
            urgent_notes=total["urgent_notes"],
            messages=total["messages"],
            mails=total["mails_in"] + total["mails_out"],
            solicitations=total["solicitations"],
            solicitations_accepted=total["solicitations_accepted"],
            solicitations_declined=total["solicitations_declined"],
            solicitations_expired=total["solicitations_expired"],
            response_median_minutes=round(statistics.median(answered), 1) if answered else None,
            response_p90_minutes=round(nearest_rank(answered, 0.9), 1) if answered else None,
        )

    present = sorted(set(dossier_counts) | set(delays) | set(counts) | set(solicited))
    overall = figures(present, scope)
    return dataclasses.replace(
        overall,
        by_pathway={p: figures([p], Scope(scope.structure_id, p)) for p in present},
    )


def table_counts(
    session: Session, counted: Mapping[str, Counted], where: list[Any], by: list[Any]
) -> Iterator[tuple[tuple[Any, ...], dict[str, int]]]:
    """The counts of the dossiers meeting ``where``, grouped ``by`` their columns: one scan
    per table for the counts of that table."""
    tables: dict[Any, list[tuple[str, Counted]]] = {}
    for key, c in counted.items():
        tables.setdefault(c.id, []).append((key, c))
    for same in tables.values():
        first = same[0][1]
        statement = first.joined(select(*by, *(_count(c.condition) for _, c in same)))
        for row in session.execute(
            statement.join(Dossier, Dossier.id == first.dossier_id)
            .where(*where, or_(*(c.condition for _, c in same)))
            .group_by(*by)
        ):
            found = {key: int(n) for (key, _), n in zip(same, row[len(by) :], strict=True)}
            yield tuple(row[: len(by)]), found


def seal_months(bind: Any, months: list[tuple[dt.datetime, dt.datetime]], now: dt.datetime) -> None:
    """Count the ``SEALED`` activity of these closed months for every structure and pathway,
    once (a month sealed meanwhile by another process is left as it is)."""
    for m_start, m_end in months:
        counted = {k: c for k, c in activity(m_start, m_end, now).items() if k in SEALED}
        try:
            with Session(bind) as session, session.begin():
                if session.get(SealedMonth, m_start.date()) is not None:
                    continue
                session.add(SealedMonth(month=m_start.date(), sealed_at=now))
                session.flush()
                rows = [
                    {
                        "month": m_start.date(),
                        "structure_id": structure_id or "",
                        "pathway": str(pathway),
                        "key": key,
                        "value": count,
                    }
                    for (structure_id, pathway), found in table_counts(
                        session, counted, [], [Dossier.structure_id, Dossier.pathway]
                    )
                    for key, count in found.items()
                    if count
                ]
                if rows:
                    session.execute(insert(IndicatorMonth), rows)
        except IntegrityError:
            continue  # sealed at the same moment by another process: the same counts


def sealed_run(
    session: Session, months: list[tuple[dt.datetime, dt.datetime]], now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Of these closed months (in order), the leading run of those sealed, the missing ones
    sealed first; a month that could not be sealed (e.g. the database busy) and the ones
    after it are counted live."""
    if not months:
        return []

    def sealed() -> set[dt.date]:
        wanted = [m_start.date() for m_start, _ in months]
        return set(session.scalars(select(SealedMonth.month).where(SealedMonth.month.in_(wanted))))

    have = sealed()
    missing = [(a, b) for a, b in months if a.date() not in have]
    if missing:
        try:
            seal_months(session.get_bind(), missing, now)
        except OperationalError:
            log.warning("indicator months not sealed now: counted live", exc_info=True)
        have = sealed()
    run = []
    for month in months:
        if month[0].date() not in have:
            break
        run.append(month)
    return run


def sealed_counts(
    session: Session, scope: Scope, months: list[tuple[dt.datetime, dt.datetime]]
) -> list[tuple[str, str, int]]:
    """(pathway, key, count) of the ``SEALED`` counts of the scope over these sealed
    months."""
    if not months:
        return []
    wanted = [m_start.date() for m_start, _ in months]
    query = select(IndicatorMonth.pathway, IndicatorMonth.key, func.sum(IndicatorMonth.value))
    conditions: list[ColumnElement[bool]] = [IndicatorMonth.month.in_(wanted)]
    if scope.structure_id is not None:
        conditions.append(IndicatorMonth.structure_id == scope.structure_id)
    if scope.pathway is not None:
        conditions.append(IndicatorMonth.pathway == scope.pathway)
    rows = session.execute(
        query.where(*conditions).group_by(IndicatorMonth.pathway, IndicatorMonth.key)
    )
    return [(str(p), str(k), int(n)) for p, k, n in rows]


def forget_sealed(session: Session) -> None:
    """Forget every sealed month (a merge moved, or a purge removed, dated facts of the
    past): the dashboards count them again, from the data as it is now."""
    session.execute(delete(IndicatorMonth))
    session.execute(delete(SealedMonth))


def nearest_rank(ordered: list[float], fraction: float) -> float:
    """The ``fraction`` percentile of sorted values, by nearest rank (a value of the list)."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _hours(session: Session, start: Any, end: Any) -> Any:
    """Hours from ``start`` to ``end``, computed by the database (no datetime loaded)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def pathway_indicators(
    figures: Indicators, pathway: str | None = None
) -> tuple[tuple[str, str, str | None, float | None], ...]:
    """The indicators the pathways define (configuration), each over the pathway's
    dossiers of the figures' scope: (pathway, label, English label, value)."""
    rows = []
    for definition_of in PATHWAYS.values():
        if pathway is not None and definition_of.id != pathway:
            continue
        if not definition_of.indicators:
            continue
        of = figures.by_pathway.get(definition_of.id)
        for definition in definition_of.indicators:
            value = of.measure(definition.measure) if of is not None else None
            if value is None and definition.measure not in DURATIONS:
                value = 0.0
            rows.append((definition_of.id, definition.label, definition.label_en, value))
    return tuple(rows)


def suppressed(value: float | int | None, outside: bool) -> str:
    """A figure as shown: a count of 1 to 4 is "< 5" in aggregates sent outside the
    structure (small cells could single a person out)."""
    if value is None:
        return "—"
    if outside and isinstance(value, int | float) and 0 < value < SMALL_CELL:
        return f"< {SMALL_CELL}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}".replace(".", ",")
    return str(int(value))
