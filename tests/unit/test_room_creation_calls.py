"""What opening a dossier's room costs the homeserver: one ``createRoom``, holding the
dossier's state and invites (the bot invited last: it joins at once), and nothing after it
before the answer — the convergence compares with the state the room was created with,
not with a read of it. A room found again after a crash is read and converged as before.
Fakes the homeserver and the dossier store; the real flow is in the integration tests
(``test_dossier_rooms.py``)."""

from __future__ import annotations

from typing import Any

from appservice.dossier_rooms import DossierRooms
from dossier_api.domain.rooms import ROOMS, DossierPlan, RoomPlan
from maillon.shared.circle import CIRCLE_EVENT, DOSSIER_EVENT, CircleEntry, DossierLink

SERVICE = "@maillon:sante.test"
BOT = "@coordination:sante.test"
COORD = "@coord:sante.test"
ROOM = "!nouvelle:sante.test"


class FakeApi:
    sender = SERVICE

    def __init__(self, joined: list[str] | None = None) -> None:
        self.calls: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.joined = joined or []

    async def ensure_registered(self, localpart: str) -> str:
        return BOT

    async def create_room(self, body: dict[str, Any]) -> str:
        self.calls.append("createRoom")
        self.bodies.append(body)
        return ROOM

    async def joined_rooms(self) -> list[str]:
        self.calls.append("joined_rooms")
        return self.joined

    async def get_state(self, room_id: str, etype: str, key: str = "") -> dict[str, Any]:
        self.calls.append(f"get_state {etype}")
        return DossierLink("D1", room_key="k").to_content()

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        self.calls.append("room_state")
        return [
            {"type": DOSSIER_EVENT, "state_key": "", "content": {}},
        ]

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.calls.append(f"put_state {etype}")
        return "$w"

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        self.calls.append(f"invite {user_id}")


class FakeLinks:
    """The dossier store's side: one dossier, its main room not created yet."""

    def __init__(self, creation_started: bool = False) -> None:
        self.room = RoomPlan("k", "main", "", "circle", None, creation_started)
        self.created: list[tuple[str, str]] = []

    def plan(self, dossier_id: str) -> DossierPlan:
        fields = {"initiales": "J. M.", "annee": "1941", "ref": "D1"}
        return DossierPlan("D1", "inconnu", 1, "open", COORD, fields, (self.room,))

    def circle(self, dossier_id: str, users: Any = None) -> list[CircleEntry]:
        return [CircleEntry(COORD, "COORD", coordinator=True, added_by=COORD)]

    def start_creation(self, key: str) -> None:
        pass

    def room_created(self, key: str, room_id: str) -> None:
        self.created.append((key, room_id))


async def test_a_new_room_is_one_create_room_and_nothing_more() -> None:
    api, links = FakeApi(), FakeLinks()
    rooms = DossierRooms(api, links, "http://x", "coordination")  # type: ignore[arg-type]
    plan = await rooms.sync("D1", {ROOMS})
    assert api.calls == ["createRoom"], "no read of the new room, nothing written after it"
    assert plan is not None and plan.main_room_id == ROOM and links.created == [("k", ROOM)]
    [body] = api.bodies
    assert body["invite"] == [COORD, BOT], "the bot last"
    types = [s["type"] for s in body["initial_state"]]
    assert DOSSIER_EVENT in types and CIRCLE_EVENT in types


async def test_a_room_found_after_a_crash_is_read_and_converged() -> None:
    api, links = FakeApi(joined=[ROOM]), FakeLinks(creation_started=True)
    rooms = DossierRooms(api, links, "http://x", "coordination")  # type: ignore[arg-type]
    await rooms.sync("D1", {ROOMS})
    assert "createRoom" not in api.calls and "room_state" in api.calls
    assert f"invite {COORD}" in api.calls and f"invite {BOT}" in api.calls
