"""Inbound SMTP (aiosmtpd) for the dossiers' addresses, in the appservice's event loop.

A mail gets ``250`` only once it is committed to the spool; a refusal is a 5xx with a
French/English reason and nothing stored.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from appservice.mail.authenticate import Peer, certificate_subject
from appservice.mail.intake import SENDER_REFUSED, UNKNOWN_DOSSIER, Intake, Refusal
from maillon.shared.settings import MailInbound

log = logging.getLogger(__name__)
# aiosmtpd's own logger names peers and addresses: keep it quiet (no health data in logs).
logging.getLogger("mail.log").setLevel(logging.WARNING)

T = TypeVar("T")
INTAKE_THREADS = 16  # SMTP sessions storing a mail at once (each may wait on DNS)


TLS_REQUIRED = "530 5.7.0 STARTTLS requis / must issue STARTTLS first"
CERTIFICATE_REQUIRED = (
    "530 5.7.1 Certificat client requis : présentez le certificat de votre serveur "
    "MSSanté / client certificate required"
)
PROBING = (
    "421 4.7.0 Trop d'adresses inconnues depuis votre serveur, réessayez plus tard "
    "/ too many unknown recipients, try again later"
)


class ProbeGuard:
    """Counts unknown recipients per peer address in a sliding window: beyond the limit
    the peer gets ``421`` (and is disconnected) until the window has passed, so that the
    SMTP port cannot be used to find out which dossier addresses exist."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, ip: str) -> collections.deque[float]:
        failures = self._failures.setdefault(ip, collections.deque())
        horizon = time.monotonic() - self.window
        while failures and failures[0] < horizon:
            failures.popleft()
        if not failures:
            del self._failures[ip]
            return collections.deque()
        return failures

    def blocked(self, ip: str) -> bool:
        return len(self._recent(ip)) >= self.limit

    def failed(self, ip: str) -> bool:
        """Record an unknown recipient; True if the peer is now over the limit."""
        self._recent(ip)
        self._failures.setdefault(ip, collections.deque()).append(time.monotonic())
        return self.blocked(ip)


def _peer_ip(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def _tls(server: SMTP) -> bool:
    """The session is encrypted (implicit TLS, or after STARTTLS)."""
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def _hang_up(server: SMTP) -> None:
    """Close the connection once the reply being sent is written."""
    transport = server.transport
    if transport is not None:
        asyncio.get_running_loop().call_soon(transport.close)


class Handler:
    def __init__(self, intake: Intake, wake: asyncio.Event, config: MailInbound) -> None:
        self.intake = intake
        self.wake = wake
        self.config = config
        self.accepted = 0
        self.probes = ProbeGuard(
            config.max_unknown_recipients, config.unknown_recipients_window_seconds
        )
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in config.trusted_networks]
        # Threads of its own: an intake waiting on DNS (SPF, DMARC) must not hold the
        # loop's default threads, where the poster's store calls run.
        self._pool = ThreadPoolExecutor(INTAKE_THREADS, thread_name_prefix="smtp-intake")

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)

    def trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip.removeprefix("::ffff:"))
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def peer(self, server: SMTP, session: Session) -> Peer:
        transport = server.transport
        peercert = (
            transport.get_extra_info("peercert") if transport is not None and _tls(server) else None
        )
        return Peer(_peer_ip(session), session.host_name or "", certificate_subject(peercert))

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        ip = _peer_ip(session)
        if self.probes.blocked(ip):
            _hang_up(server)
            return PROBING
        if not self.trusted(ip):
            if self.config.tls != "none" and not _tls(server):
                return TLS_REQUIRED
            certificate = self.peer(server, session).certificate
            if self.config.require_client_certificate and not certificate:
                log.warning("SMTP peer %s refused: no verified client certificate", ip)
                return CERTIFICATE_REQUIRED
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
        ip = _peer_ip(session)
        if self.probes.blocked(ip):
            _hang_up(server)
            return PROBING
        problem = await self._in_thread(
            self.intake.check_recipient, address, envelope.mail_from == "<>"
        )
        if problem == UNKNOWN_DOSSIER and self.probes.failed(ip):
            log.warning(
                "SMTP peer %s named %s unknown recipients: refused for %ss (probing)",
                ip,
                self.probes.limit,
                int(self.probes.window),
            )
            _hang_up(server)
            return PROBING
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
        peer = self.peer(server, session)
        try:
            result = await self._in_thread(
                self.intake.accept, raw, sender, list(envelope.rcpt_tos), "smtp", peer
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
    """The listener's TLS context; with ``client_ca_file``, a client certificate is asked
    for and, when presented, must be signed by that CA (else the handshake fails)."""
    if config.tls == "none":
        return None
    if not config.cert_file:
        raise ValueError("mail.inbound.cert_file est requis avec tls: starttls ou tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file)
    if config.client_ca_file:
        context.load_verify_locations(config.client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
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
            # TLS is required per peer (outside the trusted networks) in handle_MAIL.
            require_starttls=False,
        )

    loop = asyncio.get_running_loop()
    return await loop.create_server(
        factory,
        host=config.host,
        port=config.port,
        ssl=context if config.tls == "tls" else None,
        # Several intake processes share the port: the kernel spreads connections over them.
        reuse_port=config.processes > 0,
    )
