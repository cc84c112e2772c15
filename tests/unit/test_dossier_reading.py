"""Pure pieces of working in a dossier: search folding and excerpts, document types and
names, the PPCS PDF's text."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader

from dossier_api.domain.attachments import clean_name, sniff
from dossier_api.domain.core import ApiError
from dossier_api.domain.ppcs_pdf import Person, PpcsDocument, latin1, render_ppcs
from dossier_api.domain.reading import match, parse_kinds
from maillon.shared.text import fold


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Œdème des chevilles", "oedeme"),
        ("Hématome à l'ÉPAULE", "hematome epaule"),
        ("télé-assistance refusée", "teleassistance"),
        ("Jean-Pierre  Dupont", "jean pierre"),
        ("l’infirmière", "linfirmiere"),
    ],
)
def test_search_ignores_accents_case_hyphens_and_apostrophes(text: str, query: str) -> None:
    terms = fold(query)[0].split()
    assert match(text, terms) is not None


def test_every_word_must_occur_and_the_excerpt_is_the_original_text() -> None:
    text = "x" * 100 + " Chute à domicile, hématome " + "y" * 100
    assert match(text, ["chute", "absent"]) is None
    excerpt = match(text, ["hematome"])
    assert excerpt is not None and "Chute à domicile, hématome" in excerpt
    assert excerpt.startswith("…") and excerpt.endswith("…")


def test_timeline_kinds() -> None:
    assert parse_kinds("note, task") == {"note", "task"}
    assert "room" in parse_kinds(None)
    with pytest.raises(ApiError) as refused:
        parse_kinds("note,potins")
    assert refused.value.status == 400 and "potins" in refused.value.message


def test_documents_are_recognised_by_their_bytes() -> None:
    assert sniff(b"%PDF-1.7\n...") == "application/pdf"
    assert sniff(b"\x89PNG\r\n\x1a\nxxxx") == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0xxxx") == "image/jpeg"
    assert sniff(b"<html><script>alert(1)</script>") is None
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("C:\\docs\\cr\u202e.pdf") == "cr.pdf"
    assert clean_name("  ") == "document"


def test_ppcs_pdf_in_french_with_names() -> None:
    doc = PpcsDocument(
        patient="MARTIN Jeanne",
        sex="F",
        birth_date=dt.date(1941, 3, 1),
        pathway="DAC — situation complexe",
        version=2,
        updated_at=dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
        author=Person("Dr Alice Durand", "médecin"),
        team=(Person("Léa Roux", "infirmière", "IDE"),),
        plan={
            "problems": [{"problem": "Chutes", "goals": ["Cœur de l'œuvre"]}],
            "actions": [
                {"action": "Visite", "who": "@lea:localhost", "when": "2026-12-03"},
                {"action": "Appel", "who": "@inconnu:localhost"},
            ],
            "unmet_goals": [],
        },
        people={"@lea:localhost": Person("Léa Roux", "infirmière")},
    )
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_ppcs(doc))).pages)
    assert "née le 1er mars 1941" in text
    assert "mardi 1er décembre 2026 à 10h30" in text
    assert "3 décembre 2026" in text and "Léa Roux (infirmière)" in text
    assert "Coeur de l'oeuvre" in text  # outside Latin-1, spelled out
    assert "@" not in text and "membre du cercle" in text
    assert latin1("€ – …") == "EUR - ..."
