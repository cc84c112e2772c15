"""The bot's command dispatcher in-process against a real Maillon store (no homeserver):
the same ``Services`` the running bot uses, so rights and audit are the API's."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from coordination_bot.core import Reply
from coordination_bot.dispatch import dispatch
from coordination_bot.services import Services
from dossier_api.domain.directory import upsert_professional
from dossier_api.domain.models import DossierRoom
from dossier_api.domain.rooms import RoomLinks
from maillon.shared.circle import DirectoryEntry
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey, Deployment, load
from maillon.shared.store import make_engine
from maillon.wiring.init_deployment import InitOptions, init_deployment


def deployment(directory: Path, server_name: str = "localhost") -> Deployment:
    """A deployment's configuration (no process runs): what the dossier service reads its
    checks from (mail domain, our server and its peers)."""
    init_deployment(InitOptions(directory=directory, server_name=server_name, testing=True))
    return load(directory)


def professionals(engine: Engine, *user_ids: str) -> None:
    """Inscribe accounts in the store's directory (as ``maillon user add --rpps`` does)."""
    for user_id in user_ids:
        rpps = "".join(secrets.choice("0123456789") for _ in range(11))
        upsert_professional(engine, DirectoryEntry(user_id, "infirmier", rpps=rpps))


def store(database_url: str) -> Engine:
    key = DataKey("test", base64.b64encode(secrets.token_bytes(32)).decode())
    install_key_ring(KeyRing([key], BlindIndex(secrets.token_bytes(32))))
    return make_engine(database_url)


@dataclass
class InProcessBot:
    services: Services

    async def say(
        self, sender: str, room_id: str, text: str, now: dt.datetime | None = None
    ) -> Reply:
        event_id = "$" + secrets.token_urlsafe(12)
        reply = await dispatch(self.services, sender, room_id, event_id, text, now=now)
        assert reply is not None, f"{text!r} got no answer"
        return reply

    def link_room(self, dossier_id: str, room_id: str) -> None:
        """What the appservice does once it has created the dossier's main room."""
        with Session(self.services.engine) as session:
            key = session.scalar(
                select(DossierRoom.id).where(
                    DossierRoom.dossier_id == dossier_id, DossierRoom.kind == "main"
                )
            )
        assert key is not None
        RoomLinks(self.services.engine).room_created(key, room_id)
