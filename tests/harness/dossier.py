"""Calls to the running dossier API as a given Matrix user."""

from __future__ import annotations

from typing import Any

from maillon.shared.homeserver_client import HomeserverError, request_json
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
