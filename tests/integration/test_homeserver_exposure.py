"""What the generated homeserver lets out: push notifications without content, and Synapse's
admin API (which bypasses every module) served on a loopback listener only — checked on the
generated configuration and on a running Synapse bound to every interface."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from maillon.shared.homeserver_client import is_up
from maillon.wiring.init_deployment import InitOptions, init_deployment
from synapse_modules.admin_guard import REASON
from tests.harness.ports import free_port

ADMIN = "/_synapse/admin/v1/server_version"


def _generated(directory: Path, bind: str, **extra: Any) -> dict[str, Any]:
    init_deployment(InitOptions(directory=directory, server_name="sante.test", bind=bind, **extra))
    config = yaml.safe_load((directory / "homeserver.yaml").read_text())
    assert isinstance(config, dict)
    return config


def _loopback(address: str) -> bool:
    return address == "localhost" or ipaddress.ip_address(address).is_loopback


def _admin_exposed(listener: dict[str, Any]) -> bool:
    """A listener that serves Synapse's admin API beyond this machine."""
    serves_client = any("client" in r["names"] for r in listener.get("resources", []))
    guarded = "/_synapse/admin" in (listener.get("additional_resources") or {})
    public = not all(_loopback(a) for a in listener["bind_addresses"])
    return serves_client and public and not guarded


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "192.0.2.10"])  # noqa: S104
def test_generated_config_pushes_no_content_and_keeps_admin_local(
    tmp_path: Path, bind: str
) -> None:
    config = _generated(tmp_path / "d", bind)
    assert config["push"]["include_content"] is False
    listeners = config["listeners"]
    assert [listener for listener in listeners if _admin_exposed(listener)] == []
    maillon = yaml.safe_load((tmp_path / "d" / "maillon.yaml").read_text())
    # Maillon's components reach Synapse (and its admin API) on loopback.
    assert _loopback(str(maillon["homeserver"]["url"]).split("//")[1].rsplit(":", 1)[0])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - test URLs
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _other_address() -> str | None:
    """An address of this machine that is not loopback (None if it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent (UDP connect)
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if _loopback(address) else address


@pytest.fixture(scope="module")
def public_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """Synapse alone, from a generated deployment whose client listener binds every
    interface: (public port, loopback admin port)."""
    directory = tmp_path_factory.mktemp("exposed")
    public, admin = free_port(), free_port()
    init_deployment(
        InitOptions(
            directory=directory,
            server_name="sante.test",
            bind="0.0.0.0",  # noqa: S104 - the point of the test
            client_port=public,
            admin_port=admin,
            testing=True,
            with_maillon=False,
        )
    )
    log = (directory / "logs" / "synapse.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "synapse.app.homeserver", "--config-path", "homeserver.yaml"],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not (is_up(f"http://127.0.0.1:{public}") and is_up(f"http://127.0.0.1:{admin}")):
            assert proc.poll() is None, (directory / "logs" / "synapse.out").read_text()
            assert time.monotonic() < deadline, "Synapse not up in 90 s"
            time.sleep(0.2)
        yield public, admin
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_admin_api_is_unreachable_on_the_listener_facing_the_network(
    public_synapse: tuple[int, int],
) -> None:
    public, admin = public_synapse
    hosts = ["127.0.0.1", *([a] if (a := _other_address()) else [])]
    for host in hosts:
        status, body = _get(f"http://{host}:{public}{ADMIN}")
        assert status == 404 and REASON in body, (host, status, body)
        status, body = _get(f"http://{host}:{public}/_synapse/admin/v2/users?from=0")
        assert status == 404 and REASON in body
        # The client API is there.
        assert _get(f"http://{host}:{public}/_matrix/client/versions")[0] == 200
    status, body = _get(f"http://127.0.0.1:{admin}{ADMIN}")
    assert status == 200 and "server_version" in body
    # The admin listener listens on loopback only.
    if (other := _other_address()) is not None:
        with pytest.raises(OSError), socket.create_connection((other, admin), timeout=5):
            pass
