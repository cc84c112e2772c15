from __future__ import annotations

import base64
import os

import pytest

from maillon.shared.crypto import DecryptionError, KeyRing
from maillon.shared.settings import DataKey


def key(name: str) -> DataKey:
    return DataKey(name, base64.b64encode(os.urandom(32)).decode())


def test_seal_hides_plaintext_and_round_trips() -> None:
    ring = KeyRing([key("k1")])
    sealed = ring.seal(b"DUPONT Jeanne, diabete", b"ctx")
    assert b"DUPONT" not in sealed
    assert ring.open(sealed, b"ctx") == b"DUPONT Jeanne, diabete"
    assert ring.seal(b"same") != ring.seal(b"same")  # fresh nonce each time


def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = key("old"), key("new")
    sealed_before = KeyRing([old]).seal_json({"note": "avant rotation"})
    rotated = KeyRing([new, old])
    assert rotated.open_json(sealed_before) == {"note": "avant rotation"}
    assert rotated.seal(b"x").startswith(b"new\x00")
    with pytest.raises(DecryptionError):
        KeyRing([new]).open(sealed_before)


def test_tampering_or_wrong_context_is_detected() -> None:
    ring = KeyRing([key("k1")])
    sealed = bytearray(ring.seal(b"secret", b"event-1"))
    with pytest.raises(DecryptionError):
        ring.open(bytes(sealed), b"event-2")
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.open(bytes(sealed), b"event-1")
    with pytest.raises(DecryptionError):
        ring.open(b"garbage")
