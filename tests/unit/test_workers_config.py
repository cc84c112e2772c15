"""`maillon init --workers`: what it generates (real nginx checks its configuration) and what
it refuses, naming the option or key."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from maillon.shared.settings import SettingsError, load
from maillon.wiring import cli
from maillon.wiring.compose import COMPOSE_FILE, compose_yaml
from maillon.wiring.init_deployment import InitError, InitOptions, init_deployment
from maillon.wiring.supervisor import components
from maillon.wiring.workers import (
    CLIENT_ROUTES,
    DEFAULT_WORKER_BASE_PORT,
    PORTS_NEEDED,
    SYNC_ROUTES,
)

PG = "postgresql://synapse:s3cr%40t@db.example:5433/maillon"


def _init(directory: Path, **options: object) -> Path:
    return init_deployment(
        InitOptions(
            directory=directory,
            server_name="sante.example",
            database_url=str(options.pop("database_url", PG)),
            worker_ports=tuple(range(19100, 19100 + PORTS_NEEDED)),
            **options,  # type: ignore[arg-type]
        )
    )


def _nginx() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(found).exists(), "nginx absent : lancez « make test » (scripts/ensure-nginx.sh)"
    return found


def test_generated_worker_deployment(tmp_path: Path) -> None:
    root = _init(tmp_path / "d")
    settings = load(root).settings
    workers = settings.homeserver.workers
    assert workers is not None and workers.redis_url is None
    names = [w.name for w in workers.processes]
    assert names == [
        "client1",
        "sync1",
        "sync2",
        "event_persister1",
        "event_persister2",
        "federation_sender1",
        "appservice_pusher1",
        "background1",
    ]
    homeserver = yaml.safe_load((root / "homeserver.yaml").read_text())
    assert homeserver["stream_writers"] == {"events": ["event_persister1", "event_persister2"]}
    assert set(homeserver["instance_map"]) == {"main", "event_persister1", "event_persister2"}
    assert homeserver["redis"] == {"enabled": True, "path": str(root / "run" / "redis.sock")}
    assert homeserver["notify_appservices_from_worker"] == "appservice_pusher1"
    assert homeserver["pusher_instances"] == ["appservice_pusher1"]
    assert homeserver["run_background_tasks_on"] == "background1"
    assert homeserver["federation_sender_instances"] == ["federation_sender1"]
    assert homeserver["database"]["name"] == "psycopg2"
    listeners = {tuple(r["names"]) for lst in homeserver["listeners"] for r in lst["resources"]}
    assert ("replication",) in listeners
    assert all(lst["bind_addresses"] == ["127.0.0.1"] for lst in homeserver["listeners"])
    # Maillon's module is in the shared file: every worker loads it.
    assert homeserver["modules"][0]["module"] == "synapse_modules.care_circle.CareCircleModule"
    for worker in workers.processes:
        own = yaml.safe_load((root / "workers" / f"{worker.name}.yaml").read_text())
        assert own["worker_name"] == worker.name
        assert own["worker_app"] == "synapse.app.generic_worker"
        (listener,) = own["worker_listeners"]
        assert listener["port"] == worker.port and listener["bind_addresses"] == ["127.0.0.1"]
        log = yaml.safe_load((root / "workers" / f"{worker.name}.log.config").read_text())
        assert log["handlers"]["file"]["filename"].endswith(f"logs/{worker.name}.log")
        assert (root / "workers" / f"{worker.name}.yaml").stat().st_mode & 0o077 == 0


def test_nginx_accepts_the_generated_configuration_and_routes_as_documented(
    tmp_path: Path,
) -> None:
    root = _init(tmp_path / "d")
    conf = (root / "nginx.conf").read_text()
    (root / "run" / "nginx").mkdir(parents=True, exist_ok=True)
    checked = subprocess.run(
        [
            _nginx(),
            "-t",
            "-p",
            str(root / "run" / "nginx"),
            "-c",
            str(root / "nginx.conf"),
            "-e",
            str(root / "logs" / "nginx-error.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    for route in (*SYNC_ROUTES, *CLIENT_ROUTES):
        assert f'location ~ "{route}"' in conf, route
    # The admin API: a prefix location that no regex may take, loopback only.
    admin = conf.index("location ^~ /_synapse/admin")
    assert admin < conf.index("location ~ ")
    assert re.search(r"allow 127\.0\.0\.1;\s+allow ::1;\s+deny all;", conf[admin:])
    assert "hash $maillon_sync_key consistent;" in conf
    # The dossier API's address is nginx's, spread over its processes (loopback ports).
    settings = load(root).settings
    workers = settings.homeserver.workers
    assert workers is not None and len(workers.dossier_api_ports) == 2
    upstream = conf[conf.index("upstream maillon_dossier_api") :]
    upstream = upstream[: upstream.index("}")]
    for port in workers.dossier_api_ports:
        assert f"server 127.0.0.1:{port} " in upstream
    server = conf[conf.index(f"listen {settings.dossier_api.host}:{settings.dossier_api.port};") :]
    assert "proxy_pass http://maillon_dossier_api;" in server[: server.index("}")]
    assert "$request_uri" not in conf and "$args" not in conf  # no token in the access log


def test_external_redis_url_is_used_with_its_password_and_base(tmp_path: Path) -> None:
    root = _init(tmp_path / "d", redis_url="redis://:mot%20de%20passe@redis.example:6390/2")
    homeserver = yaml.safe_load((root / "homeserver.yaml").read_text())
    assert homeserver["redis"] == {
        "enabled": True,
        "host": "redis.example",
        "port": 6390,
        "password": "mot de passe",
        "dbid": "2",
    }
    assert load(root).settings.homeserver.workers.redis_url.startswith("redis://")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"database_url": None}, "PostgreSQL"),
        ({"redis_url": "redis://:x@/0"}, "--redis-url"),
        ({"redis_url": "redis://h:99999"}, "--redis-url"),
        ({"redis_url": "redis://h:6379/zero"}, "--redis-url"),
    ],
)
def test_refused_worker_options(tmp_path: Path, options: dict[str, object], message: str) -> None:
    if options.get("database_url", "") is None:
        options = {}
        with pytest.raises(InitError, match=message):
            init_deployment(
                InitOptions(
                    directory=tmp_path / "d",
                    server_name="localhost",
                    worker_ports=tuple(range(19100, 19100 + PORTS_NEEDED)),
                )
            )
        return
    with pytest.raises(InitError, match=message):
        _init(tmp_path / "d", **options)


def test_redis_url_without_workers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InitError, match="--redis-url"):
        init_deployment(
            InitOptions(directory=tmp_path / "d", server_name="localhost", redis_url="redis://h")
        )


def test_colliding_worker_port_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InitError, match="doivent différer"):
        init_deployment(
            InitOptions(
                directory=tmp_path / "d",
                server_name="localhost",
                database_url=PG,
                client_port=19103,
                worker_ports=tuple(range(19100, 19100 + PORTS_NEEDED)),
            )
        )


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ("[0, 19111]", "hors limites"),
        ("[19111, 19111]", "même port"),
        ("[deux]", "entier est attendu"),
    ],
)
def test_bad_dossier_api_ports_are_refused_naming_the_key(
    tmp_path: Path, ports: str, message: str
) -> None:
    root = _init(tmp_path / "d")
    config = root / "maillon.yaml"
    text = re.sub(
        r"dossier_api_ports: \[[^\]]*\]", f"dossier_api_ports: {ports}", config.read_text()
    )
    config.write_text(text)
    with pytest.raises(SettingsError, match=rf"homeserver\.workers\.dossier_api_ports.*{message}"):
        load(root)


def test_each_dossier_api_process_is_a_component_on_its_own_port(tmp_path: Path) -> None:
    deployment = load(_init(tmp_path / "d"))
    workers = deployment.settings.homeserver.workers
    assert workers is not None
    found = {c.key: c for c in components(deployment)}
    assert "dossier_api" not in found
    for n, port in enumerate(workers.dossier_api_ports, start=1):
        process = found[f"dossier_api_{n}"]
        assert process.ports == [(port, f"API dossier n° {n}")]
        assert process.env == {"MAILLON_INSTANCE": str(n)}
    # nginx holds the dossier API's address (checked free before anything starts).
    assert (deployment.settings.dossier_api.port, "API dossier") in found["nginx"].ports


def test_unknown_worker_role_is_refused_naming_the_key(tmp_path: Path) -> None:
    root = _init(tmp_path / "d")
    config = root / "maillon.yaml"
    config.write_text(config.read_text().replace("role: sync,", "role: synchro,", 1))
    with pytest.raises(SettingsError, match=r"homeserver\.workers\.processes\[1\]\.role"):
        load(root)


def _cli_init(directory: Path, base_port: int) -> int:
    return cli.main(
        [
            *("init", "--dir", str(directory), "--server-name", "localhost", "--workers"),
            *("--database-url", PG, "--worker-base-port", str(base_port)),
        ]
    )


def test_cli_workers_take_consecutive_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli_init(tmp_path / "d", 20000)
    assert code == 0, capsys.readouterr().err
    workers = load(tmp_path / "d").settings.homeserver.workers
    assert workers is not None
    ports = [
        workers.main_port,
        workers.replication_port,
        *(w.port for w in workers.processes),
        *workers.dossier_api_ports,
    ]
    assert ports == list(range(20000, 20000 + PORTS_NEEDED))
    assert len(workers.dossier_api_ports) == 2
    code = _cli_init(tmp_path / "e", 65530)
    assert code == 2 and "65535" in capsys.readouterr().err


def test_compose_file_is_the_generated_one_and_runs_every_component(tmp_path: Path) -> None:
    assert COMPOSE_FILE.read_text(encoding="utf-8") == compose_yaml(), (
        "run: python scripts/compose_file.py"
    )
    services = yaml.safe_load(compose_yaml())["services"]
    # The same files as `maillon init --workers` with its defaults, in /data.
    root = init_deployment(
        InitOptions(
            directory=tmp_path / "data",
            server_name="sante.example",
            database_url=PG,
            worker_ports=tuple(
                range(DEFAULT_WORKER_BASE_PORT, DEFAULT_WORKER_BASE_PORT + PORTS_NEEDED)
            ),
            redis_url="redis://127.0.0.1:6379",
        )
    )
    deployment = load(root)
    keys = [c.key for c in components(deployment)]
    commanded = {
        s["command"][1]: s for s in services.values() if s.get("command", [""])[0] == "--only"
    }
    assert sorted(commanded) == sorted(keys), "one container per component, none forgotten"
    workers = deployment.settings.homeserver.workers
    assert workers is not None
    for worker in workers.processes:
        check = " ".join(commanded[f"synapse_{worker.name}"]["healthcheck"]["test"])
        assert f"127.0.0.1:{worker.port}/health" in check, worker.name
    assert f"127.0.0.1:{workers.main_port}/health" in " ".join(
        commanded["synapse"]["healthcheck"]["test"]
    )
    for name, service in services.items():
        if name != "postgres" and name != "net":
            assert service["network_mode"] == "service:net", name
    assert services["init"]["environment"]["MAILLON_REDIS_URL"] == workers.redis_url
    entrypoint = (COMPOSE_FILE.parent / "entrypoint.sh").read_text()
    assert '--workers --redis-url "$MAILLON_REDIS_URL"' in entrypoint
