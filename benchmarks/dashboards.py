"""Benchmark (not a test) of the dashboards on PostgreSQL: a structure with 10,000 dossiers
and 100,000 notes (plus tasks, room activity, mails); the figures of its dashboard over 12
months (what the page and its chart read: the indicators, the pathway indicators, the SVG)
timed N times (p50, p95) counted all live, then with the closed months sealed
(``indicator_months``, the current month live), and its monthly PDF. Prints JSON, with the
load average.

    .venv/bin/python -m benchmarks.dashboards [--dossiers 10000] [--notes 100000]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.orm import Session

import dossier_api.domain.mail.models  # noqa: F401  (their tables)
from dossier_api.domain.indicators import Scope, compute, month_period, parse_period
from dossier_api.domain.indicators import pathway_indicators as pathway_figures
from dossier_api.domain.mail.models import MailSpool
from dossier_api.domain.models import (
    CircleMember,
    Dossier,
    Note,
    RoomActivity,
    Solicitation,
    SolicitationEvent,
    Structure,
    Task,
    Team,
)
from dossier_api.domain.monthly_report import structure_report
from dossier_api.http.charts import months_chart
from maillon.shared.crypto import BlindIndex, DataKey, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.postgres import create_database, drop_database

NOW = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
START = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)


def _at(rng: random.Random) -> dt.datetime:
    return START + dt.timedelta(seconds=rng.randrange(int((NOW - START).total_seconds())))


def populate(engine: Any, dossiers: int, notes: int) -> None:
    rng = random.Random(14)
    with Session(engine) as session, session.begin():
        session.add(Structure(id="s-bench", name="DAC Banc d'essai"))
        session.add(Structure(id="s-other", name="Autre structure"))
    ids = [uuid.uuid4().hex for _ in range(dossiers)]
    opened = {i: _at(rng) for i in ids}
    with Session(engine) as session, session.begin():
        rows = []
        for n, i in enumerate(ids):
            closed = rng.random() < 0.2
            rows.append(
                {
                    "id": i,
                    "pathway": "dac" if n % 3 else "cpts",
                    "structure_id": "s-bench" if n % 10 else "s-other",
                    "referent": "@coord:bench",
                    "status": "closed" if closed else "open",
                    "opened_at": opened[i],
                    "closed_at": opened[i] + dt.timedelta(days=20) if closed else None,
                    "identity": {"birth_name": "Banc"},
                    "identity_status": "PROV",
                    "mail_localpart": f"d-{n}",
                    "created_at": opened[i],
                    "consent_informed": True,
                    "consent_share_outside": False,
                    "opposition": False,
                }
            )
        session.execute(insert(Dossier), rows)
        session.execute(
            insert(CircleMember),
            [
                {
                    "dossier_id": i,
                    "user_id": "@coord:bench",
                    "role": "COORD",
                    "coordinator": True,
                    "since": opened[i],
                    "added_by": "@coord:bench",
                }
                for i in ids
            ],
        )
        session.execute(
            insert(RoomActivity),
            [
                {
                    "event_id": f"$j{n}",
                    "dossier_id": i,
                    "room_id": f"!r{n}",
                    "kind": "join",
                    "sender": "@coord:bench",
                    "at": opened[i] + dt.timedelta(hours=rng.randrange(72)),
                }
                for n, i in enumerate(ids)
            ]
            + [
                {
                    "event_id": f"$m{n}",
                    "dossier_id": rng.choice(ids),
                    "room_id": "!r",
                    "kind": "message",
                    "sender": "@coord:bench",
                    "at": _at(rng),
                }
                for n in range(dossiers * 5)
            ],
        )
        session.execute(
            insert(Task),
            [
                {
                    "id": uuid.uuid4().hex,
                    "dossier_id": rng.choice(ids),
                    "title": {"t": "x"},
                    "assignee": "@coord:bench",
                    "due": _at(rng).date(),
                    "status": rng.choice(("todo", "done")),
                    "created_by": "@coord:bench",
                    "created_at": START,
                    "done_at": _at(rng),
                }
                for _ in range(dossiers * 3)
            ],
        )
        session.execute(
            insert(MailSpool),
            [
                {
                    "kind": "mail",
                    "source": "smtp",
                    "dossier_id": rng.choice(ids),
                    "room_id": "!r",
                    "dedup_key": uuid.uuid4().hex,
                    "token": uuid.uuid4().hex,
                    "sealed_mail": b"x",
                    "accepted_at": _at(rng),
                }
                for _ in range(dossiers)
            ],
        )
    with Session(engine) as session, session.begin():
        session.add(Team(slug="emsp", name="EMSP", level="departementale"))
    with Session(engine) as session, session.begin():
        sent = []
        for _ in range(dossiers // 2):
            at = _at(rng)
            outcome = rng.choice(("acceptee", "refusee", "expiree", "envoyee"))
            sent.append(
                {
                    "team_slug": "emsp",
                    "dossier_id": rng.choice(ids),
                    "requester": "@coord:bench",
                    "kind": "avis",
                    "reason": {"text": "avis"},
                    "status": outcome,
                    "deadline": at + dt.timedelta(hours=4),
                    "accepted_by": "@ers:bench" if outcome == "acceptee" else None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        session.execute(insert(Solicitation), sent)
        accepted = session.execute(
            select(Solicitation.id, Solicitation.created_at).where(
                Solicitation.status == "acceptee"
            )
        ).all()
        session.execute(
            insert(SolicitationEvent),
            [
                {
                    "solicitation_id": sid,
                    "status": "acceptee",
                    "actor": "@ers:bench",
                    "at": at + dt.timedelta(minutes=rng.randrange(1, 240)),
                }
                for sid, at in accepted
            ],
        )
    for chunk in range(0, notes, 20_000):
        with Session(engine) as session, session.begin():
            session.execute(
                insert(Note),
                [
                    {
                        "id": uuid.uuid4().hex,
                        "dossier_id": rng.choice(ids),
                        "author": "@coord:bench",
                        "created_at": _at(rng),
                        "urgent": rng.random() < 0.1,
                        "body": {"text": "note"},
                    }
                    for _ in range(min(20_000, notes - chunk))
                ],
            )


def profile(engine: Any, scope: Scope, period: Any) -> list[tuple[float, str]]:
    """Each statement of one dashboard with its time (ms), slowest first."""
    spent: list[tuple[float, str]] = []
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started[id(cursor)] = time.monotonic()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        took = (time.monotonic() - started.pop(id(cursor))) * 1000
        spent.append((round(took, 1), " ".join(statement.split())[:160]))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        with Session(engine) as session:
            compute(session, scope, period, NOW)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return sorted(spent, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--profile", action="store_true", help="the time of each statement of one dashboard"
    )
    args = parser.parse_args()
    install_key_ring(
        KeyRing(
            [DataKey("bench", base64.b64encode(os.urandom(32)).decode())],
            BlindIndex(os.urandom(32)),
        )
    )
    url = create_database("maillon_bench_dashboards")
    out: dict[str, Any] = {"dossiers": args.dossiers, "notes": args.notes}
    try:
        engine = make_engine(url)
        start = time.monotonic()
        populate(engine, args.dossiers, args.notes)
        out["populate_s"] = round(time.monotonic() - start, 1)
        with engine.begin() as conn:  # as autovacuum would after such a load
            conn.execute(text("ANALYZE"))
        period = parse_period(None, None, NOW.date() - dt.timedelta(days=1))
        scope = Scope(structure_id="s-bench")
        out["load_average_before"] = [round(x, 2) for x in os.getloadavg()]

        def rounds(sealed: bool) -> tuple[list[float], Any]:
            timings = []
            for _ in range(args.rounds):
                start = time.monotonic()
                with Session(engine) as session:
                    figures = compute(session, scope, period, NOW, sealed=sealed)
                    pathway_figures(figures)
                timings.append((time.monotonic() - start) * 1000)
            return sorted(timings), figures

        # Everything counted live (as before the closed months were sealed), then the
        # closed months sealed once (the first dashboard after a month's end), then read.
        live_timings, live = rounds(sealed=False)
        start = time.monotonic()
        with Session(engine) as session:
            compute(session, scope, period, NOW)
        out["seal_closed_months_ms"] = round((time.monotonic() - start) * 1000, 1)
        timings, figures = rounds(sealed=True)
        assert figures == live, "the sealed months give the live figures"
        if args.profile:
            out["profile_ms"] = profile(engine, scope, period)
        out["dashboard_live_ms_p50"] = round(statistics.median(live_timings), 1)
        out["dashboard_live_ms_p95"] = round(live_timings[int(0.95 * (len(live_timings) - 1))], 1)
        out["dashboard_ms_p50"] = round(statistics.median(timings), 1)
        out["dashboard_ms_p95"] = round(timings[int(0.95 * (len(timings) - 1))], 1)
        out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        # The chart (its own request): drawn once per set of figures, then served again.
        start = time.monotonic()
        months_chart(figures, "fr", False)
        out["chart_first_ms"] = round((time.monotonic() - start) * 1000, 1)
        start = time.monotonic()
        months_chart(figures, "fr", False)
        out["chart_again_ms"] = round((time.monotonic() - start) * 1000, 1)
        out["dashboard_active_dossiers"] = figures.active
        start = time.monotonic()
        with Session(engine) as session:
            structure = session.get(Structure, "s-bench")
            assert structure is not None
            pdf = structure_report(session, structure, month_period(2026, 11), NOW)
        out["monthly_pdf_s"] = round(time.monotonic() - start, 2)
        out["monthly_pdf_bytes"] = len(pdf)
        out["targets"] = {"dashboard_ms_p95": 300, "monthly_pdf_s": 10}
        engine.dispose()
    finally:
        drop_database(url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
