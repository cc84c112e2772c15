"""A patient room as ``createRoom`` leaves it needs nothing from the keeper: the module
wrote its power levels from the initial state (``policy.room_power_levels``), so none of
the creation's events, nor the sweep, writes any; while the creation has not written its
initial state yet (no dossier link), the sweep leaves the room alone. Fakes the homeserver
calls; the real flow is in the integration tests (``test_dossier_rooms.py``: a new room's
power levels are complete from its creation, the coordinator can invite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appservice.circle_keeper import CircleKeeper
from maillon.shared.circle import (
    CIRCLE_EVENT,
    COORDINATOR_LEVEL,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    CircleEntry,
    DossierLink,
    user_state_key,
)
from maillon.shared.clock import utcnow
from synapse_modules import policy
from synapse_modules.audit import AuditLog

SERVICE = "@maillon:sante.test"
BOT = "@coordination:sante.test"
CTX = policy.PolicyContext("sante.test", SERVICE, BOT)
COORD = "@coord:sante.test"
ROOM = "!r:sante.test"
LINK = DossierLink("D1", room_key="main")


def _event(etype: str, key: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"room_id": ROOM, "type": etype, "state_key": key, "sender": SERVICE, "content": content}


class FakeApi:
    """A patient room being created: its events in ``createRoom``'s order."""

    def __init__(self) -> None:
        self.state: list[dict[str, Any]] = []
        self.reads = 0
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.kicks: list[str] = []

    def write(self, event: dict[str, Any]) -> None:
        self.state = [
            e
            for e in self.state
            if (e["type"], e["state_key"]) != (event["type"], event["state_key"])
        ] + [event]

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        self.reads += 1
        return list(self.state)

    async def joined_rooms(self) -> list[str]:
        return [ROOM]

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.writes.append((etype, content))
        return "$w"

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        self.kicks.append(user_id)


def _creation() -> list[dict[str, Any]]:
    """The events of the room's ``createRoom``, the power levels as the module sets them."""
    entry = CircleEntry(COORD, "COORD", coordinator=True, added_by=COORD)
    initial = [
        _event(DOSSIER_EVENT, "", LINK.to_content()),
        _event(CIRCLE_EVENT, user_state_key(COORD), entry.to_content()),
    ]
    view = policy.build_view(
        policy.StateItem(e["type"], e["state_key"], SERVICE, e["content"]) for e in initial
    )
    levels = policy.room_power_levels(view, utcnow())
    assert levels["users"] == {COORD: COORDINATOR_LEVEL}
    return [
        _event("m.room.create", "", {PATIENT_ROOM_MARKER: True}),
        _event("m.room.member", SERVICE, {"membership": "join"}),
        _event("m.room.power_levels", "", levels),
        *initial,
        _event("m.room.member", BOT, {"membership": "invite"}),
        _event("m.room.member", COORD, {"membership": "invite"}),
    ]


async def test_a_room_created_complete_needs_no_write(tmp_path: Path) -> None:
    api = FakeApi()
    keeper = CircleKeeper(api, CTX, AuditLog(str(tmp_path), "t"))  # type: ignore[arg-type]
    for event in _creation():
        api.write(event)
        await keeper.handle(event)
    assert await keeper.sweep() == 0
    assert api.writes == [] and api.kicks == []
    # Read for the coordinator's entry (it could have raised someone) and by the sweep only.
    assert api.reads == 2


async def test_the_sweep_leaves_a_room_whose_creation_is_under_way(tmp_path: Path) -> None:
    api = FakeApi()
    keeper = CircleKeeper(api, CTX, AuditLog(str(tmp_path), "t"))  # type: ignore[arg-type]
    for event in _creation()[:2]:  # created, Maillon joined: no power levels, no link yet
        api.write(event)
    assert await keeper.sweep() == 0 and api.writes == []
    for event in _creation()[2:]:
        api.write(event)
    assert await keeper.sweep() == 0 and api.writes == [], "settled as created"
