"""Activity indicators of a structure, a pathway or the region, computed by SQL aggregates
over clear columns only (dates, statuses, counts): no sealed column is ever read, so no
identity, note, task title or mail is opened to count them.

Resource-team solicitations are not counted here yet (their model is being built)."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from dossier_api.domain.mail.models import MailOutbox, MailSpool
from dossier_api.domain.models import (
    CircleMember,
    Dossier,
    DossierRoom,
    Note,
    RoomActivity,
    Task,
)
from dossier_api.domain.pathways import PATHWAYS, Measure

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
}


@dataclass(frozen=True)
class MonthFigures:
    month: dt.date
    opened: int
    closed: int
    active: int


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
    pathway_indicators: tuple[tuple[str, str, str | None, float | None], ...] = field(
        default=()
    )  # (pathway id, label, English label, value)

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
    }


def active_in(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    """A dossier open at some moment of [start, end)."""
    return and_(
        Dossier.opened_at < end, or_(Dossier.closed_at.is_(None), Dossier.closed_at >= start)
    )


def compute(session: Session, scope: Scope, period: Period, now: dt.datetime) -> Indicators:
    """Every indicator of the scope over the period, in a handful of aggregate queries."""
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
    row = session.execute(select(*columns).where(*in_scope)).one()
    values = [int(v) for v in row]
    figures = tuple(
        MonthFigures(months[i][0].date(), *values[3 * i : 3 * i + 3]) for i in range(len(months))
    )
    opened, closed, active = values[-3:]

    # Time from opening to the first circle member joining a room of the dossier.
    first_join = (
        select(Dossier.opened_at, func.min(RoomActivity.at))
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
        .group_by(Dossier.id, Dossier.opened_at)
    )
    delays = [
        max(0.0, (_aware(joined_at) - _aware(opened_at)).total_seconds() / 3600)
        for opened_at, joined_at in session.execute(first_join)
    ]
    median = round(statistics.median(delays), 1) if delays else None

    counts = {
        key: int(
            session.scalar(
                counted.joined(select(func.count(counted.id)))
                .join(Dossier, Dossier.id == counted.dossier_id)
                .where(*in_scope, counted.condition)
            )
            or 0
        )
        for key, counted in activity(start, end, now).items()
    }
    indicators = Indicators(
        scope=scope,
        period=period,
        months=figures,
        opened=opened,
        closed=closed,
        active=active,
        joined=len(delays),
        first_join_hours=median,
        tasks_done=counts["tasks_done"],
        tasks_overdue=counts["tasks_overdue"],
        urgent_notes=counts["urgent_notes"],
        messages=counts["messages"],
        mails=counts["mails_in"] + counts["mails_out"],
    )
    return indicators


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def pathway_indicators(
    session: Session, scope: Scope, period: Period, now: dt.datetime
) -> tuple[tuple[str, str, str | None, float | None], ...]:
    """The indicators the pathways define (configuration), each over the pathway's
    dossiers of the scope: (pathway, label, English label, value)."""
    pathways = [PATHWAYS[scope.pathway]] if scope.pathway in PATHWAYS else []
    if scope.pathway is None:
        pathways = [p for p in PATHWAYS.values() if p.indicators]
    rows = []
    for pathway in pathways:
        if not pathway.indicators:
            continue
        figures = compute(session, Scope(scope.structure_id, pathway.id), period, now)
        for definition in pathway.indicators:
            rows.append(
                (
                    pathway.id,
                    definition.label,
                    definition.label_en,
                    figures.measure(definition.measure),
                )
            )
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
