"""The Synapse worker deployment (``maillon init --workers``): which workers exist, which
endpoints nginx routes to each, and how Redis is reached. One source for homeserver.yaml,
the workers' files, nginx.conf and docker/compose.yaml (rendered from config/templates).

The routes are those of Synapse's workers documentation (docs/workers.md, "Available worker
applications"): what is not listed stays on the main process, and so do the stream writers
other than ``events`` (typing, to_device, account_data, receipts, presence, push_rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from maillon.shared.settings import SynapseWorker, WorkerRole, WorkerSettings
from maillon.shared.text import digits

# How many workers of each role `maillon init --workers` generates (in this order).
DEFAULT_LAYOUT: tuple[tuple[WorkerRole, int], ...] = (
    ("client", 1),
    ("sync", 2),
    ("event_persister", 2),
    ("federation_sender", 1),
    ("appservice_pusher", 1),
    ("background", 1),
)
WORKER_COUNT = sum(count for _, count in DEFAULT_LAYOUT)
# Stateless dossier API processes behind nginx (sessions, limits and jobs live in the store).
DOSSIER_API_PROCESSES = 2
# Ports a worker deployment takes from --worker-base-port on: main client listener,
# replication listener, one per worker, then one per dossier API process.
PORTS_NEEDED = 2 + WORKER_COUNT + DOSSIER_API_PROCESSES
DEFAULT_WORKER_BASE_PORT = 18100

# /sync and friends: hashed on the user (the localpart in the access token).
SYNC_ROUTES = (
    r"^/_matrix/client/(r0|v3)/sync$",
    r"^/_matrix/client/(api/v1|r0|v3)/events$",
    r"^/_matrix/client/(api/v1|r0|v3)/initialSync$",
    r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
)

# Client-server endpoints any generic worker serves (round robin).
CLIENT_ROUTES = (
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/createRoom$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/publicRooms$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/joined_members$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/context/.*$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/members$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state$",
    r"^/_matrix/client/v1/rooms/.*/hierarchy$",
    r"^/_matrix/client/(v1|unstable)/rooms/.*/relations/",
    r"^/_matrix/client/v1/rooms/.*/threads$",
    r"^/_matrix/client/v1/room_summary/.*$",
    r"^/_matrix/client/(r0|v3|unstable)/account/3pid$",
    r"^/_matrix/client/(r0|v3|unstable)/account/whoami$",
    r"^/_matrix/client/(r0|v3|unstable)/account/deactivate$",
    r"^/_matrix/client/(r0|v3)/delete_devices$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/devices(/|$)",
    r"^/_matrix/client/versions$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/voip/turnServer$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/event/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/joined_rooms$",
    r"^/_matrix/client/v1/rooms/.*/timestamp_to_event$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/search$",
    r"^/_matrix/client/(r0|v3|unstable)/user/.*/filter(/|$)",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/directory/room/.*$",
    r"^/_matrix/client/(r0|v3|unstable)/capabilities$",
    r"^/_matrix/client/(r0|v3|unstable)/notifications$",
    # encryption
    r"^/_matrix/client/(r0|v3|unstable)/keys/query$",
    r"^/_matrix/client/(r0|v3|unstable)/keys/changes$",
    r"^/_matrix/client/(r0|v3|unstable)/keys/claim$",
    r"^/_matrix/client/(r0|v3|unstable)/room_keys/",
    r"^/_matrix/client/(r0|v3|unstable)/keys/upload",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/keys/device_signing/upload$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/keys/signatures/upload$",
    # registration and login
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/login$",
    r"^/_matrix/client/(r0|v3|unstable)/register$",
    r"^/_matrix/client/(r0|v3|unstable)/register/available$",
    r"^/_matrix/client/v1/register/m.login.registration_token/validity$",
    r"^/_matrix/client/(r0|v3|unstable)/password_policy$",
    # event sending: the care-circle module decides here, on the worker
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/redact",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/send",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/(join|invite|leave|ban|unban|kick)$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/join/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/knock/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/profile/",
    r"^/_matrix/client/(r0|v3|unstable)/user_directory/search$",
)


def plan_workers(ports: Iterable[int]) -> tuple[SynapseWorker, ...]:
    """The workers of DEFAULT_LAYOUT, named role1, role2…, on the given ports in order."""
    free: Iterator[int] = iter(ports)
    return tuple(
        SynapseWorker(f"{role}{n}", role, next(free))
        for role, count in DEFAULT_LAYOUT
        for n in range(1, count + 1)
    )


@dataclass(frozen=True)
class RedisTarget:
    host: str = ""
    port: int = 6379
    path: str = ""  # a Unix socket (the private Redis) instead of host and port
    password: str = ""
    dbid: str = ""
    tls: bool = False


def redis_target(workers: WorkerSettings, private_socket: str) -> RedisTarget:
    """Where Synapse finds Redis: the given redis:// URL, else the private Redis' socket.
    Raises ValueError (with a French message) on an unreadable URL."""
    if workers.redis_url is None:
        return RedisTarget(path=private_socket)
    parts = urlsplit(workers.redis_url)
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise ValueError(f"port illisible ({exc})") from exc
    if not parts.hostname:
        raise ValueError("l'hôte manque (redis://hôte:port)")
    dbid = parts.path.lstrip("/")
    if dbid and not digits(dbid):
        raise ValueError(f"numéro de base Redis illisible « {dbid} »")
    return RedisTarget(
        host=parts.hostname,
        port=port,
        password=unquote(parts.password or ""),
        dbid=dbid,
        tls=parts.scheme == "rediss",
    )


def private_redis_socket(directory: Path) -> Path:
    """The Unix socket of the Redis `maillon up` starts when no redis_url is set."""
    return directory / "run" / "redis.sock"


def worker_config_file(worker: SynapseWorker) -> str:
    return f"workers/{worker.name}.yaml"


# SMTP intake processes of a worker deployment (sharing the mail port and the spool).
MAIL_INTAKE_PROCESSES = 2

# Maillon's own components, one container each in docker/compose.yaml (supervisor keys);
# the appservice and the bot each with a standby (one active, holding a PostgreSQL lease).
MAILLON_COMPONENTS = (
    *(f"mail_intake_{n}" for n in range(1, MAIL_INTAKE_PROCESSES + 1)),
    *(f"dossier_api_{n}" for n in range(1, DOSSIER_API_PROCESSES + 1)),
    "appservice",
    "appservice_standby",
    "coordination_bot",
    "coordination_bot_standby",
)
COMPOSE_REDIS_PORT = 6379


def default_worker_settings(
    base_port: int = DEFAULT_WORKER_BASE_PORT, redis_url: str | None = None
) -> WorkerSettings:
    """The topology `maillon init --workers` generates from ``base_port`` on."""
    return worker_settings(tuple(range(base_port, base_port + PORTS_NEEDED)), redis_url)


def worker_settings(ports: tuple[int, ...], redis_url: str | None = None) -> WorkerSettings:
    """The topology on PORTS_NEEDED given ports, in the order PORTS_NEEDED says."""
    if len(ports) != PORTS_NEEDED:
        raise ValueError(f"{PORTS_NEEDED} ports attendus")
    main_port, replication_port, *rest = ports
    return WorkerSettings(
        main_port=main_port,
        replication_port=replication_port,
        processes=plan_workers(rest[:WORKER_COUNT]),
        redis_url=redis_url,
        dossier_api_ports=tuple(rest[WORKER_COUNT:]),
    )
