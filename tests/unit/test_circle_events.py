"""Maillon's own state events as typed models: ``from_content`` validates what any server
or client could have written, ``to_content`` gives back what Maillon writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from maillon.shared.circle import CircleEntry, DirectoryEntry, DossierLink, SideRoomLink

WHEN = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
USER = "@ide:sante.test"


def test_round_trips() -> None:
    entry = CircleEntry(USER, "IDE", True, WHEN, WHEN, "@coord:sante.test", False, "@c:s", WHEN)
    assert CircleEntry.from_content(USER, entry.to_content()) == entry
    link = DossierLink("D1", True, True, "closed", "side", "k1", "professionals")
    assert DossierLink.from_content(link.to_content()) == link
    side = SideRoomLink("!side:sante.test", "coordination interne", ("sante.test",))
    assert SideRoomLink.from_content(side.room_id, side.to_content()) == side
    pro = DirectoryEntry(USER, "infirmier", rpps="10000000001", mssante="a@b.mssante.fr")
    assert DirectoryEntry.from_content(USER, pro.to_content()) == pro


@pytest.mark.parametrize(
    "content",
    [
        {"role": "SORCIER"},
        {"role": "IDE", "active": "oui"},
        {"role": "IDE", "coordinator": 1},
        {"role": "IDE", "until": "la semaine prochaine"},  # must not read as "no exit date"
        {"role": "IDE", "since": 20261201},
        {"role": "IDE", "added_by": ["@x:y"]},
        {"role": "IDE", "removed_by": 3},
    ],
)
def test_bad_circle_entries_are_refused(content: dict[str, Any]) -> None:
    assert CircleEntry.from_content(USER, content) is None


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"dossier_id": ""},
        {"dossier_id": "D1", "status": "effacé"},
        {"dossier_id": "D1", "kind": "annexe"},
        {"dossier_id": "D1", "audience": "tout le monde"},
        {"dossier_id": "D1", "allow_patient": "true"},
        {"dossier_id": "D1", "room_key": 3},
    ],
)
def test_bad_dossier_links_are_refused(content: dict[str, Any]) -> None:
    assert DossierLink.from_content(content) is None


@pytest.mark.parametrize(
    ("room_id", "content"),
    [
        ("!side:sante.test", {"via": ["sante.test"]}),
        ("!side:sante.test", {"label": 3}),
        ("!side:sante.test", {"label": "x", "via": "sante.test"}),
        ("pas-une-salle", {"label": "x", "via": ["sante.test"]}),
    ],
)
def test_bad_side_room_links_are_refused(room_id: str, content: dict[str, Any]) -> None:
    assert SideRoomLink.from_content(room_id, content) is None


def test_defaults_of_a_minimal_link_and_entry() -> None:
    assert DossierLink.from_content({"dossier_id": "D1"}) == DossierLink("D1")
    assert CircleEntry.from_content(USER, {"role": "MT"}) == CircleEntry(USER, "MT")
