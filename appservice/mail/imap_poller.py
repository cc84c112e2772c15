"""Polls an MSSanté mailbox over IMAP (imaplib, in a thread); same processing as SMTP.

A message is marked ``$MaillonImported`` (and seen) once stored in the spool, or
``$MaillonRefused`` (left unseen, for a person to look at) when it cannot be taken.
A crash between storing and marking only re-reads it: the spool keeps one copy.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import ssl
from email import message_from_bytes
from email.policy import compat32
from email.utils import getaddresses

from appservice.mail.intake import Intake, Refusal
from maillon.shared.settings import MailImap

log = logging.getLogger(__name__)

IMPORTED = "$MaillonImported"
REFUSED = "$MaillonRefused"
ADDRESS_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
_UID_RE = re.compile(rb"UID (\d+)")


def _recipients(raw: bytes, intake: Intake) -> list[str]:
    """Dossier addresses the mail was sent to; else the relay address (INS routing)."""
    headers = message_from_bytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=compat32)
    values = [str(v) for name in ADDRESS_HEADERS for v in headers.get_all(name, [])]
    found = []
    for _, address in getaddresses(values):
        if address and intake.router.by_address(address) is not None and address not in found:
            found.append(address)
    if found:
        return found
    return [f"{intake.router.relay_localpart}@{intake.router.domain}"]


class ImapPoller:
    def __init__(
        self, config: MailImap, password: str | None, intake: Intake, wake: asyncio.Event
    ) -> None:
        self.config = config
        self.password = password or ""
        self.intake = intake
        self.wake = wake
        self.imported = 0
        self.refused = 0

    def _connect(self) -> imaplib.IMAP4:
        config = self.config
        context = ssl.create_default_context(cafile=config.ca_file)
        if not config.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: imaplib.IMAP4
        if config.tls == "tls":
            conn = imaplib.IMAP4_SSL(config.host, config.port, ssl_context=context, timeout=60)
        else:
            conn = imaplib.IMAP4(config.host, config.port, timeout=60)
            if config.tls == "starttls":
                conn.starttls(ssl_context=context)
        conn.login(config.username, self.password)
        return conn

    def poll_once(self) -> int:
        """Import what is new; return how many mails were stored."""
        stored = 0
        conn = self._connect()
        try:
            status, _ = conn.select(_quote(self.config.mailbox))
            if status != "OK":
                raise imaplib.IMAP4.error("mailbox cannot be selected")
            status, data = conn.uid("SEARCH", "UNKEYWORD", IMPORTED, "UNKEYWORD", REFUSED)
            uids = data[0].split() if status == "OK" and data and data[0] else []
            for uid in uids:
                stored += self._one(conn, uid.decode())
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
        return stored

    def _one(self, conn: imaplib.IMAP4, uid: str) -> int:
        status, data = conn.uid("FETCH", uid, "(RFC822.SIZE)")
        size_match = re.search(rb"RFC822\.SIZE (\d+)", data[0] if data and data[0] else b"")
        if size_match and int(size_match.group(1)) > self.intake.settings.max_message_bytes:
            self._flag(conn, uid, REFUSED)
            self.refused += 1
            return 0
        status, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = next((part[1] for part in data if isinstance(part, tuple) and len(part) == 2), None)
        if status != "OK" or not isinstance(raw, bytes):
            return 0
        try:
            result = self.intake.accept(raw, None, _recipients(raw, self.intake), "imap")
        except Refusal as refusal:
            log.info("mailbox message refused: %s", refusal.reply[:3])
            self._flag(conn, uid, REFUSED)
            self.refused += 1
            return 0
        self._flag(conn, uid, IMPORTED, seen=True)
        if result.spool_ids:
            self.imported += 1
            return 1
        return 0

    @staticmethod
    def _flag(conn: imaplib.IMAP4, uid: str, keyword: str, seen: bool = False) -> None:
        flags = f"({keyword} \\Seen)" if seen else f"({keyword})"
        conn.uid("STORE", uid, "+FLAGS", flags)

    async def run_forever(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self.poll_once):
                    self.wake.set()
            except (imaplib.IMAP4.error, OSError, ssl.SSLError) as exc:
                log.warning("IMAP poll failed: %s", type(exc).__name__)
            except Exception:
                log.exception("IMAP poll error")
            await asyncio.sleep(self.config.poll_seconds)


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
