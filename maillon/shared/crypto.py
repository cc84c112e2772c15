"""Encryption of health data at rest: AES-256-GCM with a key ring that supports rotation.

A sealed value is ``key_id || 0x00 || nonce(12) || ciphertext+tag``; the first key of the
ring encrypts, any key of the ring decrypts.

Blind indexes (to find a row by a sealed value without opening any) are keyed HMAC-SHA256
digests, with a key of their own, separate from the data keys: ``index_key`` in
secrets.yaml, or, for a deployment created before it existed, a key derived with HKDF from
its registration shared secret (a secret that does not rotate). Each index derives its own
HMAC key from that one with HKDF and its label. The index key does not rotate with the data
keys (a data key rotation leaves every index valid).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from maillon.shared.settings import DataKey, Secrets

# HKDF labels: distinct from any other use of the same secrets.
_FALLBACK_INDEX_LABEL = b"maillon.blind-index.from-registration-secret.v1"
_INDEX_LABEL = b"maillon.blind-index.v1:"


class DecryptionError(Exception):
    """A sealed value cannot be opened with the keys of this deployment."""


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


class BlindIndex:
    """Keyed digests of normalised values: equal values give equal digests, and nobody
    without the index key can compute or invert one."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("blind index secret too short")
        self._secret = secret
        self._keys: dict[str, bytes] = {}

    @classmethod
    def for_secrets(cls, secrets: Secrets) -> BlindIndex:
        if secrets.index_key is not None:
            return cls(secrets.index_key_raw())
        return cls(_hkdf(secrets.registration_shared_secret.encode(), _FALLBACK_INDEX_LABEL))

    def digest(self, label: str, value: str) -> str:
        key = self._keys.get(label)
        if key is None:
            key = self._keys[label] = _hkdf(self._secret, _INDEX_LABEL + label.encode())
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


class KeyRing:
    def __init__(self, keys: Iterable[DataKey], index: BlindIndex | None = None) -> None:
        items = [(k.id, AESGCM(k.raw())) for k in keys]
        if not items:
            raise ValueError("at least one data key is required")
        self._current_id, self._current = items[0]
        self._by_id = dict(items)
        self._index = index

    @classmethod
    def for_secrets(cls, secrets: Secrets, data_keys: Iterable[DataKey] | None = None) -> KeyRing:
        """The deployment's ring: its data keys (or ``data_keys``) and its blind index."""
        return cls(
            secrets.data_keys if data_keys is None else data_keys,
            BlindIndex.for_secrets(secrets),
        )

    def blind_index(self, label: str, value: str) -> str:
        if self._index is None:
            raise RuntimeError("this key ring has no blind index key (KeyRing.for_secrets)")
        return self._index.digest(label, value)

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
