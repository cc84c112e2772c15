"""The INS matricule's normal form and its blind index (routing by INS opens no identity)."""

from __future__ import annotations

import base64
import os

import pytest

from dossier_api.domain.ins import identity_index, matricule_index, normalise_ins_matricule
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.settings import DataKey

NIR = "241033155500112"


def ring(secret: bytes) -> KeyRing:
    key = DataKey("k1", base64.b64encode(os.urandom(32)).decode())
    return KeyRing([key], BlindIndex(secret))


@pytest.mark.parametrize(
    "written",
    [
        NIR,
        " 241033155500112 ",
        "2 41 03 31 555 001 12",
        "2.41.03.31.555.001.12",
        "2-41-03-31-555-001-12",
        "2\u00a041\u00a003 31 555 001\t12",
    ],
)
def test_separators_are_removed(written: str) -> None:
    assert normalise_ins_matricule(written) == NIR


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "24103315550011",
        "2410331555001123",
        "441033155500112",
        "2A1033155500112",
        "24103315550011x",
        None,
        241033155500112,
    ],
)
def test_what_is_not_a_matricule_has_no_normal_form(bad: object) -> None:
    assert normalise_ins_matricule(bad) is None


def test_blind_index_is_keyed_stable_and_only_for_qualified_identities() -> None:
    secret = os.urandom(32)
    a, b = ring(secret), ring(secret)  # same index key, different data keys
    assert matricule_index(a, "2 41 03 31 555 001 12") == matricule_index(b, NIR)
    assert matricule_index(ring(os.urandom(32)), NIR) != matricule_index(a, NIR)
    digest = matricule_index(a, NIR)
    assert digest is not None and NIR not in digest and len(digest) == 64
    assert identity_index(a, {"ins_matricule": NIR}, "QUAL") == digest
    for status in ("PROV", "RECUP", "VALI", None):
        assert identity_index(a, {"ins_matricule": NIR}, status) is None
    assert identity_index(a, {"birth_name": "Martin"}, "QUAL") is None
