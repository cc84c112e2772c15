"""The appservice killed with SIGKILL while 500 messages go into 20 dossier rooms: after
its restart every event is processed exactly once, counted on the dossier side. Replays
and forged transactions change nothing. Real Synapse, real PostgreSQL, nio clients."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from nio import RoomSendResponse

from maillon.shared.homeserver_client import HomeserverError, request_any, request_json
from tests.harness.circle import MakeClient, cs, token_of, wait_for
from tests.harness.dossier import messages_count, new_dossier, recorded_messages
from tests.harness.postgres import create_database, drop_database
from tests.harness.processes import component_pids
from tests.harness.stack import Stack

ROOMS = 20
PER_ROOM = 25  # 500 messages
KILL_AFTER = 150


@pytest.fixture
def crash_stack(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """A stack of its own on PostgreSQL: this test kills one of its components."""
    url = create_database()
    stack = Stack.create(tmp_path / "deploy", database_url=url)
    try:
        stack.start()
        yield stack, url
    finally:
        stack.stop()
        drop_database(url)


async def test_kill_9_mid_burst_processes_each_event_once(
    crash_stack: tuple[Stack, str], make_client: MakeClient
) -> None:
    stack, url = crash_stack
    sender = make_client(stack, "coordinatrice")
    t = token_of(sender)
    dossiers = [new_dossier(stack, t) for _ in range(ROOMS)]
    assert all(d["room_id"] for d in dossiers)
    for d in dossiers:
        await sender.accept_invite(d["room_id"])
    await sender.sync()

    sent: dict[str, set[str]] = {d["id"]: set() for d in dossiers}
    killed_pid = None
    for i in range(PER_ROOM):
        for d in dossiers:
            response = await sender.client.room_send(
                d["room_id"],
                "m.room.message",
                {"msgtype": "m.text", "body": f"message {i}"},
                ignore_unverified_devices=True,
            )
            assert isinstance(response, RoomSendResponse), response
            sent[d["id"]].add(response.event_id)
            if killed_pid is None and sum(map(len, sent.values())) == KILL_AFTER:
                [killed_pid] = component_pids(stack.directory, b"-m\0appservice")
                os.kill(killed_pid, signal.SIGKILL)
    assert killed_pid is not None and sum(map(len, sent.values())) == ROOMS * PER_ROOM

    restarted = "Service d'application (appservice) a redémarré."
    await wait_for(lambda: restarted in "".join(stack.output), "the restart", timeout=60)
    assert component_pids(stack.directory, b"-m\0appservice") != [killed_pid]
    try:
        await wait_for(
            lambda: all(messages_count(stack, t, d) >= PER_ROOM for d in sent),
            "every message counted",
            timeout=120,
        )
    except AssertionError as exc:
        counts = {d: messages_count(stack, t, d) for d in sent}
        raise AssertionError(f"{exc}: counts {sorted(counts.values())}") from exc

    def recorded() -> dict[str, set[str]]:
        return recorded_messages(url)

    assert recorded() == sent, "each message recorded once, in its own dossier"
    assert all(messages_count(stack, t, d) == PER_ROOM for d in sent)

    # A replayed event (new txnId, same event) and a forged transaction change nothing.
    settings = stack.deployment.settings
    as_url = settings.appservice.listener.url + "/_matrix/app/v1/transactions/"
    room_id, some_event = dossiers[0]["room_id"], next(iter(sent[dossiers[0]["id"]]))
    event = cs(stack, t, "GET", f"/rooms/{quote(room_id)}/event/{quote(some_event)}")
    hs_token = stack.deployment.secrets.hs_token
    request_json("PUT", as_url + "replay-1", {"events": [event]}, token=hs_token)
    forged = dict(event, event_id="$forged-event")
    with pytest.raises(HomeserverError) as refused:
        request_json("PUT", as_url + "forged-1", {"events": [forged]}, token="x" * 40)
    assert refused.value.status == 403
    metrics = ""
    deadline = time.monotonic() + 10
    while "maillon_appservice_backlog_events 0" not in metrics and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        metrics = request_any("GET", settings.appservice.listener.url + "/metrics", raw=True)
    assert "maillon_appservice_backlog_events 0" in metrics
    assert recorded() == sent
    assert messages_count(stack, t, dossiers[0]["id"]) == PER_ROOM
