"""The appservice's store settles, in the database transaction that stores a transaction,
the events no handler needs afterwards (``transactions.Routing``): they are stored already
processed and without content, their store-time work is done once per event, and if that
work fails nothing of the transaction is stored (the homeserver, without its 200, sends it
again). On a real (SQLite) store."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from appservice.dossier_follower import DossierFollower
from appservice.models import AsEvent, AsTransaction
from appservice.transactions import Routing, TransactionStore
from dossier_api.domain.models import DossierRoom, RoomActivity
from maillon.shared.crypto import KeyRing
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine
from tests.unit.test_room_links import NURSE
from tests.unit.test_room_links import _setup as _dossier


def _event(etype: str = "m.room.encrypted", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"${secrets.token_hex(8)}",
        "room_id": "!salle:sante.test",
        "type": etype,
        "sender": "@ide:sante.test",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEqAB…"},
        **extra,
    }


class AtStore:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail = False

    def __call__(self, connection: Connection, events: Sequence[dict[str, Any]]) -> None:
        if self.fail:
            raise ConnectionError("dossier store unreachable")
        self.seen.extend(e["event_id"] for e in events)


def _store(tmp_path: Path) -> tuple[TransactionStore, AtStore]:
    keys = KeyRing([DataKey("k1", base64.b64encode(bytes(range(32))).decode())])
    at_store = AtStore()
    routing = Routing(queued=lambda e: e["type"] == "m.room.member", at_store=at_store)
    return TransactionStore(make_engine(f"sqlite:///{tmp_path / 'as.db'}"), keys, routing), at_store


def _rows(store: TransactionStore) -> dict[str, tuple[bytes | None, bool]]:
    with store._engine.connect() as conn:
        rows = conn.execute(
            select(AsEvent.event_id, AsEvent.sealed_event, AsEvent.processed_at)
        ).all()
    return {r.event_id: (r.sealed_event, r.processed_at is not None) for r in rows}


def test_events_no_handler_wants_are_settled_when_stored(tmp_path: Path) -> None:
    store, at_store = _store(tmp_path)
    message = _event()
    member = _event("m.room.member", state_key="@ide:sante.test", content={"membership": "join"})
    result = store.store("t1", {"events": [message, member]})
    assert (result.new_events, result.queued_events) == (2, 1)
    assert at_store.seen == [message["event_id"], member["event_id"]]  # every new event

    rows = _rows(store)
    assert rows[message["event_id"]] == (None, True), "processed, its content not kept"
    sealed, processed = rows[member["event_id"]]
    assert sealed is not None and not processed
    assert [event["event_id"] for _, event in store.pending()] == [member["event_id"]]

    # A replay, then the same message in another transaction: nothing is done twice.
    assert store.store("t1", {"events": [message, member]}).replayed
    again = store.store("t2", {"events": [message]})
    assert (again.new_events, again.duplicate_events) == (0, 1)
    assert at_store.seen == [message["event_id"], member["event_id"]]


def test_a_failing_store_time_step_stores_nothing_until_the_retry(tmp_path: Path) -> None:
    store, at_store = _store(tmp_path)
    message = _event()
    at_store.fail = True
    with pytest.raises(ConnectionError):
        store.store("t1", {"events": [message]})
    with store._engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AsTransaction)) == 0
    assert _rows(store) == {}

    at_store.fail = False  # the homeserver sends the transaction again
    assert store.store("t1", {"events": [message]}).new_events == 1
    assert at_store.seen == [message["event_id"]]
    assert _rows(store) == {message["event_id"]: (None, True)}


def test_messages_of_dossier_rooms_are_recorded_in_the_store_transaction(
    tmp_path: Path,
) -> None:
    """Maillon's own wiring: the follower records a dossier room's messages (not Maillon's
    own notices, not another room's) as room activity when the store commits them."""
    _, links, dossier_id, _ = _dossier(tmp_path)
    with Session(links._engine) as session, session.begin():
        room = session.scalars(select(DossierRoom).where(DossierRoom.dossier_id == dossier_id))
        [key] = [r.id for r in room if r.kind == "main"]
    links.room_created(key, "!salle:sante.test")
    follower = DossierFollower(links, frozenset({"@maillon:sante.test"}))
    keys = KeyRing([DataKey("k1", base64.b64encode(bytes(range(32))).decode())])
    store = TransactionStore(
        links._engine, keys, Routing(queued=follower.wants, at_store=follower.at_store)
    )
    message, notice, elsewhere = (
        _event(),
        _event("m.room.message", sender="@maillon:sante.test"),
        _event(room_id="!autre:sante.test"),
    )
    member = _event("m.room.member", state_key=NURSE, content={"membership": "join"})
    result = store.store("t1", {"events": [message, notice, elsewhere, member]})
    assert result.queued_events == 1  # the join: its activity waits for the handlers
    store.store("t2", {"events": [message]})

    with Session(links._engine) as session:
        recorded = session.execute(select(RoomActivity.event_id, RoomActivity.kind)).all()
    assert recorded == [(message["event_id"], "message")]
