"""The coordination bot answers in an encrypted direct chat; the appservice stores what it gets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from appservice.models import AsEvent
from maillon.shared.store import make_engine
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]


async def _open_dm_with_bot(stack: Stack, user: E2EClient) -> str:
    bot = stack.deployment.settings.bot_user_id
    room_id = await user.create_room(invite=[bot], is_direct=True)
    await user.wait_for_member(room_id, bot)
    return room_id


@pytest.mark.parametrize(
    ("command", "title"),
    [
        ("!aide", "commandes disponibles"),
        ("!help", "available commands"),
    ],
)
async def test_bot_answers_help_in_encrypted_direct_chat(
    stack: Stack, make_client: MakeClient, command: str, title: str
) -> None:
    user = make_client(stack, "coordinatrice")
    room_id = await _open_dm_with_bot(stack, user)
    assert user.client.rooms[room_id].encrypted
    sent = await user.send_text(room_id, command)
    bot = stack.deployment.settings.bot_user_id
    reply = await user.wait_for_text(room_id, lambda e: e.sender == bot)
    assert reply.decrypted, "the bot must answer encrypted in an encrypted room"
    assert title in reply.body
    assert "!aide" in reply.body or "!help" in reply.body
    relation = reply.source["content"].get("m.relates_to", {})
    assert relation.get("rel_type") == "m.thread" and relation.get("event_id") == sent
    assert "<li>" in reply.source["content"].get("formatted_body", "")


async def test_bot_answers_unknown_command_with_pointer_to_help(
    stack: Stack, make_client: MakeClient
) -> None:
    user = make_client(stack, "kine")
    room_id = await _open_dm_with_bot(stack, user)
    await user.send_text(room_id, "!inconnue 12")
    bot = stack.deployment.settings.bot_user_id
    reply = await user.wait_for_text(room_id, lambda e: e.sender == bot)
    assert "Commande inconnue « !inconnue »" in reply.body
    assert "!aide" in reply.body


def _stored_event(stack: Stack, event_id: str) -> AsEvent | None:
    deployment = stack.deployment
    engine = make_engine(deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            row = session.scalar(select(AsEvent).where(AsEvent.event_id == event_id))
            if row is None:
                return None
            session.expunge(row)
    finally:
        engine.dispose()
    return row


@pytest.mark.parametrize("stack_fixture", ["stack", "pg_stack"])
async def test_appservice_durably_stores_transaction_with_message(
    stack_fixture: str, request: pytest.FixtureRequest, make_client: MakeClient
) -> None:
    stack: Stack = request.getfixturevalue(stack_fixture)
    user = make_client(stack, "assistante.sociale")
    room_id = await _open_dm_with_bot(stack, user)
    event_id = await user.send_text(room_id, "Message pour le journal de l'appservice")

    deadline = time.monotonic() + 20
    row = None
    while row is None and time.monotonic() < deadline:
        row = await asyncio.to_thread(_stored_event, stack, event_id)
        if row is None:
            await asyncio.sleep(0.2)
    assert row is not None, "the appservice store never got the message's event"
    assert row.room_id == room_id
    assert row.sender == user.user_id
    assert row.event_type == "m.room.encrypted"
    # No handler reads an encrypted message after the store: processed as it was stored
    # (its activity recorded in the same commit), its ciphertext not kept.
    assert row.processed_at is not None and row.processed_at == row.received_at
    assert row.sealed_event is None
