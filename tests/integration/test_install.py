"""A regular (non-editable) `pip install .` into a fresh virtual environment, then
`maillon init` and `maillon up` from a directory outside the repository: a healthy stack whose
`/v1/pathways` lists the shipped pathways.

To stay fast, the fresh environment sees the test environment's site-packages through a plain
`.pth` path line (the dependencies are found there, nothing is downloaded but the build
backend, from the pip cache); a plain path line does not run the editable install's finder, so
Maillon itself and its package data can only come from what `pip install .` put in the fresh
environment — checked below before the stack starts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

from maillon.shared.homeserver_client import register_user, request_json
from maillon.shared.settings import load
from tests.harness.ports import free_port
from tests.harness.stack import READY_LINE

ROOT = Path(__file__).resolve().parents[2]
BUILD_LEFTOVERS = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "var")
SHIPPED_PATHWAYS = {p.stem for p in (ROOT / "config" / "pathways").glob("*.yaml")}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_regular_install_gives_a_working_init_and_up(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    _run([sys.executable, "-m", "venv", str(venv)], outside, env, 120)
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        outside,
        env,
        30,
    ).strip()
    (Path(site) / "test-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # From a clean copy: a build/ left in the repository by an earlier build would leak in.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    _run([str(python), "-m", "pip", "install", "--quiet", str(source)], outside, env, 600)

    where = _run(
        [
            str(python),
            "-c",
            "import maillon, maillon_config, dossier_api, synapse_modules;"
            "print(maillon.__file__, maillon_config.__file__, dossier_api.__file__,"
            " synapse_modules.__file__)",
        ],
        outside,
        env,
        30,
    ).split()
    assert where and all(path.startswith(site) for path in where), where

    maillon = str(venv / "bin" / "maillon")
    deploy = outside / "deploy"
    ports = [free_port() for _ in range(4)]
    _run(
        [
            maillon,
            "init",
            "--dir",
            "deploy",
            "--server-name",
            "localhost",
            "--client-port",
            str(ports[0]),
            "--dossier-port",
            str(ports[1]),
            "--appservice-port",
            str(ports[2]),
            "--mail-port",
            str(ports[3]),
            "--testing",
        ],
        outside,
        env,
        120,
    )
    output: list[str] = []
    proc = subprocess.Popen(
        [maillon, "up", "--dir", "deploy"],
        cwd=outside,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: output.extend(stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any(READY_LINE in line for line in output):
            assert proc.poll() is None, "maillon up failed:\n" + "".join(output)
            assert time.monotonic() < deadline, "not ready in time:\n" + "".join(output)
            time.sleep(0.2)
        deployment = load(deploy)
        user = register_user(
            deployment.settings.homeserver.url,
            deployment.secrets.registration_shared_secret,
            "installe",
            "mot-de-passe-installe",
        )
        answer = request_json(
            "GET",
            deployment.settings.dossier_api.url + "/v1/pathways",
            token=user.access_token,
        )
        assert {p["id"] for p in answer["pathways"]} == SHIPPED_PATHWAYS
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        reader.join(timeout=5)
    assert code == 0, "".join(output)
