"""The README's accepted values are generated from the code: they cannot drift."""

from __future__ import annotations

from pathlib import Path

import jsonschema

from dossier_api.domain.pathways import PATHWAYS
from dossier_api.http import schemas
from maillon.shared.circle import ROLES
from maillon.wiring.reference import BEGIN, END, EXAMPLE_DOSSIER, markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_block_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == markdown(), "run: python scripts/readme_reference.py"


def test_generated_block_lists_every_role_and_pathway() -> None:
    block = markdown()
    assert all(f"`{code}`" in block for code in ROLES)
    assert all(f"`{pid}` | {p.name}" in block for pid, p in PATHWAYS.items())


def test_example_body_is_accepted_by_the_api_schema() -> None:
    jsonschema.validate(EXAMPLE_DOSSIER, schemas.DOSSIER_CREATE)
