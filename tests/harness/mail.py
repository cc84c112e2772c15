"""Mail test helpers: a real Dovecot (IMAP) on a free port with a throw-away configuration,
a real aiosmtpd sink standing for the MSSanté operator's server, mail builders, and
readers of a room's messages (decrypted) through matrix-nio."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import io
import os
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from nio import MessageDirection, RoomMessagesError

from tests.harness.matrix import E2EClient
from tests.harness.ports import free_port


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    """A real Dovecot IMAP server run by the test (foreground, own config, free port)."""

    root: Path
    user: str = "structure@etablissement.mssante.fr"
    password: str = "mot-de-passe-imap-de-test"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        self.root.chmod(0o755)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "mail", "dovecot", "dovecot")
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        conf = self.root / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(root=self.root, port=self.port))
        self.proc = subprocess.Popen([binary, "-F", "-c", str(conf)])
        _wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(self.user, self.password)
        conn.select("INBOX")
        try:
            yield conn
        finally:
            conn.logout()

    def append(self, raw: bytes) -> None:
        with self.session() as conn:
            status, _ = conn.append("INBOX", None, None, raw)
            assert status == "OK"

    def flags(self) -> list[str]:
        """The flags of every message of the mailbox, in order."""
        with self.session() as conn:
            _, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        return [d.decode() for d in data if isinstance(d, bytes)]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class SinkHandler:
    """The MSSanté operator's server: records mails; ``refuse*`` recipients get 550,
    ``flaky*`` recipients get 451 on their first attempt, ``down*`` always 451."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.attempts: dict[str, int] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        local = address.split("@")[0]
        self.attempts[address] = self.attempts.get(address, 0) + 1
        if local.startswith("refuse"):
            return "550 5.1.1 Destinataire inconnu"
        if local.startswith("down") or (local.startswith("flaky") and self.attempts[address] == 1):
            return "451 4.3.0 Réessayez plus tard"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), data))
        return "250 2.0.0 Reçu"


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


SENDER = "dr.house@chu-exemple.mssante.fr"


def build_mail(
    to: str,
    subject: str,
    text: str,
    *,
    sender: str = SENDER,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """A mail as an MSSanté client sends it; returns (Message-ID, bytes)."""
    msg = EmailMessage()
    msg["From"] = f"Docteur House <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    message_id = make_msgid(domain="chu-exemple.mssante.fr")
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*(references or []), in_reply_to])
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message_id, msg.as_bytes()


def xdm_zip(ins: str, oid: str = "1.2.250.1.213.1.4.8") -> bytes:
    """An IHE_XDM package whose METADATA.XML names the patient by INS."""
    metadata = f"""<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
  xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
 <rim:RegistryObjectList>
  <rim:ExtrinsicObject id="Document01" mimeType="application/pdf">
   <rim:Slot name="sourcePatientId"><rim:ValueList>
    <rim:Value>{ins}^^^&amp;{oid}&amp;ISO^NH</rim:Value>
   </rim:ValueList></rim:Slot>
   <rim:ExternalIdentifier id="ei01" registryObject="Document01"
     identificationScheme="urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
     value="{ins}^^^&amp;{oid}&amp;ISO^NH"/>
  </rim:ExtrinsicObject>
 </rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
"""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", metadata)
        archive.writestr("IHE_XDM/SUBSET01/DOC0001.PDF", b"%PDF-1.4 compte rendu")
        archive.writestr("INDEX.HTM", "<html></html>")
    return buffer.getvalue()


async def room_events(client: E2EClient, room_id: str) -> list[Any]:
    """Every event of the room, oldest first, decrypted where the client has the keys."""
    await client.sync()
    start = client.client.next_batch
    events: list[Any] = []
    for _ in range(200):
        response = await client.client.room_messages(
            room_id, start=start, limit=500, direction=MessageDirection.back
        )
        if isinstance(response, RoomMessagesError):
            raise AssertionError(f"cannot read the room: {response.message}")
        events.extend(response.chunk)
        if not response.chunk or not response.end or response.end == start:
            break
        start = response.end
    events.reverse()
    return events


def mail_of(event: Any) -> dict[str, Any] | None:
    content = getattr(event, "source", {}).get("content", {})
    mail = content.get("fr.maillon.mail")
    return mail if isinstance(mail, dict) else None


def thread_root(event: Any) -> str | None:
    relation = getattr(event, "source", {}).get("content", {}).get("m.relates_to") or {}
    return relation.get("event_id") if relation.get("rel_type") == "m.thread" else None


async def wait_mails(
    client: E2EClient, room_id: str, message_ids: set[str], timeout: float = 120.0
) -> list[Any]:
    """Wait until every Message-ID is posted in the room; return the room's events."""
    deadline = time.monotonic() + timeout
    while True:
        events = await room_events(client, room_id)
        seen = {m["message_id"] for m in (mail_of(e) for e in events) if m}
        if message_ids <= seen:
            return events
        if time.monotonic() > deadline:
            missing = len(message_ids - seen)
            raise AssertionError(f"{missing} mail(s) never appeared in {room_id}")
        await asyncio.sleep(0.5)


def run_in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def is_root() -> bool:
    return os.geteuid() == 0
