"""The bot keeps working: after a restart of the whole stack it still decrypts and answers
in existing encrypted rooms; it says so when it cannot decrypt; a stream of malformed
commands through real Matrix each gets a clear answer; a redelivered event runs once, with
one answer (its ✅ in it, no reaction besides); rooms are answered at once, each in order."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import RoomMessageText

from coordination_bot.bot import CoordinationBot, tx_id
from coordination_bot.core import REGISTRY
from tests.harness.bot import InProcessBot
from tests.harness.bot_chat import BotChat, replies_to
from tests.harness.circle import cs, room_path
from tests.harness.dossier import api
from tests.harness.matrix import E2EClient
from tests.harness.processes import component_pids
from tests.harness.stack import Stack
from tests.integration.test_bot_commands import dm_with_bot, open_dossier_through_bot

MakeClient = Callable[[Stack, str], E2EClient]


async def test_restart_keeps_decrypting_and_answering(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordinatrice")
    chat = BotChat(stack, coord)
    dossier_id, room = await open_dossier_through_bot(stack, coord, chat)
    dm = next(r for r in coord.client.rooms if r != room)
    await chat.command(room, "!note avant le redémarrage")

    # The bot alone, killed: the supervisor restarts it; it resumes with its stores.
    [pid] = component_pids(stack.directory, b"-m\0coordination_bot")
    os.kill(pid, signal.SIGKILL)
    await chat.user.wait_until(
        lambda: any("Bot de coordination a redémarré" in line for line in stack.output),
        "the bot restarted by the supervisor",
        timeout=90,
    )
    assert component_pids(stack.directory, b"-m\0coordination_bot") != [pid]
    await chat.command(room, "!note après la relance du bot")

    # The whole stack, stopped and started again.
    await asyncio.to_thread(stack.stop)
    await asyncio.to_thread(stack.start)

    # Same Megolm sessions on both sides: the bot's crypto store and sync token survived.
    await chat.command(room, "!note après le redémarrage")
    await chat.command(dm, "!aide")
    notes = api(stack, coord.account.access_token, "GET", f"/v1/dossiers/{dossier_id}/notes")
    assert [n["text"] for n in notes["notes"]] == [
        "avant le redémarrage",
        "après la relance du bot",
        "après le redémarrage",
    ]
    assert not [e for _, e in coord.texts if "pas pu déchiffrer" in e.body]
    assert not [e for _, e in coord.undecryptable if e.sender == chat.bot]


async def test_bot_says_when_it_cannot_decrypt(stack: Stack, make_client: MakeClient) -> None:
    user = make_client(stack, "kine")
    chat = BotChat(stack, user)
    dm = await dm_with_bot(stack, user)
    await chat.command(dm, "!aide")  # keys exchanged: the next failure is the message's own
    olm = user.client.olm
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg3",
        "device_id": user.client.device_id,
        "sender_key": olm.account.identity_keys["curve25519"],
        "session_id": "IkxhbWJkYUludmVudGVkU2Vzc2lvbg",
    }
    txn = secrets.token_hex(8)
    sent = cs(
        stack,
        user.account.access_token,
        "PUT",
        room_path(dm, "send", "m.room.encrypted", txn),
        content,
    )
    notice = await chat.answer(dm, sent["event_id"], "pas pu déchiffrer")
    assert notice.decrypted


WORDS = sorted(REGISTRY)
NOISE = ["", "@", "@x:", "31/02", "99h", '"', "«", "fait", "ajouter", "xx", "-1", "🙂", "<i>"]


async def test_malformed_commands_through_matrix_each_get_a_clear_answer(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordinatrice")
    chat = BotChat(stack, coord)
    _, room = await open_dossier_through_bot(stack, coord, chat)
    rng = random.Random(20261122)
    for _ in range(25):
        word = rng.choice(WORDS)
        word = rng.choice([word, word[:-1], word.upper()])
        text = " ".join([word, *rng.sample(NOISE, rng.randint(0, 4))])
        sent = await chat.send(room, text)
        answer = await chat.answer(room, sent)
        if answer.body.startswith("❌"):
            assert "Usage" in answer.body or "!aide" in answer.body, (text, answer.body)
            assert "erreur interne" not in answer.body, (text, answer.body)
        else:
            assert answer.body.startswith("✅ "), (text, answer.body)


def _event(sender: str, room_id: str, body: str) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": "$" + secrets.token_urlsafe(10),
            "sender": sender,
            "room_id": room_id,
            "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": body},
        }
    )


async def test_a_redelivered_command_runs_once(tmp_path: Path) -> None:
    deployment = Stack.create(tmp_path / "deployment").deployment
    bot = CoordinationBot(deployment)
    sent: list[tuple[str, dict[str, Any]]] = []

    tx_ids: list[str | None] = []

    async def fake_send(
        room_id: str, event_type: str, content: dict[str, Any], tx: str | None = None
    ) -> str:
        sent.append((event_type, content))
        tx_ids.append(tx)
        return f"$answer{len(sent)}"

    async def receive(event: RoomMessageText) -> None:
        """As a sync response brings it: recorded, then handled."""
        bot._received.append(("!room:localhost", event))
        await bot._take_received("s")
        while bot._tasks:
            await asyncio.gather(*bot._tasks)

    bot._send = fake_send  # type: ignore[method-assign]
    bot.client = _NoClient()  # type: ignore[assignment]
    local = InProcessBot(bot.services)
    coord = "@coord:localhost"
    Stack(tmp_path / "deployment", "localhost").bind_directory(coord)  # opens dossiers
    opened = await local.say(coord, "!dm:localhost", "!dossier nouveau Petit Luc 01/01/1950 M")
    assert opened.dossier_id is not None
    local.link_room(opened.dossier_id, "!room:localhost")
    event = _event(coord, "!room:localhost", "!note une seule fois")
    await receive(event)
    await receive(event)  # redelivered after a restart
    notes = bot.services.dossiers.notes(bot.services.caller(coord), opened.dossier_id)
    assert [n["text"] for n in notes] == ["une seule fois"]
    # One event answers, the acknowledgement in it: no reaction besides (a second event,
    # sent, stored and synced, for every command); sent with the command's transaction id.
    assert [t for t, _ in sent] == ["m.room.message"]
    assert tx_ids[:1] == [tx_id("reply", event.event_id)]
    answer = sent[0][1]
    assert answer["m.relates_to"]["event_id"] == event.event_id
    assert answer["body"].startswith("✅ Note enregistrée"), answer["body"]
    assert answer["formatted_body"].startswith("<p>✅ <strong>Note enregistrée"), answer
    # A reply in the note's thread is a reply to the note.
    reply = _event(coord, "!room:localhost", "réponse dans le fil")
    reply.source["content"]["m.relates_to"] = {
        "rel_type": "m.thread",
        "event_id": event.event_id,
        "m.in_reply_to": {"event_id": "$answer1"},
    }
    await receive(reply)
    notes = bot.services.dossiers.notes(bot.services.caller(coord), opened.dossier_id)
    assert notes[1]["text"] == "réponse dans le fil" and notes[1]["reply_to"] == notes[0]["id"]
    assert [t for t, _ in sent] == ["m.room.message"] * 2
    assert replies_to(_Wrapped(sent[-1][1]), reply.event_id)
    bot.services.engine.dispose()


class _NoStore:
    def save_sync_token(self, token: str) -> None:
        pass


class _NoClient:
    store = _NoStore()
    next_batch = ""


class _Wrapped:
    def __init__(self, content: dict[str, Any]) -> None:
        self.source = {"content": content}


async def test_rooms_answered_at_once_each_room_in_order(tmp_path: Path) -> None:
    """A command waiting on its answer holds up the later commands of its room only: the
    commands of another room are answered meanwhile; a room's answers keep its order."""
    deployment = Stack.create(tmp_path / "deployment").deployment
    bot = CoordinationBot(deployment)
    held: dict[str, asyncio.Event] = {}
    log: list[tuple[str, str]] = []  # ("start" or "sent", command's event id)
    changed = asyncio.Event()

    async def slow_send(
        room_id: str, event_type: str, content: dict[str, Any], tx: str | None = None
    ) -> str:
        command = content["m.relates_to"]["m.in_reply_to"]["event_id"]
        log.append(("start", command))
        changed.set()
        await held[command].wait()
        log.append(("sent", command))
        changed.set()
        return f"$answer-{command}"

    async def until(what: tuple[str, str]) -> None:
        while what not in log:
            changed.clear()
            await asyncio.wait_for(changed.wait(), 30)

    bot._send = slow_send  # type: ignore[method-assign]
    coord = "@coord:localhost"
    first, second = _event(coord, "!a:localhost", "!aide"), _event(coord, "!a:localhost", "!aide")
    other = _event(coord, "!b:localhost", "!aide")
    for event in (first, second, other):
        held[event.event_id] = asyncio.Event()
    rooms = {first.event_id: "!a:localhost", second.event_id: "!a:localhost"}
    tasks = [
        asyncio.create_task(bot._handle(rooms.get(e.event_id, "!b:localhost"), e))
        for e in (first, second, other)
    ]
    await until(("start", first.event_id))
    await until(("start", other.event_id))  # while the first answer of room a waits
    held[other.event_id].set()
    await until(("sent", other.event_id))
    assert ("start", second.event_id) not in log, "room a's second answer waits for its first"
    held[second.event_id].set()
    held[first.event_id].set()
    await asyncio.gather(*tasks)
    a = [entry for entry in log if entry[1] != other.event_id]
    assert a == [
        ("start", first.event_id),
        ("sent", first.event_id),
        ("start", second.event_id),
        ("sent", second.event_id),
    ]
    bot.services.engine.dispose()
