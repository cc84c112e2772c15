"""What the circle keeper reads from the homeserver for each event it gets and each sweep
(each read costs the homeserver the time its clients wait for): a join is checked without
asking the directory, Maillon's own entry for an invited professional without reading the
room, a room that is no patient room of ours is read once, a settled room is swept again
only after an event of it or at its next exit date. Every rule still holds: an outsider's
join is removed, a coordinator's entry (or its end) still sets the power levels, an exit
date still ends the entry. Fakes the homeserver calls; the real flows are in the
integration tests."""

from __future__ import annotations

import asyncio
import datetime as dt
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
ROOM = "!patient:sante.test"
COORD, NURSE, OUTSIDER = "@coord:sante.test", "@ide:sante.test", "@intrus:sante.test"


def _state(etype: str, key: str, content: dict[str, Any], sender: str = SERVICE) -> dict[str, Any]:
    return {"type": etype, "state_key": key, "sender": sender, "content": content}


class FakeHomeserver:
    """One patient room; counts the reads the keeper makes."""

    def __init__(self, coordinators: tuple[str, ...] = (COORD,)) -> None:
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.room_reads: list[str] = []
        self.directory_reads: list[str] = []
        self.entry_reads: list[str] = []  # single state events of the patient room
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.kicks: list[str] = []
        self._set(_state("m.room.create", "", {PATIENT_ROOM_MARKER: True}))
        self._set(_state(DOSSIER_EVENT, "", DossierLink("D1").to_content()))
        self._set(_state("m.room.power_levels", "", patient_power_levels(list(coordinators))))
        self.entry(CircleEntry(COORD, "COORD", coordinator=True))
        self.member(COORD, "join")

    def _set(self, event: dict[str, Any]) -> None:
        self.state[(event["type"], event["state_key"])] = event

    def entry(self, entry: CircleEntry) -> None:
        self._set(_state(CIRCLE_EVENT, user_state_key(entry.user_id), entry.to_content()))

    def member(self, user_id: str, membership: str, sender: str | None = None) -> None:
        self._set(_state("m.room.member", user_id, {"membership": membership}, sender or user_id))

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        self.room_reads.append(room_id)
        if room_id != ROOM:  # a room someone else created (a direct chat, say)
            return [_state("m.room.create", "", {}, sender=COORD)]
        return list(self.state.values())

    async def joined_rooms(self) -> list[str]:
        return [ROOM]

    async def resolve_alias(self, alias: str) -> str | None:
        return "!annuaire:sante.test"

    async def get_state(self, room_id: str, etype: str, key: str = "") -> dict[str, Any] | None:
        if room_id == ROOM:  # one state event of the patient room
            self.entry_reads.append(key)
            event = self.state.get((etype, key))
            return None if event is None else dict(event["content"])
        self.directory_reads.append(key)
        return {"profession": "infirmier", "rpps": "10000000001"}  # a known professional

    async def put_state(self, room_id: str, etype: str, key: str, content: dict[str, Any]) -> str:
        self.writes.append((etype, key, content))
        self._set(_state(etype, key, content))
        return "$w"

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        self.kicks.append(user_id)
        self.member(user_id, "leave", SERVICE)


def _keeper(tmp_path: Path, hs: FakeHomeserver) -> CircleKeeper:
    return CircleKeeper(hs, CTX, AuditLog(str(tmp_path), "test"))  # type: ignore[arg-type]


def _member_event(user_id: str, membership: str, sender: str) -> dict[str, Any]:
    return {
        "room_id": ROOM,
        "sender": sender,
        "state_key": user_id,
        "type": "m.room.member",
        "content": {"membership": membership},
    }


def _pushed(
    etype: str,
    key: str,
    content: dict[str, Any],
    replaced: dict[str, Any] | None = None,
    sender: str = SERVICE,
) -> dict[str, Any]:
    """A state event as the homeserver pushes it (with what it replaced, if anything)."""
    unsigned = {} if replaced is None else {"replaces_state": "$avant", "prev_content": replaced}
    return {
        "room_id": ROOM,
        "sender": sender,
        "state_key": key,
        "type": etype,
        "content": content,
        "unsigned": unsigned,
    }


def _entry_event(
    entry: CircleEntry, replaces: CircleEntry | None = None, sender: str = SERVICE
) -> dict[str, Any]:
    replaced = replaces.to_content() if replaces is not None else None
    return _pushed(
        CIRCLE_EVENT, user_state_key(entry.user_id), entry.to_content(), replaced, sender
    )


async def test_a_join_is_checked_without_asking_the_directory(tmp_path: Path) -> None:
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    hs.entry(CircleEntry(NURSE, "IDE", added_by=COORD))
    hs.member(NURSE, "join")
    await keeper.handle(_member_event(NURSE, "join", NURSE))
    assert hs.kicks == [] and hs.directory_reads == []
    # A member's join: their own entry admits it, the room is not read.
    assert hs.entry_reads == [user_state_key(NURSE)] and hs.room_reads == []

    hs.member(OUTSIDER, "join")  # a join the module never saw (another server's, say)
    await keeper.handle(_member_event(OUTSIDER, "join", OUTSIDER))
    assert hs.kicks == [OUTSIDER] and hs.directory_reads == [] and hs.room_reads == [ROOM]


async def test_a_membership_its_members_entry_settles_reads_that_entry_alone(
    tmp_path: Path,
) -> None:
    """The circle keeper reads the whole room for a membership event only when the member's
    own entry does not settle it: the dossier's invite of a member already in the circle,
    a leave of someone whose entry has ended, a join of an active member read one state
    event. Each outcome is the one the whole room gives."""
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    hs.entry(CircleEntry(NURSE, "IDE", added_by=COORD))
    hs.member(NURSE, "invite", SERVICE)  # the dossier's invite, after the entry
    await keeper.handle(_member_event(NURSE, "invite", SERVICE))
    hs.member(NURSE, "join")
    await keeper.handle(_member_event(NURSE, "join", NURSE))
    ended = CircleEntry(NURSE, "IDE").removed(COORD, utcnow())
    hs.entry(ended)
    hs.member(NURSE, "leave", SERVICE)  # the keeper's kick once the dossier ended it
    await keeper.handle(_member_event(NURSE, "leave", SERVICE))
    assert hs.room_reads == [] and hs.writes == [] and hs.kicks == []
    # The join read its entry; the dossier's own invite and kick read nothing at all.
    assert hs.entry_reads == [user_state_key(NURSE)]

    # An active entry of a server the region does not allow admits no join: the room is
    # read and the member removed, as the whole room's check says.
    stranger = "@ide:ailleurs.test"
    hs.entry(CircleEntry(stranger, "IDE", added_by=COORD))
    hs.member(stranger, "join")
    await keeper.handle(_member_event(stranger, "join", stranger))
    assert hs.room_reads == [ROOM] and hs.kicks == [stranger]

    # A member leaving the room ends their entry: read, and written.
    hs.entry(CircleEntry(NURSE, "IDE", added_by=COORD))
    hs.member(NURSE, "leave")
    await keeper.handle(_member_event(NURSE, "leave", NURSE))
    assert hs.room_reads == [ROOM, ROOM] and hs.writes[-1][2]["active"] is False


async def test_an_invite_by_a_coordinator_writes_an_entry_whose_event_reads_nothing(
    tmp_path: Path,
) -> None:
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    hs.member(NURSE, "invite", COORD)
    await keeper.handle(_member_event(NURSE, "invite", COORD))
    [(etype, key, content)] = hs.writes
    assert (etype, key, content["active"]) == (CIRCLE_EVENT, user_state_key(NURSE), True)
    assert hs.directory_reads == [user_state_key(NURSE)] and len(hs.room_reads) == 1

    written = CircleEntry.from_content(NURSE, content)
    assert written is not None
    await keeper.handle(_entry_event(written))  # the entry's own event, pushed back
    assert len(hs.room_reads) == 1 and hs.writes[1:] == [] and hs.kicks == []


async def test_coordinator_entries_and_removals_are_still_checked(tmp_path: Path) -> None:
    hs = FakeHomeserver(coordinators=())  # power levels not yet raised for the coordinator
    keeper = _keeper(tmp_path, hs)
    await keeper.handle(_entry_event(CircleEntry(COORD, "COORD", coordinator=True)))
    assert hs.writes == [("m.room.power_levels", "", patient_power_levels([COORD]))]

    # The coordinator stays in the circle, not as a coordinator: the power levels follow.
    demoted = CircleEntry(COORD, "IDE")
    hs.entry(demoted)
    await keeper.handle(
        _entry_event(demoted, replaces=CircleEntry(COORD, "COORD", coordinator=True))
    )
    assert hs.writes[-1] == ("m.room.power_levels", "", patient_power_levels([]))

    # An entry that ends, or one not written by Maillon, is checked against the room.
    hs.member(NURSE, "join")
    ended = CircleEntry(NURSE, "IDE").removed(COORD, utcnow())
    hs.entry(ended)
    reads = len(hs.room_reads)
    await keeper.handle(_entry_event(ended, replaces=CircleEntry(NURSE, "IDE")))
    assert hs.kicks == [NURSE] and len(hs.room_reads) == reads + 1
    await keeper.handle(_entry_event(CircleEntry(NURSE, "IDE"), sender=COORD))
    assert len(hs.room_reads) == reads + 2


async def test_a_room_that_is_no_patient_room_is_read_once(tmp_path: Path) -> None:
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    for _ in range(3):
        await keeper.handle({**_member_event(NURSE, "join", NURSE), "room_id": "!dm:sante.test"})
    assert hs.room_reads == ["!dm:sante.test"] and hs.kicks == []


async def test_a_settled_room_is_swept_again_after_an_event_or_at_its_exit_date(
    tmp_path: Path,
) -> None:
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    assert await keeper.sweep() == 0 and len(hs.room_reads) == 1
    assert await keeper.sweep() == 0 and len(hs.room_reads) == 1, "settled: not read again"

    # Power levels someone loosened (an exempt user, say): the event brings the sweep back.
    hs._set(_state("m.room.power_levels", "", patient_power_levels([]), sender=COORD))
    await keeper.handle({**hs.state[("m.room.power_levels", "")], "room_id": ROOM})
    assert await keeper.sweep() == 1 and hs.writes[-1][2] == patient_power_levels([COORD])
    reads = len(hs.room_reads)

    # An entry that ends in a moment: the room is read when it ends, and the entry ended.
    hs.member(NURSE, "join")
    leaving = CircleEntry(NURSE, "IDE", until=utcnow() + dt.timedelta(seconds=0.3))
    hs.entry(leaving)
    await keeper.handle(_entry_event(leaving))
    assert len(hs.room_reads) == reads  # Maillon's own entry for a member: nothing to check
    assert await keeper.sweep() == 0 and len(hs.room_reads) == reads + 1
    assert await keeper.sweep() == 0 and len(hs.room_reads) == reads + 1
    await asyncio.sleep(0.35)
    assert await keeper.sweep() == 2, "the entry ended, its member removed"
    assert hs.writes[-1][2]["active"] is False and hs.kicks == [NURSE]


async def test_maillons_own_memberships_read_nothing(tmp_path: Path) -> None:
    """Maillon's service user invites only active members (the module refuses it anyone
    else), and its kicks and its users' memberships are nothing to follow: no room read.
    An entry that ends after Maillon's invite still removes the invitee, from its own event."""
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    bot = CTX.bot_user
    hs.entry(CircleEntry(NURSE, "IDE", added_by=COORD))
    for user_id, membership, sender in (
        (SERVICE, "join", SERVICE),
        (bot, "invite", SERVICE),
        (bot, "join", bot),
        (NURSE, "invite", SERVICE),
        (OUTSIDER, "leave", SERVICE),
    ):
        hs.member(user_id, membership, sender)
        await keeper.handle(_member_event(user_id, membership, sender))
    assert hs.room_reads == [] and hs.writes == [] and hs.kicks == []

    ended = CircleEntry(NURSE, "IDE", added_by=COORD).removed(COORD, utcnow())
    hs.entry(ended)
    await keeper.handle(_entry_event(ended, replaces=CircleEntry(NURSE, "IDE")))
    assert hs.kicks == [NURSE] and hs.room_reads == [ROOM]


def _link_event(link: DossierLink, replaces: DossierLink | None = None) -> dict[str, Any]:
    replaced = replaces.to_content() if replaces is not None else None
    return _pushed(DOSSIER_EVENT, "", link.to_content(), replaced)


async def test_a_dossier_link_reads_the_room_only_when_it_opens_or_closes_it(
    tmp_path: Path,
) -> None:
    """The power levels turn only on the dossier being open or not: a room's first link
    (its creation, whose power levels the module derived from it) or one that changes
    something else reads nothing; closing the dossier sets the read-only power levels."""
    hs = FakeHomeserver()
    keeper = _keeper(tmp_path, hs)
    await keeper.handle(_link_event(DossierLink("D1")))
    shared = DossierLink("D1", share_outside=True)
    await keeper.handle(_link_event(shared, replaces=DossierLink("D1")))
    assert hs.room_reads == [] and hs.writes == []

    closed = DossierLink("D1", status="closed", share_outside=True)
    hs._set(_state(DOSSIER_EVENT, "", closed.to_content()))
    await keeper.handle(_link_event(closed, replaces=shared))
    assert hs.room_reads == [ROOM]
    assert hs.writes == [("m.room.power_levels", "", patient_power_levels([COORD], read_only=True))]
