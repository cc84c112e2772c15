"""`maillon init` writes a sample Element configuration: no integration manager, Maillon's
dossier widget pre-approved (the widget lifecycle module's pattern matches the URL of the
widget the appservice puts in each patient room)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

from appservice.dossier_rooms import widget_content
from maillon.shared.settings import load
from maillon.wiring.init_deployment import (
    ELEMENT_CONFIG,
    WIDGET_LIFECYCLE,
    InitOptions,
    init_deployment,
)


def test_init_writes_an_element_config_without_integration_managers(tmp_path: Path) -> None:
    root = init_deployment(InitOptions(directory=tmp_path / "d", server_name="sante.test"))
    config = json.loads((root / ELEMENT_CONFIG).read_text())
    assert config["integrations_ui_url"] == "" and config["integrations_rest_url"] == ""
    assert config["integrations_widgets_urls"] == []
    homeserver = config["default_server_config"]["m.homeserver"]
    assert homeserver["server_name"] == "sante.test"
    assert homeserver["base_url"].startswith("http://127.0.0.1:")
    deployment = load(root)
    widget = widget_content(
        deployment.settings.dossier_api.external_url, "d" * 32, "@maillon:sante.test"
    )
    [(pattern, approval)] = config[WIDGET_LIFECYCLE]["widget_permissions"].items()
    assert fnmatch.fnmatchcase(widget["url"], pattern), (widget["url"], pattern)
    assert approval == {
        "preload_approved": True,
        "identity_approved": True,
        "capabilities_approved": [],
    }
    # Another site's widget is not pre-approved.
    assert not fnmatch.fnmatchcase("https://ailleurs.example/widget?x=1", pattern)
