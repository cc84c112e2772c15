"""aiohttp application of the dossier API."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import Engine, text

from dossier_api.openapi import document
from maillon.settings import Deployment
from maillon.store import make_engine
from maillon.web import json_error, json_errors

log = logging.getLogger(__name__)

ENGINE = web.AppKey("engine", Engine)


def _ping_store(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def health(request: web.Request) -> web.Response:
    try:
        await asyncio.to_thread(_ping_store, request.app[ENGINE])
    except Exception as exc:
        log.error("store check failed: %s", type(exc).__name__)
        return json_error(503, "M_UNAVAILABLE", "base de données injoignable")
    return web.json_response({"status": "ok", "store": "ok"})


async def openapi(_: web.Request) -> web.Response:
    return web.json_response(document())


def create_app(deployment: Deployment) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app[ENGINE] = make_engine(deployment.settings.database_url)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    return app


def run(deployment: Deployment) -> None:
    listener = deployment.settings.dossier_api
    web.run_app(
        create_app(deployment),
        host=listener.host,
        port=listener.port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )
