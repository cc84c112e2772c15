"""Calls to the running dossier API as a given Matrix user."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.models import AuditEntry, RoomActivity
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


# The harness opens the same patient many times: each creation confirms the possible
# duplicate (tests of identity vigilance pass ``duplicate_override=None``).
HARNESS_OVERRIDE = {"reason": "jeu d'essai : même patient ouvert plusieurs fois"}


def dossier_body(**extra: Any) -> dict[str, Any]:
    """A creation request: ``IDENTITY`` unless told, its QUAL status resting on an imported
    INS, the duplicate confirmed (``duplicate_override=None`` to leave it out)."""
    body: dict[str, Any] = {"pathway": "dac", "identity": dict(IDENTITY), **extra}
    if body["identity"].get("identity_status") in ("QUAL", "RECUP"):
        body.setdefault("identity_evidence", {"ins_source": "import"})
    body.setdefault("duplicate_override", HARNESS_OVERRIDE)
    return {k: v for k, v in body.items() if v is not None}


def new_dossier(stack: Stack, token: str, **extra: Any) -> dict[str, Any]:
    return api(stack, token, "POST", "/v1/dossiers", dossier_body(**extra))


def widget_session(stack: Stack, openid_token: str) -> dict[str, str]:
    """Trade a Matrix OpenID token for a widget session (``POST /session/openid``), as the
    widget does: the ``Cookie`` header of the session, its CSRF token and holder."""
    url = stack.deployment.settings.dossier_api.url + "/session/openid"
    data = json.dumps({"openid_token": openid_token}).encode()
    req = urllib.request.Request(url, data=data, method="POST")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            body = json.loads(resp.read())
            cookie = SimpleCookie(resp.headers["Set-Cookie"])
    except urllib.error.HTTPError as exc:
        raise HomeserverError(exc.read().decode(errors="replace"), "", exc.code) from exc
    morsel = cookie["maillon_session"]
    assert morsel["httponly"] and morsel["samesite"] == "Strict", morsel.OutputString()
    return {
        "Cookie": f"maillon_session={morsel.value}",
        "csrf_token": body["csrf_token"],
        "user_id": body["user_id"],
    }


def widget_headers(stack: Stack, openid_token: str) -> dict[str, str]:
    """The request headers of a widget's session (the cookie only)."""
    return {"Cookie": widget_session(stack, openid_token)["Cookie"]}


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


def audit_rows(stack: Stack, action: str) -> list[AuditEntry]:
    """The dossier service's audit rows of one action, oldest first (read from its store)."""
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
                )
            )
    finally:
        engine.dispose()
