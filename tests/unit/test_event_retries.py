"""The appservice's processing of stored events, on a real (SQLite) store: an event whose
handler fails is tried again after a pause, not in a tight loop that would burn its tries in
a few milliseconds, and it does not hold back the events stored after it."""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from appservice.metrics import Metrics
from appservice.models import AsEvent
from appservice.server import HANDLERS, METRICS, RETRY_AT, STORE, _idle_timeout, _process_once
from appservice.transactions import MAX_ATTEMPTS, TransactionStore, retry_delay
from maillon.shared.crypto import KeyRing
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine


def _event() -> dict[str, Any]:
    return {
        "event_id": f"${secrets.token_hex(8)}",
        "room_id": "!salle:sante.test",
        "type": "m.room.message",
        "sender": "@ide:sante.test",
        "origin_server_ts": int(time.time() * 1000),
        "content": {},
    }


def _app(tmp_path: Path, handler: Any) -> web.Application:
    keys = KeyRing([DataKey("k1", base64.b64encode(bytes(range(32))).decode())])
    app = web.Application()
    app[STORE] = TransactionStore(make_engine(f"sqlite:///{tmp_path / 'as.db'}"), keys)
    app[METRICS] = Metrics()
    app[HANDLERS] = [handler]
    app[RETRY_AT] = {}
    return app


async def test_a_failing_event_waits_for_its_retry_and_others_go_on(tmp_path: Path) -> None:
    failing, later = _event(), _event()
    tried: list[str] = []
    broken = {failing["event_id"]}

    async def handler(event: dict[str, Any]) -> None:
        tried.append(event["event_id"])
        if event["event_id"] in broken:
            raise ConnectionError("dossier store unreachable")

    app = _app(tmp_path, handler)
    app[STORE].store("t1", {"events": [failing, later]})

    assert await _process_once(app) == 2
    assert tried == [failing["event_id"], later["event_id"]]
    # Straight away, nothing is tried again: the failed event waits for its retry time.
    assert await _process_once(app) == 0
    assert tried == [failing["event_id"], later["event_id"]]
    assert 0.05 <= _idle_timeout(app) <= retry_delay(1)
    assert app[STORE].backlog() == 1

    broken.clear()  # the store is back
    [seq] = app[RETRY_AT]
    app[RETRY_AT][seq] = time.monotonic()  # its retry time has come
    assert await _process_once(app) == 1
    assert tried[-1] == failing["event_id"] and app[STORE].backlog() == 0
    assert app[RETRY_AT] == {}


async def test_a_poison_event_is_kept_with_its_error_after_the_last_try(tmp_path: Path) -> None:
    async def handler(event: dict[str, Any]) -> None:
        raise ValueError("toujours")

    app = _app(tmp_path, handler)
    app[STORE].store("t1", {"events": [_event()]})
    for _ in range(MAX_ATTEMPTS):
        app[RETRY_AT].clear()  # every retry time reached
        assert await _process_once(app) == 1
    app[RETRY_AT].clear()
    assert await _process_once(app) == 0, "no try after the last one"
    assert app[STORE].backlog() == 1, "kept in the store, not dropped"
    assert app[METRICS].processing_errors == MAX_ATTEMPTS


async def test_the_ciphertext_of_an_encrypted_message_is_not_kept(tmp_path: Path) -> None:
    """The appservice counts encrypted messages but can never read them: what it stores of
    one is its metadata, not its ciphertext (less to seal, store and open per message)."""
    ciphertext = "AwgAEpAB" + secrets.token_urlsafe(600)
    encrypted = {
        **_event(),
        "type": "m.room.encrypted",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": ciphertext,
            "sender_key": "clef",
            "session_id": "session",
            "device_id": "APPAREIL",
            "m.relates_to": {"rel_type": "m.thread", "event_id": "$racine"},
        },
    }
    seen: list[dict[str, Any]] = []

    async def handler(event: dict[str, Any]) -> None:
        seen.append(event)

    app = _app(tmp_path, handler)
    app[STORE].store("t1", {"events": [encrypted]})
    assert await _process_once(app) == 1
    assert seen[0]["content"] == {
        "algorithm": "m.megolm.v1.aes-sha2",
        "m.relates_to": {"rel_type": "m.thread", "event_id": "$racine"},
    }
    assert {k: v for k, v in seen[0].items() if k != "content"} == {
        k: v for k, v in encrypted.items() if k != "content"
    }
    # The sealed row is smaller than the ciphertext alone: the ciphertext was never stored.
    with make_engine(f"sqlite:///{tmp_path / 'as.db'}").connect() as db:
        sealed = db.execute(select(AsEvent.sealed_event)).scalar_one()
    assert len(sealed) < len(ciphertext)
