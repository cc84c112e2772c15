"""docker/compose.yaml, generated from the worker topology that `maillon init --workers`
uses (``scripts/compose_file.py`` rewrites it; a unit test fails when they differ)."""

from __future__ import annotations

from pathlib import Path

from maillon.wiring import workers as workers_mod
from maillon.wiring.init_deployment import InitOptions, template_environment

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def compose_yaml() -> str:
    defaults = InitOptions(directory=Path("/data"), server_name="localhost")
    redis_url = f"redis://127.0.0.1:{workers_mod.COMPOSE_REDIS_PORT}"
    return (
        template_environment()
        .get_template("compose.yaml.j2")
        .render(
            workers=workers_mod.default_worker_settings(redis_url=redis_url),
            client_port=defaults.client_port,
            mail_port=defaults.mail_port,
            redis_port=workers_mod.COMPOSE_REDIS_PORT,
            maillon_components=workers_mod.MAILLON_COMPONENTS,
        )
    )


def rewrite(path: Path = COMPOSE_FILE) -> bool:
    """Write the generated compose file; True if it changed."""
    text = compose_yaml()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
