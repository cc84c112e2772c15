"""Retention and purge (issue 17): a closed dossier is archived after its pathway's
``archive_after_months``, purged after ``purge_after_years`` unless a legal hold is set;
the purge deletes its health data from the store and has the homeserver delete its room
with its history and media; afterwards nothing of it is left in any file of the
deployment. Real Synapse, appservice and dossier API; the clock is injected."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from dossier_api.domain import retention
from dossier_api.domain.models import AuditEntry, Dossier, RoomPurge
from dossier_api.domain.pathways import PATHWAYS, PathwayError, Retention, load_pathways
from maillon.shared.homeserver_client import HomeserverError, request_any
from maillon.shared.store import make_engine
from tests.harness.circle import MakeClient, token_of, wait_for
from tests.harness.dossier import IDENTITY, api, api_error, new_dossier
from tests.harness.stack import Stack


def _engine(stack: Stack) -> Engine:
    return make_engine(stack.deployment.settings.database_url, create_tables=False)


def _admin_status(stack: Stack, token: str, path: str) -> int:
    try:
        request_any("GET", stack.url + "/_synapse/admin" + path, token=token)
    except HomeserverError as exc:
        return exc.status
    return 200


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n[:24]!r}" for n in needles if n in data]
    return found


def test_retention_section_is_parsed_and_checked(tmp_path: Path) -> None:
    assert PATHWAYS["dac"].retention == Retention(12, 20, 26), "the documented defaults"
    source = (Path(__file__).parents[2] / "config" / "pathways" / "dac.yaml").read_text()
    (tmp_path / "dac.yaml").write_text(
        source + "retention:\n  archive_after_months: 3\n  purge_after_years: 5\n"
    )
    assert load_pathways(tmp_path)["dac"].retention == Retention(3, 5, 26)
    (tmp_path / "dac.yaml").write_text(source + "retention:\n  purge_after_years: 0\n")
    try:
        load_pathways(tmp_path)
    except PathwayError as exc:
        assert "purge_after_years" in str(exc)
    else:
        raise AssertionError("a zero retention must be refused")


def test_months_later_keeps_calendar_months() -> None:
    start = dt.datetime(2024, 1, 31, 10, tzinfo=dt.UTC)
    assert retention.months_later(start, 1) == dt.datetime(2024, 2, 29, 10, tzinfo=dt.UTC)
    assert retention.months_later(start, 12 * 20) == dt.datetime(2044, 1, 31, 10, tzinfo=dt.UTC)


@pytest.fixture(params=["stack", "pg_stack"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    stack: Stack = request.getfixturevalue(request.param)
    return stack


def _cluster_files(engine: Engine, needles: list[bytes], checkpoint: bool = True) -> list[str]:
    """PostgreSQL: the needles in the files of the tests' own cluster (its data directory,
    write-ahead log included, and its server log beside it); ``checkpoint``: after one has
    written every dirty page out (without it, the files as the purge left them: its own
    checkpoint wrote out what it changed and removed the old segments and table files)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if checkpoint:
            conn.exec_driver_sql("CHECKPOINT")
        data = Path(str(conn.exec_driver_sql("SHOW data_directory").scalar_one()))
    assert data.is_dir(), f"{data}: the test owns no local cluster (MAILLON_TEST_PG_URL?)"
    return _files_holding(data.parent, needles)


def _file_nodes(engine: Engine) -> dict[str, int]:
    """PostgreSQL: the file of each table of the store (VACUUM FULL writes new ones)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, relfilenode FROM pg_class WHERE relname IN "
                "('dossiers', 'notes', 'tasks', 'dossier_names') AND relkind = 'r' "
                "AND relnamespace = current_schema()::regnamespace"
            )
        ).all()
    return {str(name): int(node) for name, node in rows}


async def test_archive_hold_dry_run_and_purge(any_stack: Stack, make_client: MakeClient) -> None:
    stack = any_stack
    client = make_client(stack, "coordo")
    admin = stack.register("admin", admin=True)
    t, a = token_of(client), admin.access_token
    mark = secrets.token_hex(6)
    name, note_text, message = f"Sentinom{mark}", f"note-sentinelle-{mark}", f"salle-{mark}"
    media_bytes = f"document-sentinelle-{mark}".encode()
    # Names of this test only: the blind-index digests of the harness's usual first names
    # are in every other dossier of a shared stack.
    identity = {
        **IDENTITY,
        "birth_name": name,
        "first_names": f"Sentipre{mark} Sentisec{mark}",
        "identity_status": "PROV",
    }
    del identity["ins_matricule"], identity["ins_oid"]
    dossier = new_dossier(stack, t, identity=identity)
    did, room_id = dossier["id"], dossier["room_id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": note_text})
    task = {"title": note_text, "assignee": client.user_id}
    api(stack, t, "POST", f"/v1/dossiers/{did}/tasks", task)
    # The side room's label is in its name, a state event the homeserver keeps in clear.
    label = f"annexe-{mark}"
    side = api(stack, t, "POST", f"/v1/dossiers/{did}/rooms", {"label": label})
    # A message and a document in the (encrypted) room; the bot records the file.
    await client.accept_invite(room_id)
    await client.wait_for_member(room_id, stack.deployment.settings.bot_user_id)
    await client.send_text(room_id, message)
    mxc = await client.send_file(room_id, media_bytes)
    engine = _engine(stack)

    def recorded() -> bool:
        return mxc in retention.room_media(engine, room_id)

    await wait_for(recorded, "the bot records the file of the room", timeout=30)
    server, media_id = mxc.removeprefix("mxc://").split("/")
    assert _admin_status(stack, a, f"/v1/media/{server}/{media_id}") == 200
    stored = stack.directory / "data" / "media_store" / "local_content"
    stored = stored / media_id[:2] / media_id[2:4] / media_id[4:]
    assert stored.is_file()

    try:
        with engine.connect() as conn:
            sealed = [
                bytes(
                    conn.execute(
                        text("SELECT identity FROM dossiers WHERE id=:i"), {"i": did}
                    ).scalar_one()
                ),
                *(
                    bytes(b)
                    for b in conn.execute(
                        text("SELECT body FROM notes WHERE dossier_id=:i"), {"i": did}
                    ).scalars()
                ),
            ]
            digests = [
                str(d)
                for d in conn.execute(
                    text("SELECT digest FROM dossier_names WHERE dossier_id=:i"), {"i": did}
                ).scalars()
            ]
            traits = conn.execute(
                text("SELECT traits_index FROM dossiers WHERE id=:i"), {"i": did}
            ).scalar_one()
        needles = [
            label.encode(),
            name.encode(),
            note_text.encode(),
            message.encode(),
            media_bytes,
            *(blob[-32:] for blob in sealed),
            *(d.encode() for d in digests),
            str(traits).encode(),
        ]
        assert digests and traits

        api(
            stack,
            t,
            "PATCH",
            f"/v1/dossiers/{did}",
            {"status": "closed", "status_reason": "fin de prise en charge"},
        )
        with Session(engine) as session:
            closed_at = session.scalar(select(Dossier.closed_at).where(Dossier.id == did))
        assert closed_at is not None

        def steps_at(when: dt.datetime) -> dict[str, str]:
            with Session(engine) as session:
                return {s.dossier_id: s.action for s in retention.plan(session, when)}

        # Archived after the pathway's 12 months, not before.
        assert did not in steps_at(retention.months_later(closed_at, 12) - dt.timedelta(minutes=1))
        archive_on = retention.months_later(closed_at, 12)
        assert steps_at(archive_on)[did] == "archive"
        retention.apply(engine, archive_on)
        assert api(stack, t, "GET", f"/v1/dossiers/{did}")["status"] == "archived"
        listed = api(stack, t, "GET", "/v1/dossiers")["dossiers"]
        assert did not in [d["id"] for d in listed], "out of the lists"
        found = api(stack, t, "GET", "/v1/dossiers?status=archived")["dossiers"]
        assert did in [d["id"] for d in found], "still found by its coordinator"
        refused = api_error(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": "encore"})
        assert refused.status == 409 and "lecture seule" in str(refused)

        # A legal hold withholds the purge, however late.
        purge_on = retention.months_later(closed_at, 12 * 20)
        api(stack, a, "PUT", f"/v1/dossiers/{did}/legal-hold", {"legal_hold": True})
        assert (
            api_error(
                stack, t, "PUT", f"/v1/dossiers/{did}/legal-hold", {"legal_hold": False}
            ).status
            == 403
        )
        late = purge_on + dt.timedelta(days=3650)
        assert steps_at(late)[did] == "hold"
        retention.apply(engine, late)
        assert api(stack, t, "GET", f"/v1/dossiers/{did}")["id"] == did

        # Move the dossier's closure back 21 years: the API's and CLI's dry runs (today's
        # clock) list the purge and change nothing.
        with engine.begin() as conn:
            conn.execute(
                update(Dossier)
                .where(Dossier.id == did)
                .values(closed_at=closed_at - dt.timedelta(days=21 * 366))
            )
        held = api(stack, a, "GET", "/v1/admin/retention")["steps"]
        assert {"dossier_id": did, "action": "hold"}.items() <= next(
            s for s in held if s["dossier_id"] == did
        ).items()
        api(stack, a, "PUT", f"/v1/dossiers/{did}/legal-hold", {"legal_hold": False})
        dry = next(
            s
            for s in api(stack, a, "GET", "/v1/admin/retention")["steps"]
            if s["dossier_id"] == did
        )
        assert dry["action"] == "purge" and set(dry["rooms"]) == {room_id, side["room_id"]}
        assert (
            dry["rows"]["notes"] == 1 and dry["rows"]["tasks"] >= 1 and dry["rows"]["dossiers"] == 1
        )
        assert api_error(stack, t, "GET", "/v1/admin/retention").status == 403
        cli = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "maillon.wiring.cli",
                "dossiers",
                "purge",
                "--dry-run",
                "--dir",
                str(stack.directory),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert f"purge      {did[:6].upper()}" in cli.stdout and "simulation" in cli.stdout
        assert api(stack, t, "GET", f"/v1/dossiers/{did}")["id"] == did, "a dry run changes nothing"

        # The purge: store, rooms (with their media), and every file of the deployment.
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            before = _files_holding(stack.directory, needles)
            assert any("maillon.db" in f for f in before), "the scan sees the store's bytes"
        else:
            nodes = _file_nodes(engine)

            def named() -> bool:  # the side room's name, as the appservice sets it
                return bool(_cluster_files(engine, [label.encode()]))

            await wait_for(named, "the side room's name in the homeserver's tables", timeout=30)
            before = _cluster_files(engine, needles)
            assert any(f"{label.encode()[:24]!r}" in f for f in before), before
            assert any(f"{digests[0].encode()[:24]!r}" in f for f in before), before
        done = api(stack, a, "POST", "/v1/admin/retention")["steps"]
        assert any(s["dossier_id"] == did and s["action"] == "purge" for s in done)
        assert api_error(stack, t, "GET", f"/v1/dossiers/{did}").status == 404
        deadline = time.monotonic() + 120
        while True:
            with Session(engine) as session:
                left = session.scalars(
                    select(RoomPurge).where(
                        RoomPurge.dossier_id == did, RoomPurge.done_at.is_(None)
                    )
                ).all()
            if not left:
                break
            assert time.monotonic() < deadline, [p.last_error for p in left]
            await asyncio.sleep(0.5)
        for rid in (room_id, side["room_id"]):
            assert _admin_status(stack, a, f"/v1/rooms/{quote(rid)}") == 404, "room gone"
        assert _admin_status(stack, a, f"/v1/media/{server}/{media_id}") == 404, "media gone"
        assert not stored.exists(), "the file is gone from the media store"
        with Session(engine) as session:
            stub = session.scalars(
                select(AuditEntry).where(
                    AuditEntry.dossier_id == did, AuditEntry.action == "dossier.purge"
                )
            ).one()
        assert "notes 1" in (stub.detail or "") and mark not in (stub.detail or "")
        # Every file of the deployment (SQLite: the databases too; PostgreSQL: the
        # touched tables were rewritten, their old files dropped).
        assert _files_holding(stack.directory, needles) == []
        if not sqlite:
            after = _file_nodes(engine)
            assert all(after[t] != nodes[t] for t in nodes), (nodes, after)
            # Every file of the cluster: Maillon's schema and Synapse's tables rewritten,
            # the write-ahead log switched and checkpointed (appservice.room_purge).
            assert _cluster_files(engine, needles, checkpoint=False) == []
    finally:
        engine.dispose()
