"""One active instance of a Maillon component (appservice, bot), standbys waiting.

The lease is a PostgreSQL session advisory lock: the active instance holds it on a
connection of its own for as long as it lives. When it dies, even by ``kill -9``, its
connection closes and PostgreSQL releases the lock at once; a standby, polling with
``pg_try_advisory_lock``, takes it and starts, resuming from the durable store (the
appservice's stored transactions, the bot's sync token and handled commands). No clock, no
expiry to tune. A lost lease connection ends the process (the supervisor restarts it as a
standby): two actives can never run.

Each instance writes its state (``standby`` or ``active``) to ``run/<component>-<instance>
.lease`` for the supervisor. With SQLite (one machine, one process) there is no lease.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from maillon.shared.settings import Deployment

log = logging.getLogger(__name__)

INSTANCE_ENV = "MAILLON_INSTANCE"
LEASE_NAMESPACE = 0x4D4C  # first key of the two-key advisory lock: "ML"
POLL_SECONDS = 0.2
WATCH_SECONDS = 1.0
LOST_EXIT_CODE = 75


def instance() -> str:
    """This process' instance name (``a``, ``b``…) as the supervisor set it, else ``""``."""
    value = os.environ.get(INSTANCE_ENV, "")
    return value if value.isalnum() else ""


def instance_file(component: str, suffix: str) -> str:
    """A per-instance file name under run/: ``component-a.suffix`` (``component.suffix``
    for a process started alone)."""
    name = instance()
    return f"{component}-{name}.{suffix}" if name else f"{component}.{suffix}"


def lease_key(component: str) -> int:
    return int.from_bytes(hashlib.sha256(component.encode()).digest()[:4], "big", signed=True)


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy database URL as libpq (psycopg) takes it."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Lease:
    def __init__(self, deployment: Deployment, component: str) -> None:
        self._url = libpq_url(deployment.settings.database_url)
        self._component = component
        self._state = deployment.path("run", instance_file(component, "lease"))
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _write_state(self, state: str) -> None:
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(state, encoding="utf-8")
        tmp.replace(self._state)

    def hold(self) -> None:
        """Block until this instance holds the lease, then watch it in a thread."""
        conn = psycopg.connect(self._url, autocommit=True, application_name=self._component)
        key = lease_key(self._component)
        announced = False
        while True:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LEASE_NAMESPACE, key)
            ).fetchone()
            if row is not None and row[0] is True:
                break
            if not announced:
                self._write_state("standby")
                log.info("%s: standby, another instance holds the lease", self._component)
                announced = True
            time.sleep(POLL_SECONDS)
        self._conn = conn
        self._write_state("active")
        log.info("%s: lease taken, this instance is active", self._component)
        threading.Thread(target=self._watch, name="lease-watch", daemon=True).start()

    def _watch(self) -> None:
        assert self._conn is not None
        while True:
            time.sleep(WATCH_SECONDS)
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error:
                log.error("%s: lease connection lost: stopping", self._component)
                os._exit(LOST_EXIT_CODE)


def read_state(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def hold_lease(deployment: Deployment, component: str) -> Lease | None:
    """Hold the component's lease (PostgreSQL store only); None with SQLite."""
    if not deployment.settings.database_url.startswith(("postgresql", "postgres")):
        return None
    lease = Lease(deployment, component)
    lease.hold()
    return lease
