"""MSSanté / Medimail relay (issue 7) on a real stack: Synapse and Maillon's store on
PostgreSQL, real SMTP exchanges with the relay's aiosmtpd listener, a real aiosmtpd sink
standing for the operator's server, a real Dovecot mailbox, matrix-nio E2EE clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import yaml
from nio.crypto.attachments import decrypt_attachment
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from appservice.mail.models import MailSpool
from dossier_api.models import Dossier
from maillon.store import make_engine
from tests.harness.circle import appservice, coordinated_room
from tests.harness.dossier import IDENTITY, new_dossier
from tests.harness.mail import (
    SENDER,
    Dovecot,
    SinkHandler,
    build_mail,
    mail_of,
    room_events,
    smtp_sink,
    thread_root,
    wait_mails,
    xdm_zip,
)
from tests.harness.matrix import E2EClient
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]
MAX_BYTES = 2_000_000


class Relay:
    """The stack under test with its mail peers."""

    def __init__(self, stack: Stack, dovecot: Dovecot, sink: SinkHandler) -> None:
        self.stack = stack
        self.dovecot = dovecot
        self.sink = sink
        mail = stack.deployment.settings.mail
        self.port = mail.inbound.port
        self.domain = stack.deployment.settings.mail_domain

    def engine(self) -> Any:
        return make_engine(self.stack.deployment.settings.database_url, create_tables=False)

    def spool_count(self) -> int:
        engine = self.engine()
        try:
            with Session(engine) as session:
                return int(session.scalar(select(func.count()).select_from(MailSpool)) or 0)
        finally:
            engine.dispose()

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> tuple[int, str]:
        """One SMTP exchange with the relay: (code, text) of the final reply."""
        try:
            _, message = await aiosmtplib.send(
                raw, sender=sender, recipients=recipients, hostname="127.0.0.1", port=self.port
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return refused.code, refused.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        return int(message.split()[0]) if message[:3].isdigit() else 250, message


def _edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    # Dovecot's unprivileged processes must reach their files: not under pytest's 0700 tmp.
    dovecot = Dovecot(Path(tempfile.mkdtemp(prefix="maillon-dovecot-")))
    dovecot.start()
    url = create_database("maillon_mail")
    try:
        with smtp_sink() as (sink, sink_port):
            stack = Stack.create(tmp_path_factory.mktemp("stack-mail"), database_url=url)

            def configure(data: dict[str, Any]) -> None:
                mail = data["mail"]
                mail["max_message_bytes"] = MAX_BYTES
                mail["imap"] = {
                    "host": "127.0.0.1",
                    "port": dovecot.port,
                    "tls": "none",
                    "username": dovecot.user,
                    "poll_seconds": 0.5,
                }
                mail["outbound"] = {
                    "host": "127.0.0.1",
                    "port": sink_port,
                    "tls": "none",
                    "retry_seconds": [0.5, 0.5],
                    "timeout_seconds": 10,
                }

            _edit_yaml(stack.directory / "maillon.yaml", configure)
            _edit_yaml(
                stack.directory / "secrets.yaml",
                lambda s: s.update(mail_imap_password=dovecot.password),
            )
            stack.start()
            try:
                yield Relay(stack, dovecot, sink)
            finally:
                stack.stop()
    finally:
        dovecot.stop()
        shutil.rmtree(dovecot.root, ignore_errors=True)
        drop_database(url)


async def mail_dossier(
    relay: Relay, make_client: MakeClient, identity: dict[str, Any] | None = None
) -> tuple[E2EClient, str, str]:
    """A dossier with its patient room, the bot in it: (coordinator, address, room)."""
    stack = relay.stack
    coordinator, room_id = await coordinated_room(stack, make_client)
    extra = {"identity": identity} if identity else {}
    dossier = new_dossier(stack, coordinator.account.access_token, **extra)
    engine = relay.engine()
    try:
        with Session(engine) as session, session.begin():
            session.execute(
                update(Dossier).where(Dossier.id == dossier["id"]).values(room_id=room_id)
            )
    finally:
        engine.dispose()
    bot = stack.deployment.settings.bot_user_id
    async with appservice(stack) as api:
        await api.invite(room_id, bot, "relais MSSanté")
    await coordinator.wait_for_member(room_id, bot)
    return coordinator, str(dossier["mail_address"]), room_id


async def test_mail_is_posted_with_sanitized_html_and_encrypted_attachment(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    pdf = b"%PDF-1.4 compte rendu d'hospitalisation " + os.urandom(2000)
    html = (
        '<p onclick="steal()">Bonjour, voici le <b>compte rendu</b>.</p>'
        '<script>alert("x")</script><img src="https://tracker.example/p.png">'
        '<a href="javascript:alert(1)">lien</a>'
    )
    message_id, raw = build_mail(
        address,
        "Compte rendu de sortie",
        "Bonjour, voici le compte rendu.",
        html=html,
        attachments=[("cr-sortie.pdf", "application/pdf", pdf)],
    )
    code, _ = await relay.send(SENDER, [address], raw)
    assert code == 250
    events = await wait_mails(coordinator, room_id, {message_id})
    posted = next(e for e in events if (mail_of(e) or {}).get("message_id") == message_id)
    assert posted.decrypted, "mails are posted encrypted in the encrypted room"
    assert posted.sender == relay.stack.deployment.settings.bot_user_id
    assert "dr.house@chu-exemple.mssante.fr" in posted.body
    assert "Compte rendu de sortie" in posted.body
    assert "Bonjour, voici le compte rendu." in posted.body
    formatted = posted.source["content"]["formatted_body"]
    assert "<b>compte rendu</b>" in formatted
    for forbidden in ("<script", "onclick", "<img", "tracker.example", "javascript:"):
        assert forbidden not in formatted

    def attachment() -> Any:
        for e in events:
            msgtype = getattr(e, "source", {}).get("content", {}).get("msgtype")
            if msgtype == "m.file" and thread_root(e) == posted.event_id:
                return e
        return None

    deadline = time.monotonic() + 60
    while attachment() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        events = await room_events(coordinator, room_id)
    file_event = attachment()
    assert file_event is not None, "the attachment is posted in the mail's thread"
    content = file_event.source["content"]
    assert content["body"] == "cr-sortie.pdf" and "url" not in content
    encrypted = content["file"]
    download = await coordinator.client.download(mxc=encrypted["url"])
    plain = decrypt_attachment(
        download.body, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"]
    )
    assert plain == pdf, "the uploaded attachment is encrypted and decrypts to the original"


@pytest.mark.parametrize(
    ("case", "expected"),
    [("unknown_dossier", 550), ("disallowed_sender", 550), ("oversized", 552), ("malformed", 554)],
)
async def test_refusals_are_5xx_and_store_nothing(
    relay: Relay, make_client: MakeClient, case: str, expected: int
) -> None:
    _, address, _ = await mail_dossier(relay, make_client)
    sender, recipients = SENDER, [address]
    _, raw = build_mail(address, "Objet", "Texte")
    if case == "unknown_dossier":
        recipients = [f"d-inconnu@{relay.domain}"]
    elif case == "disallowed_sender":
        sender = "quelquun@gmail.com"
    elif case == "oversized":
        _, raw = build_mail(
            address,
            "Gros",
            "x",
            attachments=[("gros.bin", "application/octet-stream", os.urandom(MAX_BYTES))],
        )
    elif case == "malformed":
        raw = (
            b"From: " + SENDER.encode() + b"\r\nTo: " + address.encode() + b"\r\n"
            b"Subject: casse\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="frontiere"\r\n\r\n'
            b"--frontiere\r\nContent-Type: text/plain\r\n\r\ndebut sans fin\r\n"
        )
    before = relay.spool_count()
    code, text = await relay.send(sender, recipients, raw)
    assert code == expected, text
    assert text.strip(), "the refusal says why"
    assert relay.spool_count() == before, "nothing partial is stored"


async def test_disallowed_header_from_is_refused_too(relay: Relay, make_client: MakeClient) -> None:
    _, address, _ = await mail_dossier(relay, make_client)
    _, raw = build_mail(address, "Objet", "Texte", sender="pirate@example.com")
    before = relay.spool_count()
    code, _ = await relay.send(SENDER, [address], raw)
    assert code == 550 and relay.spool_count() == before


async def _send_all(relay: Relay, mails: list[tuple[str, bytes]], parallel: int = 8) -> None:
    limit = asyncio.Semaphore(parallel)

    async def one(address: str, raw: bytes) -> None:
        async with limit:
            code, text = await relay.send(SENDER, [address], raw)
            assert code == 250, text

    await asyncio.gather(*(one(a, r) for a, r in mails))


async def test_200_mails_each_once_in_their_room_and_thread(
    relay: Relay, make_client: MakeClient
) -> None:
    dossiers = [await mail_dossier(relay, make_client) for _ in range(4)]
    originals: dict[str, tuple[int, str]] = {}  # message id -> (dossier index, subject)
    parent_of: dict[str, str] = {}  # reply -> the original that starts its thread
    with_attachment: set[str] = set()
    expected: dict[int, set[str]] = {i: set() for i in range(len(dossiers))}

    def mail(i: int, n: int, reply_to: str | None = None, refs: list[str] | None = None) -> Any:
        attach = n % 10 == 3
        files = [(f"piece-{n}.txt", "text/plain", f"pièce {n}".encode())] if attach else []
        mid, raw = build_mail(
            dossiers[i][1],
            f"Sujet {n}",
            f"Courriel numéro {n}",
            attachments=files,
            in_reply_to=reply_to,
            references=refs,
        )
        expected[i].add(mid)
        if attach:
            with_attachment.add(mid)
        return mid, raw

    wave: list[tuple[str, bytes]] = []
    for n in range(140):
        i = n % len(dossiers)
        mid, raw = mail(i, n)
        originals[mid] = (i, f"Sujet {n}")
        wave.append((dossiers[i][1], raw))
    await _send_all(relay, wave)
    replies: list[str] = []
    wave = []
    for n, original in enumerate(list(originals)[:40], start=140):
        i = originals[original][0]
        mid, raw = mail(i, n, reply_to=original)
        parent_of[mid] = original
        replies.append(mid)
        wave.append((dossiers[i][1], raw))
    await _send_all(relay, wave)
    wave = []
    for n, reply in enumerate(replies[:20], start=180):
        root = parent_of[reply]
        i = originals[root][0]
        mid, raw = mail(i, n, reply_to=reply, refs=[root])
        parent_of[mid] = root
        wave.append((dossiers[i][1], raw))
    await _send_all(relay, wave)
    assert sum(len(v) for v in expected.values()) == 200

    for i, (client, _, room_id) in enumerate(dossiers):
        events = await wait_mails(client, room_id, expected[i], timeout=240)
        posted = [(mail_of(e), e) for e in events if mail_of(e)]
        ids = [m["message_id"] for m, _ in posted]
        assert sorted(ids) == sorted(expected[i]), "each mail exactly once, in its own room"
        event_of = {m["message_id"]: e for m, e in posted}
        for mid in expected[i]:
            root = parent_of.get(mid)
            if root is None:
                assert thread_root(event_of[mid]) is None, "a new mail starts a thread"
            else:
                assert thread_root(event_of[mid]) == event_of[root].event_id, "reply in thread"
        for mid in expected[i] & with_attachment:
            thread = event_of[mid].event_id if mid not in parent_of else None
            files = [
                e
                for e in events
                if e.source.get("content", {}).get("msgtype") == "m.file"
                and e.source["content"].get("body") == f"piece-{mid_number(event_of[mid])}.txt"
            ]
            assert len(files) == 1, "each attachment once"
            if thread is not None:
                assert thread_root(files[0]) == thread


def mid_number(event: Any) -> str:
    return str(mail_of(event)["subject"]).split()[-1]  # type: ignore[index]


def nir() -> str:
    """A syntactically valid NIR (13 digits and its key), unique enough for a test."""
    body = f"2410331555{int.from_bytes(os.urandom(2), 'big') % 1000:03d}"
    return body + f"{97 - int(body) % 97:02d}"


async def test_ihe_xdm_ins_routes_to_the_single_dossier(
    relay: Relay, make_client: MakeClient
) -> None:
    ins = nir()
    identity = {**IDENTITY, "ins_matricule": ins, "birth_name": "Xdm"}
    coordinator, _, room_id = await mail_dossier(relay, make_client, identity)
    general = f"dossiers@{relay.domain}"
    mid, raw = build_mail(
        general,
        "Résultats de biologie",
        "Voir le document joint.",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip(ins))],
    )
    code, text = await relay.send(SENDER, [general], raw)
    assert code == 250, text
    await wait_mails(coordinator, room_id, {mid})

    before = relay.spool_count()
    _, raw = build_mail(
        general,
        "Patient inconnu",
        "Voir le document joint.",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip("1" * 15))],
    )
    code, text = await relay.send(SENDER, [general], raw)
    assert code == 550 and "INS" in text
    assert relay.spool_count() == before


async def test_imap_mailbox_is_polled_with_the_same_processing(
    relay: Relay, make_client: MakeClient
) -> None:
    ins = nir()
    identity = {**IDENTITY, "ins_matricule": ins, "birth_name": "Imap"}
    coordinator, address, room_id = await mail_dossier(relay, make_client, identity)
    by_address, raw1 = build_mail(address, "Par la boîte", "Relevé IMAP")
    by_ins, raw2 = build_mail(
        relay.dovecot.user,
        "Par INS",
        "Document",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip(ins))],
    )
    _, refused = build_mail(address, "Spam", "Non", sender="inconnu@example.com")
    for raw in (raw1, raw2, refused):
        relay.dovecot.append(raw)
    events = await wait_mails(coordinator, room_id, {by_address, by_ins})
    assert [mail_of(e)["message_id"] for e in events if mail_of(e)].count(by_address) == 1

    def flagged() -> bool:
        flags = relay.dovecot.flags()
        return sum("$MaillonImported" in f for f in flags) >= 2 and any(
            "$MaillonRefused" in f for f in flags
        )

    deadline = time.monotonic() + 30
    while not flagged():
        assert time.monotonic() < deadline, relay.dovecot.flags()
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # more polls: nothing is imported twice
    events = await room_events(coordinator, room_id)
    ids = [mail_of(e)["message_id"] for e in events if mail_of(e)]
    assert sorted(ids) == sorted([by_address, by_ins])


async def test_auto_submitted_mail_is_posted_as_notice(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    mid, raw = build_mail(
        address, "Absence", "Je suis absent.", headers={"Auto-Submitted": "auto-replied"}
    )
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    events = await wait_mails(coordinator, room_id, {mid})
    posted = next(e for e in events if (mail_of(e) or {}).get("message_id") == mid)
    assert posted.source["content"]["msgtype"] == "m.notice"
    assert mail_of(posted)["automatic"] is True  # type: ignore[index]
