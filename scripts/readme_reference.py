#!/usr/bin/env python3
"""Rewrite the README's generated reference of accepted values (roles, sexes, pathways…)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maillon.wiring.reference import rewrite

if __name__ == "__main__":
    changed = rewrite(Path(__file__).resolve().parent.parent / "README.md")
    print("README.md mis à jour." if changed else "README.md déjà à jour.")
