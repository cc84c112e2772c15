"""The bot's received messages: recorded pending before the sync token is saved (a failed
record saves no token and syncs them again), handled once (a done one is a redelivery, a
pending one is not handled twice by the same instance), found again by the next active
instance when the one that recorded them died before handling them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nio import RoomMessageText

from coordination_bot.bot import CoordinationBot, tx_id
from coordination_bot.services import Services
from tests.harness.bot import deployment

ROOM = "!room:localhost"


def _event(body: str) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": "$" + secrets.token_urlsafe(10),
            "sender": "@pro:localhost",
            "room_id": ROOM,
            "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": body},
        }
    )


class _Store:
    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.token = ""

    def save_sync_token(self, token: str) -> None:
        self.order.append(f"token {token}")
        self.token = token


class _Client:
    def __init__(self, order: list[str]) -> None:
        self.store = _Store(order)
        self.next_batch = ""
        self.user_id = "@coordination:localhost"


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[CoordinationBot]:
    made = CoordinationBot(deployment(tmp_path / "deployment"))
    yield made
    made.services.engine.dispose()


async def test_a_received_event_is_handled_once_and_then_skipped(bot: CoordinationBot) -> None:
    services = bot.services
    first, second = "$un", "$deux"
    assert await services.receive([(first, ROOM), (second, ROOM)]) == [first, second]
    # Redelivered while this instance handles them: not handled a second time.
    assert await services.receive([(first, ROOM)]) == []
    assert await services.claim_pending() == []
    await services.finish(first)
    services.release(second)  # stopped before answering: pending
    assert await services.receive([(first, ROOM)]) == []  # done: a redelivery
    assert await services.claim_pending() == [(second, ROOM)]
    assert await services.claim_pending() == []  # claimed, being handled here
    await services.finish(second)
    assert await services.receive([(second, ROOM), (first, ROOM)]) == []


async def test_a_new_instance_finds_what_the_dead_one_recorded(bot: CoordinationBot) -> None:
    services = bot.services
    assert await services.receive([("$mort", ROOM)]) == ["$mort"]  # then the process dies
    other = Services(services.engine, bot.deployment)
    assert await other.receive([("$mort", ROOM)]) == ["$mort"]  # synced again: handled
    other.release("$mort")
    assert await other.claim_pending() == [("$mort", ROOM)]


async def test_the_sync_token_is_saved_after_the_events_are_recorded(
    bot: CoordinationBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    client = _Client(order)
    bot.client = client  # type: ignore[assignment]
    handled: list[str] = []

    async def handle(room_id: str, event: RoomMessageText) -> None:
        order.append(f"handle {event.body}")
        handled.append(event.event_id)

    bot._handle = handle  # type: ignore[method-assign]
    record = bot.services._record_all
    failing = True

    def recording(events: list[tuple[str, str]]) -> set[str]:
        order.append(f"record {len(events)}")
        if failing:
            raise RuntimeError("base indisponible")
        return record(events)

    monkeypatch.setattr(bot.services, "_record_all", recording)
    command, talk = _event("!aide"), _event("bonjour")
    room: Any = type("Room", (), {"room_id": ROOM})()
    bot._saved_token = client.next_batch = "s1"
    for event in (command, talk):
        await bot._on_message(room, event)
    client.next_batch = "s2"  # what nio set from the response, before the callbacks
    with pytest.raises(RuntimeError):
        await bot._take_received("s2")
    assert order == ["record 1"] and client.store.token == "", "no token without a record"
    assert client.next_batch == "s1", "the next sync brings the events again"

    failing = False
    await bot._on_message(room, command)  # redelivered by the sync from s1
    await bot._take_received("s2")
    await asyncio.gather(*bot._tasks)
    assert order[1:] == ["record 1", "token s2", "handle !aide"]
    assert bot._saved_token == "s2" and handled == [command.event_id]


def test_what_the_bot_sends_for_a_command_has_the_same_transaction_id_every_time() -> None:
    assert tx_id("reply", "$a") == tx_id("reply", "$a")
    assert len({tx_id("reply", "$a"), tx_id("reply", "$b"), tx_id("follow", "$a")}) == 3
    assert tx_id("reply", "$a").isascii()
