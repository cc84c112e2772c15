"""The running appservice: token checks, durable storage, replays without second effect."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import urllib.request

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appservice.models import AsEvent, AsTransaction
from maillon.shared.homeserver_client import HomeserverError, request_json
from maillon.shared.store import make_engine
from tests.harness.stack import Stack


def _event(room: str = "!salle:localhost") -> dict[str, object]:
    return {
        "event_id": f"$test{secrets.token_hex(8)}",
        "room_id": room,
        "type": "m.room.message",
        "sender": "@dr.house:localhost",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": "Patient DUPONTEL — bilan"},
    }


def _put(stack: Stack, txn: str, body: dict[str, object], token: str | None) -> dict[str, object]:
    url = stack.deployment.settings.appservice.listener.url + f"/_matrix/app/v1/transactions/{txn}"
    return request_json("PUT", url, body, token=token)


def _counts(stack: Stack, txn_id: str, event_ids: list[str]) -> tuple[int, int]:
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            txns = session.scalar(
                select(func.count())
                .select_from(AsTransaction)
                .where(AsTransaction.txn_id == txn_id)
            )
            events = session.scalar(
                select(func.count()).select_from(AsEvent).where(AsEvent.event_id.in_(event_ids))
            )
    finally:
        engine.dispose()
    return int(txns or 0), int(events or 0)


@pytest.mark.parametrize("stack_fixture", ["stack", "pg_stack"])
def test_replayed_transaction_and_wrong_token_change_nothing(
    stack_fixture: str, request: pytest.FixtureRequest
) -> None:
    stack: Stack = request.getfixturevalue(stack_fixture)
    hs_token = stack.deployment.secrets.hs_token
    txn = f"t{secrets.token_hex(6)}"
    events = [_event(), _event()]
    ids = [str(e["event_id"]) for e in events]

    with pytest.raises(HomeserverError) as missing:
        _put(stack, txn, {"events": events}, None)
    assert missing.value.status == 401
    with pytest.raises(HomeserverError) as wrong:
        _put(stack, txn, {"events": events}, hs_token[:-1] + ("A" if hs_token[-1] != "A" else "B"))
    assert wrong.value.status == 403 and wrong.value.errcode == "M_FORBIDDEN"
    assert _counts(stack, txn, ids) == (0, 0)

    assert _put(stack, txn, {"events": events}, hs_token) == {}
    assert _counts(stack, txn, ids) == (1, 2)
    assert _put(stack, txn, {"events": events}, hs_token) == {}  # replay: same id, same body
    assert _counts(stack, txn, ids) == (1, 2)

    # A homeserver whose txn ids restart: same id, new content, stored; old events not doubled.
    third = _event()
    assert _put(stack, txn, {"events": [events[0], third]}, hs_token) == {}
    assert _counts(stack, txn, [*ids, str(third["event_id"])]) == (2, 3)


def test_malformed_transactions_get_4xx_and_store_nothing(stack: Stack) -> None:
    hs_token = stack.deployment.secrets.hs_token
    txn = f"t{secrets.token_hex(6)}"
    for body in ({"events": "pas une liste"}, {"events": [{"event_id": 3}]}, {"events": [1]}):
        with pytest.raises(HomeserverError) as bad:
            _put(stack, txn, body, hs_token)
        assert bad.value.status == 400 and "transaction illisible" in str(bad.value)
    assert _counts(stack, txn, ["x"]) == (0, 0)


def test_stored_events_are_processed_and_counted(stack: Stack) -> None:
    hs_token = stack.deployment.secrets.hs_token
    base = stack.deployment.settings.appservice.listener.url
    event = _event()
    _put(stack, f"t{secrets.token_hex(6)}", {"events": [event]}, hs_token)
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        deadline = time.monotonic() + 10
        processed = None
        while processed is None and time.monotonic() < deadline:
            with Session(engine) as session:
                processed = session.scalar(
                    select(AsEvent.processed_at).where(AsEvent.event_id == event["event_id"])
                )
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert processed is not None
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:  # noqa: S310
        metrics = resp.read().decode()
    assert "maillon_appservice_events_processed_total" in metrics
    assert "DUPONTEL" not in metrics


def test_health_data_sealed_in_appservice_store(stack: Stack) -> None:
    event = _event()
    _put(stack, f"t{secrets.token_hex(6)}", {"events": [event]}, stack.deployment.secrets.hs_token)
    db_file = stack.directory / "data" / "maillon.db"
    raw = db_file.read_bytes() + (
        db_file.with_name("maillon.db-wal").read_bytes()
        if db_file.with_name("maillon.db-wal").exists()
        else b""
    )
    assert b"DUPONTEL" not in raw
    assert str(event["event_id"]).encode() in raw  # the index is clear, the content is not


def test_a_transaction_synapse_left_unsent_is_delivered(stack: Stack) -> None:
    """Synapse's recoverer can mark the appservice UP while a transaction stored during the
    recovery stays unsent (nothing would send it until the next failure). The same state,
    made by hand in Synapse's database: Maillon's watchdog (synapse_modules/
    appservice_watchdog.py) sends it within two checks and Synapse deletes it."""
    settings = stack.deployment.settings
    room = request_json(
        "POST",
        f"{settings.homeserver.url}/_matrix/client/v3/createRoom",
        {"name": "Salle de service"},
        token=stack.deployment.secrets.as_token,
    )
    db = sqlite3.connect(stack.directory / "data" / "homeserver.db", timeout=30)
    try:
        [(event_id,)] = db.execute(
            "SELECT event_id FROM events WHERE type = 'm.room.create' AND room_id = ?",
            (room["room_id"],),
        ).fetchall()
        [(top,)] = db.execute("SELECT COALESCE(MAX(txn_id), 0) FROM application_services_txns")
        txn_id = max(int(top), 1) + 1_000_000
        with db:
            db.execute(
                "INSERT INTO application_services_txns(as_id, txn_id, event_ids) VALUES (?, ?, ?)",
                (settings.appservice.id, txn_id, json.dumps([event_id])),
            )

        def left_unsent() -> bool:
            rows = db.execute(
                "SELECT 1 FROM application_services_txns WHERE txn_id = ?", (txn_id,)
            ).fetchall()
            return bool(rows)

        deadline = time.monotonic() + 30
        while left_unsent() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left_unsent(), "Synapse still holds the transaction"
    finally:
        db.close()
    assert _counts(stack, str(txn_id), [event_id])[0] == 1, "the appservice received it"
