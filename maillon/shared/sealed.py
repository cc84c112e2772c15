"""Sealed columns: health data encrypted at rest with the deployment's key ring (AES-GCM).

**The ORM metadata is the one registry of sealed values.** Every column that holds a sealed
value, whatever component owns its table, has a type derived from :class:`SealedColumn`;
:func:`sealed_columns` lists them and key rotation walks that list (nothing else keeps one).
A ``LargeBinary`` column sealed by hand, outside this mechanism, would escape rotation: the
rotation test refuses any binary column that is not a ``SealedColumn``.

Two kinds of sealed column:

- :class:`Sealed`: a JSON value sealed on write and opened on read by the column type itself,
  with a fixed *purpose* (the AES-GCM associated data);
- :class:`RowSealed`: bytes bound to their row: the associated data is the value of another
  column of the same row (a random token, a message-id hash, an event id), so a ciphertext
  cannot be moved to another row. The owning code seals and opens through the column type's
  ``seal``/``open`` helpers, because only it knows the row's key when it writes.

The ring is installed once per process (``install_key_ring``) from the deployment's secrets,
before the store is opened (migrations may need it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, LargeBinary, MetaData, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from maillon.shared.crypto import KeyRing

DOSSIER_PURPOSE = b"maillon.dossier"

_ring: KeyRing | None = None


def install_key_ring(ring: KeyRing) -> None:
    global _ring
    _ring = ring


def key_ring() -> KeyRing:
    if _ring is None:
        raise RuntimeError("no key ring installed: call install_key_ring() at start-up")
    return _ring


class SealedColumn(TypeDecorator[Any]):
    """Base of every sealed column type (see the module's docstring)."""

    impl = LargeBinary
    cache_ok = True

    def context_columns(self) -> tuple[str, ...]:
        """Columns of the row that :meth:`context` reads."""
        return ()

    def context(self, row: Mapping[Any, Any]) -> bytes:
        """The associated data this column's value of ``row`` is sealed with."""
        raise NotImplementedError


class Sealed(SealedColumn):
    """A JSON value encrypted at rest, sealed and opened by the column type."""

    cache_ok = True

    def __init__(self, purpose: bytes = DOSSIER_PURPOSE) -> None:
        super().__init__()
        self.purpose = purpose

    def context(self, row: Mapping[Any, Any]) -> bytes:
        return self.purpose

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else key_ring().seal_json(value, self.purpose)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        return None if value is None else key_ring().open_json(bytes(value), self.purpose)


class RowSealed(SealedColumn):
    """Bytes sealed with the value of another column of the row (``context_column``) as
    associated data. The column holds the ciphertext as is; seal and open with the helpers."""

    cache_ok = True

    def __init__(self, context_column: str) -> None:
        super().__init__()
        self.context_column = context_column

    def context_columns(self) -> tuple[str, ...]:
        return (self.context_column,)

    def context(self, row: Mapping[Any, Any]) -> bytes:
        return str(row[self.context_column]).encode()

    def _aad(self, row_key: str) -> bytes:
        return self.context({self.context_column: row_key})

    def seal(self, keys: KeyRing, plaintext: bytes, row_key: str) -> bytes:
        return keys.seal(plaintext, self._aad(row_key))

    def open(self, keys: KeyRing, sealed: bytes, row_key: str) -> bytes:
        return keys.open(bytes(sealed), self._aad(row_key))

    def seal_json(self, keys: KeyRing, value: Any, row_key: str) -> bytes:
        return self.seal(keys, json.dumps(value, separators=(",", ":")).encode(), row_key)

    def open_json(self, keys: KeyRing, sealed: bytes, row_key: str) -> Any:
        return json.loads(self.open(keys, sealed, row_key))


@dataclass(frozen=True)
class SealedColumnRef:
    table: Table
    column: Column[Any]

    @property
    def type(self) -> SealedColumn:
        assert isinstance(self.column.type, SealedColumn)
        return self.column.type

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def sealed_columns(metadata: MetaData) -> Iterator[SealedColumnRef]:
    """Every sealed column of the tables in ``metadata`` (the registry)."""
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, SealedColumn):
                yield SealedColumnRef(table, column)
