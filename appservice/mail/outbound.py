"""Mails out of Maillon: replies written in a mail thread and the bot's ``!mail``.

:func:`queue_mail` only writes the durable outbox (any component may call it, e.g. a
``!mail`` bot command); the relay's :class:`Sender` sends it with aiosmtplib
(STARTTLS/TLS, client certificate as MSSanté requires), retries temporary failures and
reports a final failure in the room.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiosmtplib

from appservice.mail.loop import work_forever
from dossier_api.domain.mail.outbox import RELAY_HEADER, RecipientRefused, TrustSpace
from dossier_api.domain.mail.spool import OutboxItem, Spool
from maillon.shared.settings import MailOutbound

log = logging.getLogger(__name__)

Report = Callable[[OutboxItem, str], Awaitable[None]]


def compose(mail: dict[str, Any]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = formataddr((mail.get("from_name") or "", mail["from"]))
    msg["To"] = ", ".join(mail["to"])
    msg["Subject"] = mail["subject"]
    msg["Message-ID"] = mail["message_id"]
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    if mail.get("in_reply_to"):
        msg["In-Reply-To"] = mail["in_reply_to"]
    if mail.get("references"):
        msg["References"] = " ".join(mail["references"])
    # RFC 3834: "no" for a person's mail; automatic mails say so, and are never answered.
    msg["Auto-Submitted"] = mail.get("auto_submitted", "no")
    msg[RELAY_HEADER] = mail["relay_marker"]
    msg.set_content(mail["text"] or "")
    # Documents Maillon itself attaches (e.g. a structure's monthly report PDF).
    for attachment in mail.get("attachments") or []:
        maintype, _, subtype = str(attachment["media_type"]).partition("/")
        msg.add_attachment(
            base64.b64decode(attachment["content_b64"]),
            maintype=maintype,
            subtype=subtype,
            filename=attachment["filename"],
        )
    return msg


def tls_context(config: MailOutbound) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.ca_file)
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.client_cert_file:
        context.load_cert_chain(config.client_cert_file, config.client_key_file)
    return context


class TemporaryFailure(Exception):
    pass


class PermanentFailure(Exception):
    pass


async def send_one(config: MailOutbound, password: str | None, msg: EmailMessage) -> None:
    """Send; raise TemporaryFailure (4xx, network) or PermanentFailure (5xx)."""
    context = tls_context(config) if config.tls != "none" else None
    try:
        await aiosmtplib.send(
            msg,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=password if config.username else None,
            use_tls=config.tls == "tls",
            start_tls=config.tls == "starttls",
            tls_context=context,
            timeout=config.timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if all(code >= 500 for code in codes):
            raise PermanentFailure(reason) from exc
        raise TemporaryFailure(reason) from exc
    except aiosmtplib.SMTPResponseException as exc:
        reason = f"{exc.code} {exc.message}"
        if exc.code >= 500:
            raise PermanentFailure(reason) from exc
        raise TemporaryFailure(reason) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise TemporaryFailure(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc


class Sender:
    """Sends the outbox; retries temporary failures; reports final failures in the room."""

    def __init__(
        self,
        spool: Spool,
        config: MailOutbound | None,
        password: str | None,
        report: Report,
        wake: asyncio.Event,
        trust: TrustSpace,
    ) -> None:
        self._spool = spool
        self._trust = trust
        self._config = config
        self._password = password
        self._report = report
        self.wake = wake
        self.sent = 0

    async def run_once(self) -> int:
        items = await asyncio.to_thread(self._spool.outbox_due)
        for item in items:
            await self._send(item)
        for failed in await asyncio.to_thread(self._spool.outbox_unreported):
            if not failed.room_id:  # a mail of no room (a monthly report, an enrolment)
                log.warning("outgoing mail #%s (no room) failed for good", failed.id)
                await asyncio.to_thread(self._spool.outbox_reported, failed.id)
                continue
            try:
                await self._report(failed, failed.mail.get("error", ""))
            except Exception as exc:  # homeserver unavailable: report on a later round
                log.warning("could not report a failed mail yet: %s", type(exc).__name__)
                continue
            await asyncio.to_thread(self._spool.outbox_reported, failed.id)
        return len(items)

    async def _send(self, item: OutboxItem) -> None:
        if self._config is None:
            await asyncio.to_thread(
                self._spool.outbox_retry,
                item.id,
                "aucun serveur d'envoi configuré (mail.outbound)",
                None,
            )
            return
        # The trust space is checked again where mail leaves: a row queued by an older
        # version, or written by hand, never reaches an address outside it.
        refused = await asyncio.to_thread(self._trust.refused, list(item.mail.get("to") or []))
        if refused or not item.mail.get("to"):
            log.warning("outgoing mail #%s set aside: recipient outside the trust space", item.id)
            reason = str(RecipientRefused(refused or ["(aucun destinataire)"]))
            await asyncio.to_thread(self._spool.outbox_retry, item.id, reason, None)
            return
        try:
            msg = compose(item.mail)
        except Exception as exc:  # one bad row is set aside; the others go on
            log.warning("outgoing mail #%s set aside: %s", item.id, type(exc).__name__)
            reason = f"courriel impossible à composer ({type(exc).__name__}) : mis de côté"
            await asyncio.to_thread(self._spool.outbox_retry, item.id, reason, None)
            return
        try:
            await send_one(self._config, self._password, msg)
        except PermanentFailure as exc:
            log.warning("outgoing mail #%s refused permanently", item.id)
            await asyncio.to_thread(self._spool.outbox_retry, item.id, str(exc), None)
            return
        except TemporaryFailure as exc:
            delays = self._config.retry_seconds
            delay = delays[item.attempts] if item.attempts < len(delays) else None
            log.info("outgoing mail #%s: temporary failure (attempt %s)", item.id, item.attempts)
            await asyncio.to_thread(self._spool.outbox_retry, item.id, str(exc), delay)
            return
        self.sent += 1
        meta = {
            "message_id": item.mail["message_id"],
            "references": [*item.mail.get("references", []), item.mail["message_id"]],
            "reply_to": ", ".join(item.mail["to"]),
            "subject": item.mail["subject"],
            "ours": True,
        }
        await asyncio.to_thread(self._spool.outbox_sent, item, meta)

    async def run_forever(self) -> None:
        await work_forever(self.run_once, self.wake, "outbox")
