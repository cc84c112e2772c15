"""Maillon's own administrator account on its homeserver, used for one thing: lifting the
message rate limits of the bot's devices (its command answers and the mail relay's posts).

Tokens the bot gets by ``m.login.application_service`` are rate-limited like any user's
(the registration's ``rate_limited: false`` only covers the appservice token itself), and
Synapse's default of 0.2 message/s would make every answer wait. The account is created
once through shared-secret registration; its token is kept in ``run/service-admin.json``
(0600), next to the deployment's other secrets."""

from __future__ import annotations

import json
import os
import secrets
from urllib.parse import quote

from maillon.shared.homeserver_client import HomeserverError, register_user, request_json
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


def lift_bot_rate_limits(deployment: Deployment) -> None:
    """Register the bot's account if needed and exempt it from message rate limits."""
    settings = deployment.settings
    base = settings.homeserver.url.rstrip("/")
    try:
        request_json(
            "POST",
            f"{base}/_matrix/client/v3/register",
            {
                "type": "m.login.application_service",
                "username": settings.bot.localpart,
                "inhibit_login": True,
            },
            token=deployment.secrets.as_token,
        )
    except HomeserverError as exc:
        if exc.errcode != "M_USER_IN_USE":
            raise
    url = f"{base}/_synapse/admin/v1/users/{quote(settings.bot_user_id)}/override_ratelimit"
    exempt = {"messages_per_second": 0, "burst_count": 0}
    token = _saved_token(deployment)
    if token is not None:
        try:
            request_json("POST", url, exempt, token=token)
            return
        except HomeserverError as exc:
            if exc.status not in (401, 403):
                raise
            # Revoked token, or a homeserver database started afresh: register again.
    request_json("POST", url, exempt, token=_admin_token(deployment))
