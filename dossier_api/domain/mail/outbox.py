"""Outbound mail from a dossier's room: the command that asks for it, the durable outbox
it is queued in (any component may queue; only the relay sends), and the marker that
tells our own mails apart so they are never imported back."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from dossier_api.domain.mail.routing import domain_allowed
from dossier_api.domain.mail.spool import Spool
from dossier_api.domain.models import Professional
from maillon.shared.settings import Deployment

RELAY_HEADER = "X-Maillon-Relay"
ADDRESS_RE = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def relay_marker(deployment: Deployment) -> str:
    """Marks the mails we send (never re-imported); not guessable from the outside."""
    seed = f"maillon-relay:{deployment.secrets.as_token}".encode()
    return hashlib.sha256(seed).hexdigest()[:24]


class MailCommandError(ValueError):
    """``!mail`` used wrongly; the message (French) says how to use it."""


class RecipientRefused(MailCommandError):
    """A recipient outside the MSSanté trust space: nothing is queued or sent."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        super().__init__(
            "Envoi refusé : "
            + ", ".join(addresses)
            + " n'appartient pas à l'espace de confiance MSSanté (domaines de messagerie de "
            "santé configurés ou adresse MSSanté de l'annuaire) ; aucun courriel n'est parti."
        )


class TrustSpace:
    """The addresses Maillon may mail: those of the configured MSSanté domains (a domain
    and its subdomains) and the MSSanté addresses of the directory (annuaire). The one
    rule every outgoing mail obeys, whatever the headers of the mail it answers say."""

    def __init__(self, engine: Engine, allowed_domains: tuple[str, ...]) -> None:
        self._engine = engine
        self.allowed_domains = allowed_domains

    def allows(self, address: str) -> bool:
        if not ADDRESS_RE.match(address):
            return False
        if domain_allowed(address, self.allowed_domains):
            return True
        with Session(self._engine) as session:
            found = session.scalar(
                select(Professional.user_id)
                .where(func.lower(Professional.mssante) == address.strip().lower())
                .limit(1)
            )
        return found is not None

    def refused(self, addresses: list[str]) -> list[str]:
        return [a for a in addresses if not self.allows(a)]

    def check(self, addresses: list[str]) -> None:
        """Raise :class:`RecipientRefused` if any address is outside the trust space."""
        refused = self.refused(addresses)
        if refused or not addresses:
            raise RecipientRefused(refused or ["(aucun destinataire)"])


def clean_display_name(name: str) -> str:
    """A display name safe in a mail header: no control character (CR, LF, NUL…), no
    quote or angle bracket that would change the address, at most 120 characters."""
    kept = "".join(
        " " if unicodedata.category(ch).startswith(("C", "Z")) else ch
        for ch in name
        if ch not in '"<>\\'
    )
    return " ".join(kept.split())[:120]


def new_message_id(domain: str) -> str:
    return f"<maillon.{secrets.token_hex(12)}@{domain}>"


def parse_mail_command(text: str) -> tuple[str, str, str]:
    """``!mail adresse sujet`` on the first line, the mail's text on the next lines."""
    first, _, rest = text.strip().partition("\n")
    words = first.split(maxsplit=2)
    if len(words) < 3 or words[0].lower() != "!mail":
        raise MailCommandError(
            "Usage : !mail adresse@exemple.mssante.fr Objet du courriel, "
            "puis le texte du courriel sur les lignes suivantes."
        )
    address, subject = words[1].strip("<>"), words[2].strip()
    if not ADDRESS_RE.match(address):
        raise MailCommandError(f"Adresse de messagerie invalide : {address}")
    return address, subject, rest.strip()


def queue_mail(
    spool: Spool,
    *,
    trust: TrustSpace,
    room_id: str,
    source_event_id: str,
    from_address: str,
    to: list[str],
    subject: str,
    text: str,
    relay_marker: str,
    domain: str,
    thread_root_event_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    from_name: str = "",
    automatic: bool = False,
    session: Session | None = None,
    generated: bool = False,
) -> int | None:
    """Put a mail in the durable outbox; None if ``source_event_id`` was queued already.
    Raise :class:`RecipientRefused` for a recipient outside the MSSanté trust space.
    Blocking (database): call it in a thread from async code."""
    trust.check(to)
    mail = {
        "from": from_address,
        "from_name": clean_display_name(from_name),
        "to": to,
        "subject": subject,
        "text": text,
        "message_id": new_message_id(domain),
        "in_reply_to": in_reply_to,
        "references": references or [],
        "relay_marker": relay_marker,
        # RFC 3834: a reply made by a program, a mail a program made on its own, a person's.
        "auto_submitted": "auto-replied"
        if automatic
        else ("auto-generated" if generated else "no"),
    }
    return spool.enqueue(room_id, source_event_id, thread_root_event_id, mail, session)
