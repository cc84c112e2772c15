"""Indicators by SQL aggregates (SQLite, in memory): the figures of a scope and period, the
same counts per dossier in the extraction, the pathway's configured indicators, the
monthly report made once, small cells hidden outside the structure, periods parsed with
French messages. The real-stack acceptance is tests/clients/test_dashboards.py."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import dossier_api.domain.mail.models  # noqa: F401  (their tables)
from appservice.mail.outbound import compose
from dossier_api.domain import dashboards
from dossier_api.domain.indicators import (
    Scope,
    compute,
    forget_sealed,
    moment,
    month_period,
    parse_period,
    pathway_indicators,
    suppressed,
)
from dossier_api.domain.mail.models import OUTBOX_MAIL, MailOutbox, MailSpool
from dossier_api.domain.models import (
    REPORT_PDF,
    CircleMember,
    Dossier,
    IndicatorMonth,
    MonthlyReport,
    Note,
    Professional,
    RoomActivity,
    SealedMonth,
    Solicitation,
    SolicitationEvent,
    Structure,
    StructureStaff,
    Task,
    Team,
)
from dossier_api.domain.monthly_report import MonthlyReports
from dossier_api.domain.pathways import PathwayError, load_pathways
from maillon.shared.crypto import BlindIndex, DataKey, KeyRing
from maillon.shared.sealed import install_key_ring, key_ring
from maillon.shared.store import Base

NOW = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
NOVEMBER = month_period(2026, 11)


def at(day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)


@pytest.fixture
def engine() -> Iterator[Engine]:
    install_key_ring(
        KeyRing(
            [DataKey("k1", base64.b64encode(os.urandom(32)).decode())], BlindIndex(os.urandom(32))
        )
    )
    made = create_engine("sqlite://")
    Base.metadata.create_all(made)
    with Session(made) as s, s.begin():
        s.add_all([Structure(id="s1", name="DAC Test"), Structure(id="s2", name="Autre")])
        s.add(Professional(user_id="@r:x", profession="médecin", mssante="r@dac.mssante.fr"))
        s.add(StructureStaff(structure_id="s1", user_id="@r:x", role="referent"))
        for i, structure in enumerate(("s1", "s1", "s1", "s2")):
            dossier = Dossier(
                id=f"d{i}",
                pathway="dac",
                structure_id=structure,
                referent="@r:x",
                identity={"birth_name": f"Nom{i}"},
                mail_localpart=f"d-{i}",
                opened_at=at(3 + i),
                status="closed" if i == 2 else "open",
                closed_at=at(20) if i == 2 else None,
            )
            s.add(dossier)
            s.flush()
            s.add(CircleMember(dossier_id=dossier.id, user_id="@r:x", role="COORD", added_by="x"))
            s.add(
                RoomActivity(
                    event_id=f"j{i}",
                    dossier_id=dossier.id,
                    room_id="!r",
                    kind="join",
                    sender="@r:x",
                    at=dossier.opened_at + dt.timedelta(hours=2 * (i + 1)),
                )
            )
            s.add(
                Note(dossier_id=dossier.id, author="x", urgent=i == 0, body={}, created_at=at(10))
            )
            s.add(
                Task(
                    dossier_id=dossier.id,
                    title={},
                    assignee="x",
                    created_by="x",
                    due=dt.date(2026, 11, 5),
                    created_at=at(4),
                    status="done" if i == 1 else "todo",
                    done_at=at(6) if i == 1 else None,
                )
            )
        # Outside the period: not counted.
        s.add(Note(dossier_id="d0", author="x", urgent=True, body={}, created_at=NOW))
    yield made
    made.dispose()


def test_figures_of_a_structure_over_a_month(engine: Engine) -> None:
    with Session(engine) as session:
        figures = compute(session, Scope("s1"), NOVEMBER, NOW)
    assert (figures.opened, figures.active, figures.closed) == (3, 3, 1)
    assert (figures.tasks_done, figures.tasks_overdue, figures.urgent_notes) == (1, 2, 1)
    assert figures.joined == 3 and figures.first_join_hours == 4.0  # 2, 4 and 6 hours
    assert [m.opened for m in figures.months] == [3]


def test_solicitations_and_response_times(engine: Engine) -> None:
    """Counted by the month they were sent, with their outcome; the response time is sent
    to the first acceptance (median, 90th percentile by nearest rank)."""
    sent = [  # (dossier, sent, status, minutes to acceptance)
        ("d0", at(5), "acceptee", 10),
        ("d0", at(6), "repondue", 30),
        ("d1", at(7), "acceptee", 20),
        ("d1", at(8), "acceptee", 90),
        ("d1", at(9), "refusee", None),
        ("d0", at(10), "expiree", None),
        ("d0", at(11), "envoyee", None),
        ("d3", at(12), "acceptee", 5),  # another structure
        ("d0", dt.datetime(2026, 10, 30, tzinfo=dt.UTC), "acceptee", 1),  # October
    ]
    with Session(engine) as session, session.begin():
        session.add(Team(slug="t", name="T", level="regionale"))
        for dossier, when, status, minutes in sent:
            s = Solicitation(
                team_slug="t",
                dossier_id=dossier,
                requester="@r:x",
                kind="avis",
                reason={},
                status=status,
                deadline=when,
                accepted_by="@e:x" if minutes is not None else None,
                created_at=when,
            )
            session.add(s)
            session.flush()
            session.add(SolicitationEvent(solicitation_id=s.id, status="envoyee", at=when))
            if minutes is not None:
                for later in (minutes, minutes + 60):  # the first acceptance counts
                    accepted = when + dt.timedelta(minutes=later)
                    session.add(
                        SolicitationEvent(solicitation_id=s.id, status="acceptee", at=accepted)
                    )
    two_months = parse_period("2026-10", "2026-11", NOW.date())
    with Session(engine) as session:
        figures = compute(session, Scope("s1"), NOVEMBER, NOW)
        both = compute(session, Scope("s1"), two_months, NOW)
        region = compute(session, Scope(), NOVEMBER, NOW)
    assert (figures.solicitations, figures.solicitations_accepted) == (7, 4)
    assert (figures.solicitations_declined, figures.solicitations_expired) == (1, 1)
    assert figures.response_median_minutes == 25.0  # 10, 20, 30, 90
    assert figures.response_p90_minutes == 90.0
    assert [(m.solicitations, m.solicitations_accepted) for m in both.months] == [(1, 1), (7, 4)]
    assert (both.solicitations, both.solicitations_accepted) == (8, 5)
    assert both.response_median_minutes == 20.0  # 1, 10, 20, 30, 90
    assert region.solicitations == 8 and region.response_median_minutes == 20.0
    with Session(engine) as session:
        rows = dashboards._extraction_rows(
            session, "s1", NOVEMBER, dashboards.ACTIVITY_COLUMNS, NOW
        )
    column = dashboards.ACTIVITY_COLUMNS.index
    assert sum(r[column("sollicitations")] for r in rows) == 7
    assert sum(r[column("sollicitations_acceptees")] for r in rows) == 4


def test_region_and_pathway_scopes(engine: Engine) -> None:
    with Session(engine) as session:
        assert compute(session, Scope(), NOVEMBER, NOW).opened == 4
        rows = pathway_indicators(compute(session, Scope("s1"), NOVEMBER, NOW))
    assert ("dac", "Situations complexes ouvertes", "Complex situations opened", 3.0) in rows


def test_extraction_counts_per_dossier_and_pseudonymises(engine: Engine) -> None:
    with Session(engine) as session:
        rows = dashboards._extraction_rows(
            session, "s1", NOVEMBER, dashboards.ACTIVITY_COLUMNS, NOW
        )
    column = dashboards.ACTIVITY_COLUMNS.index
    assert len(rows) == 3
    assert sum(r[column("notes_urgentes")] for r in rows) == 1
    assert sum(r[column("taches_en_retard")] for r in rows) == 2
    assert not any("Nom" in str(v) or v in ("d0", "D0") for r in rows for v in r)
    assert rows[0][0] == key_ring().blind_index("extraction-pseudonym", "d0")[:16]


def test_the_monthly_report_is_made_and_queued_once(engine: Engine) -> None:
    reports = MonthlyReports(
        engine, from_address="dossiers@x.fr", domain="x.fr", relay_marker="m", clock=lambda: NOW
    )
    assert ("s1", "2026-11") in reports.run_due()
    assert reports.run_due() == []
    with Session(engine) as session:
        assert session.scalar(select(func.count(MonthlyReport.id))) == 2
        stored = session.scalars(
            select(MonthlyReport).where(MonthlyReport.structure_id == "s1")
        ).one()
        assert not stored.pdf.startswith(b"%PDF")  # sealed at rest, with the row's id
        assert REPORT_PDF.open(key_ring(), stored.pdf, str(stored.id)).startswith(b"%PDF")
        row = session.scalars(select(MailOutbox)).one()  # s2 has no référent
        mail = OUTBOX_MAIL.open_json(key_ring(), row.sealed_mail, row.token)
    assert mail["to"] == ["r@dac.mssante.fr"]
    message = compose(mail)
    attached = next(message.iter_attachments())
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_content().startswith(b"%PDF")


def test_small_cells_are_hidden_outside_the_structure() -> None:
    assert suppressed(3, outside=True) == "< 5"
    assert suppressed(0, outside=True) == "0"
    assert suppressed(5, outside=True) == "5"
    assert suppressed(3, outside=False) == "3"
    assert suppressed(2.5, outside=False) == "2,5"


def test_periods() -> None:
    default = parse_period(None, None, dt.date(2026, 12, 2))
    assert (default.start, default.end) == (dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    with pytest.raises(ValueError, match="paramètre du"):
        parse_period("2026-13", None, dt.date(2026, 12, 2))
    with pytest.raises(ValueError, match="précéder"):
        parse_period("2026-05", "2026-03", dt.date(2026, 12, 2))


def test_a_pathway_indicator_must_name_a_known_measure(tmp_path: Path) -> None:
    (tmp_path / "essai.yaml").write_text(
        'id: essai\nversion: 1\nname: "Essai"\n'
        'room_template: {name: "{ref}", topic: "t", welcome: "w"}\nroles_allowed: [COORD]\n'
        'indicators:\n  - {id: a, label: "A", measure: potins}\n'
    )
    with pytest.raises(PathwayError, match="indicators"):
        load_pathways(tmp_path)


def test_closed_months_are_counted_once_and_equal_the_live_count(engine: Engine) -> None:
    """The notes, messages and mails of closed months come from ``indicator_months``
    (sealed once the month is over; the current month counted live): the figures of every
    scope and period equal those counted live from the same data; a merge or a purge
    forgets them (``forget_sealed``) and the next dashboard counts the past again."""
    rng = random.Random(14)
    with Session(engine) as s, s.begin():
        s.add(Dossier(id="d9", pathway="cpts", structure_id=None, referent="@r:x",
                      identity={"birth_name": "Nom9"}, mail_localpart="d-9",
                      opened_at=dt.datetime(2026, 9, 2, tzinfo=dt.UTC)))  # fmt: skip
        s.flush()
        dossiers = ["d0", "d1", "d2", "d3", "d9"]
        for n in range(300):  # September to the current month (December, not over)
            when = dt.datetime(2026, 9, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rng.randrange(2200))
            dossier = rng.choice(dossiers)
            s.add(Note(dossier_id=dossier, author="x", urgent=rng.random() < 0.3, body={},
                       created_at=when))  # fmt: skip
            s.add(RoomActivity(event_id=f"m{n}", dossier_id=dossier, room_id="!r",
                               kind="message", sender="@r:x", at=when))  # fmt: skip
            if n % 3 == 0:
                s.add(MailSpool(kind="mail", source="smtp", dossier_id=dossier, room_id="!r",
                                dedup_key=f"k{n}", token=f"t{n}", sealed_mail=b"x",
                                accepted_at=when))  # fmt: skip
    today = dt.datetime(2026, 12, 15, 8, tzinfo=dt.UTC)
    periods = [
        parse_period(None, None, today.date()),
        parse_period("2026-09", "2026-11", today.date()),
        month_period(2026, 10),
        month_period(2026, 12),
    ]
    scopes = [Scope("s1"), Scope("s2"), Scope(), Scope(pathway="cpts"), Scope("s1", "dac")]

    def both(session: Session) -> None:
        for period in periods:
            for scope in scopes:
                live = compute(session, scope, period, today, sealed=False)
                read = compute(session, scope, period, today)
                assert read == live, (scope, period)
                assert read.messages == sum(  # and both equal an independent count
                    1
                    for r in session.scalars(select(RoomActivity))
                    if r.kind == "message"
                    and moment(period.start) <= r.at.replace(tzinfo=dt.UTC) < moment(period.end)
                    and (
                        scope.structure_id is None
                        or r.dossier_id in by_structure[scope.structure_id]
                    )
                    and (scope.pathway is None or r.dossier_id in by_pathway[scope.pathway])
                )

    with Session(engine) as session:
        dossiers_rows = session.scalars(select(Dossier)).all()
        by_structure = {
            k: {d.id for d in dossiers_rows if d.structure_id == k} for k in ("s1", "s2")
        }
        by_pathway = {k: {d.id for d in dossiers_rows if d.pathway == k} for k in ("dac", "cpts")}
        both(session)
        sealed = set(session.scalars(select(SealedMonth.month)))
        assert sealed == {dt.date(2026, m, 1) for m in range(1, 12)}  # not December
        stored = session.scalar(
            select(func.sum(IndicatorMonth.value)).where(IndicatorMonth.key == "notes")
        )
        notes = session.scalar(
            select(func.count(Note.id)).where(
                Note.created_at < dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
            )
        )
        assert stored == notes
    with Session(engine) as session, session.begin():  # counted once, never again
        session.add(Note(dossier_id="d0", author="x", urgent=True, body={},
                         created_at=dt.datetime(2026, 10, 5, tzinfo=dt.UTC)))  # fmt: skip
    with Session(engine) as session:
        october = month_period(2026, 10)
        read = compute(session, Scope("s1"), october, today)
        live = compute(session, Scope("s1"), october, today, sealed=False)
        assert live.urgent_notes == read.urgent_notes + 1
    with Session(engine) as session, session.begin():
        forget_sealed(session)
    with Session(engine) as session:
        both(session)


def test_months_that_cannot_be_sealed_now_are_counted_live(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from dossier_api.domain import indicators

    def busy(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(indicators, "seal_months", busy)
    with Session(engine) as session:
        read = compute(session, Scope("s1"), NOVEMBER, NOW)
        assert read == compute(session, Scope("s1"), NOVEMBER, NOW, sealed=False)
        assert read.urgent_notes == 1
        assert session.scalar(select(func.count()).select_from(SealedMonth)) == 0
