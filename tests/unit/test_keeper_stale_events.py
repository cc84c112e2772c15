"""The circle keeper acts on an invite or a kick only while the room still shows it: an
event processed late (after a restart) must not undo a newer change made through the
dossier. Fakes the homeserver calls; the real flows are in the integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appservice.circle_keeper import CircleKeeper
from maillon.shared.circle import CircleEntry, DossierLink
from maillon.shared.clock import utcnow
from synapse_modules import policy
from synapse_modules.audit import AuditLog

CTX = policy.PolicyContext("sante.test", "@maillon:sante.test", "@coordination:sante.test")
COORD, NURSE = "@coord:sante.test", "@ide:sante.test"


class FakeApi:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.kicks: list[str] = []

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.writes.append((etype, key, content))
        return "$w"

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        self.kicks.append(user_id)

    async def resolve_alias(self, alias: str) -> str | None:
        return "!annuaire:sante.test"

    async def get_state(self, room_id: str, etype: str, key: str = "") -> dict[str, Any]:
        return {"profession": "infirmier", "rpps": "10000000001"}  # a known professional


def _keeper(tmp_path: Path) -> tuple[CircleKeeper, FakeApi]:
    api = FakeApi()
    return CircleKeeper(api, CTX, AuditLog(str(tmp_path), "test")), api  # type: ignore[arg-type]


def _view(nurse_membership: str | None, nurse_entry: CircleEntry | None) -> policy.RoomView:
    circle = {COORD: CircleEntry(COORD, "COORD", coordinator=True)}
    if nurse_entry is not None:
        circle[NURSE] = nurse_entry
    memberships = {COORD: "join"}
    if nurse_membership is not None:
        memberships[NURSE] = nurse_membership
    return policy.RoomView(
        dossier=DossierLink("D1"), circle=circle, memberships=memberships, has_encryption=True
    )


def _event(membership: str, sender: str) -> dict[str, Any]:
    return {
        "room_id": "!r:sante.test",
        "sender": sender,
        "state_key": NURSE,
        "type": "m.room.member",
        "content": {"membership": membership},
    }


async def test_a_current_invite_by_the_coordinator_adds_to_the_circle(tmp_path: Path) -> None:
    keeper, api = _keeper(tmp_path)
    await keeper._follow_membership(_event("invite", COORD), _view("invite", None))
    assert [w[2]["active"] for w in api.writes] == [True]


async def test_a_late_invite_does_not_bring_back_a_removed_member(tmp_path: Path) -> None:
    keeper, api = _keeper(tmp_path)
    removed = CircleEntry(NURSE, "IDE").removed(COORD, utcnow())
    # The nurse was removed through the dossier (and kicked) before the invite was processed.
    await keeper._follow_membership(_event("invite", COORD), _view("leave", removed))
    assert api.writes == [] and api.kicks == []


async def test_a_late_kick_does_not_remove_a_member_added_again(tmp_path: Path) -> None:
    keeper, api = _keeper(tmp_path)
    again = CircleEntry(NURSE, "IDE")
    await keeper._follow_membership(_event("leave", COORD), _view("invite", again))
    assert api.writes == []
    await keeper._follow_membership(_event("leave", COORD), _view("leave", again))
    assert [w[2]["active"] for w in api.writes] == [False], "a current kick ends the entry"
