"""Parse plain mappings (from YAML) into frozen dataclasses, naming the key on any error.

Used for Maillon's own configuration file and for the Synapse modules' configuration,
so that every configuration in the project is parsed once, typed and frozen.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigKeyError(ValueError):
    """A configuration value is missing, unknown or of the wrong type.

    ``key`` is the dotted path of the offending key (for example ``appservice.port``).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(value: object) -> str:
    return type(value).__name__


def _convert(tp: Any, value: object, key: str) -> object:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        present = [arg for arg in args if arg is not type(None)]
        if len(present) == 1:  # optional: the inner error names the inner key
            return _convert(present[0], value, key)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except ConfigKeyError as exc:
                errors.append(exc.message)
        raise ConfigKeyError(key, "; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigKeyError(key, f"valeur {value!r} refusée (attendu : {allowed})")
        return value
    if origin in (tuple,) and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise ConfigKeyError(key, f"une liste est attendue, pas {_describe(value)}")
        return tuple(_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return parse(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigKeyError(
                key, f"un booléen (true/false) est attendu, pas {_describe(value)}"
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigKeyError(key, f"un entier est attendu, pas {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigKeyError(key, f"un nombre est attendu, pas {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigKeyError(key, f"une chaîne est attendue, pas {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # programming error


def parse(cls: type[T], data: object, prefix: str = "") -> T:
    """Build ``cls`` (a frozen dataclass) from ``data``; reject unknown and ill-typed keys.

    A field's ``metadata["check"]`` may hold a callable returning an error message (or
    ``None``) for values that are well-typed but out of range.
    """
    where = prefix or "racine"
    if not isinstance(data, Mapping):
        raise ConfigKeyError(where, f"une table (mapping) est attendue, pas {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigKeyError(
                _join(prefix, str(name)), f"clé inconnue (clés possibles : {known})"
            )
    values: dict[str, object] = {}
    for name, field in fields.items():
        key = _join(prefix, name)
        if name not in data:
            no_default = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ConfigKeyError(key, "clé obligatoire absente")
            continue
        value = _convert(hints[name], data[name], key)
        check = field.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigKeyError(key, problem)
        values[name] = value
    try:
        return cls(**values)
    except ConfigKeyError as exc:  # a rule across keys (``__post_init__``): name the key
        raise ConfigKeyError(_join(prefix, exc.key), exc.message) from exc


def port_check(value: object) -> str | None:
    if isinstance(value, int) and not 1 <= value <= 65535:
        return f"numéro de port hors limites : {value} (1 à 65535)"
    return None


PORT = {"check": port_check}
