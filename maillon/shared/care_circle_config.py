"""Typed, frozen configuration of the care-circle Synapse module, and how the other Maillon
processes read it from homeserver.yaml (shared base: the module, the API, the bot and the
appservice all read the same one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maillon.shared.circle import SERVER_NAME_RE
from maillon.shared.circle import USER_ID_RE as USER_ID_RE
from maillon.shared.federation_peers import PeerList
from maillon.shared.typed_config import ConfigKeyError, parse

SERVER_RE = SERVER_NAME_RE


def _user_id(value: object) -> str | None:
    if isinstance(value, str) and not USER_ID_RE.match(value):
        return f"identifiant Matrix invalide : {value!r}"
    return None


def _servers(value: object) -> str | None:
    if isinstance(value, tuple):
        for item in value:
            if not SERVER_RE.match(item):
                return f"nom de serveur invalide : {item!r}"
    return None


def _refresh(value: object) -> str | None:
    if isinstance(value, int | float) and not 0 < value <= 300:
        return f"entre 0 et 300 secondes : {value!r}"
    return None


@dataclass(frozen=True)
class CareCircleConfig:
    appservice_user: str = field(metadata={"check": _user_id})
    bot_user: str = field(metadata={"check": _user_id})
    # Other homeservers (server names) allowed to take part in patient rooms: a fixed
    # list, for a deployment without ``peers_file``.
    peer_servers: tuple[str, ...] = field(default=(), metadata={"check": _servers})
    # The allow list the administration console keeps (``federation_peers``): when set,
    # it replaces ``peer_servers``; looked at again at most every ``peers_refresh_seconds``.
    peers_file: str | None = None
    peers_refresh_seconds: float = field(default=5.0, metadata={"check": _refresh})
    # Where every allow/deny decision on a patient room is appended (JSON lines).
    audit_dir: str = "audit"
    # Users allowed to bypass the no-loosening rules; each use is audited.
    exempt_users: tuple[str, ...] = ()


def parse_module_config(raw: dict[str, Any], error_type: type[Exception]) -> CareCircleConfig:
    """Parse the module's config; raise ``error_type`` (Synapse's ConfigError) naming the key."""
    try:
        return parse(CareCircleConfig, raw or {})
    except ConfigKeyError as exc:
        raise error_type(f"Maillon care_circle module: key '{exc.key}': {exc.message}") from exc


MODULE_PATH = "synapse_modules.care_circle.CareCircleModule"


def from_homeserver_config(path: str) -> CareCircleConfig:
    """The module's configuration as Synapse loads it, for the other Maillon processes
    (one source of truth: homeserver.yaml)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        homeserver = yaml.safe_load(handle) or {}
    for module in homeserver.get("modules") or []:
        if isinstance(module, dict) and module.get("module") == MODULE_PATH:
            return parse_module_config(module.get("config") or {}, ValueError)
    raise ValueError(f"{path}: module {MODULE_PATH} absent de « modules: »")


def peer_list(config: CareCircleConfig) -> PeerList:
    """The module's allow list, as every Maillon process reads it (the one reader)."""
    path = Path(config.peers_file) if config.peers_file else None
    return PeerList(path, config.peer_servers, config.peers_refresh_seconds)
