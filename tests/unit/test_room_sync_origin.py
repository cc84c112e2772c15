"""A circle change made in the main room (a coordinator's invite, kick or ban, a departure)
comes back to the dossier, whose side rooms follow it: the main room, which shows the
change already, is not read again for it. A change made through the dossier still reaches
every room, the main room included, even alongside one from the room. Fakes the
homeserver and the dossier store; the real flow is in ``test_dossier_rooms.py``."""

from __future__ import annotations

from typing import Any

from appservice.dossier_rooms import DossierRooms
from dossier_api.domain.rooms import SIDE_ROOMS, DossierPlan, RoomPlan
from maillon.shared.circle import CIRCLE_EVENT, DOSSIER_EVENT, CircleEntry, user_state_key

SERVICE = "@maillon:sante.test"
COORD, NURSE = "@coord:sante.test", "@ide:sante.test"
MAIN = RoomPlan("main", "main", "", "circle", "!main:sante.test", True)
SIDE = RoomPlan("side", "side", "pros", "professionals", "!side:sante.test", True)
ENTRY = CircleEntry(NURSE, "PRO", added_by=COORD)


class FakeApi:
    """Both rooms: the main one shows the nurse's entry and invite, the side one neither."""

    sender = SERVICE

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.writes: list[tuple[str, str]] = []
        self.invites: list[tuple[str, str]] = []

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        self.reads.append(room_id)
        events: list[dict[str, Any]] = [{"type": DOSSIER_EVENT, "state_key": "", "content": {}}]
        if room_id == MAIN.room_id:
            key = user_state_key(NURSE)
            events.append({"type": CIRCLE_EVENT, "state_key": key, "content": ENTRY.to_content()})
            member = {"membership": "invite"}
            events.append({"type": "m.room.member", "state_key": NURSE, "content": member})
        return events

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.writes.append((room_id, key))
        return "$w"

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        self.invites.append((room_id, user_id))


class FakeLinks:
    def __init__(self) -> None:
        self.asked: list[set[str] | None] = []

    def plan(self, dossier_id: str) -> DossierPlan:
        fields = {"initiales": "J. M.", "annee": "1941", "ref": "D1"}
        return DossierPlan("D1", "inconnu", 1, "open", COORD, fields, (MAIN, SIDE))

    def circle(self, dossier_id: str, users: set[str] | None = None) -> list[CircleEntry]:
        self.asked.append(users)
        return [ENTRY]


async def _sync(subjects: set[str]) -> tuple[FakeApi, FakeLinks]:
    api, links = FakeApi(), FakeLinks()
    rooms = DossierRooms(api, links, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms.sync("D1", subjects)
    return api, links


async def test_a_change_from_the_main_room_reaches_the_side_rooms_only() -> None:
    api, links = await _sync({SIDE_ROOMS + NURSE})
    assert links.asked == [{NURSE}]  # the member's own circle entry, by their user id
    assert api.reads == [SIDE.room_id], "the main room shows the change: not read"
    key = user_state_key(NURSE)
    assert api.writes == [(SIDE.room_id, key)] and api.invites == [(SIDE.room_id, NURSE)]


async def test_a_change_through_the_dossier_still_reaches_every_room() -> None:
    for subjects in ({NURSE}, {NURSE, SIDE_ROOMS + NURSE}):
        api, _ = await _sync(subjects)
        assert api.reads == [MAIN.room_id, SIDE.room_id]
        key = user_state_key(NURSE)
        assert api.writes == [(SIDE.room_id, key)]  # the main room already shows it
        assert api.invites == [(SIDE.room_id, NURSE)]
