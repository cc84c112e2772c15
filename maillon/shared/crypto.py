"""Encryption of health data at rest: AES-256-GCM with a key ring that supports rotation.

A sealed value is ``key_id || 0x00 || nonce(12) || ciphertext+tag``; the first key of the
ring encrypts, any key of the ring decrypts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from maillon.shared.settings import DataKey


class DecryptionError(Exception):
    """A sealed value cannot be opened with the keys of this deployment."""


class KeyRing:
    def __init__(self, keys: Iterable[DataKey]) -> None:
        items = [(k.id, AESGCM(k.raw())) for k in keys]
        if not items:
            raise ValueError("at least one data key is required")
        self._current_id, self._current = items[0]
        self._by_id = dict(items)

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, plaintext, context)
        return self._current_id.encode() + b"\x00" + nonce + sealed

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        key_id, sep, rest = sealed.partition(b"\x00")
        aead = self._by_id.get(key_id.decode(errors="replace"))
        if not sep or aead is None or len(rest) < 28:
            raise DecryptionError("clé inconnue ou donnée tronquée")
        try:
            return aead.decrypt(rest[:12], rest[12:], context)
        except Exception as exc:  # InvalidTag: tampered data or wrong context
            raise DecryptionError("donnée altérée ou contexte erroné") from exc

    def seal_json(self, value: Any, context: bytes = b"") -> bytes:
        return self.seal(json.dumps(value, separators=(",", ":")).encode(), context)

    def open_json(self, sealed: bytes, context: bytes = b"") -> Any:
        return json.loads(self.open(sealed, context))
