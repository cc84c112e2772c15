"""The care-circle module's configuration (defined in the shared base, which the API, the
bot and the appservice read too)."""

from maillon.shared.care_circle_config import (
    MODULE_PATH,
    SERVER_RE,
    USER_ID_RE,
    CareCircleConfig,
    from_homeserver_config,
    parse_module_config,
    peer_list,
)

__all__ = [
    "MODULE_PATH",
    "SERVER_RE",
    "USER_ID_RE",
    "CareCircleConfig",
    "from_homeserver_config",
    "parse_module_config",
    "peer_list",
]
