"""Carries what happens in a dossier's rooms into the dossier (room → dossier direction):

- circle changes made in the patient room (a coordinator's invite, kick or ban, a
  departure, an exit date, all written by the circle keeper) become circle history in the
  dossier;
- invites, joins, departures, kicks, bans and messages are recorded once per event id
  (metadata only: messages are end-to-end encrypted and their content never reaches the
  appservice). Messages, the bulk of the events, are recorded in the database
  transaction that stores them (``at_store``): no later read, open or mark for them.

Changes that came from the dossier itself come back as room events too; they find the
dossier already in that state and change nothing, so nothing loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from dossier_api.domain.rooms import RoomLinks, activity_row, links_of_rooms, record_activities
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

    def wants(self, event: dict[str, Any]) -> bool:
        """What ``handle`` acts on once the event is stored: circle and membership changes."""
        return event.get("type") in ("m.room.member", CIRCLE_EVENT) and isinstance(
            event.get("state_key"), str
        )

    def _is_activity(self, event: dict[str, Any]) -> bool:
        return (
            event["type"] in MESSAGE_TYPES
            and event.get("state_key") is None
            and event["sender"] not in self._maillon_users
        )

    def at_store(self, connection: Connection, events: Sequence[dict[str, Any]]) -> None:
        """Record the messages of dossier rooms among newly stored ``events``, in the store's
        database transaction (``transactions.Routing``); Maillon's own are not activity."""
        messages = [e for e in events if self._is_activity(e)]
        unknown = {e["room_id"] for e in messages} - self._rooms.keys()
        if unknown:  # a room's dossier never changes: looked up once
            self._rooms.update(links_of_rooms(connection, unknown))
        rows = [
            activity_row(self._rooms[e["room_id"]][0], e, "message")
            for e in messages
            if e["room_id"] in self._rooms
        ]
        record_activities(connection, rows)

    async def handle(self, event: dict[str, Any]) -> None:
        activity = self._is_activity(event)
        if not activity and not self.wants(event):
            return
        link = await self._link(event["room_id"])
        if link is None:
            return
        dossier_id, kind = link
        state_key = event.get("state_key")
        if activity:
            # Recorded when stored (``at_store``); one stored by an older version, unprocessed
            # then, is recorded here (once per event id all the same).
            await asyncio.to_thread(self._links.record_activity, dossier_id, event, "message")
        elif event["type"] == "m.room.member":
            what = membership_kind(event)
            if what is not None:
                await asyncio.to_thread(
                    self._links.record_activity, dossier_id, event, what, state_key
                )
        elif kind == "main":  # a circle entry
            user = user_from_state_key(str(state_key))
            entry = CircleEntry.from_content(user, event.get("content") or {}) if user else None
            if entry is not None:
                await asyncio.to_thread(self._links.apply_room_entry, dossier_id, entry)
