"""Carries dossier changes into the dossier's Matrix rooms (dossier → room direction).

Jobs come from the dossier store's outbox (``dossier_api.domain.rooms``); each names what changed
(the rooms themselves, or one circle member). The rooms are brought to the dossier's
*current* state, comparing before writing, so running a job twice (after a crash) or out
of turn changes nothing more. Room creation is found again after a crash by its room key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote, urlencode

from appservice.matrix_api import AppserviceApi, MatrixError
from appservice.patient_rooms import creation_body
from dossier_api.domain.rooms import (
    ROOMS,
    DossierPlan,
    RoomLinks,
    RoomPlan,
    reference,
    same_entry,
)
from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    DOSSIER_WIDGET_ID,
    NAMESPACE,
    SIDE_ROOM_EVENT,
    WIDGET_EVENT,
    CircleEntry,
    DossierLink,
    SideRoomLink,
    in_audience,
    server_acl,
    server_of,
    user_from_state_key,
    user_state_key,
)
from maillon.shared.clock import utcnow
from maillon.shared.federation_peers import PeerList

REMOTE_INVITE_RETRIES = (1.0, 3.0)  # seconds before asking a peer server again
log = logging.getLogger(__name__)


LAYOUT_EVENT = "io.element.widgets.layout"
CLOSED_NOTICE = (
    "Ce dossier est clos : la salle est désormais en lecture seule. "
    "Un coordinateur peut le rouvrir depuis le dossier."
)
REOPENED_NOTICE = "Ce dossier est rouvert : les échanges peuvent reprendre."
# A merged dossier's rooms point to the dossier that stays (state event and notice).
MERGED_EVENT = f"{NAMESPACE}.merged_into"
MERGED_NOTICE = (
    "Ce dossier a été fusionné avec le dossier {ref} (même personne) : la conversation "
    "continue dans la salle de ce dossier."
)


class RoomState:
    """One read of a room's state, indexed."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.by_key = {
            (e["type"], e["state_key"]): e.get("content") or {}
            for e in events
            if isinstance(e.get("state_key"), str)
        }
        self.event_ids = {
            (e["type"], e["state_key"]): str(e.get("event_id", ""))
            for e in events
            if isinstance(e.get("state_key"), str)
        }

    @classmethod
    def of_creation(cls, body: dict[str, Any]) -> RoomState:
        """The state a ``createRoom`` request (``creation_body``) leaves, as far as the
        convergence compares it: its initial state, name, topic and invites."""
        texts = [("m.room.name", {"name": body.get("name")})]
        if body.get("topic"):
            texts.append(("m.room.topic", {"topic": body["topic"]}))
        return cls(
            [
                *body.get("initial_state", []),
                *({"type": etype, "state_key": "", "content": c} for etype, c in texts),
                *(
                    {"type": "m.room.member", "state_key": u, "content": {"membership": "invite"}}
                    for u in body.get("invite", [])
                ),
            ]
        )

    def get(self, etype: str, state_key: str = "") -> dict[str, Any] | None:
        return self.by_key.get((etype, state_key))

    def membership(self, user_id: str) -> str | None:
        content = self.get("m.room.member", user_id)
        return str(content.get("membership")) if content else None

    def entry(self, user_id: str) -> CircleEntry | None:
        content = self.get(CIRCLE_EVENT, user_state_key(user_id))
        return CircleEntry.from_content(user_id, content) if content else None

    def side_room(self, room_id: str) -> SideRoomLink | None:
        content = self.get(SIDE_ROOM_EVENT, room_id)
        return SideRoomLink.from_content(room_id, content) if content else None

    def circle_users(self) -> list[str]:
        return [
            user
            for etype, key in self.by_key
            if etype == CIRCLE_EVENT and (user := user_from_state_key(key)) is not None
        ]


def widget_content(base_url: str, dossier_id: str, service_user: str) -> dict[str, Any]:
    query = urlencode({"dossier": dossier_id})
    # Element substitutes $matrix_* in the URL; they stay unencoded.
    url = f"{base_url}/widget?{query}&room=$matrix_room_id&user=$matrix_user_id&lang=fr"
    return {
        "type": "m.custom",
        "id": DOSSIER_WIDGET_ID,
        "name": "Dossier de coordination",
        "url": url,
        "creatorUserId": service_user,
        "waitForIframeLoad": True,
        "data": {"dossier_id": dossier_id, "title": "Dossier de coordination"},
    }


class DossierRooms:
    def __init__(
        self,
        api: AppserviceApi,
        links: RoomLinks,
        widget_base_url: str,
        bot_localpart: str,
        peers: PeerList | None = None,
    ) -> None:
        self._api = api
        self._peers = peers  # the federation allow list the rooms' server ACL follows
        self._links = links
        self._widget_base = widget_base_url
        self._bot_localpart = bot_localpart
        self._locks: dict[str, asyncio.Lock] = {}
        self._follow_ups: set[asyncio.Task[None]] = set()

    # -- jobs ----------------------------------------------------------------------------

    async def process_pending(self) -> int:
        """Process the outbox, dossier by dossier; returns how many jobs were handled."""
        handled = 0
        for dossier_id, _, _ in await asyncio.to_thread(self._links.pending):
            handled += (await self.process_dossier(dossier_id))[0]
        return handled

    async def process_dossier(self, dossier_id: str) -> tuple[int, DossierPlan | None]:
        """Carry the dossier's pending jobs into its rooms: how many, and the plan the rooms
        were brought to (with the rooms created now), or None if there was nothing to do."""
        async with self._locks.setdefault(dossier_id, asyncio.Lock()):
            seqs, subjects = await asyncio.to_thread(self._links.pending_for, dossier_id)
            if not seqs:
                return 0, None
            try:
                plan = await self.sync(dossier_id, subjects)
            except Exception as exc:
                log.error("room sync of a dossier failed: %s", type(exc).__name__)
                await asyncio.to_thread(self._links.failed, seqs, f"{type(exc).__name__}: {exc}")
                raise
            await asyncio.to_thread(self._links.done, seqs)
            return len(seqs), plan

    async def sync(self, dossier_id: str, subjects: set[str]) -> DossierPlan | None:
        plan = await asyncio.to_thread(self._links.plan, dossier_id)
        if plan is None:
            return None
        created: set[str] = set()
        known: dict[str, RoomState] = {}  # the state of rooms created now, without a read
        if any(r.room_id is None for r in plan.rooms):
            # The whole circle, read after the jobs: what the new rooms are created with,
            # and what the rooms converge to (as recent as any job being done).
            entries = await asyncio.to_thread(self._links.circle, dossier_id, None)
            rooms = []
            for room in plan.rooms:
                if room.room_id is None:
                    room_id, state = await self._ensure_created(plan, room, entries)
                    created.add(room_id)
                    if state is not None:
                        known[room_id] = state
                    room = dataclasses.replace(room, room_id=room_id, creation_started=True)
                rooms.append(room)
            plan = dataclasses.replace(plan, rooms=tuple(rooms))
        else:
            members = None if ROOMS in subjects else subjects - {ROOMS}
            entries = await asyncio.to_thread(self._links.circle, dossier_id, members)
        for room in plan.rooms:
            if room.room_id is None:
                continue
            state = known.get(room.room_id) or RoomState(await self._api.room_state(room.room_id))
            if ROOMS in subjects or room.room_id in created:
                await self._converge_room(plan, room, room.room_id, state)
            for entry in entries:
                try:
                    await self._converge_member(room, room.room_id, state, entry)
                except MatrixError as exc:
                    if exc.status >= 500 or exc.status == 429:
                        raise  # the job is retried
                    # Refused for this person (e.g. their server is not a peer): the rest
                    # of the dossier's changes must still reach the room.
                    log.warning("circle entry refused by the homeserver: %s", exc.errcode)
            if room.room_id in created and room.kind == "main":
                self._follow_up(self._welcome(plan, room.room_id))
        return plan

    def _follow_up(self, work: Coroutine[Any, Any, None]) -> None:
        """Run what the room does not need to be ready (a notice) after the answer: the
        dossier is answered once its room holds its state and invites. A failure is said in
        the log (the room stays usable; the notice is a courtesy)."""
        task = asyncio.create_task(work)
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_up_done)

    def _follow_up_done(self, task: asyncio.Task[None]) -> None:
        self._follow_ups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("after a room's creation: %s", type(task.exception()).__name__)

    async def _welcome(self, plan: DossierPlan, room_id: str) -> None:
        """The welcome notice of a main room (after the invites: history is visible from
        one's invite on)."""
        pathway = plan.followed
        if pathway is not None and pathway.room_template.welcome:
            await self._api.send_notice(
                room_id, f"welcome-{room_id}", pathway.room_template.welcome
            )

    # -- rooms ---------------------------------------------------------------------------

    async def _ensure_created(
        self, plan: DossierPlan, room: RoomPlan, entries: list[CircleEntry]
    ) -> tuple[str, RoomState | None]:
        """Create the room in one call, already in the dossier's state: widget, server ACL,
        circle entries of its audience, and the invites of those members and of the bot (the
        homeserver writes the entries before the invites, so the module admits them); the
        module adds the rest (its forced settings, the power levels). Returns the room and
        the state it was created with: the convergence that follows compares with it, not
        with a read of the room, and finds nothing left to write but what creation cannot
        (a side room's link in the main room). A room found again after a crash: no state
        (it is read)."""
        link = plan.link(room)
        if room.creation_started:
            found = await self._find_room(link)
            if found is not None:
                await asyncio.to_thread(self._links.room_created, room.key, found)
                return found, None
        await asyncio.to_thread(self._links.start_creation, room.key)
        name, topic = _room_texts(plan, room)
        widget = widget_content(self._widget_base, plan.dossier_id, self._api.sender)
        now = utcnow()
        members = [
            e for e in entries if e.active and in_audience(room.audience, e.role, e.coordinator)
        ]
        initial = [
            {"type": WIDGET_EVENT, "state_key": DOSSIER_WIDGET_ID, "content": widget},
            {"type": LAYOUT_EVENT, "state_key": "", "content": _widget_layout()},
            *(
                [{"type": "m.room.server_acl", "state_key": "", "content": self._server_acl()}]
                if self._peers is not None
                else []
            ),
            *(
                {
                    "type": CIRCLE_EVENT,
                    "state_key": user_state_key(e.user_id),
                    "content": e.to_content(),
                }
                for e in members
            ),
        ]
        bot = await self._api.ensure_registered(self._bot_localpart)
        # The bot last: it joins as soon as it is invited, and its join would otherwise
        # contend with the creation's remaining invites.
        invites = [*(e.user_id for e in members if e.is_active(now)), bot]
        body = creation_body(link, name, topic or None, initial, invites)
        room_id = await self._api.create_room(body)
        await asyncio.to_thread(self._links.room_created, room.key, room_id)
        log.info("created a %s room for a dossier", room.kind)
        return room_id, RoomState.of_creation(body)

    async def _find_room(self, link: DossierLink) -> str | None:
        """A room created for this room key by an earlier attempt that crashed before its
        id was recorded."""
        for room_id in await self._api.joined_rooms():
            content = await self._api.get_state(room_id, DOSSIER_EVENT)
            found = DossierLink.from_content(content) if content else None
            if found and found.dossier_id == link.dossier_id and found.room_key == link.room_key:
                return room_id
        return None

    async def _converge_room(
        self, plan: DossierPlan, room: RoomPlan, room_id: str, state: RoomState
    ) -> None:
        link = plan.link(room)
        current = DossierLink.from_content(state.get(DOSSIER_EVENT) or {})
        if current != link:
            await self._api.put_state(room_id, DOSSIER_EVENT, "", link.to_content())
            if current is not None and current.read_only != link.read_only:
                notice = CLOSED_NOTICE if link.read_only else REOPENED_NOTICE
                previous = state.event_ids.get((DOSSIER_EVENT, ""), "")
                await self._api.send_notice(room_id, f"status-{previous}", notice)
        if plan.merged_into is not None and state.get(MERGED_EVENT) is None:
            pointer = {"dossier_id": plan.merged_into, "room_id": plan.merged_room}
            await self._api.put_state(room_id, MERGED_EVENT, "", pointer)
            notice = MERGED_NOTICE.format(ref=reference(plan.merged_into))
            await self._api.send_notice(room_id, f"merged-{room_id}", notice)
        # Name and topic are the template's (rooms made by an older template are renamed).
        name, topic = _room_texts(plan, room)
        if (state.get("m.room.name") or {}).get("name") != name:
            await self._api.put_state(room_id, "m.room.name", "", {"name": name})
        if topic and (state.get("m.room.topic") or {}).get("topic") != topic:
            await self._api.put_state(room_id, "m.room.topic", "", {"topic": topic})
        if self._peers is not None:
            # The allow list changed in the console: the room's server ACL follows it.
            acl = self._server_acl()
            if state.get("m.room.server_acl") != acl:
                await self._api.put_state(room_id, "m.room.server_acl", "", acl)
        widget = widget_content(self._widget_base, plan.dossier_id, self._api.sender)
        if state.get(WIDGET_EVENT, DOSSIER_WIDGET_ID) != widget:
            await self._api.put_state(room_id, WIDGET_EVENT, DOSSIER_WIDGET_ID, widget)
        bot = await self._api.ensure_registered(self._bot_localpart)
        if state.membership(bot) not in ("join", "invite"):
            await self._invite(room_id, bot, "Bot de coordination du dossier")
        main = plan.main_room_id
        if room.kind == "side" and main is not None:
            side_link = SideRoomLink(room_id, room.label, (server_of(self._api.sender),))
            main_state = RoomState(await self._api.room_state(main))
            if main_state.side_room(room_id) != side_link:
                await self._api.put_state(main, SIDE_ROOM_EVENT, room_id, side_link.to_content())

    def _server_acl(self) -> dict[str, Any]:
        """The rooms' server ACL as the allow list's file says now (not the copy of a few
        seconds ago); the module writes the same at creation, from the same file."""
        assert self._peers is not None
        return server_acl(server_of(self._api.sender), self._peers.servers(fresh=True))

    # -- circle --------------------------------------------------------------------------

    async def _converge_member(
        self, room: RoomPlan, room_id: str, state: RoomState, entry: CircleEntry
    ) -> None:
        current = state.entry(entry.user_id)
        wanted = entry
        if entry.active and not in_audience(room.audience, entry.role, entry.coordinator):
            if current is None or not current.active:
                return
            wanted = entry.removed(self._api.sender, utcnow())
        if current is None and not wanted.active:
            return  # never in this room: nothing to say about them here
        changed = not same_entry(current, wanted)
        if changed:
            await self._api.put_state(
                room_id, CIRCLE_EVENT, user_state_key(entry.user_id), wanted.to_content()
            )
        membership = state.membership(entry.user_id)
        if membership == "ban" and changed and wanted.is_active(utcnow()):
            # Banned from the room (which ended their entry), then added again through the
            # dossier: the ban is lifted so the invite can reach them.
            await self._api.unban(room_id, entry.user_id, "De nouveau membre du cercle de soins")
            membership = "leave"
        # Invited when their entry is new or changed, or if they never got the invite (an
        # earlier one failed); someone who left a side room is not invited again.
        if wanted.is_active(utcnow()) and (
            (changed and membership not in ("join", "invite")) or membership is None
        ):
            reason = "Référent du dossier" if entry.coordinator else "Membre du cercle de soins"
            await self._invite(room_id, entry.user_id, reason)

    async def _invite(self, room_id: str, user_id: str, reason: str) -> None:
        # A person of a peer server: their server checks the invite against the room's circle
        # as it knows it, and the circle entry written a moment ago may not have reached it
        # yet (federation does not order the two). A refusal is asked again, a little later.
        remote = server_of(user_id) != server_of(self._api.sender)
        retries = list(REMOTE_INVITE_RETRIES) if remote else []
        while True:
            try:
                await self._api.invite(room_id, user_id, reason)
                return
            except MatrixError as exc:
                if retries and exc.errcode == "M_FORBIDDEN":
                    await asyncio.sleep(retries.pop(0))
                    continue
                # Refused, or the person's server unreachable: the circle entry is written
                # either way, and someone with no membership is invited again at the
                # dossier's next sync. Failing the job instead would hold back the dossier's
                # other changes (closing it, removing someone) behind one unreachable server.
                log.warning("invite into a dossier room failed: %s", exc.errcode or exc.status)
                return


def _widget_layout() -> dict[str, Any]:
    return {"widgets": {DOSSIER_WIDGET_ID: {"container": "top", "index": 0, "width": 100}}}


def _room_texts(plan: DossierPlan, room: RoomPlan) -> tuple[str, str]:
    """The room's name and topic from its pathway's template (stored in clear: initials,
    birth year and reference only, see ``dossier_api.domain.pathways.ROOM_NAME_FIELDS``)."""
    pathway = plan.followed
    name_template = pathway.room_template.name if pathway else None
    fields = plan.name_fields
    try:
        name = (name_template or "{initiales} ({annee}) — dossier {ref}").format(**fields)
    except (KeyError, IndexError, ValueError):
        name = "{initiales} ({annee}) — dossier {ref}".format(**fields)
    if room.kind == "side":
        name = f"{name} · {room.label}"
    topic = pathway.room_template.topic if pathway else ""
    return name, topic


def dossier_sync_path(dossier_id: str) -> str:
    return f"/_maillon/dossiers/{quote(dossier_id, safe='')}/sync"
