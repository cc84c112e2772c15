"""JSON shapes written once: a ``TypedDict`` says what an answer holds; the serializer that
builds it is checked against it by mypy, and its JSON schema (OpenAPI 3.0 dialect:
``nullable``) is derived from it by ``schema_of`` — so the two cannot drift.

Types: ``str``, ``int``, ``bool``, ``float``, ``X | None`` (nullable), ``list[X]``,
``dict[str, X]``, ``dict[str, Any]`` (any object), ``Literal[...]`` (an enum), a nested
``TypedDict``, ``NotRequired[X]`` (a key that may be absent), and ``Annotated[X, Schema(...)]``
for what a type cannot say (a format, a description)."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)


@dataclass(frozen=True)
class Schema:
    """Keywords added to the schema of an ``Annotated`` type."""

    format: str | None = None
    description: str | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    max_length: int | None = None
    minimum: int | None = None

    def keywords(self) -> dict[str, Any]:
        found = {
            "format": self.format,
            "description": self.description,
            "pattern": self.pattern,
            "enum": list(self.enum) if self.enum is not None else None,
            "maxLength": self.max_length,
            "minimum": self.minimum,
        }
        return {k: v for k, v in found.items() if v is not None}


DateTime = Annotated[str, Schema(format="date-time")]
Date = Annotated[str, Schema(format="date")]

_SCALARS: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}


def schema_of(tp: Any) -> dict[str, Any]:
    """The JSON schema of a type (see the module's docstring for what is understood)."""
    if tp is Any:
        return {}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if is_typeddict(tp):
        return _object(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        inner, *extra = args
        out = schema_of(inner)
        for meta in extra:
            if isinstance(meta, Schema):
                out.update(meta.keywords())
        return out
    if origin in (Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        if len(kept) != 1:
            raise TypeError(f"only « X | None » unions have a JSON shape here: {tp!r}")
        return {**schema_of(kept[0]), "nullable": True}
    if origin is Literal:
        return {"type": _SCALARS[type(args[0])], "enum": list(args)}
    if origin is list:
        return {"type": "array", "items": schema_of(args[0])}
    if origin is dict:
        value = args[1] if args else Any
        return {
            "type": "object",
            "additionalProperties": True if value is Any else schema_of(value),
        }
    raise TypeError(f"no JSON shape for {tp!r}")


def _object(tp: Any) -> dict[str, Any]:
    # From the hints, not ``__required_keys__``: with postponed annotations (PEP 563) Python
    # 3.11 counts a ``NotRequired`` key as required there.
    hints = get_type_hints(tp, include_extras=True)
    properties, required = {}, []
    for name, hint in hints.items():
        if get_origin(hint) is NotRequired:
            hint = get_args(hint)[0]
        elif name in tp.__required_keys__:
            required.append(name)
        properties[name] = schema_of(hint)
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }
