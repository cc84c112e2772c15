"""`maillon up`: start every component, wait until healthy, stop them all cleanly."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from maillon.shared.homeserver_client import HomeserverError, is_up, register_user
from maillon.shared.lease import INSTANCE_ENV, read_state
from maillon.shared.settings import Deployment
from maillon.shared.store import make_engine
from maillon.wiring import workers as workers_mod
from maillon.wiring.service_admin import lift_bot_rate_limits

STOP_GRACE_SECONDS = 15.0
RESTARTS_ALLOWED = 5  # crashes of one component within RESTART_WINDOW before giving up
RESTART_WINDOW_SECONDS = 300.0


PRIVATE_UMASK = 0o077  # what a component creates (logs, rotated logs, media, stores): owner only


def _child_setup() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphan if `maillon up` is killed
    os.umask(PRIVATE_UMASK)


def open_private_log(path: Path) -> int:
    """The component's log, owner-only (0600) even if an earlier version left it 0644."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


@dataclass
class Component:
    key: str
    label: str
    argv: list[str]
    ports: list[tuple[int, str]]
    healthy: Callable[[], bool]
    start_timeout: float
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_logs: list[Path] = field(default_factory=list)
    restartable: bool = True  # Maillon's own components restart after a crash
    restarts: list[float] = field(default_factory=list)  # when (monotonic)
    stale_files: list[Path] = field(default_factory=list)  # removed before each start
    # Consecutive components of one (non-empty) batch start together (Synapse's workers).
    batch: str = ""
    setup: Callable[[], object] | None = None  # run before each start
    env: dict[str, str] = field(default_factory=dict)

    def tail(self, lines: int = 15) -> str:
        for path in [self.log_path, *self.extra_logs]:
            if path.exists() and path.stat().st_size:
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                return "\n".join(f"    {line}" for line in text[-lines:])
        return "    (journal vide)"


def _maillon_command() -> str:
    """How the user can call `maillon` (inside the virtual environment if not on PATH)."""
    beside = Path(sys.executable).parent / "maillon"
    on_path = shutil.which("maillon")
    if on_path and Path(on_path).resolve() == beside.resolve():
        return "maillon"
    return str(beside) if beside.exists() else "maillon"


class StartupFailure(Exception):
    """A component could not start; the message says which and why."""


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """A GET answered 200 (Synapse's /health answers a plain « OK »)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - our own
            return bool(answer.status == 200)
    except (OSError, ValueError):
        return False


def redis_ping(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _synapse_components(deployment: Deployment) -> list[Component]:
    """Synapse alone, or (worker deployment) Redis, the main process, every worker, nginx."""
    s = deployment.settings
    logs = deployment.path("logs")
    hs = urlsplit(s.homeserver.url)
    hs_ports = [(hs.port or 8008, "Synapse — API client")]
    if s.homeserver.federation_port is not None:
        hs_ports.append((s.homeserver.federation_port, "Synapse — fédération"))
    config = ["--config-path", str(deployment.path(s.homeserver.config_file))]
    workers = s.homeserver.workers
    if workers is None:
        return [
            Component(
                "synapse",
                "Synapse (serveur d'accueil Matrix)",
                [sys.executable, "-m", "synapse.app.homeserver", *config],
                hs_ports,
                lambda: is_up(s.homeserver.url),
                90.0,
                logs / "synapse.out",
                extra_logs=[logs / "homeserver.log"],
                restartable=False,  # everything stands on it: its death stops the stack
            )
        ]
    found: list[Component] = []
    if workers.redis_url is None:
        sock = workers_mod.private_redis_socket(deployment.directory)
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        found.append(
            Component(
                "redis",
                "Redis (réplication des workers Synapse)",
                [
                    redis,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(sock),
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(deployment.path("run")),
                ],
                [],
                lambda: redis_ping(sock),
                30.0,
                logs / "redis.log",
                restartable=False,
                stale_files=[sock],
            )
        )
    main_url = f"http://127.0.0.1:{workers.main_port}"
    found.append(
        Component(
            "synapse",
            "Synapse — processus principal",
            [sys.executable, "-m", "synapse.app.homeserver", *config],
            [
                (workers.main_port, "Synapse — processus principal"),
                (workers.replication_port, "Synapse — réplication"),
                *hs_ports[1:],
            ],
            lambda: is_up(main_url),
            120.0,
            logs / "synapse.out",
            extra_logs=[logs / "homeserver.log"],
            restartable=False,
        )
    )
    for worker in workers.processes:
        health = f"http://127.0.0.1:{worker.port}/health"
        found.append(
            Component(
                f"synapse_{worker.name}",
                f"Synapse — worker {worker.name} ({worker.role})",
                [
                    sys.executable,
                    "-m",
                    "synapse.app.generic_worker",
                    *config,
                    "--config-path",
                    str(deployment.path(workers_mod.worker_config_file(worker))),
                ],
                [(worker.port, f"worker {worker.name}")],
                functools.partial(http_ok, health),
                120.0,
                logs / f"{worker.name}.out",
                extra_logs=[logs / f"{worker.name}.log"],
                restartable=False,
                batch="synapse_workers",
            )
        )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    nginx_dir = deployment.path("run", "nginx")
    dossier_ports = workers.dossier_api_ports
    found.append(
        Component(
            "nginx",
            "nginx (routage vers les workers)",
            [
                nginx,
                "-p",
                str(nginx_dir),
                "-c",
                str(deployment.path("nginx.conf")),
                "-e",
                str(logs / "nginx-error.log"),
            ],
            [*hs_ports[:1], *([(s.dossier_api.port, "API dossier")] if dossier_ports else [])],
            lambda: is_up(s.homeserver.url),
            30.0,
            logs / "nginx.out",
            extra_logs=[logs / "nginx-error.log"],
            restartable=False,
            setup=lambda: nginx_dir.mkdir(mode=0o700, parents=True, exist_ok=True),
        )
    )
    return found


# How long a Maillon component may take to answer after it is started (a deadline: one that
# is ready sooner is used at once). Generous, for a machine busy starting Synapse beside it.
COMPONENT_START_SECONDS = 90.0
# The start batches of Maillon's own processes (after Synapse), and of their standbys.
MAILLON_BATCH = "maillon"
STANDBY_BATCH = "maillon_standby"


def components(deployment: Deployment) -> list[Component]:
    s = deployment.settings
    logs = deployment.path("logs")
    python = sys.executable
    ready_file = deployment.path("run", "coordination_bot.ready")
    as_url = s.appservice.listener.url
    leased = [
        Component(
            "appservice",
            "Service d'application (appservice)",
            [python, "-m", "appservice", "--dir", str(deployment.directory)],
            [(s.appservice.listener.port, "appservice")],
            lambda: is_up(as_url, "/health"),
            COMPONENT_START_SECONDS,
            logs / "appservice.log",
        ),
        Component(
            "coordination_bot",
            "Bot de coordination",
            [python, "-m", "coordination_bot", "--dir", str(deployment.directory)],
            [],
            ready_file.exists,
            2 * COMPONENT_START_SECONDS,
            logs / "coordination_bot.log",
            stale_files=[ready_file],
        ),
    ]
    standbys: list[Component] = []
    if s.homeserver.workers is not None:  # each with a standby taking over if it dies
        appservice_a, appservice_b = _leased_pair(
            deployment, leased[0], lambda _ready: is_up(as_url, "/health")
        )
        bot_a, bot_b = _leased_pair(deployment, leased[1], Path.exists)
        leased, standbys = [appservice_a, bot_a], [appservice_b, bot_b]
    # Maillon's own processes need only Synapse and the store (migrated by the supervisor
    # first, see ``Supervisor.start``): they start together, each on its own core's share;
    # the standbys after them, so that instance ``a`` of each pair takes the lease.
    own = [*_mail_intakes(deployment), *_dossier_apis(deployment), *leased]
    return [
        *_synapse_components(deployment),
        *(dataclasses.replace(c, batch=MAILLON_BATCH) for c in own),
        *(dataclasses.replace(c, batch=STANDBY_BATCH) for c in standbys),
    ]


def _dossier_apis(deployment: Deployment) -> list[Component]:
    """The dossier API: one process on its address, or (worker deployment) one per port of
    ``workers.dossier_api_ports``, behind nginx listening on that address."""
    s = deployment.settings
    argv = [sys.executable, "-m", "dossier_api", "--dir", str(deployment.directory)]
    ports = s.homeserver.workers.dossier_api_ports if s.homeserver.workers else ()
    if not ports:
        return [
            Component(
                "dossier_api",
                "API dossier",
                argv,
                [(s.dossier_api.port, "API dossier")],
                lambda: is_up(s.dossier_api.url, "/health"),
                COMPONENT_START_SECONDS,
                deployment.path("logs", "dossier_api.log"),
            )
        ]
    return [
        Component(
            f"dossier_api_{n}",
            f"API dossier n° {n}",
            argv,
            [(port, f"API dossier n° {n}")],
            functools.partial(is_up, f"http://127.0.0.1:{port}", "/health"),
            COMPONENT_START_SECONDS,
            deployment.path("logs", f"dossier_api-{n}.log"),
            env={INSTANCE_ENV: str(n)},
        )
        for n, port in enumerate(ports, start=1)
    ]


INTAKE_COMMAND = (sys.executable, "-m", "appservice.mail.smtp_intake", "--dir")


def _mail_intakes(deployment: Deployment) -> list[Component]:
    """The SMTP intake processes sharing the mail port (``mail.inbound.processes``)."""
    s = deployment.settings
    if not s.mail.enabled:
        return []
    found = []
    for n in range(1, s.mail.inbound.processes + 1):
        ready = deployment.path("run", f"mail_intake-{n}.ready")
        found.append(
            Component(
                f"mail_intake_{n}",
                f"Réception SMTP MSSanté n° {n}",
                [*INTAKE_COMMAND, str(deployment.directory)],
                # The first checks the port is free; the others share it (SO_REUSEPORT).
                [(s.mail.inbound.port, "SMTP")] if n == 1 else [],
                ready.exists,
                COMPONENT_START_SECONDS,
                deployment.path("logs", f"mail_intake-{n}.log"),
                stale_files=[ready],
                env={INSTANCE_ENV: str(n)},
            )
        )
    return found


def _leased_pair(
    deployment: Deployment, base: Component, active_ok: Callable[[Path], bool]
) -> list[Component]:
    """Instance ``a`` of a leased component and its standby ``b`` (maillon.shared.lease):
    healthy once standing by, or active and answering (``active_ok(its ready file)``)."""
    pair = []
    for name in ("a", "b"):
        state = deployment.path("run", f"{base.key}-{name}.lease")
        ready = deployment.path("run", f"{base.key}-{name}.ready")

        def healthy(state: Path = state, ready: Path = ready) -> bool:
            current = read_state(state)
            return current == "standby" or (current == "active" and active_ok(ready))

        pair.append(
            dataclasses.replace(
                base,
                key=base.key if name == "a" else f"{base.key}_standby",
                label=base.label if name == "a" else f"{base.label} (relève)",
                ports=base.ports if name == "a" else [],
                healthy=healthy,
                log_path=base.log_path.with_name(f"{base.key}-{name}.log"),
                stale_files=[state, ready],
                env={INSTANCE_ENV: name},
            )
        )
    return pair


class Supervisor:
    def __init__(
        self,
        deployment: Deployment,
        out: IO[str] = sys.stdout,
        only: tuple[str, ...] = (),
    ) -> None:
        """``only``: run just these components (keys of ``components``), e.g. one per
        container in docker/compose.yaml."""
        self.deployment = deployment
        every = components(deployment)
        unknown = sorted(set(only) - {c.key for c in every})
        if unknown:
            known = ", ".join(c.key for c in every)
            raise StartupFailure(
                f"composant(s) inconnu(s) : {', '.join(unknown)} (connus : {known})"
            )
        self.components = [c for c in every if not only or c.key in only]
        self.out = out
        self._stop_requested = False

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requested = True

    def check_ports(self) -> None:
        host = self.deployment.settings.dossier_api.host
        for comp in self.components:
            for port, label in comp.ports:
                if _port_in_use(host, port):
                    raise StartupFailure(
                        f"{comp.label} ne peut pas démarrer : le port {port} ({label}) "
                        "est déjà utilisé par un autre programme."
                    )

    def _spawn(self, comp: Component) -> None:
        if comp.setup is not None:
            comp.setup()
        for stale in comp.stale_files:  # e.g. a ready file left by a crashed run
            stale.unlink(missing_ok=True)
        for extra in comp.extra_logs:  # written by the component itself (Synapse's own log)
            for existing in extra.parent.glob(extra.name + "*"):  # and its rotated copies
                os.chmod(existing, 0o600)
        log_file = open_private_log(comp.log_path)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **comp.env)
        try:
            comp.proc = subprocess.Popen(
                comp.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.deployment.directory,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
                preexec_fn=_child_setup,
            )
        finally:
            os.close(log_file)

    def _died(self, comp: Component, when: str) -> StartupFailure:
        assert comp.proc is not None
        code = comp.proc.returncode
        return StartupFailure(
            f"{comp.label} s'est arrêté {when} (code de sortie {code}).\n"
            f"  Dernières lignes de son journal ({comp.log_path}) :\n{comp.tail()}"
        )

    def _wait_healthy(self, comp: Component) -> None:
        assert comp.proc is not None
        deadline = time.monotonic() + comp.start_timeout
        while time.monotonic() < deadline:
            if self._stop_requested:
                raise StartupFailure("arrêt demandé pendant le démarrage")
            if comp.proc.poll() is not None:
                raise self._died(comp, "au démarrage")
            if comp.healthy():
                return
            time.sleep(0.2)
        raise StartupFailure(
            f"{comp.label} n'a pas répondu dans les {comp.start_timeout:.0f} s.\n"
            f"  Dernières lignes de son journal ({comp.log_path}) :\n{comp.tail()}"
        )

    def stop_all(self) -> None:
        """Maillon's components first, then what they stand on, layer by layer in the
        reverse order of start (nginx, Synapse's workers together, the main process, Redis)."""
        layers: list[list[Component]] = []
        for comp in reversed(self.components):
            same = layers and (
                (comp.restartable and layers[-1][0].restartable)
                or (comp.batch and comp.batch == layers[-1][0].batch)
            )
            if same:
                layers[-1].append(comp)
            else:
                layers.append([comp])
        for layer in layers:
            self._stop_layer(layer, time.monotonic() + STOP_GRACE_SECONDS)

    def _stop_layer(self, layer: list[Component], deadline: float) -> None:
        running = [c for c in layer if c.proc and c.proc.poll() is None]
        for comp in running:
            assert comp.proc is not None
            comp.proc.terminate()
        for comp in running:
            assert comp.proc is not None
            try:
                comp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{comp.label} ne s'arrête pas : arrêt forcé.")
                comp.proc.kill()
                comp.proc.wait()

    def start(self) -> None:
        self.check_ports()
        # The homeserver URL answers once Synapse (or, with workers, nginx) is up.
        front = "nginx" if self.deployment.settings.homeserver.workers else "synapse"
        keys = {c.key for c in self.components}
        if front not in keys and "coordination_bot" in keys:  # the homeserver runs elsewhere
            self._lift_bot_rate_limits()
        pending = list(self.components)
        migrate_first = any(c.batch == MAILLON_BATCH for c in pending)
        while pending:
            batch = [pending.pop(0)]
            while batch[0].batch and pending and pending[0].batch == batch[0].batch:
                batch.append(pending.pop(0))
            began = time.monotonic()
            for comp in batch:
                self.say(f"… démarrage : {comp.label}")
                self._spawn(comp)
            if migrate_first:  # while the first batch (Synapse, or Redis) starts
                self._migrate_store()
                migrate_first = False
            for comp in batch:
                self._wait_healthy(comp)
                self.say(f"  prêt : {comp.label} ({time.monotonic() - began:.1f} s)")
            if batch[-1].key == front:
                self._lift_bot_rate_limits()

    def _migrate_store(self) -> None:
        """Bring Maillon's store to the latest migration once, before its processes start
        together (each would otherwise migrate, one after the other)."""
        try:
            make_engine(self.deployment.settings.database_url).dispose()
        except SQLAlchemyError as exc:
            raise StartupFailure(
                f"la base de Maillon n'a pas pu être mise à jour ({type(exc).__name__} : {exc})"
            ) from exc

    def _lift_bot_rate_limits(self) -> None:
        try:
            lift_bot_rate_limits(self.deployment)
        except (HomeserverError, OSError) as exc:
            self.say(
                "ATTENTION : les limites de débit du bot n'ont pas pu être levées "
                f"({exc}) ; ses réponses pourront être ralenties."
            )

    def run(self, first_account: str | None = None) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.start()
            if first_account:
                self._ensure_first_account(first_account)
        except StartupFailure as exc:
            self.say(f"ÉCHEC : {exc}")
            self.stop_all()
            self.say("Tous les composants démarrés ont été arrêtés.")
            return 1
        self.say(self.banner())
        while not self._stop_requested:
            for comp in self.components:
                assert comp.proc is not None
                if comp.proc.poll() is not None and not self._restart(comp):
                    self.stop_all()
                    self.say("Les autres composants ont été arrêtés.")
                    return 1
            time.sleep(0.3)
        self.say("Arrêt demandé : arrêt des composants…")
        self.stop_all()
        self.say("Maillon est arrêté.")
        return 0

    def _restart(self, comp: Component) -> bool:
        """Restart a crashed Maillon component (its work is durable, it resumes where it
        stopped); False when it must not or cannot be restarted."""
        failure = self._died(comp, "en cours de fonctionnement")
        now = time.monotonic()
        comp.restarts = [t for t in comp.restarts if now - t < RESTART_WINDOW_SECONDS]
        if not comp.restartable or len(comp.restarts) >= RESTARTS_ALLOWED:
            self.say(f"ERREUR : {failure}")
            if comp.restartable:
                self.say(f"{comp.label} a redémarré {RESTARTS_ALLOWED} fois en 5 minutes.")
            return False
        comp.restarts.append(now)
        self.say(f"ATTENTION : {failure}\n  … redémarrage : {comp.label}")
        self._spawn(comp)
        try:
            self._wait_healthy(comp)
        except StartupFailure as exc:
            if self._stop_requested:  # asked to stop while it restarted: not a failure
                return True
            self.say(f"ERREUR : {exc}")
            return False
        self.say(f"{comp.label} a redémarré.")
        return True

    def _ensure_first_account(self, localpart: str) -> None:
        marker = self.deployment.path("first-account.txt")
        if marker.exists():
            return
        password = secrets.token_urlsafe(12)
        try:
            registered = register_user(
                self.deployment.settings.homeserver.url,
                self.deployment.secrets.registration_shared_secret,
                localpart,
                password,
                admin=True,
            )
        except HomeserverError as exc:
            if exc.errcode == "M_USER_IN_USE":
                return
            raise StartupFailure(f"création du premier compte impossible : {exc}") from exc
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"identifiant: {registered.user_id}\nmot de passe: {password}\n")
        self.say(
            f"Premier compte administrateur créé : {registered.user_id}\n"
            f"  mot de passe : {password}\n"
            f"  (noté dans {marker} ; changez-le dans Element après la première connexion)"
        )

    def _login_lines(self) -> list[str]:
        d = self.deployment.directory
        add = (
            f"     {_maillon_command()} user add --dir {d} prenom.nom --display-name "
            "'Prénom Nom' --password '<mot de passe solide>'"
        )
        first = self.deployment.path("first-account.txt")
        if first.exists():
            return [
                "  2. Se connecter avec le compte administrateur affiché au premier démarrage",
                f"     (identifiant et mot de passe notés dans {first}),",
                "     ou avec un compte créé par :",
                add,
            ]
        return ["  2. Se connecter avec un compte créé par :", add]

    def _worker_lines(self) -> list[str]:
        workers = self.deployment.settings.homeserver.workers
        if workers is None:
            return []
        redis = workers.redis_url or "privé (run/redis.sock)"
        lines = [
            "  Workers Synapse (derrière nginx, réplication Redis : " + redis + ") :",
            f"    main                 127.0.0.1:{workers.main_port}  en marche",
        ]
        for worker in workers.processes:
            state = (
                "en marche"
                if http_ok(f"http://127.0.0.1:{worker.port}/health")
                else "ne répond pas"
            )
            lines.append(f"    {worker.name:<20} 127.0.0.1:{worker.port}  {worker.role}, {state}")
        for key in ("appservice", "coordination_bot"):
            states = {n: read_state(self.deployment.path("run", f"{key}-{n}.lease")) for n in "ab"}
            said = ", ".join(
                f"{n} {'active' if v == 'active' else 'en relève'}" for n, v in states.items()
            )
            lines.append(f"  {key} : instances {said} (bail PostgreSQL)")
        return lines

    def banner(self) -> str:
        s = self.deployment.settings
        d = self.deployment.directory
        return "\n".join(
            [
                "",
                "Maillon est prêt.",
                f"  Synapse (API client Matrix) : {s.homeserver.url}",
                f"  API dossier                 : {s.dossier_api.url}  (/health, /openapi.json)",
                f"  Appservice                  : {s.appservice.listener.url}  (/health, /metrics)",
                f"  Bot de coordination         : {s.bot_user_id}",
                f"  Journaux                    : {d / 'logs'}",
                *self._worker_lines(),
                "",
                "Se connecter avec Element (web, bureau ou mobile) :",
                "  1. Sur l'écran de connexion, « Modifier » le serveur d'accueil et saisir",
                f"     {s.homeserver.url}",
                *self._login_lines(),
                f"  3. Ouvrir une discussion directe avec {s.bot_user_id} et écrire !aide",
                "",
                "Ctrl-C arrête tous les composants.",
            ]
        )
