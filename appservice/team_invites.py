"""A routed address — a resource team's (``@equipe.<slug>:<server>``) or a structure's
(``@structure.<slug>:<server>``, « le compte du service ») — invited into a patient room:
the care-circle module let the invite through because it admits nobody (no one logs in as
the address, and it never has a circle entry to join with). Here the invite becomes a
solicitation of its owner by the inviter (a team's members on duty now, a structure's
référents — then its managers, then its account — are told; consent is checked as for any
solicitation), the address declines the invite, and Maillon says in the room what
happened — without the reason, which stays in the dossier (a notice is not end-to-end
encrypted). A structure's address is routed in its own region only.

Across regions, on Matrix alone (README, « Équipes ressources d'une autre région »):
- our patient room, a peer server's team address (the module let it out: an active circle
  member, and the dossier's consent allowing sharing outside the care team): an outgoing
  solicitation is recorded for the dossier;
- our team's address invited from a peer server's room (no dossier here): an incoming
  solicitation (room, requester, reason, kind) for our members on duty; the address keeps
  its invite — it never joins, so it never gets the room's history or keys — until the
  outcome, then declines it, its leave event naming the accepter (``OUTCOME_KEY``);
- that leave event, in our room, from the team's address (so signed by the team's server):
  the accepter — a user of that server only — gets the circle entry (role ERS) and the
  invite; a refusal or an expiry is told to the requester."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from appservice.matrix_api import AppserviceApi, MatrixError
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.service import DossierService
from maillon.shared.circle import NAMESPACE, RoutedAddress, routed_address, server_of, team_address

log = logging.getLogger("maillon.appservice.teams")
DEFAULT_REASON = "Sollicitation depuis la salle du patient (motif à préciser)"
# In the team address's leave event: {"id", "status", "accepted_by"} of the solicitation.
OUTCOME_KEY = f"{NAMESPACE}.solicitation"
# In an invite (optional; Element sends none): the kind, avis or prise_en_charge.
KIND_KEY = f"{NAMESPACE}.kind"
OUTCOME_WORDS = {
    "acceptee": "Sollicitation acceptée : prise en charge par {who}.",
    "refusee": "Sollicitation refusée par l'équipe ressource.",
    "expiree": "Sollicitation expirée : personne de l'équipe ressource n'a répondu à temps.",
}
# How the room's notice names a routed address's owner and the people told.
OWNERS = {
    "team": ("l'équipe ressource", "membre(s) de garde", "l'équipe"),
    "structure": ("la structure", "référent(s) ou manager(s)", "la structure"),
}


class TeamInvites:
    def __init__(
        self,
        api: AppserviceApi,
        service: DossierService,
        server_name: str,
        peer_servers: tuple[str, ...] = (),
    ) -> None:
        self._api = api
        self._service = service
        self._server_name = server_name
        self._peers = peer_servers

    @staticmethod
    def _routed(event: dict[str, Any]) -> RoutedAddress | None:
        """The routed address whose membership ``event`` is, if it is one."""
        invitee = event.get("state_key")
        if event.get("type") != "m.room.member" or not isinstance(invitee, str):
            return None
        return routed_address(invitee)

    def wants(self, event: dict[str, Any]) -> bool:
        """What ``handle`` acts on: the membership of a routed address."""
        return self._routed(event) is not None

    async def handle(self, event: dict[str, Any]) -> None:
        routed = self._routed(event)
        if routed is None:
            return
        invitee: str = event["state_key"]
        content = event.get("content") or {}
        membership = content.get("membership")
        local = server_of(invitee) == self._server_name
        if membership == "invite" and local:
            await self._local_address_invited(event, invitee, routed, content)
        elif routed.kind != "team":
            return  # a peer's structure address: not routed (the module refuses it)
        elif membership == "invite" and server_of(invitee) in self._peers:
            await self._remote_address_invited(event, invitee, content)
        elif (
            membership == "leave"
            and not local
            and event.get("sender") == invitee
            and server_of(invitee) in self._peers
        ):
            await self._remote_outcome(event, invitee, content)

    @staticmethod
    def _reason_and_kind(content: dict[str, Any]) -> tuple[str, str]:
        reason, kind = content.get("reason"), content.get(KIND_KEY)
        return (
            reason if isinstance(reason, str) and reason.strip() else DEFAULT_REASON,
            kind if isinstance(kind, str) else "avis",
        )

    async def _local_address_invited(
        self, event: dict[str, Any], invitee: str, routed: RoutedAddress, content: dict[str, Any]
    ) -> None:
        slug = routed.slug
        room_id, inviter = event["room_id"], event["sender"]
        reason, kind = self._reason_and_kind(content)
        dossier_id = await asyncio.to_thread(self._service.dossier_id_for_room, room_id)
        if dossier_id is None:
            if server_of(inviter) in self._peers and routed.kind == "team":
                await self._incoming(room_id, invitee, slug, inviter, reason, kind)
            else:
                # Not one of our dossiers' rooms, nor a peer region's: declined.
                await self._decline(room_id, invitee)
            return
        # Act once, while the invite stands (a retried transaction finds it declined).
        current = await self._api.get_state(room_id, "m.room.member", invitee)
        if (current or {}).get("membership") != "invite":
            return
        body = {routed.kind: slug, "kind": kind, "reason": reason}
        owner, told, of = OWNERS[routed.kind]
        try:
            made = await asyncio.to_thread(
                self._service.solicit, Caller(inviter, False, "matrix"), dossier_id, body
            )
            notice = (
                f"Sollicitation n° {made['id']} envoyée à {owner} : "
                f"{len(made['notified'])} {told} prévenu(s). Personne de "
                f"{of} n'entre dans la salle avant d'avoir accepté."
            )
        except ApiError as exc:
            notice = f"Sollicitation de {owner} refusée : {exc.message}"
        await self._decline(room_id, invitee)
        await self._api.send_notice(room_id, f"team-{event.get('event_id', '')}", notice)

    async def _incoming(
        self, room_id: str, invitee: str, slug: str, inviter: str, reason: str, kind: str
    ) -> None:
        """A peer region's room: our on-duty members are told; the address keeps the
        invite (never joins) until the outcome is known (``relay_outcomes``)."""
        try:
            await asyncio.to_thread(
                self._service.receive_incoming, slug, room_id, inviter, reason, kind
            )
        except ApiError as exc:  # an unknown team: nobody to tell
            log.warning("incoming solicitation refused: %s", exc.errcode)
            await self._decline(room_id, invitee, {"reason": exc.message})

    async def _remote_address_invited(
        self, event: dict[str, Any], invitee: str, content: dict[str, Any]
    ) -> None:
        room_id, inviter = event["room_id"], event["sender"]
        dossier_id = await asyncio.to_thread(self._service.dossier_id_for_room, room_id)
        if dossier_id is None:
            return
        current = await self._api.get_state(room_id, "m.room.member", invitee)
        if (current or {}).get("membership") != "invite":
            return
        reason, kind = self._reason_and_kind(content)
        try:
            made = await asyncio.to_thread(
                self._service.record_outgoing,
                Caller(inviter, False, "matrix"),
                dossier_id,
                room_id,
                invitee,
                reason,
                kind,
            )
            notice = (
                f"Sollicitation n° {made['id']} envoyée à l'équipe ressource de "
                f"{server_of(invitee)} : ses membres de garde sont prévenus par leur "
                "serveur. Personne de l'équipe n'entre dans la salle avant d'avoir accepté."
            )
        except ApiError as exc:
            notice = f"Sollicitation de l'équipe ressource refusée : {exc.message}"
            try:
                await self._api.kick(room_id, invitee, notice)
            except MatrixError as kick_error:
                log.warning("remote team invite not withdrawn: %s", kick_error.errcode)
        await self._api.send_notice(room_id, f"team-{event.get('event_id', '')}", notice)

    async def _remote_outcome(
        self, event: dict[str, Any], invitee: str, content: dict[str, Any]
    ) -> None:
        outcome = content.get(OUTCOME_KEY)
        if not isinstance(outcome, dict):
            return
        status, accepter = outcome.get("status"), outcome.get("accepted_by")
        # The room and the requester hear of it from the bot (the step's notice).
        await asyncio.to_thread(
            self._service.remote_outcome,
            event["room_id"],
            invitee,
            str(status),
            accepter if isinstance(accepter, str) else None,
        )

    async def relay_outcomes(self) -> None:
        """Incoming solicitations with an outcome: the team's address declines the invite,
        naming the accepter (the requester's server verifies it comes from us)."""
        for s in await asyncio.to_thread(self._service.incoming_outcomes):
            address = team_address(str(s["team"]), self._server_name)
            who = s["accepter_name"] or s["accepted_by"]
            content = {
                "reason": OUTCOME_WORDS[s["status"]].format(who=who),
                OUTCOME_KEY: {
                    "id": s["id"],
                    "status": s["status"],
                    "accepted_by": s["accepted_by"],
                },
            }
            try:
                await self._decline(str(s["room_id"]), address, content)
            except MatrixError as exc:
                log.warning("solicitation outcome not told: %s", exc.errcode)
                if exc.status != 403:
                    continue  # the next round tries again
            await asyncio.to_thread(self._service.mark_relayed, s["id"])

    async def _decline(
        self, room_id: str, invitee: str, content: dict[str, Any] | None = None
    ) -> None:
        localpart = invitee[1:].split(":", 1)[0]
        await self._api.ensure_registered(localpart)
        try:
            if content is None:
                await self._api.call("POST", f"/rooms/{quote(room_id)}/leave", {}, as_user=invitee)
            else:
                path = f"/rooms/{quote(room_id)}/state/m.room.member/{quote(invitee, safe='')}"
                await self._api.call(
                    "PUT", path, {"membership": "leave", **content}, as_user=invitee
                )
        except MatrixError as exc:
            log.warning("team address could not decline the invite: %s", exc.errcode)
            if content is not None:
                raise
