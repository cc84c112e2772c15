#!/usr/bin/env python3
"""Rewrite docker/compose.yaml from Maillon's worker topology (maillon/wiring/workers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maillon.wiring.compose import COMPOSE_FILE, rewrite

if __name__ == "__main__":
    print(f"{COMPOSE_FILE} mis à jour." if rewrite() else f"{COMPOSE_FILE} déjà à jour.")
