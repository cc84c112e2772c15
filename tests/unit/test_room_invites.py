"""Who the dossier → room sync invites: a circle member whose invite failed earlier (no
membership at all) is invited again; someone who left a side room is not; an invite the
homeserver refuses does not fail the sync. Fakes the homeserver calls."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from appservice.dossier_rooms import DossierRooms, RoomState
from appservice.matrix_api import MatrixError
from dossier_api.domain.rooms import RoomPlan
from maillon.shared.circle import CIRCLE_EVENT, CircleEntry, user_state_key

NURSE = "@ide:sante.test"
ENTRY = CircleEntry(NURSE, "IDE", added_by="@coord:sante.test")
SIDE = RoomPlan("k", "side", "coordination interne", "professionals", "!r:s", False)


class FakeApi:
    sender = "@maillon:sante.test"

    def __init__(self, refuse: bool = False) -> None:
        self.attempts: list[str] = []
        self.invites: list[str] = []
        self.writes: list[str] = []
        self.refuse = refuse

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.writes.append(key)
        return "$w"

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        self.attempts.append(user_id)
        if self.refuse:
            raise MatrixError(502, "M_UNKNOWN", "remote server unreachable")
        self.invites.append(user_id)


def _state(membership: str | None, entry_in_room: bool = True) -> RoomState:
    events: list[dict[str, Any]] = []
    if entry_in_room:
        events.append(
            {
                "type": CIRCLE_EVENT,
                "state_key": user_state_key(NURSE),
                "content": ENTRY.to_content(),
            }
        )
    if membership is not None:
        events.append(
            {"type": "m.room.member", "state_key": NURSE, "content": {"membership": membership}}
        )
    return RoomState(events)


async def _converge(api: FakeApi, membership: str | None, entry_in_room: bool = True) -> None:
    rooms = DossierRooms(api, None, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms._converge_member(SIDE, "!r:s", _state(membership, entry_in_room), ENTRY)


async def test_a_member_never_invited_is_invited_again() -> None:
    api = FakeApi()
    await _converge(api, None)
    assert api.invites == [NURSE] and api.writes == [], "entry unchanged, invite retried"


async def test_someone_who_left_a_side_room_is_not_invited_again() -> None:
    api = FakeApi()
    await _converge(api, "leave")
    assert api.invites == [] and api.writes == []


async def test_a_refused_invite_does_not_fail_the_sync(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi(refuse=True)
    with caplog.at_level(logging.WARNING, logger="appservice.dossier_rooms"):
        await _converge(api, None, entry_in_room=False)  # raises nothing: the job goes on
    assert api.writes == [user_state_key(NURSE)], "the circle entry is written all the same"
    assert api.attempts == [NURSE] and api.invites == [], "the invite was tried and refused"
    assert "invite into a dossier room failed: M_UNKNOWN" in caplog.text
    assert NURSE not in caplog.text, "no user id in the log"

    again = FakeApi()  # the next sync of the dossier: the entry is there, no membership yet
    await _converge(again, None)
    assert again.invites == [NURSE] and again.writes == []


async def test_the_welcome_notice_does_not_hold_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the room does not need to be ready (its welcome notice) runs after the answer;
    if it fails, the log says so (without the exception's text)."""
    rooms = DossierRooms(FakeApi(), None, "http://x", "coordination")  # type: ignore[arg-type]
    release = asyncio.Event()
    sent: list[str] = []

    async def welcome() -> None:
        await release.wait()
        sent.append("welcome")

    rooms._follow_up(welcome())  # returns at once: the sync answers without waiting
    assert sent == []
    release.set()
    await asyncio.wait_for(asyncio.gather(*rooms._follow_ups), timeout=5)
    assert sent == ["welcome"] and not rooms._follow_ups

    async def unreachable() -> None:
        raise MatrixError(502, "M_UNKNOWN", "détail du serveur @ide:sante.test")

    with caplog.at_level(logging.ERROR, logger="appservice.dossier_rooms"):
        rooms._follow_up(unreachable())
        await asyncio.wait(set(rooms._follow_ups), timeout=5)
        await asyncio.sleep(0)  # the done callback runs on the next turn of the loop
    assert "after a room's creation: MatrixError" in caplog.text
    assert NURSE not in caplog.text


class RefusingAtFirst(FakeApi):
    """A peer server that refuses the invite until the circle entry has reached it."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        self.attempts.append(user_id)
        if len(self.attempts) <= self.refusals:
            raise MatrixError(403, "M_FORBIDDEN", "This user is not permitted to send invites")
        self.invites.append(user_id)


async def test_a_peer_servers_early_refusal_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("appservice.dossier_rooms.REMOTE_INVITE_RETRIES", (0.0, 0.0))
    remote = CircleEntry("@ide:autre-region.test", "IDE", added_by="@coord:sante.test")
    api = RefusingAtFirst(refusals=1)
    rooms = DossierRooms(api, None, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms._converge_member(SIDE, "!r:s", RoomState([]), remote)
    assert api.invites == [remote.user_id] and len(api.attempts) == 2
    # A refusal by our own server is final (its module decided on the room it holds).
    local = RefusingAtFirst(refusals=1)
    rooms = DossierRooms(local, None, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms._converge_member(SIDE, "!r:s", RoomState([]), ENTRY)
    assert local.invites == [] and len(local.attempts) == 1
    # Refused every time: given up after the retries, the sync goes on.
    stubborn = RefusingAtFirst(refusals=10)
    rooms = DossierRooms(stubborn, None, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms._converge_member(SIDE, "!r:s", RoomState([]), remote)
    assert stubborn.invites == [] and len(stubborn.attempts) == 3
