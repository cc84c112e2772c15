"""Synapse's admin API kept off the listeners that face the network.

Synapse's admin read APIs bypass every module (care circle, audit): they are served on a
loopback listener only. On a listener bound to another address, the generated configuration
mounts this resource at ``/_synapse/admin`` (``listeners[].additional_resources``, per
listener): a leaf that answers every request under the path with a 404 and a French
reason, so nothing Synapse adds under it is served there.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

REASON = (
    "API d'administration servie sur la boucle locale seulement (127.0.0.1) / admin API "
    "served on loopback only"
)
_BODY = json.dumps({"errcode": "M_UNRECOGNIZED", "error": REASON}, ensure_ascii=False).encode()


class AdminOnLoopbackOnly(Resource):
    """``additional_resources`` handler: refuses every admin request on this listener."""

    isLeaf = True

    def __init__(self, config: dict[str, Any], api: object) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    @staticmethod
    def parse_config(config: dict[str, Any] | None) -> dict[str, Any]:
        return dict(config or {})

    def render(self, request: Request) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")  # type: ignore[no-untyped-call]
        return _BODY
