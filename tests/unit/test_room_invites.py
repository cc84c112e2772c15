"""Who the dossier → room sync invites: a circle member whose invite failed earlier (no
membership at all) is invited again; someone who left a side room is not; an invite the
homeserver refuses does not fail the sync. Fakes the homeserver calls."""

from __future__ import annotations

from typing import Any

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
        self.invites: list[str] = []
        self.writes: list[str] = []
        self.refuse = refuse

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.writes.append(key)
        return "$w"

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        if self.refuse:
            raise MatrixError(502, "M_UNKNOWN", "remote server unreachable")
        self.invites.append(user_id)


def _state(membership: str | None) -> RoomState:
    events: list[dict[str, Any]] = [
        {"type": CIRCLE_EVENT, "state_key": user_state_key(NURSE), "content": ENTRY.to_content()}
    ]
    if membership is not None:
        events.append(
            {"type": "m.room.member", "state_key": NURSE, "content": {"membership": membership}}
        )
    return RoomState(events)


async def _converge(api: FakeApi, membership: str | None) -> None:
    rooms = DossierRooms(api, None, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms._converge_member(SIDE, "!r:s", _state(membership), ENTRY)


async def test_a_member_never_invited_is_invited_again() -> None:
    api = FakeApi()
    await _converge(api, None)
    assert api.invites == [NURSE] and api.writes == [], "entry unchanged, invite retried"


async def test_someone_who_left_a_side_room_is_not_invited_again() -> None:
    api = FakeApi()
    await _converge(api, "leave")
    assert api.invites == [] and api.writes == []


async def test_a_refused_invite_does_not_fail_the_sync() -> None:
    await _converge(FakeApi(refuse=True), None)  # no exception: the rest of the job goes on
