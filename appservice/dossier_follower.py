"""Carries what happens in a dossier's rooms into the dossier (room → dossier direction):

- circle changes made in the patient room (a coordinator's invite, kick or ban, a
  departure, an exit date, all written by the circle keeper) become circle history in the
  dossier;
- invites, joins, departures, kicks, bans and messages are recorded once per event id
  (metadata only: messages are end-to-end encrypted and their content never reaches the
  appservice).

Changes that came from the dossier itself come back as room events too; they find the
dossier already in that state and change nothing, so nothing loops.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dossier_api.domain.rooms import RoomLinks
from maillon.shared.circle import CIRCLE_EVENT, CircleEntry, user_from_state_key

MESSAGE_TYPES = ("m.room.encrypted", "m.room.message")


def membership_kind(event: dict[str, Any]) -> str | None:
    membership = (event.get("content") or {}).get("membership")
    previous = ((event.get("unsigned") or {}).get("prev_content") or {}).get("membership")
    if membership == "leave" and previous == "ban":
        return None  # an unban (Maillon's, when the dossier adds the person again)
    if membership == "leave" and event["sender"] != event.get("state_key"):
        return "kick"
    return membership if membership in ("invite", "join", "leave", "ban") else None


class DossierFollower:
    def __init__(self, links: RoomLinks, maillon_users: frozenset[str]) -> None:
        self._links = links
        self._maillon_users = maillon_users  # their notices and answers are not activity
        self._rooms: dict[str, tuple[str, str]] = {}  # room id -> (dossier id, kind)

    async def _link(self, room_id: str) -> tuple[str, str] | None:
        link = self._rooms.get(room_id)
        if link is None:
            link = await asyncio.to_thread(self._links.link_of_room, room_id)
            if link is not None:  # a room's dossier never changes
                self._rooms[room_id] = link
        return link

    async def handle(self, event: dict[str, Any]) -> None:
        link = await self._link(event["room_id"])
        if link is None:
            return
        dossier_id, kind = link
        etype, state_key = event["type"], event.get("state_key")
        if etype in MESSAGE_TYPES and state_key is None:
            if event["sender"] in self._maillon_users:
                return
            await asyncio.to_thread(self._links.record_activity, dossier_id, event, "message")
        elif etype == "m.room.member" and isinstance(state_key, str):
            what = membership_kind(event)
            if what is not None:
                await asyncio.to_thread(
                    self._links.record_activity, dossier_id, event, what, state_key
                )
        elif etype == CIRCLE_EVENT and kind == "main" and isinstance(state_key, str):
            user = user_from_state_key(state_key)
            entry = CircleEntry.from_content(user, event.get("content") or {}) if user else None
            if entry is not None:
                await asyncio.to_thread(self._links.apply_room_entry, dossier_id, entry)
