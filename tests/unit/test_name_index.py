"""The blind index of patient names: normalisation (accents, case, hyphens, apostrophes,
ligatures), digests keyed by the deployment (a name cannot be found without the key)."""

from __future__ import annotations

import base64
import os

import pytest

from dossier_api.domain.names import (
    identity_digests,
    identity_tokens,
    name_tokens,
    query_digests,
)
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.settings import DataKey


def ring(secret: bytes) -> KeyRing:
    key = DataKey("k1", base64.b64encode(os.urandom(32)).decode())
    return KeyRing([key], BlindIndex(secret))


@pytest.mark.parametrize(
    ("written", "tokens"),
    [
        ("Lefèvre-Dubois", ["lefevre", "dubois"]),
        ("LEFEVRE DUBOIS", ["lefevre", "dubois"]),
        ("  lefèvre   dubois ", ["lefevre", "dubois"]),
        ("Jean-Pierre", ["jean", "pierre"]),
        ("N'Diaye", ["n", "diaye"]),
        ("N’Diaye", ["n", "diaye"]),
        ("Œuvray", ["oeuvray"]),
        ("Lætitia", ["laetitia"]),
        ("Straße", ["strasse"]),
        ("Ézéchiel Çelik", ["ezechiel", "celik"]),
        ("Müller Müller", ["muller"]),
        ("Ｍａｒｔｉｎ", ["martin"]),  # full-width letters (NFKD)
        ("", []),
        ("--- ''", []),
    ],
)
def test_normalisation(written: str, tokens: list[str]) -> None:
    assert name_tokens(written) == tokens


def test_not_a_string_has_no_token() -> None:
    assert name_tokens(None) == [] and name_tokens(42) == []


def test_identity_tokens_cover_birth_name_used_name_and_first_names() -> None:
    identity = {
        "birth_name": "Martin",
        "used_name": "Lefèvre-Dubois",
        "first_names": "Jeanne Louise",
        "ins_matricule": "241033155500112",
    }
    assert identity_tokens(identity) == ["martin", "lefevre", "dubois", "jeanne", "louise"]
    assert identity_tokens(None) == []


def test_a_query_matches_whatever_way_the_name_is_typed() -> None:
    keys = ring(os.urandom(32))
    stored = identity_digests(keys, {"birth_name": "Lefèvre-Dubois", "first_names": "Zoé"})
    for typed in ("lefevre dubois", "LEFÈVRE", "Dubois-Lefevre", "zoe", "ZOÉ lefèvre"):
        wanted = query_digests(keys, typed)
        assert wanted and wanted <= stored, typed
    assert not query_digests(keys, "lefe") <= stored, "whole tokens only, no prefix"
    assert query_digests(keys, " - ") == set()


def test_digests_depend_on_the_deployment_key_and_hide_the_name() -> None:
    first, second = ring(os.urandom(32)), ring(os.urandom(32))
    identity = {"birth_name": "Martin", "first_names": "Jeanne"}
    a, b = identity_digests(first, identity), identity_digests(second, identity)
    assert a and b and not a & b
    assert all("martin" not in d and "jeanne" not in d for d in a)
    # Another label's digest of the same word (e.g. the INS index) is another value.
    assert first.blind_index("dossier.ins_matricule", "martin") not in a
