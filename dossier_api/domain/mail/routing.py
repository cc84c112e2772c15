"""Which dossier a mail is for: its address (``<mail_localpart>@<domain>``) or, for the
relay's general address and the polled mailbox, the INS named in its IHE_XDM metadata."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, LargeBinary, select, type_coerce
from sqlalchemy.orm import Session

from dossier_api.domain.models import Dossier
from maillon.shared.crypto import DecryptionError, KeyRing

IDENTITY_CONTEXT = b"maillon.dossier"


@dataclass(frozen=True)
class Target:
    dossier_id: str
    room_id: str


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local.lower(), domain.lower()


def domain_allowed(address: str, allowed: tuple[str, ...]) -> bool:
    _, domain = split_address(address)
    if not domain:
        return False
    for entry in allowed:
        entry = entry.lower().lstrip("*.").strip()
        if domain == entry or domain.endswith("." + entry):
            return True
    return False


class Router:
    def __init__(self, engine: Engine, keys: KeyRing, domain: str, relay_localpart: str) -> None:
        self._engine = engine
        self._keys = keys
        self.domain = domain.lower()
        self.relay_localpart = relay_localpart.lower()

    def is_local(self, address: str) -> bool:
        return split_address(address)[1] == self.domain

    def is_relay_address(self, address: str) -> bool:
        local, domain = split_address(address)
        return domain == self.domain and local == self.relay_localpart

    def by_address(self, address: str) -> Target | None:
        """The open dossier with a room whose address this is."""
        local, domain = split_address(address)
        if domain != self.domain or not local:
            return None
        with Session(self._engine) as session:
            row = session.execute(
                select(Dossier.id, Dossier.room_id, Dossier.status).where(
                    Dossier.mail_localpart == local
                )
            ).first()
        if row is None or row.room_id is None or row.status != "open":
            return None
        return Target(row.id, row.room_id)

    def by_ins(self, matricules: set[str]) -> Target | None:
        """The one open dossier with a qualified identity (QUAL: the only status that may
        be referenced by INS) whose matricule is named; None if none or several."""
        if not matricules:
            return None
        found: dict[str, Target] = {}
        with Session(self._engine) as session:
            rows = session.execute(
                select(
                    Dossier.id, Dossier.room_id, type_coerce(Dossier.identity, LargeBinary)
                ).where(
                    Dossier.identity_status == "QUAL",
                    Dossier.status == "open",
                    Dossier.room_id.is_not(None),
                )
            ).all()
        for dossier_id, room_id, sealed in rows:
            try:
                identity = self._keys.open_json(bytes(sealed), IDENTITY_CONTEXT)
            except DecryptionError:
                continue
            if (
                room_id
                and isinstance(identity, dict)
                and identity.get("ins_matricule") in matricules
            ):
                found[dossier_id] = Target(dossier_id, room_id)
        return next(iter(found.values())) if len(found) == 1 else None

    def address_for_room(self, room_id: str) -> str | None:
        """The address of the dossier whose room this is (outgoing mails come from it)."""
        with Session(self._engine) as session:
            local = session.scalar(select(Dossier.mail_localpart).where(Dossier.room_id == room_id))
        return f"{local}@{self.domain}" if local else None
