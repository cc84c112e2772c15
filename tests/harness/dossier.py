"""Calls to the running dossier API as a given Matrix user."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dossier_api.domain.models import RoomActivity
from maillon.shared.homeserver_client import HomeserverError, request_json
from maillon.shared.store import make_engine
from tests.harness.stack import Stack

IDENTITY = {
    "birth_name": "Martin",
    "first_names": "Jeanne Louise",
    "sex": "F",
    "birth_date": "1941-03-12",
    "birthplace_insee": "31555",
    "ins_matricule": "241033155500112",
    "ins_oid": "1.2.250.1.213.1.4.8",
    "identity_status": "QUAL",
}


def api(
    stack: Stack, token: str | None, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    return request_json(method, stack.deployment.settings.dossier_api.url + path, body, token=token)


def api_error(
    stack: Stack, token: str | None, method: str, path: str, body: dict[str, Any] | None = None
) -> HomeserverError:
    try:
        api(stack, token, method, path, body)
    except HomeserverError as exc:
        return exc
    raise AssertionError(f"{method} {path} must be refused")


def new_dossier(stack: Stack, token: str, **extra: Any) -> dict[str, Any]:
    body = {"pathway": "dac", "identity": dict(IDENTITY), **extra}
    return api(stack, token, "POST", "/v1/dossiers", body)


def messages_count(stack: Stack, token: str, dossier_id: str) -> int:
    """How many messages the dossier's activity counts (as the appservice recorded them)."""
    return int(api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/activity")["messages"])


def recorded_messages(database_url: str) -> dict[str, set[str]]:
    """The message events recorded on the dossier side, by dossier."""
    engine = make_engine(database_url, create_tables=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(RoomActivity.dossier_id, RoomActivity.event_id).where(
                    RoomActivity.kind == "message"
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, set[str]] = {}
    for dossier_id, event_id in rows:
        found.setdefault(dossier_id, set()).add(event_id)
    return found
