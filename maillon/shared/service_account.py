"""Maillon's own administrator account on its homeserver, for the few admin-API calls the
deployment makes itself: lifting the message rate limits of the bot's devices (supervisor)
and deleting the rooms of purged dossiers with their media (appservice, retention).

The account is created once through shared-secret registration; its token is kept in
``run/service-admin.json`` (0600), next to the deployment's other secrets. The admin API
is served on loopback only: the calls go to the homeserver's local URL."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from maillon.shared.homeserver_client import HomeserverError, register_user, request_any
from maillon.shared.settings import Deployment

ADMIN_LOCALPART = "maillon-admin"


def _saved_token(deployment: Deployment) -> str | None:
    path = deployment.path("run", "service-admin.json")
    try:
        token = json.loads(path.read_text(encoding="utf-8"))["access_token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: a new account is registered
    return token if isinstance(token, str) and token else None


def _admin_token(deployment: Deployment) -> str:
    path = deployment.path("run", "service-admin.json")
    settings, secret = deployment.settings, deployment.secrets.registration_shared_secret
    localpart = ADMIN_LOCALPART
    for _ in range(5):
        try:
            registered = register_user(
                settings.homeserver.url, secret, localpart, secrets.token_urlsafe(24), admin=True
            )
            break
        except HomeserverError as exc:
            if exc.errcode != "M_USER_IN_USE":
                raise
            # Its token file was lost: a fresh account (the old one keeps no rights of use).
            localpart = f"{ADMIN_LOCALPART}-{secrets.token_hex(3)}"
    else:
        raise HomeserverError("aucun identifiant libre pour le compte de service")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"user_id": registered.user_id, "access_token": registered.access_token}, handle)
    return registered.access_token


def admin_request(
    deployment: Deployment, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One call of the homeserver's admin API (``path`` from ``/_synapse/admin``) with the
    service account's token; the account is registered (again) when it has none that works."""
    url = deployment.settings.homeserver.url.rstrip("/") + path
    token = _saved_token(deployment)
    if token is not None:
        try:
            return request_any(method, url, body, token=token)
        except HomeserverError as exc:
            if exc.status not in (401, 403):
                raise
            # Revoked token, or a homeserver database started afresh: register again.
    return request_any(method, url, body, token=_admin_token(deployment))
