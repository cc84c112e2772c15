"""The bot's solicitation notices are told once each, across a restart: who has been told
is kept by the dossier service after each message (``note_told``), not in the bot's
memory, so a bot restarted — or its standby taking over — tells nobody twice. In process:
the notices of one step as the service gives them, a client whose chats are known."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from nio import AsyncClient

from coordination_bot.services import Services
from coordination_bot.solicitations import CHAT_NAME, SolicitationChats
from maillon.shared.clock import utcnow

BOT, IDE, KINE = "@maillon:sante.test", "@ide:sante.test", "@kine:sante.test"
PATIENT_ROOM = "!patient:sante.test"


@dataclass
class Room:
    room_id: str
    users: set[str]
    name: str = CHAT_NAME
    invited_users: set[str] = field(default_factory=set)


@dataclass
class Client:
    user_id: str = BOT
    rooms: dict[str, Room] = field(default_factory=dict)


class Notices:
    """The service's side: one step, what was told of it kept as the store keeps it."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.delivered = False

    def pending_notices(self) -> list[dict[str, Any]]:
        if self.delivered:
            return []
        step = {
            "event": 7,
            "at": utcnow() - dt.timedelta(seconds=5),
            "solicitation": 3,
            "status": "envoyee",
            "label": "envoyée",
            "people": [IDE, KINE],
            "told": list(self.told),
            "team_name": "Soins palliatifs",
            "structure": False,
            "kind": "avis",
            "reason": "douleurs",
            "pathway": "Soins palliatifs",
            "requester": {"user_id": "@coord:sante.test", "display_name": "Claire Martin"},
            "actor": None,
            "room_id": PATIENT_ROOM,
            "dossier_id": "d1",
            "report": None,
        }
        return [step]

    def note_told(self, event: int, recipient: str) -> None:
        assert event == 7
        self.told.append(recipient)

    def mark_notified(self, event: int, dossier_id: str, people: list[str]) -> None:
        self.delivered = True


@dataclass
class FakeServices:
    dossiers: Notices


async def test_a_restarted_bot_tells_only_those_not_told_yet() -> None:
    notices = Notices()
    kine_chat = Room("!kine", {BOT, KINE}, invited_users={KINE})
    client = Client(rooms={"!ide": Room("!ide", {BOT, IDE}), "!kine": kine_chat})
    sent: list[tuple[str, str]] = []

    async def send(room_id: str, event_type: str, content: dict[str, Any]) -> str | None:
        sent.append((room_id, content["body"]))
        return f"$e{len(sent)}"

    def bot() -> SolicitationChats:
        return SolicitationChats(
            cast(AsyncClient, client), cast(Services, FakeServices(notices)), send
        )

    # The kiné is invited to their chat, not in it yet: the room and the nurse are told, not them.
    await bot().deliver()
    assert [r for r, _ in sent] == [PATIENT_ROOM, "!ide"]
    assert notices.told == ["", IDE] and not notices.delivered

    # The bot restarts (a new instance, nothing in memory); the kiné has joined.
    kine_chat.invited_users.clear()
    await bot().deliver()
    assert [r for r, _ in sent] == [PATIENT_ROOM, "!ide", "!kine"]
    assert "Sollicitation n° 3" in sent[2][1] and "!sollicitation accepter 3" in sent[2][1]
    assert notices.told == ["", IDE, KINE] and notices.delivered
    await bot().deliver()
    assert len(sent) == 3
