"""The relay inside the appservice (aiohttp cleanup context): SMTP listener, IMAP poller,
spool delivery into rooms, outbound mails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web
from sqlalchemy import Engine

from appservice.mail.authenticate import configure_resolver
from appservice.mail.imap_poller import ImapPoller
from appservice.mail.intake import Intake
from appservice.mail.outbound import Sender
from appservice.mail.parse import parse_mail
from appservice.mail.poster import MatrixSide, Poster, ReplyWatcher, report_failure
from appservice.mail.smtp_server import Handler, start_smtp
from appservice.mail.wakeup import listen_for_spooled_mail
from dossier_api.domain.mail.outbox import TrustSpace, queue_mail, relay_marker
from dossier_api.domain.mail.routing import Router
from dossier_api.domain.mail.spool import Spool, SpoolItem
from maillon.shared.crypto import KeyRing
from maillon.shared.settings import Deployment
from maillon.shared.store import make_engine

log = logging.getLogger(__name__)

RELAY = web.AppKey("mail_relay", object)
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def open_intake(deployment: Deployment) -> tuple[Engine, Spool, Router, Intake]:
    """The store, spool, routing and intake of the relay (one for each process taking mail)."""
    settings = deployment.settings
    engine = make_engine(settings.database_url, create_tables=False)
    keys = KeyRing.for_secrets(deployment.secrets)
    spool = Spool(engine, keys)
    router = Router(engine, keys, settings.mail_domain, settings.mail.relay_localpart)
    return engine, spool, router, Intake(spool, router, settings.mail, relay_marker(deployment))


class Relay:
    def __init__(self, deployment: Deployment) -> None:
        settings = deployment.settings
        self.config = settings.mail
        self.database_url = settings.database_url
        engine, self.spool, self.router, self.intake = open_intake(deployment)
        self.notified = engine.dialect.name == "postgresql"  # LISTEN/NOTIFY wakes the poster
        self.trust = TrustSpace(engine, self.config.allowed_sender_domains)
        marker = self.intake.relay_marker
        self.delivery_wake = asyncio.Event()
        self.outbox_wake = asyncio.Event()
        self.matrix = MatrixSide(deployment)
        self.marker = marker
        self.poster = Poster(
            self.matrix,
            self.spool,
            self.delivery_wake,
            on_final_failure=self.final_failure,
            max_attempts=self.config.delivery_attempts,
            backoff_seconds=self.config.delivery_backoff_seconds,
        )
        self.replies = ReplyWatcher(
            self.matrix, self.spool, self.router, marker, self.outbox_wake, self.trust
        )
        self.sender = Sender(
            self.spool,
            self.config.outbound,
            deployment.secrets.mail_smtp_password,
            lambda item, error: report_failure(self.matrix, item, error),
            self.outbox_wake,
            self.trust,
        )
        self.smtp = Handler(self.intake, self.delivery_wake, self.config.inbound)
        configure_resolver(self.config.inbound.dns_servers)
        self.imap = (
            ImapPoller(
                self.config.imap,
                deployment.secrets.mail_imap_password,
                self.intake,
                self.delivery_wake,
            )
            if self.config.imap is not None
            else None
        )
        self.server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def final_failure(self, item: SpoolItem, reason: str) -> None:
        """A mail accepted (250) that could not be posted after the last attempt: say so in
        the room (if it can still be reached) and send its sender a non-delivery notice."""
        meta, raw = await asyncio.to_thread(self.spool.payload, item.id)
        if item.kind != "mail":
            return
        mail = parse_mail(raw)
        when = item.accepted_at.strftime("%d/%m/%Y %H:%M UTC")
        subject = mail.subject or "(sans objet)"
        content = {
            "msgtype": "m.notice",
            "body": (
                f"⚠️ Un courriel de {mail.from_address} reçu le {when} (objet : {subject}) n'a "
                f"pas pu être affiché dans cette salle ({reason}). Son expéditeur en est averti."
            ),
        }
        with contextlib.suppress(Exception):
            await self.matrix.send(item.room_id, content, f"maillon.mail.{item.id}.failed")
        sender = meta.get("envelope_from") or mail.from_address
        address = await asyncio.to_thread(self.router.address_for_room, item.room_id)
        if not sender or address is None:
            return
        text = (
            "Votre courriel n'a pas pu être remis dans le dossier de coordination "
            f"destinataire.\n\nObjet : {subject}\nReçu le : {when}\nMotif : {reason}\n\n"
            "Renvoyez-le plus court ou contactez l'équipe du dossier par un autre moyen.\n"
            "-- \nAvis de non-remise automatique du relais MSSanté Maillon."
        )
        await asyncio.to_thread(
            lambda: queue_mail(
                self.spool,
                trust=self.trust,
                room_id=item.room_id,
                source_event_id=f"maillon.mail.{item.id}.dsn",
                from_address=address,
                from_name="Maillon (avis de non-remise)",
                to=[sender],
                subject=f"Non remis : {subject}",
                text=text,
                relay_marker=self.marker,
                domain=self.router.domain,
                in_reply_to=mail.message_id,
                automatic=True,
            )
        )
        self.outbox_wake.set()

    async def start(self) -> None:
        if self.config.inbound.processes == 0:  # else SMTP intake processes of their own
            self.server = await start_smtp(
                self.config.inbound, self.smtp, self.router.domain, self.config.max_message_bytes
            )
            log.info("mail relay listening on port %s", self.config.inbound.port)
        jobs: list[Coroutine[Any, Any, None]] = [
            self._matrix(),
            self.poster.run_forever(),
            self.sender.run_forever(),
        ]
        if self.notified:
            jobs.append(listen_for_spooled_mail(self.database_url, self.delivery_wake))
        if self.imap is not None:
            jobs.append(self.imap.run_forever())
        self.tasks = [asyncio.create_task(job) for job in jobs]

    async def _matrix(self) -> None:
        await self.matrix.start_client()
        assert self.matrix.client is not None
        self.replies.install(self.matrix.client)
        await self.matrix.sync_forever()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.matrix.client is not None:
            await self.matrix.client.close()


def mail_relay(deployment: Deployment) -> CleanupContext:
    """aiohttp cleanup context: run the relay while the appservice runs."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if not deployment.settings.mail.enabled:
            yield
            return
        relay = Relay(deployment)
        app[RELAY] = relay
        await relay.start()
        yield
        await relay.stop()

    return context
