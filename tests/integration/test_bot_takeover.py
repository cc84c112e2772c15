"""The bot killed (SIGKILL) at each step of a command, held there by the test: after it
received the sync that brought the command, after it recorded (claimed) it, after it sent
its answer. The bot started again answers the command exactly once (one event, no reaction). Real
Synapse, real nio clients; the hold is the bot's test-only ``MAILLON_TEST_BOT_HOLD``."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination_bot.bot import HOLD_ENV
from tests.harness.circle import MakeClient, wait_for
from tests.harness.mail import room_events, thread_root
from tests.harness.processes import component_pids
from tests.harness.stack import Stack

BOT = b"-m\0coordination_bot"
STEPS = ("received", "claimed", "answered")


@pytest.fixture
def held_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stack, Path]]:
    """A stack of its own (this test kills its bot) whose bot can be held at a step."""
    holds = tmp_path / "holds"
    holds.mkdir()
    monkeypatch.setenv(HOLD_ENV, str(holds))
    stack = Stack.create(tmp_path / "deploy")
    try:
        stack.start()
        yield stack, holds
    finally:
        stack.stop()


def _relation(event: Any) -> dict[str, Any]:
    return getattr(event, "source", {}).get("content", {}).get("m.relates_to") or {}


async def test_the_bot_killed_at_each_step_of_a_command_answers_it_once(
    held_stack: tuple[Stack, Path], make_client: MakeClient
) -> None:
    stack, holds = held_stack
    user = make_client(stack, "coordinatrice")
    bot = stack.deployment.settings.bot_user_id
    room_id = await user.create_room(invite=[bot], is_direct=True)
    await user.wait_for_member(room_id, bot)

    async def answered(command: str, timeout: float = 30.0) -> None:
        await user.wait_for_text(
            room_id, lambda e: e.sender == bot and thread_root(e) == command, timeout
        )

    await answered(await user.send_text(room_id, "!aide"))  # the room's keys shared
    for step in STEPS:
        (holds / step).touch()
        command = await user.send_text(room_id, "!aide")
        held = holds / f"{step}.held"
        await wait_for(held.exists, f"the bot held at {step}", 30)
        [pid] = component_pids(stack.directory, BOT)
        os.kill(pid, signal.SIGKILL)
        await answered(command, timeout=120)
        assert component_pids(stack.directory, BOT) != [pid]
        await answered(await user.send_text(room_id, "!help"))  # then the next one
        events = await room_events(user, room_id)
        answers = [e for e in events if e.sender == bot and thread_root(e) == command]
        assert len(answers) == 1, f"killed after {step}: answered {len(answers)} times"
        reactions = [
            e
            for e in events
            if _relation(e).get("rel_type") == "m.annotation"
            and _relation(e).get("event_id") == command
        ]
        assert reactions == [], f"killed after {step}: {len(reactions)} reactions"
