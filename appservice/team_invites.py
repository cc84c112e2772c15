"""A resource team's address (``@equipe.<slug>:<server>``) invited into a patient room: the
care-circle module let the invite through because it admits nobody (no one logs in as the
address, and it never has a circle entry to join with). Here the invite becomes a
solicitation of the team by the inviter (the members on duty now are told; consent is
checked as for any solicitation), the address declines the invite, and Maillon says in the
room what happened — without the reason, which stays in the dossier (a notice is not
end-to-end encrypted)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from appservice.matrix_api import AppserviceApi, MatrixError
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.service import DossierService
from maillon.shared.circle import server_of, team_slug

log = logging.getLogger("maillon.appservice.teams")
DEFAULT_REASON = "Sollicitation depuis la salle du patient (motif à préciser)"


class TeamInvites:
    def __init__(self, api: AppserviceApi, service: DossierService, server_name: str) -> None:
        self._api = api
        self._service = service
        self._server_name = server_name

    async def handle(self, event: dict[str, Any]) -> None:
        if event.get("type") != "m.room.member":
            return
        invitee = event.get("state_key")
        content = event.get("content") or {}
        if not isinstance(invitee, str) or content.get("membership") != "invite":
            return
        slug = team_slug(invitee)
        if slug is None or server_of(invitee) != self._server_name:
            return
        room_id, inviter = event["room_id"], event["sender"]
        dossier_id = await asyncio.to_thread(self._service.dossier_id_for_room, room_id)
        if dossier_id is None:
            # Not one of our dossiers' rooms (e.g. a room of another region): declined. A
            # team is solicited through the dossier of the region that registered it.
            await self._decline(room_id, invitee)
            return
        # Act once, while the invite stands (a retried transaction finds it declined).
        current = await self._api.get_state(room_id, "m.room.member", invitee)
        if (current or {}).get("membership") != "invite":
            return
        reason = content.get("reason")
        body = {
            "team": slug,
            "kind": "avis",
            "reason": reason if isinstance(reason, str) and reason.strip() else DEFAULT_REASON,
        }
        try:
            made = await asyncio.to_thread(
                self._service.solicit, Caller(inviter, False, "matrix"), dossier_id, body
            )
            notice = (
                f"Sollicitation n° {made['id']} envoyée à l'équipe ressource : "
                f"{len(made['notified'])} membre(s) de garde prévenu(s). Personne de "
                "l'équipe n'entre dans la salle avant d'avoir accepté."
            )
        except ApiError as exc:
            notice = f"Sollicitation de l'équipe ressource refusée : {exc.message}"
        await self._decline(room_id, invitee)
        await self._api.send_notice(room_id, f"team-{event.get('event_id', '')}", notice)

    async def _decline(self, room_id: str, invitee: str) -> None:
        localpart = invitee[1:].split(":", 1)[0]
        await self._api.ensure_registered(localpart)
        try:
            await self._api.call("POST", f"/rooms/{quote(room_id)}/leave", {}, as_user=invitee)
        except MatrixError as exc:
            log.warning("team address could not decline the invite: %s", exc.errcode)
