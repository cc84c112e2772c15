"""Lifting the message rate limits of the bot's devices, with Maillon's own administrator
account on its homeserver (``maillon.shared.service_account``).

Tokens the bot gets by ``m.login.application_service`` are rate-limited like any user's
(the registration's ``rate_limited: false`` only covers the appservice token itself), and
Synapse's default of 0.2 message/s would make every answer wait."""

from __future__ import annotations

from urllib.parse import quote

from maillon.shared.homeserver_client import HomeserverError, request_json
from maillon.shared.service_account import admin_request
from maillon.shared.settings import Deployment


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
    path = f"/_synapse/admin/v1/users/{quote(settings.bot_user_id)}/override_ratelimit"
    admin_request(deployment, "POST", path, {"messages_per_second": 0, "burst_count": 0})
