"""Maillon's own deployment configuration (``maillon.yaml`` + ``secrets.yaml``).

Parsed once per process into frozen dataclasses; a bad value is refused with its key.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from maillon.shared.text import digits
from maillon.shared.typed_config import PORT, ConfigKeyError, parse, port_check

CONFIG_FILE = "maillon.yaml"
SECRETS_FILE = "secrets.yaml"


class SettingsError(Exception):
    """The deployment's configuration cannot be used; the message names file and key."""


# An optional address users' browsers reach.
HTTP_URL = {
    "check": lambda v: (
        None
        if v is None or str(v).startswith(("http://", "https://"))
        else "adresse http:// ou https:// attendue"
    )
}


@dataclass(frozen=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = field(default=8090, metadata=PORT)
    # Address users' browsers reach (behind a reverse proxy); the listener's by default.
    public_url: str | None = field(default=None, metadata=HTTP_URL)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def external_url(self) -> str:
        return (self.public_url or self.url).rstrip("/")


# client: client-server traffic (event creation, keys, login, rooms…); sync: /sync and /events,
# one user always on the same worker; event_persister: stream_writers.events, sharded by room;
# appservice_pusher: transactions to application services and push notifications;
# background: Synapse's background tasks and the user directory.
WorkerRole = Literal[
    "client", "sync", "event_persister", "federation_sender", "appservice_pusher", "background"
]


@dataclass(frozen=True)
class SynapseWorker:
    name: str = field(
        metadata={
            "check": lambda v: (
                None
                if re.fullmatch(r"[a-z][a-z0-9_]{0,30}", str(v)) and v != "main"
                else "nom de worker : minuscules, chiffres et _ (pas « main »)"
            )
        }
    )
    role: WorkerRole
    port: int = field(metadata=PORT)  # its HTTP listener (loopback): client, replication or health


def _check_redis_url(value: object) -> str | None:
    if value is None or str(value).startswith(("redis://", "rediss://")):
        return None
    return "adresse redis://hôte:port attendue"


@dataclass(frozen=True)
class WorkerSettings:
    """A Synapse worker deployment (``maillon init --workers``): nginx listens on the
    homeserver URL and routes each endpoint to its worker."""

    main_port: int = field(metadata=PORT)  # the main process's client listener (behind nginx)
    replication_port: int = field(metadata=PORT)
    processes: tuple[SynapseWorker, ...] = field(metadata={"check": lambda v: _check_workers(v)})
    # None: `maillon up` starts a private Redis on a Unix socket of the deployment.
    redis_url: str | None = field(default=None, metadata={"check": _check_redis_url})
    # The dossier API's processes (loopback ports): nginx listens on the dossier API's
    # address and spreads requests over them. Empty: one process on that address.
    dossier_api_ports: tuple[int, ...] = field(
        default=(), metadata={"check": lambda v: _check_ports(v)}
    )

    def of_role(self, role: str) -> tuple[SynapseWorker, ...]:
        return tuple(w for w in self.processes if w.role == role)


def _check_ports(ports: object) -> str | None:
    assert isinstance(ports, tuple)
    for port in ports:
        if not isinstance(port, int) or isinstance(port, bool):
            return f"numéro de port attendu : {port!r}"
        problem = port_check(port)
        if problem:
            return problem
    return "deux processus sur le même port" if len(set(ports)) != len(ports) else None


def _check_workers(workers: object) -> str | None:
    assert isinstance(workers, tuple)
    names = [w.name for w in workers]
    if len(set(names)) != len(names):
        return "deux workers portent le même nom"
    roles = {w.role for w in workers}
    missing = [r for r in ("client", "sync", "event_persister") if r not in roles]
    if missing:
        return "rôle(s) sans worker : " + ", ".join(missing)
    for single in ("appservice_pusher", "background"):
        if sum(w.role == single for w in workers) > 1:
            return f"un seul worker « {single} » possible"
    return None


@dataclass(frozen=True)
class HomeserverSettings:
    url: str = "http://127.0.0.1:8008"
    config_file: str = "homeserver.yaml"
    # Address browsers reach (Synapse's public_baseurl); ``url`` by default.
    public_url: str | None = field(default=None, metadata=HTTP_URL)
    # Pro Santé Connect is configured in homeserver.yaml (``maillon init --psc-client-id``):
    # the workspace's login page offers it.
    pro_sante_connect: bool = False
    federation_port: int | None = field(default=None, metadata=PORT)
    workers: WorkerSettings | None = None


@dataclass(frozen=True)
class BotSettings:
    localpart: str = "coordination"
    display_name: str = "Coordination"
    language: str = field(
        default="fr",
        metadata={"check": lambda v: None if v in ("fr", "en") else "langue fr ou en"},
    )


@dataclass(frozen=True)
class AppserviceSettings:
    listener: Listener = field(default_factory=lambda: Listener(port=8091))
    id: str = "maillon"
    sender_localpart: str = "maillon"
    ghost_prefix: str = "_maillon_"
    circle_expiry_check_seconds: float = field(
        default=60.0, metadata={"check": lambda v: None if v > 0 else "durée positive attendue"}
    )


def _check_tls_mode(value: object) -> str | None:
    return None if value in ("none", "starttls", "tls") else "none, starttls ou tls"


TLS_MODE = {"check": _check_tls_mode}
POSITIVE = {"check": lambda v: None if v > 0 else "valeur positive attendue"}


def _check_networks(value: object) -> str | None:
    for item in value if isinstance(value, tuple) else ():
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            return f"réseau invalide : {item!r} (ex. 127.0.0.0/8)"
    return None


def _check_dns_servers(value: object) -> str | None:
    for item in value if isinstance(value, tuple) else ():
        host, _, port = str(item).rpartition(":") if ":" in str(item) else (item, "", "")
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            return f"serveur DNS invalide : {item!r} (adresse IP[:port] attendue)"
        if port and not (digits(port) and 1 <= int(port) <= 65535):
            return f"port de serveur DNS invalide : {item!r}"
    return None


@dataclass(frozen=True)
class MailInbound:
    """The relay's SMTP listener (mail for the dossiers' addresses).

    Peers outside ``trusted_networks`` (loopback by default) must use TLS when ``tls`` is
    set, and present a client certificate verified against ``client_ca_file`` when
    ``require_client_certificate`` is true (the MSSanté operators' servers do). Mail from
    a peer without a certificate is checked with SPF/DKIM/DMARC (DNS: ``dns_servers``, or
    the system's). A peer that names ``max_unknown_recipients`` unknown addresses within
    ``unknown_recipients_window_seconds`` gets ``421`` until the window has passed.
    ``processes``: 0, the appservice listens itself; N, N SMTP intake processes of their own
    share the port (SO_REUSEPORT) and the spool (the worker deployment; on PostgreSQL the
    poster is woken by NOTIFY, else it finds their mails within its idle second)."""

    host: str = "127.0.0.1"
    port: int = field(default=2525, metadata=PORT)
    tls: str = field(default="none", metadata=TLS_MODE)
    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None
    require_client_certificate: bool = False
    trusted_networks: tuple[str, ...] = field(
        default=("127.0.0.0/8", "::1/128"), metadata={"check": _check_networks}
    )
    dns_servers: tuple[str, ...] = field(default=(), metadata={"check": _check_dns_servers})
    max_unknown_recipients: int = field(
        default=5, metadata={"check": lambda v: None if v >= 1 else "au moins 1"}
    )
    unknown_recipients_window_seconds: float = field(default=600.0, metadata=POSITIVE)
    processes: int = field(
        default=0, metadata={"check": lambda v: None if 0 <= v <= 64 else "entre 0 et 64"}
    )

    def __post_init__(self) -> None:
        if self.tls != "none" and not self.cert_file:
            raise ConfigKeyError("cert_file", "requis avec tls: starttls ou tls")
        if self.require_client_certificate and self.tls == "none":
            raise ConfigKeyError("tls", "starttls ou tls requis avec require_client_certificate")
        if self.require_client_certificate and not self.client_ca_file:
            raise ConfigKeyError(
                "client_ca_file", "requis avec require_client_certificate (CA des certificats)"
            )


@dataclass(frozen=True)
class MailImap:
    """An MSSanté mailbox (e.g. an organisational one) polled over IMAP; the password is
    ``mail_imap_password`` in secrets.yaml."""

    host: str
    username: str
    port: int = field(default=993, metadata=PORT)
    tls: str = field(default="tls", metadata=TLS_MODE)
    mailbox: str = "INBOX"
    poll_seconds: float = field(default=30.0, metadata=POSITIVE)
    ca_file: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class MailOutbound:
    """The MSSanté operator's submission server; ``mail_smtp_password`` in secrets.yaml
    when ``username`` is set. MSSanté requires a client certificate (``client_cert_file``)."""

    host: str
    port: int = field(default=587, metadata=PORT)
    tls: str = field(default="starttls", metadata=TLS_MODE)
    username: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    ca_file: str | None = None
    verify: bool = True
    timeout_seconds: float = field(default=60.0, metadata=POSITIVE)
    # Waits before each new attempt after a temporary failure; then the failure is final.
    retry_seconds: tuple[float, ...] = (30.0, 120.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class MailSettings:
    """The MSSanté / Medimail relay inside the appservice."""

    enabled: bool = True
    # Domain of the dossiers' addresses (default: the host part of server_name).
    domain: str | None = None
    # A general address whose mails are routed by the INS of their IHE_XDM metadata.
    relay_localpart: str = "dossiers"
    # Sender domains accepted (a domain and its subdomains); MSSanté by default.
    allowed_sender_domains: tuple[str, ...] = ("mssante.fr",)
    max_message_bytes: int = field(
        default=25 * 1024 * 1024, metadata={"check": lambda v: None if v >= 1024 else "≥ 1024"}
    )
    # Attempts to post an accepted mail into its room; after the last one the room and the
    # sender are told (notice, non-delivery mail). Waits between attempts start at
    # ``delivery_backoff_seconds`` and grow by half each time, up to a minute.
    delivery_attempts: int = field(
        default=40,
        metadata={
            "check": lambda v: None if v > 0 else "au moins une tentative de remise attendue"
        },
    )
    delivery_backoff_seconds: float = field(default=0.5, metadata=POSITIVE)
    inbound: MailInbound = field(default_factory=MailInbound)
    imap: MailImap | None = None
    outbound: MailOutbound | None = None


# Documents a note may carry: the media types whose content Maillon recognises.
ATTACHMENT_MEDIA_TYPES = ("application/pdf", "image/jpeg", "image/png")


def _media_types(value: object) -> str | None:
    if isinstance(value, tuple):
        unknown = [v for v in value if v not in ATTACHMENT_MEDIA_TYPES]
        if unknown or not value:
            return "types possibles : " + ", ".join(ATTACHMENT_MEDIA_TYPES)
    return None


@dataclass(frozen=True)
class AttachmentSettings:
    """Documents attached to notes of the cahier de liaison (stored sealed)."""

    max_bytes: int = field(
        default=10 * 1024 * 1024,
        metadata={"check": lambda v: None if 1024 <= v <= 100 * 1024**2 else "1024 à 104857600"},
    )
    media_types: tuple[str, ...] = field(
        default=ATTACHMENT_MEDIA_TYPES, metadata={"check": _media_types}
    )


@dataclass(frozen=True)
class SessionSettings:
    """Sessions of the workspace pages (password login) and of widgets (OpenID exchange)."""

    # Ended after this long without a request.
    idle_seconds: float = field(default=1800.0, metadata=POSITIVE)
    # Ended this long after login, however active.
    max_seconds: float = field(default=43200.0, metadata=POSITIVE)
    # A widget's session (traded for a Matrix OpenID token) lasts at most this long.
    widget_max_seconds: float = field(default=900.0, metadata=POSITIVE)


def _at_least_one(value: object) -> str | None:
    return None if isinstance(value, int) and value >= 1 else "au moins 1"


@dataclass(frozen=True)
class EnrolmentSettings:
    """Accounts of professionals who have none yet: the invitation a coordinator sends to
    the MSSanté address the directory lists (a single-use link), and self-enrolment by RPPS
    (a code sent to that address). Requests are limited per RPPS and per source address
    over a sliding hour."""

    # How long an invitation's link stays valid.
    invitation_hours: float = field(default=168.0, metadata=POSITIVE)
    # How long a self-enrolment code stays valid, and how many wrong codes end it.
    code_minutes: float = field(default=15.0, metadata=POSITIVE)
    code_attempts: int = field(default=5, metadata={"check": _at_least_one})
    # Self-enrolment requests admitted per hour, for one RPPS and from one address.
    requests_per_rpps: int = field(default=3, metadata={"check": _at_least_one})
    requests_per_source: int = field(default=10, metadata={"check": _at_least_one})


@dataclass(frozen=True)
class Settings:
    server_name: str
    database_url: str
    homeserver: HomeserverSettings = field(default_factory=HomeserverSettings)
    dossier_api: Listener = field(default_factory=Listener)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    appservice: AppserviceSettings = field(default_factory=AppserviceSettings)
    bot: BotSettings = field(default_factory=BotSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    enrolment: EnrolmentSettings = field(default_factory=EnrolmentSettings)
    log_level: str = field(
        default="INFO",
        metadata={
            "check": lambda v: (
                None
                if v in ("DEBUG", "INFO", "WARNING", "ERROR")
                else "niveau DEBUG, INFO, WARNING ou ERROR"
            )
        },
    )

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    @property
    def bot_user_id(self) -> str:
        return self.user_id(self.bot.localpart)

    @property
    def mail_domain(self) -> str:
        return self.mail.domain or self.server_name.split(":")[0]


def _check_key(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return "clé de chiffrement illisible (base64 attendu)"
    return None if len(raw) == 32 else "clé de chiffrement de 32 octets attendue"


@dataclass(frozen=True)
class DataKey:
    id: str
    key: str = field(metadata={"check": _check_key})

    def raw(self) -> bytes:
        return base64.b64decode(self.key)


def _check_token(value: object) -> str | None:
    if isinstance(value, str) and len(value) < 32:
        return "secret trop court (32 caractères au moins)"
    return None


TOKEN = {"check": _check_token}


@dataclass(frozen=True)
class Secrets:
    as_token: str = field(metadata=TOKEN)
    hs_token: str = field(metadata=TOKEN)
    registration_shared_secret: str = field(metadata=TOKEN)
    # The first key encrypts; every key listed may decrypt (rotation).
    data_keys: tuple[DataKey, ...] = field(
        metadata={"check": lambda v: None if v else "une clé au moins est requise"}
    )
    # Mail relay: IMAP mailbox and outbound SMTP passwords, when those are configured.
    mail_imap_password: str | None = None
    mail_smtp_password: str | None = None
    # Key of the blind indexes (finding a dossier by INS without opening identities). It
    # never rotates; absent in deployments made before it existed (a key is then derived
    # from registration_shared_secret, see maillon.shared.crypto.BlindIndex).
    index_key: str | None = field(default=None, metadata={"check": _check_key})

    def index_key_raw(self) -> bytes:
        assert self.index_key is not None
        return base64.b64decode(self.index_key)


@dataclass(frozen=True)
class Deployment:
    """A deployment directory with its parsed settings and secrets."""

    directory: Path
    settings: Settings
    secrets: Secrets

    def path(self, *parts: str) -> Path:
        return self.directory.joinpath(*parts)


def _load_yaml(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise SettingsError(
            f"{path} introuvable : ce dossier n'est pas un déploiement Maillon "
            "(créez-le avec « maillon init »)"
        ) from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} : YAML illisible ({exc})") from exc


def load(directory: str | os.PathLike[str]) -> Deployment:
    """Load and validate a deployment directory; raise :class:`SettingsError` on any problem."""
    root = Path(directory).resolve()
    parsed = {}
    for name, cls in ((CONFIG_FILE, Settings), (SECRETS_FILE, Secrets)):
        path = root / name
        try:
            parsed[name] = parse(cls, _load_yaml(path))
        except ConfigKeyError as exc:
            raise SettingsError(f"{path} : clé « {exc.key} » : {exc.message}") from exc
    settings = parsed[CONFIG_FILE]
    secrets = parsed[SECRETS_FILE]
    assert isinstance(settings, Settings) and isinstance(secrets, Secrets)
    return Deployment(root, settings, secrets)
