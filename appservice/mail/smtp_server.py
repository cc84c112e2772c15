"""Inbound SMTP (aiosmtpd) for the dossiers' addresses, in the appservice's event loop.

A mail gets ``250`` only once it is committed to the spool; a refusal is a 5xx with a
French/English reason and nothing stored.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from appservice.mail.intake import SENDER_REFUSED, Intake, Refusal
from maillon.shared.settings import MailInbound

log = logging.getLogger(__name__)
# aiosmtpd's own logger names peers and addresses: keep it quiet (no health data in logs).
logging.getLogger("mail.log").setLevel(logging.WARNING)


class Handler:
    def __init__(self, intake: Intake, wake: asyncio.Event) -> None:
        self.intake = intake
        self.wake = wake
        self.accepted = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # The null reverse-path (delivery reports) stays "<>" in the envelope: aiosmtpd
        # takes an empty mail_from for "no MAIL command yet".
        if address not in ("", "<>") and not self.intake.sender_allowed(address):
            return SENDER_REFUSED
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        problem = await asyncio.to_thread(
            self.intake.check_recipient, address, envelope.mail_from == "<>"
        )
        if problem is not None:
            return problem
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        try:
            result = await asyncio.to_thread(
                self.intake.accept, raw, sender, list(envelope.rcpt_tos), "smtp"
            )
        except Refusal as refusal:
            log.info("mail refused: %s", refusal.reply[:3])
            return refusal.reply
        except Exception as exc:
            log.error("mail could not be stored: %s", type(exc).__name__)
            return "451 4.3.0 Erreur temporaire du relais, réessayez / temporary failure"
        if result.spool_ids:
            self.accepted += 1
            self.wake.set()
        return result.reply


def server_tls(config: MailInbound) -> ssl.SSLContext | None:
    if config.tls == "none":
        return None
    if not config.cert_file:
        raise ValueError("mail.inbound.cert_file est requis avec tls: starttls ou tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file)
    return context


async def start_smtp(
    config: MailInbound, handler: Handler, hostname: str, max_bytes: int
) -> asyncio.Server:
    context = server_tls(config)

    def factory() -> Any:
        return SMTP(
            handler,
            data_size_limit=max_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Maillon MSSanté relay",
            tls_context=context if config.tls == "starttls" else None,
            require_starttls=config.tls == "starttls",
        )

    loop = asyncio.get_running_loop()
    return await loop.create_server(
        factory,
        host=config.host,
        port=config.port,
        ssl=context if config.tls == "tls" else None,
    )
