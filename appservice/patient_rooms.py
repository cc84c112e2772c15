"""Patient rooms and their care circle, written by Maillon's coordinator path.

The Synapse module enforces the policy; these calls are how the dossier side (API, bot)
creates a patient room and adds or removes circle members.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from appservice.matrix_api import AppserviceApi
from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    CircleEntry,
    DossierLink,
    user_state_key,
)
from maillon.shared.clock import utcnow


def creation_body(
    link: DossierLink,
    name: str,
    topic: str | None = None,
    initial_state: list[dict[str, Any]] | None = None,
    invite: list[str] | None = None,
) -> dict[str, Any]:
    """The ``createRoom`` request of a patient room linked to its dossier (the module forces
    its policy on it); the ``invite`` list is sent after the initial state, so circle
    entries in it admit them."""
    body: dict[str, Any] = {
        "name": name,
        "preset": "private_chat",
        "visibility": "private",
        "creation_content": {PATIENT_ROOM_MARKER: True},
        "initial_state": [
            {"type": DOSSIER_EVENT, "state_key": "", "content": link.to_content()},
            *(initial_state or []),
        ],
    }
    if topic:
        body["topic"] = topic
    if invite:
        body["invite"] = invite
    return body


async def create_room(
    api: AppserviceApi,
    link: DossierLink,
    name: str,
    topic: str | None = None,
    initial_state: list[dict[str, Any]] | None = None,
    invite: list[str] | None = None,
) -> str:
    """Create a patient room linked to its dossier (``creation_body``)."""
    return await api.create_room(creation_body(link, name, topic, initial_state, invite))


async def create_patient_room(
    api: AppserviceApi, link: DossierLink, name: str, coordinator: str, topic: str | None = None
) -> str:
    """Create the room, add the coordinator to the circle and invite them."""
    room_id = await create_room(api, link, name, topic)
    await set_circle_member(
        api, room_id, coordinator, "COORD", added_by=coordinator, coordinator=True
    )
    await api.invite(room_id, coordinator, "Référent du dossier de coordination")
    return room_id


async def set_circle_member(
    api: AppserviceApi,
    room_id: str,
    user_id: str,
    role: str,
    added_by: str,
    coordinator: bool = False,
    until: dt.datetime | None = None,
) -> CircleEntry:
    entry = CircleEntry(
        user_id=user_id,
        role=role,
        coordinator=coordinator,
        since=utcnow(),
        until=until,
        added_by=added_by,
    )
    await api.put_state(room_id, CIRCLE_EVENT, user_state_key(user_id), entry.to_content())
    return entry


async def circle_entry(api: AppserviceApi, room_id: str, user_id: str) -> CircleEntry | None:
    content = await api.get_state(room_id, CIRCLE_EVENT, user_state_key(user_id))
    return CircleEntry.from_content(user_id, content) if content else None


async def remove_circle_member(
    api: AppserviceApi, room_id: str, user_id: str, removed_by: str
) -> CircleEntry | None:
    """End the membership (history stays in the room state); the module kicks them out."""
    entry = await circle_entry(api, room_id, user_id)
    if entry is None or not entry.active:
        return entry
    ended = entry.removed(removed_by, utcnow())
    await api.put_state(room_id, CIRCLE_EVENT, user_state_key(user_id), ended.to_content())
    return ended
