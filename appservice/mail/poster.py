"""The relay's Matrix side: an E2EE matrix-nio client logged in as the bot account with
its own device (``MAILLONCOURRIER``) and crypto store under ``DIR/relay/``.

It posts spooled mails into their rooms exactly once (transaction ids derive from the
spool id; Synapse answers a repeated transaction id with the first event), and turns
people's replies in mail threads into outgoing mails.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    MatrixRoom,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from appservice.mail.authenticate import describe
from appservice.mail.loop import work_forever
from appservice.mail.parse import Attachment, ParsedMail, parse_mail
from dossier_api.domain.mail.outbox import RecipientRefused, TrustSpace, queue_mail
from dossier_api.domain.mail.routing import Router
from dossier_api.domain.mail.spool import OutboxItem, Spool, SpoolItem
from maillon.shared.cross_signing import ensure_cross_signed
from maillon.shared.matrix_session import obtain_credentials, sync_from_full_state
from maillon.shared.settings import Deployment

log = logging.getLogger(__name__)

DEVICE_ID = "MAILLONCOURRIER"
MAX_BACKOFF_SECONDS = 60.0
# Synapse refuses events over 64 KiB; an encrypted event is the content in base64 (4/3)
# plus its envelope. A mail whose message would be larger is posted as a summary, with
# its whole text as an (encrypted) attachment in its thread.
MAX_CONTENT_BYTES = 24_000
SUMMARY_CHARS = 2_000
FULL_TEXT_NAME = "courriel-complet.txt"

# Lanes posted at once. The homeserver creates one room's events one at a time, but much of
# a delivery is outside that (store, encryption, HTTP): 16 lanes over 4 rooms drained a
# 200-mail burst at ~20 mails/s, 32 or 64 at ~28-40 (2 loaded cores), with less CPU a mail.
LANES = 64
# A spooled mail read for its thread keys is kept for its delivery up to this size.
KEEP_READ_BYTES = 256 * 1024

FinalFailure = Callable[[SpoolItem, str], Awaitable[None]]
T = TypeVar("T")


class DeliveryError(Exception):
    pass


def _thread(root: str) -> dict[str, Any]:
    return {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root},
    }


def _too_big(content: dict[str, Any]) -> bool:
    return len(json.dumps(content, ensure_ascii=False).encode()) > MAX_CONTENT_BYTES


def needs_summary(mail: ParsedMail) -> bool:
    """The mail's whole message would not fit in one event (one decision for the message
    and its parts; the authentication line's few bytes are within the margin)."""
    return _too_big(_render(mail, 0, None, mail.text, mail.html, len(mail.attachments)))


def parts_of(mail: ParsedMail) -> tuple[Attachment, ...]:
    """What is posted in the mail's thread after its message: its attachments, preceded
    by its whole text when the message is only a summary."""
    if not needs_summary(mail):
        return mail.attachments
    full = Attachment(FULL_TEXT_NAME, "text/plain; charset=utf-8", mail.text.encode("utf-8"))
    return (full, *mail.attachments)


def render_mail(
    mail: ParsedMail, spool_id: int, auth: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The room message of a mail (:func:`_render`); a summary when it would be too large
    for one event (the whole text then follows as an attachment in the thread)."""
    if not needs_summary(mail):
        return _render(mail, spool_id, auth, mail.text, mail.html, len(mail.attachments))
    excerpt = mail.text[:SUMMARY_CHARS].rstrip()
    note = (
        f"\n\n… Courriel trop long pour un seul message : texte complet "
        f"({len(mail.text)} caractères) en pièce jointe « {FULL_TEXT_NAME} » dans le fil."
    )
    content = _render(mail, spool_id, auth, excerpt + note, None, len(mail.attachments) + 1)
    content["fr.maillon.mail"]["summary"] = True
    return content


def _render(
    mail: ParsedMail,
    spool_id: int,
    auth: dict[str, Any] | None,
    text: str,
    html_part: str | None,
    count: int,
) -> dict[str, Any]:
    """The room message of a mail: who (and how the sender was authenticated), where a
    reply goes when that is not the sender, subject, then its sanitized HTML and text."""
    who = f"{mail.from_name} <{mail.from_address}>" if mail.from_name else mail.from_address
    subject = mail.subject or "(sans objet)"
    checked = describe(auth)
    lines = [f"✉️ Courriel de {who}", checked]
    html_lines = [f"✉️ <strong>Courriel</strong> de {html.escape(who)}", html.escape(checked)]
    if mail.reply_to.lower() != mail.from_address.lower():
        lines.append(f"↩️ Répondre à : {mail.reply_to} (différent de l'expéditeur)")
        html_lines.append(
            f"↩️ Répondre à : <strong>{html.escape(mail.reply_to)}</strong> "
            "(différent de l'expéditeur)"
        )
    lines.append(f"Objet : {subject}")
    html_lines.append(f"Objet : <strong>{html.escape(subject)}</strong>")
    if count:
        lines.append(f"📎 {count} pièce(s) jointe(s) dans le fil")
        html_lines.append(f"📎 {count} pièce(s) jointe(s) dans le fil")
    body = ("\n".join(lines) + f"\n\n{text}").rstrip()
    head = "<p>" + "<br>".join(html_lines) + "</p><hr>"
    if html_part:
        formatted = head + html_part
    else:
        formatted = head + "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"
    return {
        # An automatic mail (out-of-office, notification: RFC 3834) is posted as a notice.
        "msgtype": "m.notice" if mail.is_automatic else "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "fr.maillon.mail": {
            "message_id": mail.message_id,
            "from": mail.from_address,
            "subject": mail.subject,
            "attachments": count,
            "automatic": mail.is_automatic,
            "spool_id": spool_id,
            "reply_to": mail.reply_to,
            "authentication": (auth or {}).get("method", "none"),
        },
    }


class MatrixSide:
    """The relay's nio client: logs in, keeps syncing (E2EE keys), answers invites."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.directory = deployment.path("relay")
        self.client: AsyncClient | None = None
        self.ready = asyncio.Event()
        self._signing: asyncio.Task[None] | None = None
        self.cutoff_ms = 0

    def _cutoff(self) -> int:
        """Messages older than the relay's first start are never mailed out."""
        path = self.directory / "cutoff_ms"
        if not path.exists():
            path.write_text(str(int(time.time() * 1000)), encoding="utf-8")
        return int(path.read_text(encoding="utf-8").strip())

    async def start(self) -> AsyncClient:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = self.directory / "store"
        store.mkdir(mode=0o700, exist_ok=True)
        self.cutoff_ms = self._cutoff()
        delay = 0.5
        while True:
            try:
                creds = await obtain_credentials(
                    self.deployment,
                    device_id=DEVICE_ID,
                    credentials_path=Path(self.directory / "credentials.json"),
                    device_name="Maillon — relais MSSanté",
                )
                break
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                log.info("homeserver not reachable yet (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        client = AsyncClient(
            self.deployment.settings.homeserver.url,
            creds.user_id,
            device_id=creds.device_id,
            store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        client.restore_login(creds.user_id, creds.device_id, creds.access_token)
        client.add_event_callback(self._on_invite, InviteMemberEvent)  # type: ignore[arg-type]
        client.add_response_callback(self._on_sync, SyncResponse)  # type: ignore[arg-type]
        self.client = client
        return client

    async def _on_sync(self, _: SyncResponse) -> None:
        if not self.ready.is_set() and self._signing is None:
            self._signing = asyncio.create_task(self._cross_sign())
        self.ready.set()

    async def _cross_sign(self) -> None:
        """Sign this device with the account's self-signing key (shared with the bot's
        device), so Element shows the relay's messages as from a verified device."""
        assert self.client is not None
        delay = 2.0
        while True:
            try:
                await ensure_cross_signed(
                    self.deployment.settings.homeserver.url,
                    self.client.access_token,
                    self.client.user_id,
                    self.client.device_id,
                    self.deployment.path("bot", "cross_signing.json"),
                )
                log.info("relay device cross-signed by its owner")
                return
            except Exception as exc:
                log.warning("relay device not cross-signed yet: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        assert self.client is not None
        settings = self.deployment.settings
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if event.sender.split(":", 1)[-1] != settings.server_name:
            return
        await self.client.join(room.room_id)

    async def start_client(self) -> None:
        await self.start()

    async def sync_forever(self) -> None:
        client = self.client
        assert client is not None
        delay = 1.0
        while True:
            try:
                problem = await sync_from_full_state(client)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = type(exc).__name__
            log.warning("relay sync interrupted (%s); retrying", problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def send(self, room_id: str, content: dict[str, Any], txn_id: str) -> str:
        assert self.client is not None
        response = await self.client.room_send(
            room_id, "m.room.message", content, tx_id=txn_id, ignore_unverified_devices=True
        )
        if not isinstance(response, RoomSendResponse):
            raise DeliveryError(f"envoi refusé : {getattr(response, 'status_code', '')}")
        return str(response.event_id)

    async def upload(self, room_id: str, attachment: Attachment) -> dict[str, Any]:
        """Upload an attachment (encrypted in encrypted rooms); the m.file content."""
        assert self.client is not None
        room = self.client.rooms[room_id]
        encrypt = bool(room.encrypted)
        response, keys = await self.client.upload(
            lambda *_: io.BytesIO(attachment.data),
            content_type="application/octet-stream" if encrypt else attachment.content_type,
            filename=attachment.filename,
            encrypt=encrypt,
            filesize=len(attachment.data),
        )
        if not isinstance(response, UploadResponse):
            raise DeliveryError("téléversement refusé")
        msgtype = "m.image" if attachment.content_type.startswith("image/") else "m.file"
        content: dict[str, Any] = {
            "msgtype": msgtype,
            "body": attachment.filename,
            "filename": attachment.filename,
            "info": {"mimetype": attachment.content_type, "size": len(attachment.data)},
        }
        if encrypt:
            assert keys is not None
            content["file"] = {"url": response.content_uri, **keys}
        else:
            content["url"] = response.content_uri
        return content


def thread_keys(item: SpoolItem, meta: dict[str, Any], mail: ParsedMail | None) -> frozenset[str]:
    """What ties a spooled mail to others of its room that must be posted before or after
    it: its Message-ID and those it answers (a delivery report: the thread of our mail)."""
    if item.kind == "bounce":
        origin = meta.get("report_root") or meta.get("report_event")
        return frozenset({f"event:{origin}"} if origin else {f"spool:{item.id}"})
    ids = {m.strip().lower() for m in (mail.thread_ids if mail else ()) if m.strip()}
    if mail is not None and mail.message_id:
        ids.add(mail.message_id.strip().lower())
    return frozenset(ids or {f"spool:{item.id}"})


def lanes(items: list[SpoolItem], keys: dict[int, frozenset[str]]) -> list[list[SpoolItem]]:
    """The spooled mails in lanes, each in acceptance order: two mails of one room sharing
    a thread (transitively) are in one lane; lanes are independent of each other."""
    parent: dict[int, int] = {}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    owner: dict[tuple[str, str], int] = {}
    for item in sorted(items, key=lambda i: i.id):
        parent[item.id] = item.id
        for key in keys.get(item.id, frozenset({f"spool:{item.id}"})):
            first = owner.setdefault((item.room_id, key), item.id)
            a, b = find(first), find(item.id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    grouped: dict[int, list[SpoolItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.id):
        grouped[find(item.id)].append(item)
    return list(grouped.values())


class Poster:
    """Delivers the spool into rooms: within a mail thread in acceptance order (a mail
    waiting for a retry holds back the later mails of its thread), threads and rooms
    concurrently (``parallel`` lanes at a time).

    Lanes are started as they become ready, not in rounds: a mail accepted while others
    are being posted starts at once (woken by the intake), unless its thread is being
    posted; then it follows when that lane ends (which wakes the poster again)."""

    def __init__(
        self,
        matrix: MatrixSide,
        spool: Spool,
        wake: asyncio.Event,
        *,
        max_attempts: int,
        backoff_seconds: float,
        parallel: int = LANES,
        on_final_failure: FinalFailure | None = None,
    ) -> None:
        self.matrix = matrix
        self.spool = spool
        self.wake = wake
        self.on_final_failure = on_final_failure
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._limit = asyncio.Semaphore(parallel)
        # Store calls in threads of their own: not queued behind the appservice's.
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="mail-poster")
        self._keys: dict[int, frozenset[str]] = {}
        self._read: dict[int, tuple[dict[str, Any], ParsedMail]] = {}  # read for its keys
        self._busy: set[int] = set()  # the spool ids of the lanes being posted
        # When a lane ended (its number): a spool read begun before may show its mails
        # as they were before, so their lanes wait for the next read.
        self._ended: dict[int, int] = {}
        self._endings = 0
        self._lanes: set[asyncio.Task[int]] = set()
        self.delivered = 0

    async def _store(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)

    async def run_forever(self) -> None:
        await self.matrix.ready.wait()
        try:
            await work_forever(self.run_once, self.wake, "mail delivery")
        finally:
            for task in self._lanes:
                task.cancel()
            await asyncio.gather(*self._lanes, return_exceptions=True)
            self._pool.shutdown(wait=False)

    def _read_keys(
        self, items: list[SpoolItem]
    ) -> tuple[dict[int, frozenset[str]], dict[int, tuple[dict[str, Any], ParsedMail]]]:
        """The thread keys of spooled mails, and those read (not too large) kept for
        their delivery, which then needs not read and parse them again."""
        payloads = self.spool.payloads([item.id for item in items])
        found, kept = {}, {}
        for item in items:
            if item.id not in payloads:
                continue  # gone since (delivered by a previous active instance)
            meta, raw = payloads[item.id]
            try:
                mail: ParsedMail | None = parse_mail(raw)
            except Exception as exc:  # delivery will say what is wrong with it
                log.warning("spooled mail #%s unreadable (%s)", item.id, type(exc).__name__)
                mail = None
            found[item.id] = thread_keys(item, meta, mail)
            if mail is not None and len(raw) <= KEEP_READ_BYTES:
                kept[item.id] = (meta, mail)
        return found, kept

    async def run_once(self) -> int:
        """Start the lanes that are ready (none of their mails being posted, nor ended
        since the spool was read, the first one due); the number of mails in them."""
        since = self._endings
        items = await self._store(self.spool.due, 500)
        unknown = [item for item in items if item.id not in self._keys]
        if unknown:
            keys, kept = await self._store(self._read_keys, unknown)
            self._keys.update(keys)
            self._read.update(kept)
        pending = {item.id for item in items}
        self._keys = {k: v for k, v in self._keys.items() if k in pending}
        self._read = {k: v for k, v in self._read.items() if k in pending}
        # No await from here on: what ended after the read is all in ``stale``.
        stale = {spool_id for spool_id, ending in self._ended.items() if ending > since}
        self._ended = {spool_id: self._ended[spool_id] for spool_id in stale}
        held = self._busy | stale
        started = 0
        for lane in lanes(items, self._keys):
            if lane[0].waiting or any(item.id in held for item in lane):
                continue
            self._busy.update(item.id for item in lane)
            task = asyncio.create_task(self._run_lane(lane))
            self._lanes.add(task)
            task.add_done_callback(self._lanes.discard)
            started += len(lane)
        return started

    async def _run_lane(self, items: list[SpoolItem]) -> int:
        try:
            return await self._lane(items)
        except Exception:
            log.exception("mail delivery lane error; retrying")
            return 0
        finally:
            self._endings += 1
            for item in items:
                self._busy.discard(item.id)
                self._ended[item.id] = self._endings
            self.wake.set()  # the rest of its thread (and what waited for a slot) may go

    async def _lane(self, items: list[SpoolItem]) -> int:
        delivered = 0
        async with self._limit:
            for item in items:
                if item.waiting:
                    break  # its retry is not due yet: the rest of its thread waits
                try:
                    await self.deliver(item)
                except Exception as exc:
                    final = item.attempts + 1 >= self.max_attempts
                    delay = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * 1.5**item.attempts)
                    log.warning(
                        "delivery of spooled mail #%s failed (%s), attempt %s",
                        item.id,
                        type(exc).__name__,
                        item.attempts + 1,
                    )
                    await self._store(
                        self.spool.mark_retry, item.id, f"{type(exc).__name__}: {exc}", delay, final
                    )
                    if final and self.on_final_failure is not None:
                        # No accepted mail fails silently: the room and the sender are told.
                        try:
                            reason = str(exc) if isinstance(exc, DeliveryError) else ""
                            await self.on_final_failure(item, reason or type(exc).__name__)
                        except Exception as report_exc:
                            log.error(
                                "final failure of mail #%s not reported: %s",
                                item.id,
                                type(report_exc).__name__,
                            )
                    break  # keep this thread's order: later mails wait for this one
                delivered += 1
        return delivered

    async def deliver(self, item: SpoolItem) -> None:
        client = self.matrix.client
        assert client is not None
        if item.room_id not in client.rooms:
            if item.room_id in client.invited_rooms:
                await client.join(item.room_id)
            raise DeliveryError("salle pas encore rejointe par le relais")
        read = self._read.pop(item.id, None)
        if read is not None:
            meta, mail = read
        else:
            meta, raw = await self._store(self.spool.payload, item.id)
            mail = parse_mail(raw)
        if item.kind == "bounce":
            await self._deliver_report(item, mail, meta)
        else:
            if await self._deliver_mail(item, mail, meta):
                self.delivered += 1
                return  # marked delivered with its event, in one commit
        await self._store(self.spool.mark_delivered, item.id)
        self.delivered += 1

    async def _deliver_mail(self, item: SpoolItem, mail: ParsedMail, meta: dict[str, Any]) -> bool:
        """Post the mail, then its attachments; True if already marked delivered."""
        root = item.event_id
        parts = parts_of(mail)
        if item.event_id is None:
            parent_root = await self._store(self.spool.thread_root, item.room_id, mail.thread_ids)
            content = render_mail(mail, item.id, meta.get("auth"))
            if parent_root is not None:
                content["m.relates_to"] = _thread(parent_root)
            event_id = await self.matrix.send(item.room_id, content, f"maillon.mail.{item.id}.0")
            root = parent_root or event_id
            thread_meta = {
                "message_id": mail.message_id,
                "references": [*mail.references, *([mail.message_id] if mail.message_id else [])],
                "reply_to": mail.reply_to,
                "subject": mail.subject,
            }
            await self._store(
                self.spool.record_main_event,
                item.id,
                item.room_id,
                event_id,
                root,
                thread_meta,
                not parts,
            )
            if not parts:
                return True
        else:
            root = (
                await self._store(self.spool.thread_root, item.room_id, mail.thread_ids)
                or item.event_id
            )
        assert root is not None
        for index, attachment in enumerate(parts, start=1):
            if index < item.parts_done:
                continue
            content = await self.matrix.upload(item.room_id, attachment)
            content["m.relates_to"] = _thread(root)
            await self.matrix.send(item.room_id, content, f"maillon.mail.{item.id}.{index}")
            await self._store(self.spool.record_part, item.id, index + 1)
        return False

    async def _deliver_report(
        self, item: SpoolItem, mail: ParsedMail, meta: dict[str, Any]
    ) -> None:
        # A fixed summary, generated from what we know (our own recipients) and the
        # report's validated status codes: never the report's free text, which anyone who
        # knows one of our Message-IDs could otherwise post as our notice.
        origin = meta.get("report_event")
        to = meta.get("report_to", "")
        ours = {a.strip().lower() for a in str(to).split(",")}
        named = [r for r in mail.report_recipients if r.lower() in ours]
        status = ", ".join(mail.report_status) or "inconnu"
        body = (
            f"⚠️ Le courriel envoyé à {to} n'a pas pu être remis (avis de non-remise).\n"
            f"Statut : {status}" + (f" ; destinataire : {', '.join(named)}" if named else "")
        )
        content: dict[str, Any] = {"msgtype": "m.notice", "body": body}
        if origin:
            content["m.relates_to"] = _thread(meta.get("report_root") or origin)
        await self.matrix.send(item.room_id, content, f"maillon.mail.{item.id}.0")


class ReplyWatcher:
    """People's replies in a mail thread become outgoing mails (never the bot's, the
    service user's or ghosts' messages; never messages older than the relay)."""

    def __init__(
        self,
        matrix: MatrixSide,
        spool: Spool,
        router: Router,
        relay_marker: str,
        outbox_wake: asyncio.Event,
        trust: TrustSpace,
    ) -> None:
        self.matrix = matrix
        self.spool = spool
        self.router = router
        self.trust = trust
        self.relay_marker = relay_marker
        self.outbox_wake = outbox_wake
        settings = matrix.deployment.settings
        self._service = {
            settings.bot_user_id,
            settings.user_id(settings.appservice.sender_localpart),
        }
        self._ghost_prefix = "@" + settings.appservice.ghost_prefix

    def install(self, client: AsyncClient) -> None:
        client.add_event_callback(self._on_message, RoomMessageText)  # type: ignore[arg-type]

    def is_person(self, sender: str) -> bool:
        return sender not in self._service and not sender.startswith(self._ghost_prefix)

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if not self.is_person(event.sender) or event.server_timestamp < self.matrix.cutoff_ms:
            return
        relation = event.source.get("content", {}).get("m.relates_to") or {}
        if relation.get("rel_type") != "m.thread" or not isinstance(relation.get("event_id"), str):
            return
        try:
            await self.queue_reply(room, event, relation["event_id"])
        except RecipientRefused as refused:
            content = {
                "msgtype": "m.notice",
                "body": f"⚠️ {refused}",
                "m.relates_to": _thread(relation["event_id"]),
            }
            try:
                await self.matrix.send(
                    room.room_id, content, f"maillon.reply.{event.event_id}.refused"
                )
            except Exception as exc:
                log.error("could not explain a refused reply: %s", type(exc).__name__)
        except Exception as exc:
            log.error("could not queue a reply as mail: %s", type(exc).__name__)

    async def queue_reply(self, room: MatrixRoom, event: RoomMessageText, root: str) -> None:
        thread = await asyncio.to_thread(self.spool.thread_latest, room.room_id, root)
        if thread is None or not thread.get("reply_to"):
            return
        address = await asyncio.to_thread(self.router.address_for_room, room.room_id)
        if address is None:
            return
        subject = thread.get("subject") or ""
        if not subject.lower().startswith("re:"):
            subject = f"Re: {subject}".strip()
        name = room.user_name(event.sender) or event.sender
        queued = await asyncio.to_thread(
            lambda: queue_mail(
                self.spool,
                trust=self.trust,
                room_id=room.room_id,
                source_event_id=event.event_id,
                from_address=address,
                from_name=f"{name} (Maillon)",
                to=[thread["reply_to"]],
                subject=subject,
                text=event.body,
                relay_marker=self.relay_marker,
                domain=self.router.domain,
                thread_root_event_id=root,
                in_reply_to=thread.get("message_id"),
                references=list(thread.get("references") or []),
            )
        )
        if queued is not None:
            self.outbox_wake.set()


async def report_failure(matrix: MatrixSide, item: OutboxItem, error: str) -> None:
    """Say in the room (in the thread of the message) that a mail could not be sent."""
    to = ", ".join(item.mail.get("to", []))
    content = {
        "msgtype": "m.notice",
        "body": f"⚠️ Échec de l'envoi du courriel à {to} : {error}",
        "m.relates_to": _thread(item.thread_root_event_id or item.source_event_id),
    }
    await matrix.send(item.room_id, content, f"maillon.outbox.{item.id}.failed")
