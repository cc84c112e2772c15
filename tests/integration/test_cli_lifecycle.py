"""`maillon init`, `maillon up` and `maillon user add` as a newcomer runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from appservice.matrix_api import AppserviceApi
from maillon.shared.circle import DIRECTORY_ALIAS_LOCALPART, DIRECTORY_EVENT, user_state_key
from maillon.shared.homeserver_client import HomeserverError, is_up, request_json
from tests.harness.ports import free_port
from tests.harness.processes import component_pids, processes_under, wait_gone
from tests.harness.stack import Stack


def maillon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maillon.wiring.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def password_login(stack: Stack, user: str, password: str) -> dict[str, object]:
    return request_json(
        "POST",
        stack.url + "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )


def edit_yaml(path: Path, change: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))


STRONG = "cheval-agrafe-batterie-27"


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    first = maillon("init", "--dir", str(target), "--server-name", "sante.test")
    assert first.returncode == 0, first.stderr
    secrets_before = (target / "secrets.yaml").read_text()
    again = maillon("init", "--dir", str(target), "--server-name", "sante.test")
    assert again.returncode == 2
    assert "contient déjà un déploiement" in again.stderr and "--force" in again.stderr
    assert (target / "secrets.yaml").read_text() == secrets_before
    forced = maillon("init", "--dir", str(target), "--server-name", "sante.test", "--force")
    assert forced.returncode == 0
    assert (target / "secrets.yaml").read_text() != secrets_before


def test_init_generates_private_complete_deployment(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    assert maillon("init", "--dir", str(target), "--server-name", "sante.test").returncode == 0
    for name in (
        "homeserver.yaml",
        "appservice-registration.yaml",
        "maillon.yaml",
        "secrets.yaml",
        "signing.key",
        "log.config",
    ):
        path = target / name
        assert path.exists(), name
        assert path.stat().st_mode & 0o077 == 0, f"{name} must be private"
    hs = yaml.safe_load((target / "homeserver.yaml").read_text())
    assert hs["server_name"] == "sante.test"
    assert hs["database"]["name"] == "sqlite3"
    assert [m["module"] for m in hs["modules"]] == ["synapse_modules.care_circle.CareCircleModule"]
    assert hs["app_service_config_files"] == [str(target / "appservice-registration.yaml")]
    reg = yaml.safe_load((target / "appservice-registration.yaml").read_text())
    secrets = yaml.safe_load((target / "secrets.yaml").read_text())
    assert reg["as_token"] == secrets["as_token"] and reg["hs_token"] == secrets["hs_token"]
    assert hs["registration_shared_secret"] == secrets["registration_shared_secret"]
    # Two deployments never share a secret.
    other = tmp_path / "other"
    assert maillon("init", "--dir", str(other), "--server-name", "sante.test").returncode == 0
    other_secrets = yaml.safe_load((other / "secrets.yaml").read_text())
    assert other_secrets["as_token"] != secrets["as_token"]
    assert other_secrets["data_keys"][0]["key"] != secrets["data_keys"][0]["key"]


def test_init_with_postgresql_url_targets_both_stores(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    url = "postgresql://maillon:s3cret@db.internal:5433/maillon"
    result = maillon(
        "init", "--dir", str(target), "--server-name", "sante.test", "--database-url", url
    )
    assert result.returncode == 0, result.stderr
    hs = yaml.safe_load((target / "homeserver.yaml").read_text())
    assert hs["database"]["name"] == "psycopg2"
    assert hs["database"]["args"] == {
        "user": "maillon",
        "password": "s3cret",
        "dbname": "maillon",
        "host": "db.internal",
        "port": 5433,
        "cp_min": 2,
        "cp_max": 10,
    }
    assert yaml.safe_load((target / "maillon.yaml").read_text())["database_url"] == url
    bad = maillon(
        "init",
        "--dir",
        str(tmp_path / "x"),
        "--server-name",
        "s.test",
        "--database-url",
        "mysql://x@y/z",
    )
    assert bad.returncode == 2 and "--database-url" in bad.stderr


def test_up_reaches_healthy_and_sigterm_leaves_no_process(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    stack.start()
    try:
        settings = stack.deployment.settings
        assert is_up(settings.homeserver.url)
        assert request_json("GET", settings.dossier_api.url + "/health")["status"] == "ok"
        openapi = request_json("GET", settings.dossier_api.url + "/openapi.json")
        assert openapi["openapi"].startswith("3.") and "/health" in openapi["paths"]
        as_health = request_json("GET", settings.appservice.listener.url + "/health")
        assert as_health["status"] == "ok"
        banner = "".join(stack.output)
        assert settings.homeserver.url in banner and "Element" in banner
        assert "maillon user add" in banner
        assert len(processes_under(stack.directory)) >= 5  # supervisor + 4 components
        # Logs (Synapse's own and each component's output) are owner-only, like the rest.
        logs = stack.directory / "logs"
        names = {p.name for p in logs.iterdir()}
        assert {"homeserver.log", "synapse.out", "dossier_api.log", "appservice.log"} <= names
        assert logs.stat().st_mode & 0o777 == 0o700
        for path in logs.iterdir():
            assert path.stat().st_mode & 0o777 == 0o600, f"{path.name} must be private"
    finally:
        code = stack.stop()
    assert code == 0
    assert wait_gone(stack.directory) == []
    assert "Maillon est arrêté." in "".join(stack.output)


def test_init_up_starts_at_once_and_names_the_first_account(tmp_path: Path) -> None:
    """What `make run` does on a fresh machine: one command creates, starts, says how to log in."""
    directory = tmp_path / "deploy"
    stack = Stack(directory, "localhost")
    ports = {
        "--client-port": free_port(),
        "--dossier-port": free_port(),
        "--appservice-port": free_port(),
        "--mail-port": free_port(),
    }
    argv = ["init", "--dir", str(directory), "--server-name", "localhost", "--testing"]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    stack.start(argv=[*argv, "--up", "--first-account", "admin"])
    try:
        out = "".join(stack.output)
        assert "Démarrez-le avec" not in out  # it is being started: no stale next step
        assert "Premier compte administrateur créé : @admin:localhost" in out
        banner = out[out.index("Maillon est prêt.") :]
        assert "compte administrateur affiché" in banner
        assert str(directory / "first-account.txt") in banner
        password = (directory / "first-account.txt").read_text().split("mot de passe: ")[1]
        assert password_login(stack, "admin", password.strip())["user_id"] == "@admin:localhost"
    finally:
        assert stack.stop() == 0
    assert wait_gone(directory) == []


def test_components_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    stack.start()
    assert stack.proc is not None
    stack.proc.send_signal(signal.SIGKILL)
    stack.proc.wait()
    assert wait_gone(stack.directory, timeout=20) == []


def test_a_crashed_component_restarts_and_a_dead_homeserver_stops_all(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    stack.start()
    appservice = component_pids(stack.directory, b"-m\0appservice")
    assert len(appservice) == 1
    os.kill(appservice[0], signal.SIGKILL)
    url = stack.deployment.settings.appservice.listener.url + "/health"
    deadline = time.monotonic() + 60
    while "Service d'application (appservice) a redémarré." not in "".join(stack.output):
        assert time.monotonic() < deadline, "".join(stack.output)
        time.sleep(0.2)
    output = "".join(stack.output)
    assert "Service d'application (appservice) s'est arrêté en cours de fonctionnement" in output
    assert "code de sortie -9" in output
    restarted = component_pids(stack.directory, b"-m\0appservice")
    assert len(restarted) == 1 and restarted != appservice
    assert request_json("GET", url)["status"] == "ok"

    synapse = component_pids(stack.directory, b"synapse.app.homeserver")
    assert len(synapse) == 1
    os.kill(synapse[0], signal.SIGKILL)
    assert stack.proc is not None
    code = stack.proc.wait(timeout=40)
    output = "".join(stack.output)
    assert code == 1
    assert "Synapse (serveur d'accueil Matrix) s'est arrêté en cours de fonctionnement" in output
    assert "Les autres composants ont été arrêtés." in output
    assert wait_gone(stack.directory) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"unknown_option": True}, "clé « unknown_option » : clé inconnue"),
        (
            {"dossier_api": {"host": "127.0.0.1", "port": "huit mille"}},
            "clé « dossier_api.port » : un entier est attendu",
        ),
        (
            {"appservice": {"listener": {"port": 70000}}},
            "clé « appservice.listener.port » : numéro de port hors limites",
        ),
        ({"log_level": "BAVARD"}, "clé « log_level »"),
    ],
)
def test_up_refuses_a_bad_maillon_config_naming_the_key(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    stack = Stack.create(tmp_path / "deploy")
    edit_yaml(stack.directory / "maillon.yaml", change)
    result = maillon("up", "--dir", str(stack.directory))
    assert result.returncode == 2
    assert expected in result.stderr
    assert processes_under(stack.directory) == []


def test_up_refuses_a_bad_module_config_naming_the_key(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    hs_path = stack.directory / "homeserver.yaml"
    hs = yaml.safe_load(hs_path.read_text())
    hs["modules"][0]["config"]["peer_servrs"] = ["autre-region.example"]
    hs_path.write_text(yaml.safe_dump(hs))
    result = maillon("up", "--dir", str(stack.directory))
    assert result.returncode == 1
    assert "Synapse (serveur d'accueil Matrix) s'est arrêté au démarrage" in result.stdout
    assert "peer_servrs" in result.stdout
    assert "Tous les composants démarrés ont été arrêtés." in result.stdout
    assert wait_gone(stack.directory) == []


def test_up_says_which_port_is_taken(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    port = stack.deployment.settings.dossier_api.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = maillon("up", "--dir", str(stack.directory))
    assert result.returncode == 1
    assert f"le port {port} (API dossier) est déjà utilisé" in result.stdout
    assert wait_gone(stack.directory) == []


def test_user_add_creates_an_account_that_can_log_in(stack: Stack) -> None:
    result = maillon(
        "user", "add", "--dir", str(stack.directory), "jeanne.martin", "--password", "Tr3s-Secret!"
    )
    assert result.returncode == 0, result.stderr
    assert f"@jeanne.martin:{stack.server_name}" in result.stdout
    login = password_login(stack, "jeanne.martin", "Tr3s-Secret!")
    assert login["user_id"] == f"@jeanne.martin:{stack.server_name}"
    with pytest.raises(HomeserverError) as refused:
        password_login(stack, "jeanne.martin", "mauvais")
    assert refused.value.status == 403
    again = maillon(
        "user", "add", "--dir", str(stack.directory), "jeanne.martin", "--password", STRONG
    )
    assert again.returncode == 1 and "identifiant est déjà pris" in again.stderr
    invalid = maillon(
        "user", "add", "--dir", str(stack.directory), "Jeanne Martin", "--password", STRONG
    )
    assert invalid.returncode == 1 and "identifiant invalide" in invalid.stderr


def test_user_add_refuses_a_weak_password(stack: Stack) -> None:
    for weak in ("MotDePasse", "marie.durand2024", "azerty123"):
        result = maillon(
            "user", "add", "--dir", str(stack.directory), "marie.durand", "--password", weak
        )
        assert result.returncode == 2, (weak, result.stdout)
        assert "--password : mot de passe trop faible" in result.stderr
    with pytest.raises(HomeserverError):  # nothing was created by the refused commands
        password_login(stack, "marie.durand", "MotDePasse")


def test_user_add_as_admin(stack: Stack) -> None:
    result = maillon(
        "user",
        "add",
        "--dir",
        str(stack.directory),
        "admin.region",
        "--password",
        STRONG,
        "--admin",
    )
    assert result.returncode == 0, result.stderr
    token = password_login(stack, "admin.region", STRONG)["access_token"]
    me = request_json(
        "GET",
        stack.url + f"/_synapse/admin/v2/users/@admin.region:{stack.server_name}",
        token=token,
    )
    assert me["admin"] is True


def test_user_add_explains_when_synapse_is_down(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    result = maillon("user", "add", "--dir", str(stack.directory), "x", "--password", STRONG)
    assert result.returncode == 1
    assert "Synapse ne répond pas" in result.stderr and "maillon up" in result.stderr


async def test_user_add_binds_the_directory_entry(stack: Stack) -> None:
    bad = maillon(
        "user",
        "add",
        "--dir",
        str(stack.directory),
        "paul.roux",
        "--password",
        STRONG,
        "--rpps",
        "123",
        "--profession",
        "kinésithérapeute",
    )
    assert bad.returncode == 2 and "--rpps : 11 chiffres" in bad.stderr
    missing = maillon(
        "user",
        "add",
        "--dir",
        str(stack.directory),
        "paul.roux",
        "--password",
        STRONG,
        "--rpps",
        "10003456789",
    )
    assert missing.returncode == 2 and "--profession est requise" in missing.stderr
    with pytest.raises(HomeserverError):  # nothing was created by the refused commands
        password_login(stack, "paul.roux", STRONG)

    ok = maillon(
        "user",
        "add",
        "--dir",
        str(stack.directory),
        "paul.roux",
        "--password",
        STRONG,
        "--rpps",
        "10003456789",
        "--profession",
        "kinésithérapeute",
        "--structure",
        "CPTS Toulouse Nord",
        "--mssante",
        "paul.roux@kine.mssante.fr",
        "--display-name",
        "Paul Roux",
    )
    assert ok.returncode == 0, ok.stderr
    assert "Inscrit à l'annuaire : Paul Roux, kinésithérapeute, RPPS 10003456789" in ok.stdout
    assert "Rattaché à la structure : CPTS Toulouse Nord" in ok.stdout
    user_id = f"@paul.roux:{stack.server_name}"
    async with AppserviceApi.for_deployment(stack.deployment) as api:
        room = await api.resolve_alias(f"#{DIRECTORY_ALIAS_LOCALPART}:{stack.server_name}")
        assert room is not None
        entry = await api.get_state(room, DIRECTORY_EVENT, user_state_key(user_id))
    me = request_json(
        "GET",
        stack.deployment.settings.dossier_api.url + "/v1/me",
        token=password_login(stack, "paul.roux", STRONG)["access_token"],
    )
    assert me["professional"] == {
        "profession": "kinésithérapeute",
        "rpps": "10003456789",
        "adeli": None,
        "mssante": "paul.roux@kine.mssante.fr",
        "display_name": "Paul Roux",
    }
    assert [s["name"] for s in me["structures"]] == ["CPTS Toulouse Nord"]
    assert me["structures"][0]["id"] in ok.stdout
    assert entry == {
        "profession": "kinésithérapeute",
        "rpps": "10003456789",
        "adeli": None,
        "structure": "CPTS Toulouse Nord",
        "mssante": "paul.roux@kine.mssante.fr",
    }


def test_invitations_come_from_maillon_by_name(stack: Stack) -> None:
    """Patient-room invitations come from the service user: it is shown as « Maillon »."""
    deployment = stack.deployment
    service_user = deployment.settings.user_id(deployment.settings.appservice.sender_localpart)
    deadline = time.monotonic() + 60
    name = None
    while time.monotonic() < deadline:
        profile = request_json(
            "GET",
            stack.url + f"/_matrix/client/v3/profile/{service_user}",
            token=deployment.secrets.as_token,
        )
        name = profile.get("displayname")
        if name == "Maillon":
            break
        time.sleep(0.5)
    assert name == "Maillon"
