"""The coordination bot's event loop: joins rooms it is invited to (local inviters only),
decrypts, runs commands as their sender (through the dossier service, in-process),
answers in the command's thread, and keeps its encryption working across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    InviteMemberEvent,
    MatrixRoom,
    MegolmEvent,
    RoomEncryptedMedia,
    RoomGetEventResponse,
    RoomMessageMedia,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from coordination_bot.commands import formulaire, note
from coordination_bot.core import CommandError, Context, Reply
from coordination_bot.dispatch import dispatch, error_reply, is_command
from coordination_bot.services import Services
from coordination_bot.solicitations import SolicitationChats
from dossier_api.domain import pathway_store, retention
from dossier_api.domain.core import ApiError
from maillon.shared.cross_signing import ensure_cross_signed
from maillon.shared.crypto import KeyRing
from maillon.shared.lease import instance_file
from maillon.shared.matrix_session import obtain_credentials, sync_from_full_state
from maillon.shared.room_sync_client import RoomSyncClient
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import Deployment
from maillon.shared.store import make_engine

log = logging.getLogger(__name__)

UNDECRYPTABLE_FR = (
    "Je n'ai pas pu déchiffrer ce message (clé de session manquante). "
    "J'ai demandé la clé ; renvoyez la commande si je ne réponds pas."
)
UNDECRYPTABLE_EN = (
    "I could not decrypt this message (missing session key). I asked for the key; "
    "send the command again if I do not answer."
)
FRESH_GRACE_MS = 2000
MAX_CONCURRENT = 64  # commands handled at once (one at a time per room)
HOLD_ENV = "MAILLON_TEST_BOT_HOLD"  # tests only: the folder where a test arms a pause


def _server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def _relations(event: RoomMessageText) -> tuple[str | None, str | None]:
    """The thread root and the replied-to event of a message (None when it has none)."""
    relates = event.source.get("content", {}).get("m.relates_to") or {}
    thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
    return thread_root, (relates.get("m.in_reply_to") or {}).get("event_id")


def _may_concern_bot(event: RoomMessageText) -> bool:
    """A command, or a message in a thread or replying (a form's answer, a reply to a
    note): what the bot may have to handle; the room's plain talk is not recorded."""
    return is_command(event.body) or any(_relations(event))


def tx_id(kind: str, event_id: str, key: str = "") -> str:
    """The transaction id of what the bot sends for a command (its ``reply``, its
    ``follow``-up): the same after a restart, so the homeserver keeps
    one event when a new active instance sends it again (same device)."""
    digest = hashlib.sha256(f"{kind}\0{event_id}\0{key}".encode()).hexdigest()[:40]
    return f"maillon.{kind}.{digest}"


async def _hold(point: str, event_id: str) -> None:
    """Tests only (``MAILLON_TEST_BOT_HOLD``, unset in a deployment: returns at once): when
    the test armed ``point`` (a file of that name in that folder), the first event to
    reach it stops there for good, saying so in ``point.held``; the test kills the
    process at that very step."""
    folder = os.environ.get(HOLD_ENV)
    if not folder:
        return
    armed = Path(folder) / point
    try:
        armed.rename(armed.with_suffix(".held"))  # one event, once
    except FileNotFoundError:
        return
    log.warning("test hold at %s: %s", point, event_id)
    await asyncio.Event().wait()


class CircleClient(AsyncClient):  # type: ignore[misc]
    """A nio client that shares its room keys, in patient rooms, only with the devices of
    the care circle's active members (whoever else may be in the room for a moment)."""

    recipients: dict[str, set[str] | None]

    def install_recipient_filter(self) -> None:
        assert self.olm is not None
        self.recipients = {}
        original = self.olm.share_group_session_parallel

        def filtered(
            room_id: str, users: list[str], ignore_unverified_devices: bool = False
        ) -> Any:
            allowed = self.recipients.get(room_id)
            if allowed is not None:
                users = [u for u in users if u in allowed]
            return original(room_id, users, ignore_unverified_devices=ignore_unverified_devices)

        self.olm.share_group_session_parallel = filtered  # type: ignore[method-assign]

    def set_recipients(self, room_id: str, allowed: set[str] | None) -> None:
        """Before sending: who may get the room key. A narrower set than the one the
        current session went to (someone left the circle) starts a new session."""
        previous = self.recipients.get(room_id)
        if allowed is not None and (previous is None or not previous <= allowed):
            self.invalidate_outbound_session(room_id)
        self.recipients[room_id] = allowed


class CoordinationBot:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.settings = deployment.settings
        self.client: CircleClient | None = None
        self.started_ms = int(time.time() * 1000)
        self._ready_path = deployment.path("run", instance_file("coordination_bot", "ready"))
        self._ready = False
        self._room_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._received: list[tuple[str, RoomMessageText]] = []  # in this sync response
        self._saved_token = ""  # the sync token in the store: received events recorded
        self.cross_signed = False
        self._backoff = 1.0
        self._cross_sign_after = 0.0  # after a failure, wait before trying again
        install_key_ring(KeyRing.for_secrets(deployment.secrets))
        engine = make_engine(self.settings.database_url)
        pathway_store.bind(engine)
        self.services = Services(engine, deployment, RoomSyncClient.for_deployment(deployment))

    @property
    def lang(self) -> str:
        return self.settings.bot.language

    async def start(self) -> CircleClient:
        creds = await obtain_credentials(self.deployment)
        store = self.deployment.path("bot", "store")
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        client = CircleClient(
            self.settings.homeserver.url,
            creds.user_id,
            device_id=creds.device_id,
            store_path=str(store),
            config=AsyncClientConfig(
                encryption_enabled=True,
                # The bot saves its sync token itself, once the events it may have to
                # handle are recorded (nio would save it before running the callbacks).
                store_sync_tokens=False,
                max_limit_exceeded=None,  # M_LIMIT_EXCEEDED: wait retry_after_ms, retry
                max_timeouts=None,
                backoff_factor=0.5,
                max_timeout_retry_wait_time=60,
            ),
        )
        client.restore_login(creds.user_id, creds.device_id, creds.access_token)
        # A restart resumes where the last recorded sync ended.
        self._saved_token = client.loaded_sync_token = client.store.load_sync_token() or ""
        client.install_recipient_filter()
        client.add_event_callback(self._on_invite, InviteMemberEvent)  # type: ignore[arg-type]
        client.add_event_callback(self._on_message, RoomMessageText)  # type: ignore[arg-type]
        client.add_event_callback(self._on_undecryptable, MegolmEvent)  # type: ignore[arg-type]
        client.add_event_callback(self._on_media, (RoomEncryptedMedia, RoomMessageMedia))  # type: ignore[arg-type]
        client.add_response_callback(self._on_sync, SyncResponse)  # type: ignore[arg-type]
        self.client = client
        return client

    # -- sync, invites, readiness --------------------------------------------------------

    async def _on_sync(self, response: SyncResponse) -> None:
        assert self.client is not None
        await self._take_received(response.next_batch)
        self._backoff = 1.0
        if (
            not self.cross_signed
            and not self.client.should_upload_keys
            and time.monotonic() >= self._cross_sign_after
        ):
            self._spawn(self._cross_sign())
        if not self._ready:
            self._ready = True
            self._ready_path.write_text(str(self.started_ms), encoding="utf-8")
            log.info("bot ready as %s", self.settings.bot_user_id)
            self._spawn(self.services.forget_old_events())
            self._spawn(self._recover_pending())
            self._spawn(SolicitationChats(self.client, self.services, self._send).run_forever())

    async def _cross_sign(self) -> None:
        assert self.client is not None
        if self.cross_signed:
            return
        self.cross_signed = True  # one attempt at a time; reset on failure
        try:
            uploaded = await ensure_cross_signed(
                self.settings.homeserver.url,
                self.client.access_token,
                self.client.user_id,
                self.client.device_id,
                self.deployment.path("bot", "cross_signing.json"),
            )
            log.info("device cross-signed by its owner%s", " (uploaded)" if uploaded else "")
        except Exception as exc:
            self.cross_signed = False
            self._cross_sign_after = time.monotonic() + (30 if self._ready else 5)
            log.warning("cross-signing not done yet: %s", exc)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        assert self.client is not None
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if _server_of(event.sender) != self.settings.server_name:
            log.info("declining invite from another server")
            await self.client.room_leave(room.room_id)
            return
        result = await self.client.join(room.room_id)
        log.info("joined room on invite: %s", type(result).__name__)

    def _is_fresh(self, event: Any) -> bool:
        """Resuming from a saved sync token, every event is new to the bot (sent while it
        was down or taking over); a first sync's timeline is history."""
        return bool(self._saved_token) or event.server_timestamp >= self.started_ms - (
            FRESH_GRACE_MS
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- messages ------------------------------------------------------------------------

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        assert self.client is not None
        if event.sender == self.client.user_id or not self._is_fresh(event):
            return
        if _may_concern_bot(event):
            self._received.append((room.room_id, event))
            await _hold("received", event.event_id)

    async def _take_received(self, token: str) -> None:
        """After nio ran the event callbacks of a sync response: the messages it brought
        that the bot may have to handle are recorded (pending, one transaction), then its
        sync token is saved, then they are handled. A death at any step loses none: the
        next start syncs them again, or finds them pending."""
        assert self.client is not None
        batch, self._received = self._received, []
        try:
            claimed = set(await self.services.receive([(e.event_id, r) for r, e in batch]))
        except BaseException:
            self.client.next_batch = self._saved_token  # not recorded: sync them again
            raise
        self.client.store.save_sync_token(token)
        self._saved_token = token
        for room_id, event in batch:
            if event.event_id in claimed:
                claimed.discard(event.event_id)
                self._spawn(self._handle(room_id, event))

    async def _recover_pending(self) -> None:
        """Becoming active: the messages recorded but not handled by the instance that
        died are fetched again, decrypted with the shared crypto store, and handled
        (however old)."""
        for event_id, room_id in await self.services.claim_pending():
            self._spawn(self._recover(room_id, event_id))

    async def _recover(self, room_id: str, event_id: str) -> None:
        event = await self._fetch(room_id, event_id)
        if isinstance(event, RoomMessageText):
            await self._handle(room_id, event)
        elif event is not None:
            await self.services.finish(event_id)  # no longer a message (redacted)
        else:
            self.services.release(event_id)  # left for the next start

    async def _fetch(self, room_id: str, event_id: str) -> Any:
        """The event from the homeserver, decrypted; None if it cannot be had now."""
        assert self.client is not None
        response = await self.client.room_get_event(room_id, event_id)
        if not isinstance(response, RoomGetEventResponse):
            log.warning("pending message not fetched: %s", getattr(response, "message", ""))
            return None
        if not isinstance(response.event, MegolmEvent):
            return response.event
        try:
            return self.client.decrypt_event(response.event)
        except EncryptionError:
            log.warning("pending message not decrypted (its key may come later)")
            return None

    async def _on_media(
        self, room: MatrixRoom, event: RoomEncryptedMedia | RoomMessageMedia
    ) -> None:
        """A file sent in a dossier's room: its address is recorded, so the room's purge
        deletes it too (inside an encrypted event, the homeserver cannot see it)."""
        try:
            if await asyncio.to_thread(self.services.dossiers.dossier_id_for_room, room.room_id):
                await asyncio.to_thread(
                    retention.record_room_media, self.services.engine, room.room_id, event.url
                )
        except Exception as exc:
            log.error("file of a dossier room not recorded: %s", type(exc).__name__)

    async def _handle(self, room_id: str, event: RoomMessageText) -> None:
        """A claimed message handled, then marked done (stopped before: left pending)."""
        try:
            async with self._slots, self._room_locks[room_id]:
                await _hold("claimed", event.event_id)
                try:
                    await self._handle_message(room_id, event)
                except Exception:
                    log.exception("message handling failed")
                await _hold("answered", event.event_id)
        except BaseException:
            self.services.release(event.event_id)
            raise
        try:
            await self.services.finish(event.event_id)
        except Exception as exc:
            log.error("handled message not marked done: %s", type(exc).__name__)

    async def _handle_message(self, room_id: str, event: RoomMessageText) -> None:
        thread_root, in_reply_to = _relations(event)
        body = event.body
        if is_command(body):
            began = time.monotonic()
            queued_ms = time.time() * 1000 - event.server_timestamp
            reply = await dispatch(
                self.services,
                event.sender,
                room_id,
                event.event_id,
                body,
                self.lang,
                thread_root=thread_root or event.event_id,
            )
            ran = time.monotonic()
            if reply is not None:
                await self._answer(room_id, event.event_id, thread_root, reply)
            log.info(
                "command %s: %.0f ms after sending, run in %.0f ms, answered in %.0f ms",
                body.split(None, 1)[0][:20],
                queued_ms,
                (ran - began) * 1000,
                (time.monotonic() - ran) * 1000,
            )
            return
        dialogue = await self.services.dialogue(room_id, event.sender)
        if dialogue is not None and thread_root == dialogue.thread_root:
            # Answers are written in the form's thread; the room's talk goes on beside it.
            ctx = Context(event.sender, room_id, event.event_id, dialogue.lang, self.services)
            reply = await self._safe(ctx, formulaire.answer(ctx, dialogue, body))
            await self._answer(room_id, event.event_id, thread_root, reply)
            return
        candidates = [e for e in (in_reply_to, thread_root) if e]
        if not candidates:
            return
        found = await self.services.note_for(candidates)
        if found is None:
            return
        dossier_id, note_id = found
        if await self.services.dossier_for_room(room_id) != dossier_id:
            return  # a thread of another room's note: never write across dossiers
        ctx = Context(event.sender, room_id, event.event_id, self.lang, self.services)
        reply = await self._safe(ctx, note.reply_to_note(ctx, dossier_id, note_id, body))
        await self._answer(room_id, event.event_id, thread_root, reply)

    async def _safe(self, ctx: Context, work: Any) -> Reply:
        """Run a non-command step (form answer, note reply) with the dispatcher's errors."""
        try:
            result: Reply = await work
            return result
        except (CommandError, ApiError) as exc:
            return error_reply(ctx.lang, exc.message, None)
        except Exception:
            log.exception("step failed")
            return error_reply(ctx.lang, ctx.t("erreur interne du bot", "internal error"), None)

    async def _answer(
        self, room_id: str, event_id: str, thread_root: str | None, reply: Reply
    ) -> None:
        root = thread_root or event_id
        plain, html = reply.shown()
        sent = await self.reply(
            room_id, event_id, plain, html, root, reply.mentions, tx_id("reply", event_id)
        )
        if reply.note_id and reply.dossier_id and sent:
            await self.services.link_note([event_id, root, sent], reply.dossier_id, reply.note_id)
        if reply.follow_up is not None:
            later = reply.follow_up

            async def follow() -> None:
                more = await later()
                if more is not None:
                    follow_tx = tx_id("follow", event_id)
                    await self.reply(room_id, event_id, *more.shown(), root, tx=follow_tx)

            self._spawn(follow())

    async def _on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        assert self.client is not None
        if not self._is_fresh(event) or event.sender == self.client.user_id:
            return
        log.warning("undecryptable event in a room; requesting the room key")
        with contextlib.suppress(Exception):
            await self.client.request_room_key(event)
        text = UNDECRYPTABLE_EN if self.lang == "en" else UNDECRYPTABLE_FR
        await self.reply(room.room_id, event.event_id, text)

    # -- sending -------------------------------------------------------------------------

    async def _send(
        self, room_id: str, event_type: str, content: dict[str, Any], tx: str | None = None
    ) -> str | None:
        assert self.client is not None
        room = self.client.rooms.get(room_id)
        if room is not None and room.encrypted:
            allowed = await self.services.circle_users(room_id)
            if allowed is not None:
                allowed = allowed | {self.client.user_id}
            self.client.set_recipients(room_id, allowed)
        response = await self.client.room_send(
            room_id, event_type, content, tx_id=tx, ignore_unverified_devices=True
        )
        if isinstance(response, RoomSendResponse):
            return str(response.event_id)
        log.error("send failed: %s", getattr(response, "message", response))
        return None

    async def reply(
        self,
        room_id: str,
        event_id: str,
        plain: str,
        html: str | None = None,
        thread_root: str | None = None,
        mentions: tuple[str, ...] = (),
        tx: str | None = None,
    ) -> str | None:
        """Answer in the thread of the command (with a reply fallback for older clients);
        ``tx``: its transaction id (``tx_id``), when it must be sent once."""
        content: dict[str, Any] = {
            "msgtype": "m.notice",
            "body": plain,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": thread_root or event_id,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": event_id},
            },
            "m.mentions": {"user_ids": list(mentions)},
        }
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = html
        return await self._send(room_id, "m.room.message", content, tx)

    async def run_forever(self) -> None:
        client = await self.start()
        while True:
            try:
                self._pause(await sync_from_full_state(client))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._pause(type(exc).__name__)
            except Exception:
                log.exception("sync loop failed")
                self._pause("error")
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 60.0)

    def _pause(self, why: str) -> None:
        """Reconnect with exponential backoff (1 s, 2 s… 60 s; back to 1 s after a sync)."""
        log.warning("sync interrupted (%s); retrying in %.0f s", why, self._backoff)


async def _main(deployment: Deployment) -> None:
    bot = CoordinationBot(deployment)
    bot._ready_path.unlink(missing_ok=True)
    task = asyncio.create_task(bot.run_forever())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("bot stopping")
    finally:
        if bot.client is not None:
            await bot.client.close()
        if bot.services.room_sync is not None:
            await bot.services.room_sync.close()
        bot._ready_path.unlink(missing_ok=True)


def run(deployment: Deployment) -> None:
    asyncio.run(_main(deployment))
