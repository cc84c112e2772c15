"""Common entry point of the Maillon processes: ``python -m COMPONENT --dir DIR``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from maillon.shared.settings import Deployment, SettingsError, load
from maillon.shared.web import setup_logging


def run_component(name: str, run: Callable[[Deployment], None]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    parser.add_argument("--dir", required=True, help="dossier du déploiement")
    args = parser.parse_args()
    try:
        deployment = load(args.dir)
    except SettingsError as exc:
        print(f"{name} : configuration refusée : {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(deployment.settings.log_level, name)
    run(deployment)
