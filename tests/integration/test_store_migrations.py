"""Maillon's store schema comes from Alembic migrations, identical to the models, on SQLite
and PostgreSQL; migrating twice is harmless."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from maillon.shared.store import alembic_config, make_engine
from tests.harness.postgres import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    url = create_database("maillon_migrations")
    try:
        yield url
    finally:
        drop_database(url)


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    make_engine(database_url).dispose()  # second start: nothing to do, no error
    with engine.connect() as conn:
        command.check(alembic_config(conn))  # raises if models and schema differ
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {"dossiers", "circle_members", "notes", "as_events", "audit_log"} <= tables


def test_migration_0006_indexes_qualified_ins_and_seals_closing_reasons(
    database_url: str,
) -> None:
    """A store of before 0006: its QUAL identities get their blind index, and its clear
    closing reasons are sealed; the dossier is then found by INS and reads its reason."""
    import base64
    import os

    from sqlalchemy import LargeBinary, select, text, type_coerce
    from sqlalchemy.orm import Session

    from dossier_api.domain.lookup import open_dossier_by_ins
    from dossier_api.domain.models import Dossier
    from maillon.shared.crypto import BlindIndex, KeyRing
    from maillon.shared.sealed import install_key_ring
    from maillon.shared.settings import DataKey
    from tests.harness.dossier import IDENTITY

    ring = KeyRing(
        [DataKey("k1", base64.b64encode(os.urandom(32)).decode())], BlindIndex(os.urandom(32))
    )
    install_key_ring(ring)
    engine = make_engine(database_url, create_tables=False)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0005")
            identity = {k: v for k, v in IDENTITY.items() if k != "identity_status"}
            for did, status, reason in [("qual", "QUAL", "décès"), ("prov", "PROV", None)]:
                conn.execute(
                    text(
                        "INSERT INTO dossiers (id, pathway, referent, status, status_reason,"
                        " opened_at, identity, identity_status, consent_informed,"
                        " consent_share_outside, opposition, room_id, mail_localpart,"
                        " created_at) VALUES (:id, 'dac', '@c:localhost', 'open', :reason,"
                        " CURRENT_TIMESTAMP, :identity, :status, false, false, false, :room,"
                        " :local, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "id": did,
                        "reason": reason,
                        "identity": ring.seal_json(identity, b"maillon.dossier"),
                        "status": status,
                        "room": f"!{did}:localhost",
                        "local": f"d-{did}",
                    },
                )
        engine.dispose()
        engine = make_engine(database_url)  # migrates to head
        with Session(engine) as session:
            raw = session.scalar(
                select(type_coerce(Dossier.status_reason, LargeBinary)).where(Dossier.id == "qual")
            )
            assert raw is not None and "décès".encode() not in bytes(raw)
            assert session.get(Dossier, "qual").status_reason == "décès"  # type: ignore[union-attr]
            found = open_dossier_by_ins(session, ring, {str(IDENTITY["ins_matricule"])})
            assert found == ("qual", "!qual:localhost")
            assert session.get(Dossier, "prov").ins_index is None  # type: ignore[union-attr]
    finally:
        engine.dispose()
