"""Maillon's store schema comes from Alembic migrations, identical to the models, on SQLite
and PostgreSQL; migrating twice is harmless."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Column, Connection, MetaData, Table, inspect, text

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
    closing reasons are sealed; the dossier is then found by INS and reads its reason; and
    (0050) every dossier gets the blind indexes of its matricule and traits."""
    import base64
    import os

    from sqlalchemy import LargeBinary, select, text, type_coerce
    from sqlalchemy.orm import Session

    from dossier_api.domain.ins import any_matricule_index, traits_index
    from dossier_api.domain.lookup import open_dossier_by_ins, possible_duplicates
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
            # 0050: every dossier gets the duplicate indexes, whatever its status.
            ring_traits = traits_index(ring, identity)
            for did in ("qual", "prov"):
                dossier = session.get(Dossier, did)
                assert dossier is not None and ring_traits is not None
                assert dossier.traits_index == ring_traits
                assert dossier.matricule_index == any_matricule_index(ring, identity)
            assert {c.id for c in possible_duplicates(session, None, ring_traits)} == {
                "qual",
                "prov",
            }
    finally:
        engine.dispose()


def _filler(column: Column[Any], n: int) -> Any:
    """Some value of the column's type, for a row written as an older version would."""
    kind = column.type.python_type
    if kind is str:
        return f"v{n}"
    if kind is bytes:
        return b"\0"
    if kind is bool:
        return False
    if kind is int:
        return 0
    if kind is dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    raise AssertionError(f"no filler for {column.name}: {kind}")


def _insert(conn: Connection, name: str, values: dict[str, Any]) -> None:
    table = Table(name, MetaData(), autoload_with=conn)
    row = dict(values)
    for n, column in enumerate(table.columns):
        integer_key = column.primary_key and column.type.python_type is int
        if column.name not in row and not column.nullable and not integer_key:
            row[column.name] = _filler(column, n)
    conn.execute(table.insert().values(row))


def test_rooms_made_by_older_templates_are_synced_again(database_url: str) -> None:
    """0010: every dossier with rooms gets one room-sync job, so its rooms lose the pathway
    they show in clear (name, topic, dossier link)."""
    engine = make_engine(database_url, create_tables=False)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0005")
        for dossier, room in (("D1", "!a:localhost"), ("D2", None), ("D3", "!c:localhost")):
            _insert(conn, "dossiers", {"id": dossier, "mail_localpart": dossier.lower()})
            _insert(
                conn, "dossier_rooms", {"id": f"R{dossier}", "dossier_id": dossier, "room_id": room}
            )
        _insert(conn, "dossier_rooms", {"id": "RD3b", "dossier_id": "D3", "room_id": "!d:x"})
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0010")
        jobs = conn.execute(
            text("SELECT dossier_id, subject, done_at FROM room_sync_jobs ORDER BY dossier_id")
        ).all()
    engine.dispose()
    assert [tuple(j) for j in jobs] == [("D1", "rooms", None), ("D3", "rooms", None)]


def test_migration_0020_indexes_the_names_of_existing_dossiers(database_url: str) -> None:
    """A store of before 0020: each dossier gets the blind-index digests of its names, so
    the search by patient name finds it; the identities stay sealed."""
    import base64
    import os

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from dossier_api.domain.models import DossierName
    from dossier_api.domain.names import identity_digests, query_digests
    from maillon.shared.crypto import BlindIndex, KeyRing
    from maillon.shared.sealed import install_key_ring
    from maillon.shared.settings import DataKey

    ring = KeyRing(
        [DataKey("k1", base64.b64encode(os.urandom(32)).decode())], BlindIndex(os.urandom(32))
    )
    install_key_ring(ring)
    identities = {
        "d1": {"birth_name": "Lefèvre-Dubois", "first_names": "Zoé", "sex": "F"},
        "d2": {"birth_name": "Martin", "used_name": "Lefèvre", "first_names": "Paul"},
    }
    engine = make_engine(database_url, create_tables=False)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0010")
            for did, identity in identities.items():
                conn.execute(
                    text(
                        "INSERT INTO dossiers (id, pathway, referent, status, opened_at,"
                        " identity, identity_status, consent_informed, consent_share_outside,"
                        " opposition, mail_localpart, created_at) VALUES (:id, 'dac',"
                        " '@c:localhost', 'open', CURRENT_TIMESTAMP, :identity, 'PROV', false,"
                        " false, false, :local, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "id": did,
                        "identity": ring.seal_json(identity, b"maillon.dossier"),
                        "local": f"d-{did}",
                    },
                )
        engine.dispose()
        engine = make_engine(database_url)  # migrates to head
        with Session(engine) as session:
            rows = session.execute(select(DossierName.dossier_id, DossierName.digest)).all()
        held: dict[str, set[str]] = {}
        for did, digest in rows:
            held.setdefault(did, set()).add(digest)
        assert held == {did: identity_digests(ring, i) for did, i in identities.items()}
        lefevre = query_digests(ring, "LEFEVRE")
        assert {did for did, digests in held.items() if lefevre <= digests} == {"d1", "d2"}
        assert all("lefevre" not in d for d in held["d1"])
    finally:
        engine.dispose()


def test_migration_0220_seals_the_pdf_of_existing_monthly_reports(database_url: str) -> None:
    """A monthly report made before 0220 holds its PDF in clear: the migration seals it with
    its row's id, and the dashboard's reader opens it."""
    import base64
    import os

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from dossier_api.domain.models import REPORT_PDF, MonthlyReport
    from maillon.shared.crypto import BlindIndex, KeyRing
    from maillon.shared.sealed import install_key_ring
    from maillon.shared.settings import DataKey

    ring = KeyRing(
        [DataKey("k1", base64.b64encode(os.urandom(32)).decode())], BlindIndex(os.urandom(32))
    )
    install_key_ring(ring)
    pdf = b"%PDF-1.4 rapport"
    engine = make_engine(database_url, create_tables=False)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0151")
            _insert(conn, "structures", {"id": "s1", "name": "DAC"})
            _insert(conn, "monthly_reports", {"structure_id": "s1", "month": "2026-11", "pdf": pdf})
        engine.dispose()
        engine = make_engine(database_url)  # migrates to head
        with Session(engine) as session:
            report = session.scalars(select(MonthlyReport)).one()
            assert pdf not in bytes(report.pdf)
            assert REPORT_PDF.open(ring, report.pdf, str(report.id)) == pdf
    finally:
        engine.dispose()


def test_migration_0330_gives_existing_entries_the_token_of_their_name(
    database_url: str, tmp_path: Path
) -> None:
    """Entries of before 0330 (its downgrade takes the tokens away) get the token of the
    first word of their name exactly as entry_columns writes it for new ones."""
    from dossier_api.domain.directory_import import import_extract
    from tests.harness.annuaire import write_activite

    engine = make_engine(database_url)
    select_texts = text("SELECT national_id, search_text FROM directory_entries")
    try:
        made = write_activite(tmp_path / "PS_LibreAcces_Personne_activite_1.txt", 60)
        import_extract(engine, made.path)
        with engine.begin() as conn:
            written = dict(conn.execute(select_texts).all())
            command.downgrade(alembic_config(conn), "0230")
            before = dict(conn.execute(select_texts).all())
            command.upgrade(alembic_config(conn), "head")
            assert dict(conn.execute(select_texts).all()) == written
        assert len(written) > 40 and before.keys() == written.keys()
        for national, search in written.items():
            assert " 0n" not in before[national]
            assert search.startswith(before[national] + " 0n")
        assert any(s.endswith(" 0nmuller") for s in written.values())  # MÜLLER
        assert any(s.endswith(" 0nle") for s in written.values())  # LE GOFF
    finally:
        engine.dispose()
