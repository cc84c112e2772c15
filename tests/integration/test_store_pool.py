"""A PostgreSQL engine keeps the connections it opens: threads using it at once, now and
then (the mail poster's lanes, the SMTP intake in a burst), reuse them instead of starting
a backend for a session and closing it again."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from maillon.shared.store import make_engine
from tests.harness.postgres import create_database, drop_database

THREADS = 12


def test_connections_opened_for_concurrent_sessions_are_kept() -> None:
    url = create_database("maillon_pool")
    engine = make_engine(url, create_tables=False)
    opened: list[object] = []
    event.listen(engine, "connect", lambda *args: opened.append(args))
    try:
        together = threading.Barrier(THREADS)

        def sessions(_: int) -> None:
            for _ in range(10):  # ten times, all threads at once, then none
                together.wait(timeout=30)
                with Session(engine) as session:
                    session.execute(text("SELECT pg_sleep(0.01)"))

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(sessions, range(THREADS)))
        assert len(opened) <= THREADS
    finally:
        engine.dispose()
        drop_database(url)
