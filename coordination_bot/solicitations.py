"""The bot tells resource-team solicitations to the people concerned, in each one's
"Sollicitations" direct chat with it (end-to-end encrypted): the members on duty get the
reason, the pathway and the requester (name, profession) — no other health data — with
how to accept or decline; the requester is told who took it, or that it expired; the
patient room hears of each step. It reads the steps not told yet (``pending_notices``) and
notes each recipient told at once (``note_told``: a restarted bot tells nobody twice), then
marks the step told once everyone got it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nio import AsyncClient, RoomCreateResponse, RoomPreset

from coordination_bot.core import esc
from coordination_bot.services import Services
from maillon.shared.circle import MEGOLM
from maillon.shared.clock import every, utcnow

log = logging.getLogger(__name__)
CHAT_NAME = "Sollicitations"
INTERVAL = 0.25  # a query on an index of the steps not told yet
PATIENCE = dt.timedelta(minutes=30)
Send = Callable[[str, str, dict[str, Any]], Awaitable[str | None]]


def _who(person: dict[str, Any] | None) -> str:
    if not person:
        return "Maillon"
    name = person.get("display_name") or "un professionnel"
    return f"{name} ({person['profession']})" if person.get("profession") else str(name)


def _owner(n: dict[str, Any], team: str = "équipe") -> str:
    """Whom the solicitation is addressed to, in words: a team, or a structure (its
    address invited)."""
    return "structure" if n.get("structure") else team


def notice_text(n: dict[str, Any], person: str) -> str | None:
    """What ``person`` is told of a step (None: nothing for them)."""
    number = f"Sollicitation n° {n['solicitation']}"
    team = f"{_owner(n)} « {n['team_name']} »"
    if n["status"] in ("envoyee", "escalade") and person != n["requester"]["user_id"]:
        return (
            f"{number} — {team}, {n['kind']}\n"
            f"Motif : {n['reason']}\n"
            f"Parcours : {n['pathway']}\n"
            f"Demandeur : {_who(n['requester'])}\n"
            f"Répondez ici : !sollicitation accepter {n['solicitation']} ou "
            f"!sollicitation refuser {n['solicitation']}"
        )
    if n["status"] == "acceptee":
        return f"{number} ({team}) : prise en charge par {_who(n['actor'])}."
    if n["status"] == "vue":
        return f"{number} ({team}) : vue par {_who(n['actor'])}."
    if n["status"] == "repondue":
        return f"{number} ({team}) : réponse de {_who(n['actor'])}, dans le dossier."
    if n["status"] in ("expiree", "refusee"):
        why = (
            "personne n'a accepté dans les délais"
            if n["status"] == "expiree"
            else ("tous les membres prévenus ont décliné")
        )
        return f"{number} ({team}) {n['label']} : {why}."
    if n["status"] == "close":
        return f"{number} ({team}) : close."
    return None


def room_text(n: dict[str, Any]) -> str | None:
    """What the patient room hears of a step (the reason stays in the dossier; an avis's
    report is posted: the room is end-to-end encrypted and holds the circle only)."""
    if n["status"] in ("declinee", "vue"):
        return None
    report = n.get("report")
    if n["status"] == "repondue" and report:
        return (
            f"Compte rendu d'avis — {_owner(n)} « {n['team_name']} », sollicitation "
            f"n° {n['solicitation']}, par {_who(n['actor'])}\n"
            f"Question : {report['question']}\n"
            f"Éléments pris en compte : {report['elements']}\n"
            f"Avis : {report['advice']}"
        )
    by = f" par {_who(n['actor'])}" if n["status"] in ("acceptee", "repondue") else ""
    number = f"sollicitation n° {n['solicitation']}"
    owner = _owner(n, "équipe ressource")
    return f"{owner[:1].upper()}{owner[1:]} « {n['team_name']} » : {number} {n['label']}{by}."


class SolicitationChats:
    def __init__(self, client: AsyncClient, services: Services, send: Send) -> None:
        self._client = client
        self._services = services
        self._send = send
        self._chats: dict[str, str] = {}

    async def run_forever(self) -> None:
        await every(INTERVAL, self.deliver, "solicitation notices")

    async def deliver(self) -> None:
        now = utcnow()
        for n in await asyncio.to_thread(self._services.dossiers.pending_notices):
            told = set(n["told"])
            said = room_text(n)
            if said and n["room_id"] and "" not in told:
                if await self._say(n["room_id"], said, notice=True):
                    await self._note(n["event"], "", told)
            done = "" in told or not (said and n["room_id"])
            for person in n["people"]:
                if person in told:
                    continue
                text = notice_text(n, person)
                if text is not None:
                    chat = await self._chat(person)
                    if chat is None or not await self._say(chat, text):
                        done = False
                        continue
                await self._note(n["event"], person, told)
            # Someone who never opens their chat still has the solicitation in the API and
            # in !sollicitation: their notice is given up after a while.
            if done or now - n["at"] > PATIENCE:
                await asyncio.to_thread(
                    self._services.dossiers.mark_notified, n["event"], n["dossier_id"], n["people"]
                )

    async def _note(self, event: int, recipient: str, told: set[str]) -> None:
        await asyncio.to_thread(self._services.dossiers.note_told, event, recipient)
        told.add(recipient)

    async def _say(self, room_id: str, text: str, notice: bool = False) -> bool:
        lines = text.split("\n")
        html = "<br>".join(esc(line) for line in lines)
        content = {
            "msgtype": "m.notice" if notice else "m.text",
            "body": text,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        }
        return await self._send(room_id, "m.room.message", content) is not None

    def _known_chat(self, person: str) -> str | None:
        for room in self._client.rooms.values():
            if room.name == CHAT_NAME and set(room.users) == {self._client.user_id, person}:
                return str(room.room_id)
        return None

    async def _chat(self, person: str) -> str | None:
        """The person's "Sollicitations" chat with the bot (created, encrypted, when there
        is none yet); None until the homeserver has shown it to the bot."""
        chat = self._chats.get(person) or self._known_chat(person)
        if chat is None:
            created = await self._client.room_create(
                name=CHAT_NAME,
                topic="Sollicitations des équipes ressources (Maillon)",
                invite=[person],
                is_direct=True,
                preset=RoomPreset.trusted_private_chat,
                initial_state=[
                    {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
                ],
            )
            if not isinstance(created, RoomCreateResponse):
                log.warning("solicitations chat not created: %s", getattr(created, "message", ""))
                return None
            chat = str(created.room_id)
        self._chats[person] = chat
        room = self._client.rooms.get(chat)
        if room is None or person not in room.users or person in room.invited_users:
            return None  # told once they joined (their devices then get the room key)
        return chat
