"""Throw-away PostgreSQL databases (C collation, as Synapse requires) for test deployments."""

from __future__ import annotations

import os
import secrets

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get("MAILLON_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server_url(dbname: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def create_database(prefix: str = "maillon_test") -> str:
    """Create a fresh database and return its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
    return _server_url(name)


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
