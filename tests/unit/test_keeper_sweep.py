"""The keeper's periodic sweep reads every patient room once per full-sweep period, spread
over it, not every room at every pass; a room whose member's exit date has come is read at
the next pass, and so is every room at the first pass of a process. Fakes the homeserver
calls; the real sweep (exit dates, intruders) is in ``test_care_circle.py``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from appservice.circle_keeper import CircleKeeper
from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    CircleEntry,
    DossierLink,
    patient_power_levels,
    user_state_key,
)
from maillon.shared.clock import utcnow
from synapse_modules import policy
from synapse_modules.audit import AuditLog

SERVICE = "@maillon:sante.test"
CTX = policy.PolicyContext("sante.test", SERVICE, "@coordination:sante.test")
COORD, NURSE = "@coord:sante.test", "@ide:sante.test"


def _state(entries: list[CircleEntry]) -> list[dict[str, Any]]:
    def event(etype: str, key: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"type": etype, "state_key": key, "sender": SERVICE, "content": content}

    return [
        event("m.room.create", "", {PATIENT_ROOM_MARKER: True}),
        event(DOSSIER_EVENT, "", DossierLink("D").to_content()),
        event("m.room.power_levels", "", patient_power_levels([COORD])),
        *(event(CIRCLE_EVENT, user_state_key(e.user_id), e.to_content()) for e in entries),
    ]


class Rooms:
    """Ten patient rooms, each with its coordinator; reads are counted."""

    def __init__(self) -> None:
        coordinator = CircleEntry(COORD, "COORD", coordinator=True)
        self.states = {f"!r{n}:sante.test": _state([coordinator]) for n in range(10)}
        self.reads: Counter[str] = Counter()
        self.ended: list[str] = []

    async def joined_rooms(self) -> list[str]:
        return list(self.states)

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        self.reads[room_id] += 1
        return self.states[room_id]

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        assert etype == CIRCLE_EVENT and content["active"] is False
        self.ended.append(room_id)
        return "$w"


def _keeper(tmp_path: Path, api: Rooms) -> CircleKeeper:
    return CircleKeeper(
        api,  # type: ignore[arg-type]
        CTX,
        AuditLog(str(tmp_path), "t"),
        sweep_every=60,
        full_sweep_every=300,  # two rooms of ten per pass
    )


async def test_every_room_at_the_first_pass_then_a_share_of_them(tmp_path: Path) -> None:
    api = Rooms()
    keeper = _keeper(tmp_path, api)
    await keeper.sweep()
    assert sorted(api.reads.values()) == [1] * 10
    for _ in range(4):
        await keeper.sweep()
    # Four passes read two rooms each, the longest unread first: eight different rooms.
    assert sorted(api.reads.values()) == [1, 1] + [2] * 8
    await keeper.sweep()
    assert sorted(api.reads.values()) == [2] * 10


async def test_a_room_whose_exit_date_has_come_is_read_at_the_next_pass(
    tmp_path: Path,
) -> None:
    api = Rooms()
    keeper = _keeper(tmp_path, api)
    coordinator = CircleEntry(COORD, "COORD", coordinator=True)
    room = "!r7:sante.test"
    await keeper.sweep()
    # The keeper learns the nurse's exit date from any read of the room (here the one after
    # a creation; an event handler's is the same read).
    later = CircleEntry(NURSE, "IDE", until=utcnow() + dt.timedelta(hours=1))
    api.states[room] = _state([coordinator, later])
    await keeper.settle_power_levels(room)
    api.reads.clear()
    await keeper.sweep()
    assert set(api.reads) == {"!r0:sante.test", "!r1:sante.test"}  # the rotation only
    passed = CircleEntry(NURSE, "IDE", until=utcnow() - dt.timedelta(seconds=1))
    api.states[room] = _state([coordinator, passed])
    await keeper.settle_power_levels(room)
    api.reads.clear()
    await keeper.sweep()
    assert set(api.reads) == {"!r2:sante.test", "!r3:sante.test", room}
    assert api.ended == [room]
