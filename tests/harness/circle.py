"""Helpers for patient-room tests: the coordinator path (Maillon's appservice), the
directory, and raw client-server calls as a given user."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from appservice.directory import bind_directory_entry
from appservice.matrix_api import AppserviceApi
from appservice.patient_rooms import circle_entry, create_patient_room
from maillon.shared.circle import CircleEntry, DirectoryEntry, DossierLink
from maillon.shared.homeserver_client import HomeserverError, request_any, request_json
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]


def appservice(stack: Stack) -> AppserviceApi:
    return AppserviceApi.for_deployment(stack.deployment)


async def bind_professional(stack: Stack, user_id: str, profession: str = "infirmier") -> None:
    rpps = "".join(secrets.choice("0123456789") for _ in range(11))
    async with appservice(stack) as api:
        await bind_directory_entry(
            api, stack.server_name, DirectoryEntry(user_id, profession, rpps=rpps)
        )


async def open_dossier(stack: Stack, coordinator: str, **link: Any) -> str:
    dossier = DossierLink(dossier_id=f"D-{secrets.token_hex(4)}", **link)
    async with appservice(stack) as api:
        return await create_patient_room(api, dossier, "Dossier de coordination", coordinator)


def cs(
    stack: Stack, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A client-server API call as the owner of ``token``."""
    return request_json(method, stack.url + "/_matrix/client/v3" + path, body, token=token)


def room_state(stack: Stack, token: str, room_id: str) -> list[dict[str, Any]]:
    """The whole current state of a room, as its member ``token`` sees it."""
    state: list[dict[str, Any]] = request_any(
        "GET", stack.url + "/_matrix/client/v3" + room_path(room_id, "state"), token=token
    )
    return state


def refusal(
    stack: Stack, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> HomeserverError:
    """The call must be refused; return the error (status, errcode, message)."""
    try:
        cs(stack, token, method, path, body)
    except HomeserverError as exc:
        return exc
    raise AssertionError(f"{method} {path} was accepted but must be refused")


def room_path(room_id: str, *rest: str) -> str:
    return "/rooms/" + quote(room_id) + "".join("/" + quote(part, safe="") for part in rest)


def membership(stack: Stack, token: str, room_id: str, user_id: str) -> str | None:
    try:
        content = cs(stack, token, "GET", room_path(room_id, "state", "m.room.member", user_id))
    except HomeserverError as exc:
        if exc.status == 404:
            return None
        raise
    return str(content.get("membership"))


async def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> float:
    """Poll until ``predicate()`` is true; return how long it took, in seconds."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def coordinated_room(stack: Stack, make_client: MakeClient) -> tuple[E2EClient, str]:
    coordinator = make_client(stack, "coordinatrice")
    await bind_professional(stack, coordinator.user_id, "infirmière coordinatrice")
    room_id = await open_dossier(stack, coordinator.user_id)
    await coordinator.accept_invite(room_id)
    return coordinator, room_id


async def professional(stack: Stack, make_client: MakeClient, prefix: str) -> E2EClient:
    pro = make_client(stack, prefix)
    await bind_professional(stack, pro.user_id)
    return pro


async def eventually_entry(stack: Stack, room_id: str, user_id: str, active: bool) -> CircleEntry:
    """The circle entry the module writes after an invite or a kick (side effect)."""
    for _ in range(100):
        async with appservice(stack) as api:
            entry = await circle_entry(api, room_id, user_id)
        if entry is not None and entry.active is active:
            return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"circle entry of {user_id} never became active={active}")


def token_of(client: E2EClient) -> str:
    """The access token of a test client, for raw client-server calls."""
    return client.account.access_token


async def member_exchange(
    stack: Stack, make_client: MakeClient
) -> tuple[E2EClient, E2EClient, str, CircleEntry]:
    """A coordinator adds a nurse to a patient room; the nurse joins and the two exchange
    encrypted messages (each decrypts the other's). Returns (coordinator, nurse, room,
    the nurse's circle entry)."""
    coordinator, room_id = await coordinated_room(stack, make_client)
    nurse = await professional(stack, make_client, "ide")
    await coordinator.sync()
    invited = await coordinator.client.room_invite(room_id, nurse.user_id)
    assert not hasattr(invited, "message"), getattr(invited, "message", "")
    entry = await eventually_entry(stack, room_id, nurse.user_id, active=True)
    await nurse.accept_invite(room_id)
    await coordinator.wait_for_member(room_id, nurse.user_id)
    assert nurse.client.rooms[room_id].encrypted
    sent = await coordinator.send_text(room_id, "Sortie prévue vendredi, pansement à J+2.")
    got = await nurse.wait_for_text(room_id, lambda e: e.event_id == sent)
    assert got.decrypted and got.body == "Sortie prévue vendredi, pansement à J+2."
    back = await nurse.send_text(room_id, "Noté, passage samedi matin.")
    reply = await coordinator.wait_for_text(room_id, lambda e: e.event_id == back)
    assert reply.decrypted and reply.body == "Noté, passage samedi matin."
    return coordinator, nurse, room_id, entry
