"""Keeps each patient room and its care circle in step, from the events the homeserver
pushes to the appservice (the Synapse module only decides; this acts):

- a circle entry that ends (removed, or exit date passed) kicks the member out;
- a coordinator's invite of a known professional adds them to the circle;
- a coordinator's kick or ban of a member ends their circle entry, and so does leaving the
  patient room (side rooms follow the dossier's circle instead);
- a dossier closed or reopened makes the room read-only or writable again;
- anyone in the room outside the circle (an invite or join the module never saw, e.g. made
  on another server) is removed;
- coordinators get the power level to invite and remove, and lose it when they leave.

Every action checks the room's current state first, so processing an event twice (after
a crash) has no second effect.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from appservice.matrix_api import AppserviceApi, MatrixError
from maillon.shared.circle import (
    CIRCLE_EVENT,
    DIRECTORY_ALIAS_LOCALPART,
    DIRECTORY_EVENT,
    DOSSIER_EVENT,
    CircleEntry,
    DirectoryEntry,
    DossierLink,
    routed_address,
    user_from_state_key,
    user_state_key,
)
from maillon.shared.clock import utcnow
from maillon.shared.federation_peers import PeerList
from synapse_modules import policy
from synapse_modules.audit import AuditLog

log = logging.getLogger(__name__)


KICK_REASON = "Retiré(e) du cercle de soins du patient"
INTRUDER_REASON = "Hors du cercle de soins : accès retiré automatiquement"
SWEEP_GRACE_SECONDS = 30.0
# A room its last sweep found settled, with no event the keeper follows since, is read
# again at its next exit date, and at the latest after this (whatever the sweep interval).
SWEEP_RECHECK_SECONDS = 3600.0


@dataclass(frozen=True)
class HostedRoom:
    view: policy.RoomView
    levels: dict[str, Any]
    member_ts: dict[str, int]  # when each membership was last set (ms)


def _leaves_nothing_to_do(event: dict[str, Any], user_id: str) -> bool:
    """Whether a circle entry event (Maillon's own, made by this homeserver, which tells what
    it replaced) can change nothing the keeper enforces: the entry is active (its member may
    stay) and not a coordinator's, and it replaces none that was an active coordinator's
    (the power levels — the template with the active coordinators raised — stay as they
    are). So is the entry written for a professional whom a coordinator invited, or whom the
    dossier added. Any other entry is checked against the room's current state."""
    now = utcnow()
    entry = CircleEntry.from_content(user_id, event.get("content") or {})
    if entry is None or entry.coordinator or not entry.is_active(now):
        return False
    unsigned = event.get("unsigned") or {}
    if "replaces_state" not in unsigned:
        return True  # the member's first entry
    previous = unsigned.get("prev_content")
    if not isinstance(previous, dict):
        return False  # replaced, but what it was is unknown
    before = CircleEntry.from_content(user_id, previous)
    return before is None or not (before.coordinator and before.is_active(now))


def _link_leaves_levels(event: dict[str, Any]) -> bool:
    """Whether a dossier link event (Maillon's own) leaves the power levels as they are:
    the room's first link (its creation, whose power levels the module derived from that
    very link and circle), or one whose dossier stays as open or closed as it was (only
    that changes the template). Otherwise the room is read."""
    unsigned = event.get("unsigned") or {}
    if "replaces_state" not in unsigned:
        return True
    previous = unsigned.get("prev_content")
    before = DossierLink.from_content(previous) if isinstance(previous, dict) else None
    after = DossierLink.from_content(event.get("content") or {})
    return before is not None and after is not None and before.read_only == after.read_only


class CircleKeeper:
    def __init__(
        self,
        api: AppserviceApi,
        ctx: policy.PolicyContext,
        audit: AuditLog,
        peers: PeerList | None = None,
    ) -> None:
        self._api = api
        self._context = ctx
        self._peers = peers  # the console's allow list; None: ``ctx``'s fixed one
        self._audit = audit
        self._directory_room: str | None = None
        # Rooms whose creation shows they are no patient room of ours (never changes).
        self._not_patient: set[str] = set()
        # Room id -> when (epoch s) the sweep reads it again: its last sweep changed nothing
        # and left nothing for later, and no event of it came since (``handle`` forgets it).
        self._settled: dict[str, float] = {}
        self._touched: dict[str, int] = {}  # room id -> events handled (sweep vs handle race)

    @property
    def _ctx(self) -> policy.PolicyContext:
        if self._peers is not None:  # looked at for each event (a stat; read if changed)
            servers = self._peers.servers(fresh=True)
            if servers != self._context.peer_servers:
                self._context = dataclasses.replace(self._context, peer_servers=servers)
        return self._context

    async def _room(self, room_id: str) -> HostedRoom | None:
        """The policy view of a patient room we host (one state read); else None."""
        if room_id in self._not_patient:
            return None
        try:
            events = await self._api.room_state(room_id)
        except MatrixError as exc:
            if exc.status in (403, 404):
                return None
            raise
        state = [e for e in events if isinstance(e.get("state_key"), str)]
        items = [
            policy.StateItem(e["type"], e["state_key"], e["sender"], e.get("content", {}))
            for e in state
        ]
        create = next((i for i in items if i.type == "m.room.create"), None)
        if create is None:
            return None
        if create.sender != self._ctx.service_user or not policy.is_patient_create(create.content):
            self._not_patient.add(room_id)
            return None
        levels = next((dict(i.content) for i in items if i.type == "m.room.power_levels"), {})
        member_ts = {
            e["state_key"]: int(e.get("origin_server_ts", 0))
            for e in state
            if e["type"] == "m.room.member"
        }
        return HostedRoom(policy.build_view(items), levels, member_ts)

    async def _known_professional(self, user_id: str) -> bool:
        if not user_id.endswith(":" + self._ctx.server_name):
            return False
        if self._directory_room is None:
            alias = f"#{DIRECTORY_ALIAS_LOCALPART}:{self._ctx.server_name}"
            self._directory_room = await self._api.resolve_alias(alias)
            if self._directory_room is None:
                return False
        content = await self._api.get_state(
            self._directory_room, DIRECTORY_EVENT, user_state_key(user_id)
        )
        return content is not None and DirectoryEntry.from_content(user_id, content) is not None

    def wants(self, event: dict[str, Any]) -> bool:
        """What ``handle`` acts on: memberships, circle entries and the dossier link (and the
        power levels, which the next sweep checks)."""
        return event.get("type") in (
            "m.room.member",
            CIRCLE_EVENT,
            DOSSIER_EVENT,
            "m.room.power_levels",
        ) and isinstance(event.get("state_key"), str)

    async def handle(self, event: dict[str, Any]) -> None:
        if not self.wants(event):
            return
        room_id = event["room_id"]
        self._settled.pop(room_id, None)  # the next sweep reads the room again
        self._touched[room_id] = self._touched.get(room_id, 0) + 1
        etype, state_key = event["type"], event["state_key"]
        if etype == "m.room.power_levels":
            return  # restored by the next sweep if they are not the template's
        if etype == "m.room.member" and (
            self._ctx.is_service(event["sender"]) or self._ctx.is_service(state_key)
        ):
            # Maillon's own invite (the module lets it invite active members only), kick or
            # unban, or a membership of Maillon's users: nothing to follow. An entry that
            # ended after Maillon's invite kicks the invitee when its own event comes.
            return
        if (
            etype == DOSSIER_EVENT
            and event["sender"] == self._ctx.service_user
            and _link_leaves_levels(event)
        ):
            return
        member = None
        if etype == CIRCLE_EVENT:
            member = user_from_state_key(state_key)
            if member is None:
                return
            if event["sender"] == self._ctx.service_user and _leaves_nothing_to_do(event, member):
                return  # the room's state is not even read
        elif etype == "m.room.member" and await self._member_needs_nothing(event):
            return  # the room's state is not even read
        room = await self._room(room_id)
        if room is None:
            return
        view, levels = room.view, room.levels
        if etype == DOSSIER_EVENT:  # closed or reopened: read-only power levels or not
            await self._sync_power_levels(room_id, view, levels)
        elif member is not None:  # a circle entry
            await self._enforce_entry(room_id, member, view)
            await self._sync_power_levels(room_id, view, levels)
        else:
            await self._follow_membership(event, view)

    async def _member_needs_nothing(self, event: dict[str, Any]) -> bool:
        """Whether a membership event leaves nothing to do, told from its member's own
        circle entry read alone (one state event, not the room), as ``_follow_membership``
        would tell it from the whole room: a join that entry admits (``check_join`` admits
        an active member of an allowed server on their entry alone), an invite of an active
        member or of a routed address, a leave or ban of someone with no active entry. Any
        other event (a coordinator's invite of someone not yet in the circle, an outsider's
        join, a member leaving) is checked against the whole room, as before."""
        membership = (event.get("content") or {}).get("membership")
        room_id, user_id = event["room_id"], event["state_key"]
        if room_id in self._not_patient or self._ctx.is_service(user_id):
            return True  # nothing is ever done for these
        if membership == "invite" and routed_address(user_id) is not None:
            return True  # a solicitation (``team_invites``), never a member
        if membership not in ("join", "invite", "leave", "ban"):
            return True  # a knock: the module decides it, the keeper follows none
        try:
            content = await self._api.get_state(room_id, CIRCLE_EVENT, user_state_key(user_id))
        except MatrixError as exc:
            if exc.status == 403:
                return False  # not in the room: the room read says so
            raise
        entry = CircleEntry.from_content(user_id, content) if content else None
        now = utcnow()
        active = entry is not None and entry.is_active(now)
        if membership == "join":
            view = policy.RoomView(dossier=None, circle={user_id: entry} if entry else {})
            return active and policy.check_join(self._ctx, view, user_id, now, False).allowed
        if membership == "invite":
            return active
        return not active  # leave or ban: only an active member's entry is ended

    async def _enforce_entry(self, room_id: str, user_id: str, view: policy.RoomView) -> None:
        if self._ctx.is_service(user_id) or view.active_member(user_id, utcnow()) is not None:
            return
        if view.memberships.get(user_id) in ("join", "invite", "knock"):
            await self._kick(room_id, user_id, KICK_REASON, "circle_exit")

    async def _follow_membership(self, event: dict[str, Any], view: policy.RoomView) -> None:
        room_id, sender, target = event["room_id"], event["sender"], event["state_key"]
        if self._ctx.is_service(target):
            return
        now = utcnow()
        membership = (event.get("content") or {}).get("membership")
        current = view.memberships.get(target)
        main_room = view.dossier is None or view.dossier.kind == "main"
        # Act on an event only while the room still shows it: an invite or kick processed
        # late (after a restart) must not undo a newer change made through the dossier.
        if membership == "invite" and current in ("invite", "join"):
            if view.active_member(target, now) is not None or routed_address(target) is not None:
                return  # a routed address: a solicitation (``team_invites``), never a member
            # Side rooms follow the dossier's circle: nobody enters them by invite alone.
            if (
                main_room
                and view.is_coordinator(sender, now)
                and await self._known_professional(target)
            ):
                entry = CircleEntry(user_id=target, role="PRO", since=now, added_by=sender)
                await self._write_entry(room_id, entry, "circle_added_by_invite")
            else:
                await self._kick(room_id, target, INTRUDER_REASON, "intruder_invite")
        elif membership == "join" and current == "join":
            # The room shows the join, so no invite of theirs is pending: the decision cannot
            # turn on the directory (only a coordinator's pending invite of a known
            # professional does), which is not asked.
            if policy.check_join(self._ctx, view, target, now, False).denied:
                await self._kick(room_id, target, INTRUDER_REASON, "intruder_join")
        elif membership in ("leave", "ban") and main_room:
            member = view.active_member(target, now)
            if member is None:
                return
            if sender != target and current == membership and view.is_coordinator(sender, now):
                # A ban is a kick that also bars the way back: it ends the entry the same.
                code = "circle_ended_by_ban" if membership == "ban" else "circle_ended_by_kick"
                await self._write_entry(room_id, member.removed(sender, now), code)
            elif sender == target and current == "leave":
                # Leaving the patient room (or declining its invite) is leaving the circle.
                await self._write_entry(room_id, member.removed(target, now), "circle_left")

    async def _kick(self, room_id: str, user_id: str, reason: str, code: str) -> None:
        try:
            await self._api.kick(room_id, user_id, reason)
        except MatrixError as exc:
            if exc.status != 403:  # already gone: nothing left to do
                raise
        self._audit.record(room_id, self._ctx.service_user, "kick", user_id, True, code)

    async def _write_entry(self, room_id: str, entry: CircleEntry, code: str) -> None:
        await self._api.put_state(
            room_id, CIRCLE_EVENT, user_state_key(entry.user_id), entry.to_content()
        )
        self._audit.record(
            room_id,
            self._ctx.service_user,
            f"circle:{entry.role}",
            entry.user_id,
            entry.active,
            code,
        )

    async def _sync_power_levels(
        self, room_id: str, view: policy.RoomView, levels: dict[str, Any]
    ) -> bool:
        """Power levels are exactly the template with the active coordinators raised;
        returns whether they had to be set."""
        canonical = policy.room_power_levels(view, utcnow())
        if levels == canonical:
            return False
        await self._api.put_state(room_id, "m.room.power_levels", "", canonical)
        return True

    async def sweep(self) -> int:
        """Periodic pass over every patient room we host: end the circle entries whose exit
        date has passed, remove anyone in the room outside the circle, restore the power
        levels. A room found settled is not read again until its next exit date (or
        ``SWEEP_RECHECK_SECONDS``) unless an event of it comes. Returns how many changes
        were made. A failing room does not stop the rest."""
        changes = 0
        now = utcnow().timestamp()
        for room_id in await self._api.joined_rooms():
            if self._settled.get(room_id, 0.0) > now:
                continue
            try:
                changes += await self._sweep_room(room_id)
            except Exception as exc:
                log.error("sweep failed for a patient room: %s", type(exc).__name__)
        return changes

    async def _sweep_room(self, room_id: str) -> int:
        touched = self._touched.get(room_id, 0)
        room = await self._room(room_id)
        if room is None or room.view.dossier is None:
            return 0  # a room whose createRoom has not written its initial state yet
        view, levels, member_ts = room.view, room.levels, room.member_ts
        now = utcnow()
        changes = 0
        next_read = now.timestamp() + SWEEP_RECHECK_SECONDS
        for entry in view.circle.values():
            if entry.active and entry.until is not None and entry.until <= now:
                removed = entry.removed(self._ctx.service_user, now)
                await self._write_entry(room_id, removed, "circle_exit_date")
                changes += 1
            elif entry.active and entry.until is not None:
                next_read = min(next_read, entry.until.timestamp())
        settled = (now.timestamp() - SWEEP_GRACE_SECONDS) * 1000
        deferred = False
        for user_id, membership in view.memberships.items():
            if membership not in ("join", "invite") or self._ctx.is_service(user_id):
                continue
            if view.active_member(user_id, now) is not None:
                continue
            # Fresh memberships are the event handlers' business (an invite by a coordinator
            # becomes a circle entry when its event is processed); the sweep catches the rest.
            if member_ts.get(user_id, 0) > settled:
                deferred = True
                continue
            await self._kick(room_id, user_id, INTRUDER_REASON, "sweep_outside_circle")
            changes += 1
        if await self._sync_power_levels(room_id, view, levels):
            changes += 1
        if not changes and not deferred and self._touched.get(room_id, 0) == touched:
            self._settled[room_id] = next_read
        return changes
