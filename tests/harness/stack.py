"""A real Maillon deployment for tests: `maillon init` then `maillon up` as a subprocess."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dossier_api.domain.directory import upsert_professional
from maillon.shared.circle import DirectoryEntry
from maillon.shared.homeserver_client import Registered, register_user
from maillon.shared.settings import Deployment, load
from maillon.shared.store import make_engine
from maillon.wiring.init_deployment import InitOptions, ProSanteConnect, init_deployment
from maillon.wiring.workers import PORTS_NEEDED
from tests.harness.ports import free_port
from tests.harness.postgres import create_database, drop_database

READY_LINE = "Maillon est prêt."


@dataclass
class Stack:
    directory: Path
    server_name: str
    database_url: str | None = None
    federation: bool = False
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def create(
        cls,
        directory: Path,
        database_url: str | None = None,
        federation: bool = False,
        federation_port: int | None = None,
        peer_servers: tuple[str, ...] = (),
        workers: bool = False,
        psc: ProSanteConnect | None = None,
    ) -> Stack:
        """``workers``: Synapse workers behind nginx, a private Redis (PostgreSQL only)."""
        fed_port = (federation_port or free_port()) if federation else None
        server_name = f"localhost:{fed_port}" if federation else "localhost"
        init_deployment(
            InitOptions(
                directory=directory,
                server_name=server_name,
                database_url=database_url,
                client_port=free_port(),
                dossier_port=free_port(),
                appservice_port=free_port(),
                mail_port=free_port(),
                federation_port=fed_port,
                federation_loopback=federation,
                peer_servers=peer_servers,
                testing=True,
                worker_ports=tuple(free_port() for _ in range(PORTS_NEEDED)) if workers else None,
                psc=psc,
            )
        )
        return cls(directory, server_name, database_url, federation)

    @property
    def deployment(self) -> Deployment:
        return load(self.directory)

    @property
    def url(self) -> str:
        return self.deployment.settings.homeserver.url

    def start(self, timeout: float = 300.0, argv: list[str] | None = None) -> None:
        """Run ``maillon up`` (or the ``maillon`` command line ``argv``) until it is ready."""
        self.output.clear()
        command = argv if argv is not None else ["up", "--dir", str(self.directory)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maillon.wiring.cli", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(READY_LINE in line for line in self.output):
                return
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                raise RuntimeError("maillon up failed:\n" + "".join(self.output))
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("maillon up not ready in time:\n" + "".join(self.output))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def rotate_keys(self, drop_old: bool = True) -> subprocess.CompletedProcess[str]:
        """``maillon keys rotate`` on this deployment (Maillon stopped)."""
        command = [sys.executable, "-m", "maillon.wiring.cli", "keys", "rotate"]
        command += ["--dir", str(self.directory), *(["--drop-old"] if drop_old else [])]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def register(
        self, prefix: str = "pro", admin: bool = False, profession: str | None = "infirmier"
    ) -> Registered:
        """A new account; with a ``profession`` (the default), a professional of the
        dossier store's directory (as ``maillon user add --rpps --profession`` binds it);
        ``profession=None``: an account outside the directory (patient, relative, stranger)."""
        localpart = f"{prefix}{secrets.token_hex(3)}"
        account = register_user(
            self.url,
            self.deployment.secrets.registration_shared_secret,
            localpart,
            secrets.token_urlsafe(12),
            admin=admin,
        )
        if profession is not None:
            self.bind_directory(account.user_id, profession)
        return account

    def bind_directory(
        self, user_id: str, profession: str = "infirmier", display_name: str | None = None
    ) -> None:
        """Inscribe ``user_id`` (of this server or a peer) in this deployment's directory."""
        rpps = "".join(secrets.choice("0123456789") for _ in range(11))
        engine = make_engine(self.deployment.settings.database_url, create_tables=False)
        try:
            upsert_professional(
                engine, DirectoryEntry(user_id, profession, rpps=rpps), display_name
            )
        finally:
            engine.dispose()


@contextmanager
def postgres_stack(
    directory: Path, configure: Callable[[Stack], None] | None = None
) -> Iterator[Stack]:
    """A whole stack of its own on a fresh PostgreSQL database, started (after
    ``configure`` edited its files), then stopped and its database dropped."""
    url = create_database()
    try:
        stack = Stack.create(directory, database_url=url)
        if configure is not None:
            configure(stack)
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        drop_database(url)


@contextmanager
def postgres_stack_with_smtp(directory: Path) -> Iterator[tuple[Stack, Any]]:
    """A stack of its own on PostgreSQL whose mail relay sends to a real SMTP server (the
    MSSanté operator's), and that server's recorder (``tests.harness.mail.SinkHandler``)."""
    import yaml

    from tests.harness.mail import smtp_sink

    def send_to(stack: Stack, port: int) -> None:
        path = stack.directory / "maillon.yaml"
        config = yaml.safe_load(path.read_text())
        config.setdefault("mail", {})["outbound"] = {
            "host": "127.0.0.1",
            "port": port,
            "tls": "none",
            "retry_seconds": [0.5, 0.5],
            "timeout_seconds": 10,
        }
        path.write_text(yaml.safe_dump(config, allow_unicode=True))

    with (
        smtp_sink() as (sink, port),
        postgres_stack(directory, lambda stack: send_to(stack, port)) as stack,
    ):
        yield stack, sink
