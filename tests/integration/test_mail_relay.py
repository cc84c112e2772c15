"""MSSanté / Medimail relay (issue 7) on a real stack: Synapse and Maillon's store on
PostgreSQL, real SMTP exchanges with the relay's aiosmtpd listener, a real aiosmtpd sink
standing for the operator's server, a real Dovecot mailbox, matrix-nio E2EE clients."""

from __future__ import annotations

import asyncio
import email.policy
import io
import os
import shutil
import signal
import ssl
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import yaml
from nio.crypto.attachments import decrypt_attachment
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dossier_api.domain.mail.models import MailOutbox, MailSpool
from dossier_api.domain.mail.outbox import (
    RecipientRefused,
    TrustSpace,
    parse_mail_command,
    queue_mail,
    relay_marker,
)
from dossier_api.domain.mail.spool import Spool
from maillon.shared.crypto import KeyRing
from maillon.shared.store import make_engine
from tests.harness.bot_chat import BotChat
from tests.harness.circle import bind_professional
from tests.harness.dossier import IDENTITY, api, api_error, new_dossier
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
from tests.harness.mail_auth import Authority, DkimKey, FakeDns, fake_dns
from tests.harness.matrix import E2EClient
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]
MAX_BYTES = 2_000_000
MAX_UNKNOWN = 3
# Peers the relay trusts without a certificate: 127.0.0.1 only. Tests reach it from other
# loopback addresses (127.0.0.2, …) to be an outside peer.
OUTSIDE = "127.0.0.2"


class MailStack:
    """A stack under test with the operator's server (the sink) as its mail peer."""

    def __init__(self, stack: Stack, sink: SinkHandler) -> None:
        self.stack = stack
        self.sink = sink
        self.authority: Authority | None = None
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

    def client(
        self, source: str = "127.0.0.1", tls: bool = False, cert: tuple[Path, Path] | None = None
    ) -> aiosmtplib.SMTP:
        context = None
        if tls:
            assert self.authority is not None, "TLS needs the test CA"
            context = ssl.create_default_context(cafile=str(self.authority.ca_file))
            if cert is not None:
                context.load_cert_chain(str(cert[0]), str(cert[1]))
        return aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=self.port,
            timeout=60,
            source_address=(source, 0),
            start_tls=tls,
            tls_context=context,
        )

    async def send(
        self,
        sender: str,
        recipients: list[str],
        raw: bytes,
        *,
        source: str = "127.0.0.1",
        tls: bool = False,
        cert: tuple[Path, Path] | None = None,
    ) -> tuple[int, str]:
        """One SMTP exchange with the relay: (code, text) of the final reply."""
        client = self.client(source, tls, cert)
        try:
            async with client:
                _, message = await client.sendmail(sender, recipients, raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return refused.code, refused.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        return 250, message


class Relay(MailStack):
    """The module's stack with all its mail peers (TLS, DNS, IMAP mailbox)."""

    def __init__(
        self,
        stack: Stack,
        dovecot: Dovecot,
        sink: SinkHandler,
        authority: Authority,
        dns: FakeDns,
    ) -> None:
        super().__init__(stack, sink)
        self.dovecot = dovecot
        self.authority: Authority = authority
        self.dns = dns


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
    authority = Authority(tmp_path_factory.mktemp("mail-ca"))
    server_cert, server_key = authority.issue("localhost", "relay")
    try:
        with smtp_sink() as (sink, sink_port), fake_dns() as dns:
            stack = Stack.create(tmp_path_factory.mktemp("stack-mail"), database_url=url)

            def configure(data: dict[str, Any]) -> None:
                mail = data["mail"]
                mail["max_message_bytes"] = MAX_BYTES
                mail["inbound"] = {
                    **mail.get("inbound", {}),
                    "tls": "starttls",
                    "cert_file": str(server_cert),
                    "key_file": str(server_key),
                    "client_ca_file": str(authority.ca_file),
                    "require_client_certificate": True,
                    "trusted_networks": ["127.0.0.1/32"],
                    "dns_servers": [dns.address],
                    "max_unknown_recipients": MAX_UNKNOWN,
                }
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
                yield Relay(stack, dovecot, sink, authority, dns)
            finally:
                stack.stop()
    finally:
        dovecot.stop()
        shutil.rmtree(dovecot.root, ignore_errors=True)
        drop_database(url)


async def mail_dossier(
    relay: MailStack, make_client: MakeClient, identity: dict[str, Any] | None = None
) -> tuple[E2EClient, str, str]:
    """A dossier opened through the API, with the room the appservice made for it and the
    bot in it: (coordinator, the dossier's address, room)."""
    stack = relay.stack
    coordinator = make_client(stack, "coordinatrice")
    await bind_professional(stack, coordinator.user_id, "infirmière coordinatrice")
    extra = {"identity": identity} if identity else {}
    dossier = new_dossier(stack, coordinator.account.access_token, **extra)
    room_id = str(dossier["room_id"])
    await coordinator.accept_invite(room_id)
    await coordinator.wait_for_member(room_id, stack.deployment.settings.bot_user_id)
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


async def test_a_burst_of_threads_keeps_each_threads_order_and_posts_each_mail_once(
    relay: Relay, make_client: MakeClient
) -> None:
    """Mail threads arriving side by side in two rooms (each mail answers the previous one
    of its thread and is sent as soon as that one is accepted), posted by the concurrent
    poster: within each thread in acceptance order and in the thread of its first mail;
    each mail sent to the homeserver once (no second PUT of its transaction)."""
    dossiers = [await mail_dossier(relay, make_client) for _ in range(2)]
    threads: dict[tuple[int, int], list[str]] = {}

    async def thread(i: int, t: int) -> None:
        address = dossiers[i][1]
        ids: list[str] = []
        for n in range(6):
            mid, raw = build_mail(
                address,
                f"Fil {t} n° {n}",
                f"Suite {n} du fil {t}",
                in_reply_to=ids[-1] if ids else None,
                references=ids[:-1] or None,
            )
            code, text = await relay.send(SENDER, [address], raw)
            assert code == 250, text
            ids.append(mid)
        threads[(i, t)] = ids

    await asyncio.gather(*(thread(i, t) for i in range(2) for t in range(8)))
    for i, (client, _, room_id) in enumerate(dossiers):
        mine = [ids for (room, _), ids in threads.items() if room == i]
        events = await wait_mails(client, room_id, {m for ids in mine for m in ids}, timeout=240)
        posted = [(m["message_id"], e) for m, e in ((mail_of(e), e) for e in events) if m]
        position = {mid: n for n, (mid, _) in enumerate(posted)}
        event_of = dict(posted)
        assert len(posted) == len(event_of) == 48, "each mail once"
        for ids in mine:
            assert sorted(ids, key=position.__getitem__) == ids, "acceptance order in the thread"
            root = event_of[ids[0]].event_id
            assert thread_root(event_of[ids[0]]) is None
            assert all(thread_root(event_of[m]) == root for m in ids[1:]), "in its thread"
        log = (relay.stack.directory / "logs" / "homeserver.log").read_text(encoding="utf-8")
        for row in spool_rows(relay, room_id):
            puts = log.count(f"/send/m.room.encrypted/maillon.mail.{row.id}.0 ")
            assert puts == 1, f"mail #{row.id} sent {puts} times"


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


async def test_a_mail_naming_the_ins_of_a_possible_duplicate_goes_to_neither(
    relay: Relay, make_client: MakeClient
) -> None:
    """Identity vigilance on the mail path: a second dossier carrying the same INS (its
    creation refused, then confirmed with a reason) makes the INS ambiguous; a mail naming
    it is refused with the reason, and reaches neither dossier."""
    ins = nir()
    identity = {**IDENTITY, "ins_matricule": ins, "birth_name": "Doublon"}
    coordinator, _, room_id = await mail_dossier(relay, make_client, identity)
    token = coordinator.account.access_token
    provisional = {k: v for k, v in identity.items() if k != "identity_status"}
    body = {"pathway": "dac", "identity": {**provisional, "birth_name": "Autrenom"}}
    refused = api_error(relay.stack, token, "POST", "/v1/dossiers", body)
    assert refused.status == 409 and "Doublon possible" in str(refused)
    general = f"dossiers@{relay.domain}"
    mid, raw = build_mail(
        general,
        "Avant le doublon",
        "Voir le document joint.",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip(ins))],
    )
    code, text = await relay.send(SENDER, [general], raw)
    assert code == 250, text
    await wait_mails(coordinator, room_id, {mid})

    body["duplicate_override"] = {"reason": "deux dossiers le temps de la fusion"}
    api(relay.stack, token, "POST", "/v1/dossiers", body)
    before = relay.spool_count()
    _, raw = build_mail(
        general,
        "Après le doublon",
        "Voir le document joint.",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip(ins))],
    )
    code, text = await relay.send(SENDER, [general], raw)
    assert code == 550 and "doublon possible" in text, text
    assert relay.spool_count() == before


async def test_routing_by_ins_opens_no_identity(relay: Relay, make_client: MakeClient) -> None:
    """The dossier is found through the blind index of its INS: even with its sealed
    identity made unreadable, a mail to the general address naming the INS reaches it."""
    ins = nir()
    identity = {**IDENTITY, "ins_matricule": ins, "birth_name": "Indexe"}
    coordinator, address, room_id = await mail_dossier(relay, make_client, identity)
    local = address.split("@")[0]
    engine = relay.engine()
    try:
        with engine.begin() as conn:
            kept = conn.execute(
                text("SELECT identity FROM dossiers WHERE mail_localpart = :l"), {"l": local}
            ).scalar_one()
            conn.execute(
                text("UPDATE dossiers SET identity = :g WHERE mail_localpart = :l"),
                {"g": b"inconnue\x00" + os.urandom(48), "l": local},
            )
        try:
            general = f"dossiers@{relay.domain}"
            mid, raw = build_mail(
                general,
                "Compte rendu",
                "Voir le document joint.",
                attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip(ins))],
            )
            code, reply = await relay.send(SENDER, [general], raw)
            assert code == 250, reply
            await wait_mails(coordinator, room_id, {mid})
        finally:
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE dossiers SET identity = :k WHERE mail_localpart = :l"),
                    {"k": kept, "l": local},
                )
    finally:
        engine.dispose()


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
    # A mail appended now can only be imported by a later poll, which scans the mailbox
    # again: once it is posted, that poll has run, and nothing was imported twice.
    later, raw3 = build_mail(address, "Plus tard", "Relevé suivant")
    relay.dovecot.append(raw3)
    events = await wait_mails(coordinator, room_id, {later})
    ids = [mail_of(e)["message_id"] for e in events if mail_of(e)]
    assert sorted(ids) == sorted([by_address, by_ins, later])


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


async def reply_in_thread(client: E2EClient, room_id: str, root: str, text: str) -> str:
    await client.sync()
    relation = {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root},
    }
    response = await client.client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": text, "m.relates_to": relation},
        ignore_unverified_devices=True,
    )
    event_id = getattr(response, "event_id", None)
    assert event_id, response
    return str(event_id)


async def received(relay: MailStack, match: Callable[[Message], bool], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for item in relay.sink.received:
            msg = message_from_bytes(item.data, policy=email.policy.default)
            if match(msg):
                return item, msg
        assert time.monotonic() < deadline, "the mail never reached the SMTP server"
        await asyncio.sleep(0.2)


async def mail_thread(
    relay: Relay, make_client: MakeClient, sender: str = SENDER, **kw: Any
) -> tuple[E2EClient, str, str, str, str]:
    """A dossier and a mail posted in it: (coordinator, address, room, message id, root)."""
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    mid, raw = build_mail(address, "Demande d'avis", "Que pensez-vous ?", sender=sender, **kw)
    code, text = await relay.send(sender, [address], raw)
    assert code == 250, text
    events = await wait_mails(coordinator, room_id, {mid})
    root = next(e.event_id for e in events if (mail_of(e) or {}).get("message_id") == mid)
    return coordinator, address, room_id, mid, root


async def test_reply_in_mail_thread_is_mailed_with_threading_headers(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id, mid, root = await mail_thread(
        relay,
        make_client,
        attachments=[("ordonnance.txt", "text/plain", b"ordonnance")],
    )
    await reply_in_thread(coordinator, room_id, root, "Avis favorable, on en parle jeudi.")
    item, msg = await received(relay, lambda m: m["In-Reply-To"] == mid)
    assert item.rcpt_tos == [SENDER]
    assert item.mail_from == address and address in str(msg["From"])
    assert str(msg["Subject"]) == "Re: Demande d'avis"
    assert mid in str(msg["References"]).split()
    assert str(msg["Auto-Submitted"]) == "no"
    assert msg["X-Maillon-Relay"]
    assert "Avis favorable, on en parle jeudi." in msg.get_content()
    ours = str(msg["Message-ID"])

    # Loops: what we sent is never re-imported, even when it comes back to us.
    before = relay.spool_count()
    code, text = await relay.send(SENDER, [address], item.data)
    assert code == 250 and relay.spool_count() == before, text

    # The correspondent's answer to our mail lands in the same thread.
    answer, raw = build_mail(
        address, "Re: Demande d'avis", "Parfait.", in_reply_to=ours, references=[mid]
    )
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    events = await wait_mails(coordinator, room_id, {answer})
    posted = next(e for e in events if (mail_of(e) or {}).get("message_id") == answer)
    assert thread_root(posted) == root

    # Only the person's replies go out: the bot's messages (mail, attachment) never do. A
    # second reply, later in the room than the bot's post of the answer, is handled after
    # it: once it is mailed, anything mailed for the bot's messages would be there too.
    await reply_in_thread(coordinator, room_id, root, "Merci, à jeudi.")
    await received(
        relay,
        lambda m: (
            (text := m.get_body(("plain",))) is not None and "Merci, à jeudi." in text.get_content()
        ),
    )
    thread_mails = [
        r
        for r in relay.sink.received
        if mid in str(message_from_bytes(r.data, policy=email.policy.default)["References"])
    ]
    assert len(thread_mails) == 2, "the two replies, nothing from the bot"


@pytest.mark.parametrize(
    ("local", "outcome"), [("refuse", "final"), ("down", "final"), ("flaky", "sent")]
)
async def test_outbound_failures_are_retried_then_reported_in_the_room(
    relay: Relay, make_client: MakeClient, local: str, outcome: str
) -> None:
    sender = f"{local}{os.urandom(3).hex()}@chu-exemple.mssante.fr"
    coordinator, _, room_id, mid, root = await mail_thread(relay, make_client, sender=sender)
    await reply_in_thread(coordinator, room_id, root, "Réponse")
    if outcome == "sent":
        await received(relay, lambda m: m["In-Reply-To"] == mid)
        assert relay.sink.attempts[sender] == 2, "a temporary failure is retried"
        return
    notice = await coordinator.wait_for_text(
        room_id, lambda e: "Échec de l'envoi du courriel" in e.body, timeout=60
    )
    assert sender in notice.body and thread_root(notice) == root
    expected_attempts = 1 if local == "refuse" else 3  # 5xx is final; 4xx retried twice
    assert relay.sink.attempts[sender] == expected_attempts
    engine = relay.engine()
    try:
        with Session(engine) as session:
            failed = session.scalar(
                select(func.count())
                .select_from(MailOutbox)
                .where(MailOutbox.room_id == room_id, MailOutbox.failed_at.is_not(None))
            )
    finally:
        engine.dispose()
    assert failed == 1


def _dsn(address: str, original: str) -> bytes:
    boundary = "dsn-frontiere"
    return (
        f"From: MAILER-DAEMON@chu-exemple.mssante.fr\r\nTo: {address}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"Message-ID: <dsn.{os.urandom(4).hex()}@chu-exemple.mssante.fr>\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"'
        f"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        "Votre message n'a pas pu etre remis.\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.chu-exemple.mssante.fr\r\n\r\n"
        "Final-Recipient: rfc822; dr.house@chu-exemple.mssante.fr\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original}\r\nSubject: Re: Demande d'avis\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()


async def test_bounce_of_our_mail_shows_up_in_the_thread(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id, mid, root = await mail_thread(relay, make_client)
    await reply_in_thread(coordinator, room_id, root, "Réponse qui reviendra")
    _, msg = await received(relay, lambda m: m["In-Reply-To"] == mid)
    code, text = await relay.send("", [address], _dsn(address, str(msg["Message-ID"])))
    assert code == 250, text
    notice = await coordinator.wait_for_text(
        room_id, lambda e: "n'a pas pu être remis" in e.body, timeout=60
    )
    assert "5.1.1" in notice.body and thread_root(notice) == root
    # A null sender is refused for anything else than a report about our own mails.
    before = relay.spool_count()
    code, _ = await relay.send("", [address], _dsn(address, "<inconnu@ailleurs>"))
    assert code == 550 and relay.spool_count() == before


async def test_queue_mail_sends_a_new_mail_for_the_mail_command(
    relay: Relay, make_client: MakeClient
) -> None:
    """What a ``!mail adresse sujet`` command calls: the relay sends the queued mail."""
    _, address, room_id = await mail_dossier(relay, make_client)
    to, subject, text = parse_mail_command(
        "!mail dr.watson@cabinet.mssante.fr Point sur Mme Martin\nBonjour,\nvoici le point."
    )
    deployment = relay.stack.deployment
    engine = relay.engine()
    try:
        spool = Spool(engine, KeyRing.for_secrets(deployment.secrets))
        queued = queue_mail(
            spool,
            trust=TrustSpace(engine, ("mssante.fr",)),
            room_id=room_id,
            source_event_id=f"$commande-{os.urandom(4).hex()}",
            from_address=address,
            to=[to],
            subject=subject,
            text=text,
            relay_marker=relay_marker(deployment),
            domain=relay.domain,
        )
    finally:
        engine.dispose()
    assert queued is not None
    item, msg = await received(relay, lambda m: m["Subject"] == "Point sur Mme Martin")
    assert item.rcpt_tos == ["dr.watson@cabinet.mssante.fr"]
    assert "voici le point." in msg.get_content()


async def test_mail_command_of_the_bot_sends_from_the_dossier_address(
    relay: Relay, make_client: MakeClient
) -> None:
    """``!mail adresse objet`` + text, written to the bot in the patient room, leaves from
    the dossier's address; a bad command gets its usage line and sends nothing."""
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    chat = BotChat(relay.stack, coordinator)
    await chat.command(
        room_id,
        "!mail dr.holmes@cabinet.mssante.fr Compte rendu de visite\n"
        "Bonjour,\nla visite à domicile s'est bien passée.",
        contains="file d'envoi",
    )
    item, msg = await received(relay, lambda m: m["Subject"] == "Compte rendu de visite")
    assert item.rcpt_tos == ["dr.holmes@cabinet.mssante.fr"]
    assert address in msg["From"] and msg["Auto-Submitted"] == "no"
    assert "la visite à domicile s'est bien passée." in msg.get_content()
    _, bad = await chat.command(room_id, "!mail pas-une-adresse Objet\ntexte", ok=False)
    assert "pas-une-adresse" in bad.body
    _, empty = await chat.command(room_id, "!mail dr.holmes@cabinet.mssante.fr Objet", ok=False)
    assert "vide" in empty.body


async def test_mail_threads_and_queued_outbox_survive_a_drop_old_rotation(
    relay: Relay, make_client: MakeClient
) -> None:
    """After ``maillon keys rotate --drop-old`` (only the new key left), a reply in a mail
    thread is still mailed with its threading headers, a second mail of the thread lands in
    it, and a mail queued before the rotation is still sent."""
    coordinator, address, room_id, mid, root = await mail_thread(relay, make_client)
    stack = relay.stack
    assert stack.stop() == 0
    try:
        engine = relay.engine()
        try:
            queued = queue_mail(
                Spool(engine, KeyRing.for_secrets(stack.deployment.secrets)),
                trust=TrustSpace(engine, ("mssante.fr",)),
                room_id=room_id,
                source_event_id=f"$avant-rotation-{os.urandom(4).hex()}",
                from_address=address,
                to=["dr.watson@cabinet.mssante.fr"],
                subject="Mis en file avant la rotation",
                text="Bonjour,\nle point de la semaine.",
                relay_marker=relay_marker(stack.deployment),
                domain=relay.domain,
            )
        finally:
            engine.dispose()
        assert queued is not None
        done = stack.rotate_keys(drop_old=True)
        assert done.returncode == 0, done.stderr
        assert len(stack.deployment.secrets.data_keys) == 1
    finally:
        stack.start()

    _, msg = await received(relay, lambda m: m["Subject"] == "Mis en file avant la rotation")
    assert "le point de la semaine." in msg.get_content()

    await reply_in_thread(coordinator, room_id, root, "Réponse après la rotation.")
    _, reply = await received(relay, lambda m: m["In-Reply-To"] == mid)
    assert str(reply["Subject"]) == "Re: Demande d'avis"
    assert "Réponse après la rotation." in reply.get_content()

    second, raw = build_mail(
        address, "Re: Demande d'avis", "Suite.", in_reply_to=mid, references=[mid]
    )
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    events = await wait_mails(coordinator, room_id, {second})
    posted = next(e for e in events if (mail_of(e) or {}).get("message_id") == second)
    assert thread_root(posted) == root


def appservice_pid(stack: Stack) -> int:
    """The appservice process (where the relay lives) of this stack."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"appservice" in argv and str(stack.directory).encode() in argv:
            return int(entry.name)
    raise AssertionError("appservice process not found")


async def test_kill_9_mid_burst_every_accepted_mail_is_posted_once(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    sent: list[str] = []
    accepted: list[str] = []
    old_pid = appservice_pid(relay.stack)
    enough = asyncio.Event()

    async def sender(worker: int) -> None:
        for n in range(40):
            files = [(f"k{worker}-{n}.txt", "text/plain", b"piece")] if n % 7 == 0 else []
            mid, raw = build_mail(address, f"Rafale {worker}-{n}", "Texte", attachments=files)
            sent.append(mid)
            try:
                code, _ = await relay.send(SENDER, [address], raw)
            except (OSError, aiosmtplib.SMTPException):
                code = 0  # the relay is down: the sender would try again later
            if code == 250:
                accepted.append(mid)
                if len(accepted) >= 40:
                    enough.set()
            await asyncio.sleep(0.02)

    burst = asyncio.gather(*(sender(w) for w in range(4)))
    await asyncio.wait_for(enough.wait(), timeout=120)
    os.kill(old_pid, signal.SIGKILL)
    await burst
    assert appservice_pid(relay.stack) != old_pid, "the supervisor restarted the appservice"
    assert 40 <= len(accepted) < len(sent), "some mails were refused while the relay was down"

    events = await wait_mails(coordinator, room_id, set(accepted), timeout=240)
    posted = [m["message_id"] for m in (mail_of(e) for e in events) if m]
    assert len(posted) == len(set(posted)), "no mail twice"
    assert set(accepted) <= set(posted) <= set(sent)

    # A crash after posting but before marking the mail delivered: the relay posts again
    # with the same transaction id and the homeserver gives back the same event.
    engine = relay.engine()
    try:
        with Session(engine) as session, session.begin():
            rows = session.scalars(
                select(MailSpool).where(MailSpool.room_id == room_id).limit(5)
            ).all()
            before = {row.id: row.event_id for row in rows}
            for row in rows:
                row.delivered_at = None
                row.event_id = None
                row.parts_done = 0
        deadline = time.monotonic() + 60
        while True:
            with Session(engine) as session:
                again = {
                    r.id: r.event_id
                    for r in session.scalars(select(MailSpool).where(MailSpool.id.in_(before)))
                    if r.delivered_at is not None
                }
            if len(again) == len(before):
                break
            assert time.monotonic() < deadline, "re-delivery did not happen"
            await asyncio.sleep(0.2)
    finally:
        engine.dispose()
    assert again == before, "same transaction id, same event"
    events = await room_events(coordinator, room_id)
    posted = [m["message_id"] for m in (mail_of(e) for e in events) if m]
    assert len(posted) == len(set(posted))
    files = [
        e.source["content"]["body"]
        for e in events
        if e.source.get("content", {}).get("msgtype") == "m.file"
    ]
    assert len(files) == len(set(files)), "no attachment twice"


# -- Issue 19: security of the relay ---------------------------------------------------


def outbox_rows(relay: Relay, room_id: str) -> list[MailOutbox]:
    engine = relay.engine()
    try:
        with Session(engine) as session:
            return list(session.scalars(select(MailOutbox).where(MailOutbox.room_id == room_id)))
    finally:
        engine.dispose()


def posted_mail(events: list[Any], message_id: str) -> Any:
    return next(e for e in events if (mail_of(e) or {}).get("message_id") == message_id)


async def test_reply_to_outside_the_trust_space_is_shown_and_never_mailed(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, _, room_id, mid, root = await mail_thread(
        relay, make_client, headers={"Reply-To": "collect@evil.example"}
    )
    events = await room_events(coordinator, room_id)
    posted = posted_mail(events, mid)
    assert "Répondre à : collect@evil.example" in posted.body, posted.body
    assert "collect@evil.example" in posted.source["content"]["formatted_body"]

    await reply_in_thread(coordinator, room_id, root, "Voici le dossier complet du patient.")
    notice = await coordinator.wait_for_text(
        room_id, lambda e: "Envoi refusé" in e.body, timeout=60
    )
    assert "collect@evil.example" in notice.body and "espace de confiance" in notice.body
    assert thread_root(notice) == root
    assert outbox_rows(relay, room_id) == [], "nothing queued for the attacker's address"
    assert not any("collect@evil.example" in r.rcpt_tos for r in relay.sink.received)


async def test_mail_command_only_sends_within_the_trust_space(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, _, room_id = await mail_dossier(relay, make_client)
    chat = BotChat(relay.stack, coordinator)
    _, answer = await chat.command(
        room_id, "!mail attacker@evil.example Dossier\nLe compte rendu complet.", ok=False
    )
    assert "attacker@evil.example" in answer.body and "espace de confiance" in answer.body
    assert outbox_rows(relay, room_id) == []

    # The rule is the domain's: any caller of queue_mail gets it.
    engine = relay.engine()
    try:
        spool = Spool(engine, KeyRing(relay.stack.deployment.secrets.data_keys))
        with pytest.raises(RecipientRefused):
            queue_mail(
                spool,
                trust=TrustSpace(
                    engine, relay.stack.deployment.settings.mail.allowed_sender_domains
                ),
                room_id=room_id,
                source_event_id=f"$direct-{os.urandom(4).hex()}",
                from_address="d@x.mssante.fr",
                to=["dr.watson@cabinet.mssante.fr", "attacker@evil.example"],
                subject="Objet",
                text="Texte",
                relay_marker=relay_marker(relay.stack.deployment),
                domain=relay.domain,
            )
    finally:
        engine.dispose()
    assert outbox_rows(relay, room_id) == []


async def test_a_bad_outbox_row_is_set_aside_and_the_others_are_sent(
    relay: Relay, make_client: MakeClient
) -> None:
    """A row whose display name holds CRLF (written before names were cleaned) used to
    make compose() raise outside the error handling: the outbox stopped for everyone."""
    coordinator, address, room_id, _, root = await mail_thread(relay, make_client)
    deployment = relay.stack.deployment
    engine = relay.engine()
    try:
        spool = Spool(engine, KeyRing.for_secrets(deployment.secrets))
        spool.enqueue(
            room_id,
            f"$ancien-{os.urandom(4).hex()}",
            root,
            {
                "from": address,
                "from_name": "Dr Martin\r\nBcc: fuite@evil.example",
                "to": [SENDER],
                "subject": "Ligne cassée",
                "text": "x",
                "message_id": f"<old.{os.urandom(4).hex()}@{relay.domain}>",
                "references": [],
                "relay_marker": relay_marker(deployment),
                "auto_submitted": "no",
            },
        )
        queue_mail(
            spool,
            trust=TrustSpace(engine, deployment.settings.mail.allowed_sender_domains),
            room_id=room_id,
            source_event_id=f"$nouveau-{os.urandom(4).hex()}",
            from_address=address,
            from_name="Dr Martin\r\nBcc: fuite@evil.example",
            to=[SENDER],
            subject="Après la ligne cassée",
            text="Suite",
            relay_marker=relay_marker(deployment),
            domain=relay.domain,
            thread_root_event_id=root,
        )
    finally:
        engine.dispose()
    item, msg = await received(relay, lambda m: m["Subject"] == "Après la ligne cassée")
    assert item.rcpt_tos == [SENDER], "the other mails go on"
    assert "\n" not in str(msg["From"]) and msg["Bcc"] is None
    assert "Dr Martin Bcc: fuite@evil.example" in str(msg["From"])
    notice = await coordinator.wait_for_text(
        room_id, lambda e: "Échec de l'envoi du courriel" in e.body, timeout=60
    )
    assert "mis de côté" in notice.body and thread_root(notice) == root
    assert not any(m.data.count(b"Ligne cass") for m in relay.sink.received)


def bomb_zip(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<a>" + b" " * size + b"</a>")
    return buffer.getvalue()


async def test_xdm_bomb_is_refused_before_decompressing(relay: Relay) -> None:
    general = f"dossiers@{relay.domain}"
    package = bomb_zip(4 * 1024 * 1024)
    assert len(package) < 10_000
    _, raw = build_mail(
        general, "Résultats", "Voir", attachments=[("IHE_XDM.ZIP", "application/zip", package)]
    )
    before = relay.spool_count()
    code, text = await relay.send(SENDER, [general], raw)
    assert code == 552 and "IHE_XDM" in text, (code, text)
    assert relay.spool_count() == before


async def test_bounce_posts_a_fixed_summary_never_its_free_text(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id, mid, root = await mail_thread(relay, make_client)
    await reply_in_thread(coordinator, room_id, root, "Réponse qui reviendra")
    _, msg = await received(relay, lambda m: m["In-Reply-To"] == mid)
    forged = _dsn(address, str(msg["Message-ID"])).replace(
        b"Diagnostic-Code: smtp; 550 5.1.1 User unknown",
        b"Diagnostic-Code: smtp; URGENT patient transfere, appelez le 0899 00 00 00",
    )
    code, text = await relay.send("", [address], forged)
    assert code == 250, text
    notice = await coordinator.wait_for_text(
        room_id, lambda e: "n'a pas pu être remis" in e.body, timeout=60
    )
    assert "Statut : 5.1.1" in notice.body and thread_root(notice) == root
    assert "0899" not in notice.body and "URGENT" not in notice.body
    assert "pas pu etre remis" not in notice.body, "not the bounce's own text either"


async def test_outside_peer_needs_tls_and_a_client_certificate_of_the_ca(
    relay: Relay, make_client: MakeClient, tmp_path: Path
) -> None:
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    before = relay.spool_count()
    _, raw = build_mail(address, "Sans TLS", "Texte")
    code, text = await relay.send(SENDER, [address], raw, source=OUTSIDE)
    assert code == 530 and "STARTTLS" in text, (code, text)
    code, text = await relay.send(SENDER, [address], raw, source=OUTSIDE, tls=True)
    assert code == 530 and "Certificat client requis" in text, (code, text)
    rogue = Authority(tmp_path / "rogue", "AC pirate").issue("relais.pirate.example", "rogue")
    with pytest.raises((aiosmtplib.SMTPException, OSError, ssl.SSLError)):
        await relay.send(SENDER, [address], raw, source=OUTSIDE, tls=True, cert=rogue)
    assert relay.spool_count() == before, "nothing stored from an unauthenticated peer"

    operator = relay.authority.issue("relais.operateur.mssante.fr", "operator")
    mid, raw = build_mail(address, "Avec certificat", "Texte authentifié")
    code, text = await relay.send(SENDER, [address], raw, source=OUTSIDE, tls=True, cert=operator)
    assert code == 250, text
    events = await wait_mails(coordinator, room_id, {mid})
    posted = posted_mail(events, mid)
    assert "expéditeur authentifié par certificat (relais.operateur.mssante.fr)" in posted.body
    assert mail_of(posted)["authentication"] == "certificate"  # type: ignore[index]


async def test_dkim_result_is_shown_for_peers_without_certificate(
    relay: Relay, make_client: MakeClient
) -> None:
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    domain = SENDER.split("@")[1]
    key = DkimKey(domain)
    relay.dns.txt[key.dns_name] = [key.record()]
    signed_id, raw = build_mail(address, "Signé", "Texte signé")
    assert (await relay.send(SENDER, [address], key.sign(raw)))[0] == 250
    plain_id, raw = build_mail(address, "Non signé", "Texte")
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    events = await wait_mails(coordinator, room_id, {signed_id, plain_id})
    assert f"DKIM valide pour {domain}" in posted_mail(events, signed_id).body
    assert "⚠ expéditeur non authentifié" in posted_mail(events, plain_id).body
    assert key.dns_name in relay.dns.queries


async def test_rcpt_probing_is_rate_limited_per_peer(relay: Relay, make_client: MakeClient) -> None:
    _, address, _ = await mail_dossier(relay, make_client)
    prober = "127.0.0.3"  # an operator's server, authenticated, that probes addresses
    operator = relay.authority.issue("relais.curieux.mssante.fr", "prober")
    client = relay.client(prober, tls=True, cert=operator)
    await client.connect()
    await client.ehlo()
    await client.mail(SENDER)
    codes = []
    for n in range(MAX_UNKNOWN):
        try:
            response = await client.rcpt(f"d-sonde{n}@{relay.domain}")
            codes.append(response.code)
        except aiosmtplib.SMTPRecipientRefused as exc:
            codes.append(exc.code)
    assert codes == [550] * (MAX_UNKNOWN - 1) + [421], codes
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):  # the relay hung up
        await client.noop()
    # The same peer is held off for the window, even for an existing address…
    _, raw = build_mail(address, "Objet", "Texte")
    code, _ = await relay.send(SENDER, [address], raw, source=prober, tls=True, cert=operator)
    assert code == 421
    # …while other peers are not.
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    log = relay.stack.directory / "logs" / "appservice.log"
    deadline = time.monotonic() + 30
    while "probing" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the probe is logged"
        await asyncio.sleep(0.2)
    assert "d-sonde" not in log.read_text(errors="replace"), "no address in the logs"


async def test_a_long_mail_is_posted_as_summary_with_its_text_encrypted_in_the_thread(
    relay: Relay, make_client: MakeClient
) -> None:
    """~180 KB of text used to get 250, then fail 40 times with M_TOO_LARGE, silently."""
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    lines = [f"Ligne {n} du compte rendu détaillé de l'hospitalisation." for n in range(3200)]
    text = "\n".join(lines)
    assert len(text.encode()) > 180_000
    mid, raw = build_mail(address, "Compte rendu long", text)
    code, reply = await relay.send(SENDER, [address], raw)
    assert code == 250, reply
    events = await wait_mails(coordinator, room_id, {mid})
    posted = posted_mail(events, mid)
    assert "Courriel trop long" in posted.body and "Ligne 0 du compte rendu" in posted.body
    assert mail_of(posted)["summary"] is True  # type: ignore[index]

    def full_text() -> Any:
        for e in events:
            content = getattr(e, "source", {}).get("content", {})
            if content.get("body") == "courriel-complet.txt" and thread_root(e) == posted.event_id:
                return e
        return None

    deadline = time.monotonic() + 60
    while full_text() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        events = await room_events(coordinator, room_id)
    file_event = full_text()
    assert file_event is not None, "the whole text follows in the mail's thread"
    encrypted = file_event.source["content"]["file"]
    download = await coordinator.client.download(mxc=encrypted["url"])
    plain = decrypt_attachment(
        download.body, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"]
    )
    assert plain.decode().replace("\r\n", "\n").strip() == text.strip()


DELIVERY_ATTEMPTS = 5
UPLOAD_LIMIT = 64 * 1024  # the homeserver's max_upload_size, well under max_message_bytes
NOT_SHOWN = "n'a pas pu être affiché"


@pytest.fixture(scope="module")
def small_uploads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """A stack whose homeserver takes smaller uploads than the relay accepts in a mail (as
    when an administrator lowers Synapse's max_upload_size), with few posting attempts."""
    url = create_database("maillon_mail_dsn")
    try:
        with smtp_sink() as (sink, sink_port):
            stack = Stack.create(tmp_path_factory.mktemp("stack-mail-dsn"), database_url=url)

            def configure(data: dict[str, Any]) -> None:
                mail = data["mail"]
                mail["delivery_attempts"] = DELIVERY_ATTEMPTS
                mail["delivery_backoff_seconds"] = 1.0
                mail["outbound"] = {
                    "host": "127.0.0.1",
                    "port": sink_port,
                    "tls": "none",
                    "retry_seconds": [0.5],
                    "timeout_seconds": 10,
                }

            _edit_yaml(stack.directory / "maillon.yaml", configure)
            with (stack.directory / "homeserver.yaml").open("a", encoding="utf-8") as handle:
                handle.write(f"\nmax_upload_size: {UPLOAD_LIMIT}\n")
            stack.start()
            try:
                yield MailStack(stack, sink)
            finally:
                stack.stop()
    finally:
        drop_database(url)


def spool_rows(relay: MailStack, room_id: str) -> list[MailSpool]:
    """The room's spooled mails in acceptance order (detached; payloads not opened)."""
    engine = relay.engine()
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(MailSpool).where(MailSpool.room_id == room_id).order_by(MailSpool.id)
            ).all()
            session.expunge_all()
            return list(rows)
    finally:
        engine.dispose()


async def test_a_mail_that_cannot_be_posted_is_reported_to_the_room_and_its_sender(
    small_uploads: MailStack, make_client: MakeClient
) -> None:
    """Issue 19 finding 7: an accepted mail (250) whose attachment the homeserver refuses
    (413) fails every posting attempt; after the last one the room gets a notice and the
    sender a non-delivery mail (without the mail's content), once; later mails flow."""
    relay = small_uploads
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    first, raw = build_mail(address, "Premier courriel", "Bonjour.")
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    await wait_mails(coordinator, room_id, {first})  # the relay posts in this room

    secret = "Compte rendu confidentiel : nodule pulmonaire de 8 mm."
    scan = b"%PDF-1.4 imagerie " + os.urandom(3 * UPLOAD_LIMIT)
    doomed, raw = build_mail(
        address,
        "Imagerie de contrôle",
        secret,
        attachments=[("scanner-thoracique.pdf", "application/pdf", scan)],
    )
    code, reply = await relay.send(SENDER, [address], raw)
    assert code == 250, reply
    later, raw = build_mail(address, "Courriel suivant", "Le suivant passe-t-il ?")
    assert (await relay.send(SENDER, [address], raw))[0] == 250

    notice = await coordinator.wait_for_text(room_id, lambda e: NOT_SHOWN in e.body, timeout=120)
    assert SENDER in notice.body and "Imagerie de contrôle" in notice.body
    assert "téléversement refusé" in notice.body and "expéditeur en est averti" in notice.body

    item, dsn = await received(relay, lambda m: str(m["Subject"]).startswith("Non remis"))
    assert item.rcpt_tos == [SENDER] and item.mail_from == address
    assert str(dsn["Subject"]) == "Non remis : Imagerie de contrôle"
    assert dsn["In-Reply-To"] == doomed and str(dsn["Auto-Submitted"]) != "no"
    text_part = dsn.get_body(("plain",))
    assert text_part is not None
    body = text_part.get_content()
    assert "n'a pas pu être remis" in body and "Motif : téléversement refusé" in body
    assert "nodule" not in body and not dsn.is_multipart(), "never the mail's content"

    # The room's later mail (another thread) is posted too.
    events = await wait_mails(coordinator, room_id, {later})
    rows = spool_rows(relay, room_id)
    states = [(r.failed_at is not None, r.delivered_at is not None) for r in rows]
    attempts = [r.attempts for r in rows]
    assert states == [(False, True), (True, False), (False, True)]
    assert attempts[1] == DELIVERY_ATTEMPTS
    # Told once: one notice in the room, one non-delivery mail.
    notices = [e for e in events if NOT_SHOWN in str(getattr(e, "body", ""))]
    assert len(notices) == 1
    subjects = [
        str(message_from_bytes(r.data, policy=email.policy.default)["Subject"])
        for r in relay.sink.received
    ]
    assert subjects.count("Non remis : Imagerie de contrôle") == 1


async def test_a_mail_waiting_for_a_retry_holds_back_its_thread_not_the_room(
    small_uploads: MailStack, make_client: MakeClient
) -> None:
    """Order is kept within a mail thread (a reply is posted after the mail it answers,
    here after that mail's last attempt), not across the room: another thread's mail is
    posted while the first one is still being retried."""
    relay = small_uploads
    coordinator, address, room_id = await mail_dossier(relay, make_client)
    scan = b"%PDF-1.4 imagerie " + os.urandom(3 * UPLOAD_LIMIT)  # refused by the homeserver
    doomed, raw = build_mail(
        address, "Imagerie", "Voir pièce.", attachments=[("scan.pdf", "application/pdf", scan)]
    )
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    reply, raw = build_mail(address, "Re: Imagerie", "Suite du dossier.", in_reply_to=doomed)
    assert (await relay.send(SENDER, [address], raw))[0] == 250
    other, raw = build_mail(address, "Autre sujet", "Rien à voir.")
    assert (await relay.send(SENDER, [address], raw))[0] == 250

    await wait_mails(coordinator, room_id, {other})
    first, second, third = spool_rows(relay, room_id)
    assert third.delivered_at is not None and first.failed_at is None, "not behind the retries"
    assert second.delivered_at is None, "the reply waits for the mail it answers"

    await coordinator.wait_for_text(room_id, lambda e: NOT_SHOWN in e.body, timeout=120)
    events = await wait_mails(coordinator, room_id, {reply})
    first, second, _ = spool_rows(relay, room_id)
    assert first.failed_at is not None and second.delivered_at is not None
    assert second.delivered_at >= first.failed_at, "in the thread's order"
    assert thread_root(posted_mail(events, reply)) == posted_mail(events, doomed).event_id
