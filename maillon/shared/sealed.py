"""Column type that stores health data sealed with the deployment's key ring (AES-GCM).

The ring is installed once per process (``install_key_ring``) from the deployment's secrets;
values are JSON, sealed on write and opened on read, so neither the SQLite file nor a
PostgreSQL dump ever holds them in clear.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from maillon.shared.crypto import KeyRing

_ring: KeyRing | None = None


def install_key_ring(ring: KeyRing) -> None:
    global _ring
    _ring = ring


def key_ring() -> KeyRing:
    if _ring is None:
        raise RuntimeError("no key ring installed: call install_key_ring() at start-up")
    return _ring


class Sealed(TypeDecorator[Any]):
    """A JSON value encrypted at rest."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else key_ring().seal_json(value, b"maillon.dossier")

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        return None if value is None else key_ring().open_json(bytes(value), b"maillon.dossier")
