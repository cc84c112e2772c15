"""Which dossier a mail is for: its address (``<mail_localpart>@<domain>``) or, for the
relay's general address and the polled mailbox, the INS named in its IHE_XDM metadata.
The queries belong to the dossier domain (``dossier_api.domain.lookup``): the relay opens no
identity to route a mail."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dossier_api.domain.lookup import (
    mail_localpart_of_room,
    open_dossier_by_ins,
    open_dossier_by_mail_localpart,
    open_dossiers_carrying_ins,
)
from maillon.shared.crypto import KeyRing
from maillon.shared.store import reading


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
    """Lookups take an optional ``session``: the intake reads and stores a mail in one
    transaction (one connection, one round trip each), other callers need none."""

    def __init__(self, engine: Engine, keys: KeyRing, domain: str, relay_localpart: str) -> None:
        self._engine = engine
        self._keys = keys  # for the blind index of the INS only
        self.domain = domain.lower()
        self.relay_localpart = relay_localpart.lower()

    def is_local(self, address: str) -> bool:
        return split_address(address)[1] == self.domain

    def is_relay_address(self, address: str) -> bool:
        local, domain = split_address(address)
        return domain == self.domain and local == self.relay_localpart

    def by_address(self, address: str, session: Session | None = None) -> Target | None:
        """The open dossier with a room whose address this is."""
        local, domain = split_address(address)
        if domain != self.domain or not local:
            return None
        with reading(self._engine, session) as read:
            found = open_dossier_by_mail_localpart(read, local)
        return None if found is None else Target(*found)

    def by_ins(self, matricules: set[str], session: Session | None = None) -> Target | None:
        """The one open dossier with a qualified identity whose matricule is named."""
        if not matricules:
            return None
        with reading(self._engine, session) as read:
            found = open_dossier_by_ins(read, self._keys, matricules)
        return None if found is None else Target(*found)

    def ins_duplicated(self, matricules: set[str], session: Session | None = None) -> bool:
        """Whether several open dossiers carry a named matricule (a possible duplicate that
        identity vigilance has to resolve: no mail goes to one of them by INS)."""
        if not matricules:
            return False
        with reading(self._engine, session) as read:
            return open_dossiers_carrying_ins(read, self._keys, matricules) > 1

    def address_for_room(self, room_id: str) -> str | None:
        """The address of the dossier whose room this is (outgoing mails come from it)."""
        with Session(self._engine) as session:
            local = mail_localpart_of_room(session, room_id)
        return f"{local}@{self.domain}" if local else None
