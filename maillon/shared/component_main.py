"""Common entry point of the Maillon processes: ``python -m COMPONENT --dir DIR``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from maillon.shared.lease import hold_lease
from maillon.shared.settings import Deployment, SettingsError, load
from maillon.shared.web import setup_logging


def run_component(name: str, run: Callable[[Deployment], None], leased: bool = False) -> None:
    """``leased``: one active instance (PostgreSQL lease, see ``maillon.shared.lease``);
    this process waits as a standby while another holds it."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    parser.add_argument("--dir", required=True, help="dossier du déploiement")
    args = parser.parse_args()
    try:
        deployment = load(args.dir)
    except SettingsError as exc:
        print(f"{name} : configuration refusée : {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(deployment.settings.log_level, name)
    lease = hold_lease(deployment, name) if leased else None
    run(deployment)
    del lease  # held until the process ends
