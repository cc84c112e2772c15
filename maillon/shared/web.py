"""Shared aiohttp plumbing: JSON errors (never a traceback), token checks, logging."""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON answer; log unexpected ones without request data."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        errcode = "M_NOT_FOUND" if exc.status == 404 else "M_UNRECOGNIZED"
        if exc.status == 405:
            message = f"méthode {request.method} non permise ici"
        elif exc.status == 404:
            message = "ressource inconnue"
        else:
            message = exc.text or exc.reason
        return json_error(exc.status, errcode, message)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return json_error(500, "M_UNKNOWN", "erreur interne : l'incident a été journalisé")


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.query.get("access_token")


def client_address(request: web.Request, behind_proxy: bool) -> str:
    """The client's address. Behind Maillon's nginx (which sets X-Forwarded-For to the
    address it was reached from, replacing whatever the client sent), a request from
    loopback carries the real one; otherwise the header is the client's word: ignored."""
    remote = request.remote or ""
    if behind_proxy and remote in ("127.0.0.1", "::1"):
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return remote


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the expected secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def read_json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="corps JSON illisible") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="un objet JSON est attendu")
    return body


def setup_logging(level: str, component: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format=f"%(asctime)s {component} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
