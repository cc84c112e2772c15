"""Outbound mail from a dossier's room: the command that asks for it, the durable outbox
it is queued in (any component may queue; only the relay sends), and the marker that
tells our own mails apart so they are never imported back."""

from __future__ import annotations

import hashlib
import re
import secrets

from dossier_api.domain.mail.spool import Spool
from maillon.shared.settings import Deployment

RELAY_HEADER = "X-Maillon-Relay"
ADDRESS_RE = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def relay_marker(deployment: Deployment) -> str:
    """Marks the mails we send (never re-imported); not guessable from the outside."""
    seed = f"maillon-relay:{deployment.secrets.as_token}".encode()
    return hashlib.sha256(seed).hexdigest()[:24]


class MailCommandError(ValueError):
    """``!mail`` used wrongly; the message (French) says how to use it."""


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
) -> int | None:
    """Put a mail in the durable outbox; None if ``source_event_id`` was queued already.
    Blocking (database): call it in a thread from async code."""
    mail = {
        "from": from_address,
        "from_name": from_name,
        "to": to,
        "subject": subject,
        "text": text,
        "message_id": new_message_id(domain),
        "in_reply_to": in_reply_to,
        "references": references or [],
        "relay_marker": relay_marker,
        "auto_submitted": "auto-replied" if automatic else "no",
    }
    return spool.enqueue(room_id, source_event_id, thread_root_event_id, mail)
