"""Care-circle module: keeps patient rooms to their care circle (see issue on care circles)."""

from __future__ import annotations

import logging
from typing import Any

from synapse.config import ConfigError
from synapse.module_api import ModuleApi

from synapse_modules.config import CareCircleConfig, parse_module_config

log = logging.getLogger(__name__)


class CareCircleModule:
    def __init__(self, config: CareCircleConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api
        log.info("Maillon care-circle module loaded (%d peer servers)", len(config.peer_servers))

    @staticmethod
    def parse_config(config: dict[str, Any]) -> CareCircleConfig:
        return parse_module_config(config, ConfigError)
