"""Throw-away PostgreSQL databases (C collation, as Synapse requires) for test deployments.

The tests run their own private PostgreSQL cluster: ``initdb`` in a temporary directory, on a
free loopback port, trust authentication for loopback only, stopped when the test process
ends. The machine's own clusters are left alone. ``MAILLON_TEST_PG_URL`` points the tests at
another server instead (an admin URL, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from tests.harness.ports import free_port

_lock = threading.Lock()
_admin_url: str | None = os.environ.get("MAILLON_TEST_PG_URL")


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL est absent : lancez « make test » (scripts/ensure-postgres.sh l'installe)"
        )
    return Path(found[-1]).parent


def _as_owner(owner: str | None, command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` system account then."""
    return ["runuser", "-u", owner, "--", *command] if owner else command


def _start_private_cluster(settings: Mapping[str, str]) -> str:
    bindir = _bindir()
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="maillon-test-pg-"))
    data = root / "data"
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        _as_owner(
            owner,
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
        # Old write-ahead log segments removed, not recycled (kept until overwritten): the
        # purge test scans the cluster's files (see appservice.room_purge).
        "-c wal_recycle=off"
    ) + "".join(f" -c {name}={value}" for name, value in settings.items())
    subprocess.run(
        _as_owner(
            owner,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        ),
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            _as_owner(owner, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def admin_url(settings: Mapping[str, str] | None = None) -> str:
    """The admin URL of the tests' PostgreSQL server (the private cluster, started once:
    with these settings, name and value, if this call starts it; a benchmark's)."""
    global _admin_url
    with _lock:
        if _admin_url is None:
            _admin_url = _start_private_cluster(settings or {})
        return _admin_url


def _server_url(dbname: str) -> str:
    base, _, _ = admin_url().rpartition("/")
    return f"{base}/{dbname}"


def create_database(prefix: str = "maillon_test") -> str:
    """Create a fresh database and return its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
    return _server_url(name)


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
