"""aiohttp application of the dossier API: routes from the registry, Matrix authentication,
request validation against the same schemas the OpenAPI document shows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import Engine, text

import dossier_api.http.enrolment
import dossier_api.http.handlers
import dossier_api.http.handlers_care
import dossier_api.http.handlers_favourites
import dossier_api.http.handlers_teams
import dossier_api.http.handlers_work
from dossier_api.domain import pathway_store
from dossier_api.domain.administration import Administration
from dossier_api.domain.core import ApiError
from dossier_api.domain.dashboards import DashboardService
from dossier_api.domain.mail.outbox import relay_marker
from dossier_api.domain.monthly_report import MonthlyReports
from dossier_api.domain.service import DossierService
from dossier_api.domain.sessions import SessionStore
from dossier_api.domain.shapes import HealthOut
from dossier_api.http import (
    admin,
    admin_teams,
    dashboards,
    dossier_views,
    favourites_pages,
    sessions,
    widget,
    workspace,
)
from dossier_api.http.auth import Authenticator, AuthError, ImpersonationRefused
from dossier_api.http.handlers import BODY, CALLER, ROOM_SYNC, SERVICE
from dossier_api.http.handlers_work import upload_limit
from dossier_api.http.registry import ROUTES, Route, openapi_document, route, validation_message
from maillon import __version__
from maillon.shared.crypto import KeyRing
from maillon.shared.json_shapes import schema_of
from maillon.shared.lease import instance
from maillon.shared.room_sync_client import RoomSyncClient
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import Deployment
from maillon.shared.store import make_engine
from maillon.shared.text import digits, json_problem
from maillon.shared.web import Handler, json_error, json_errors

log = logging.getLogger(__name__)

ENGINE = web.AppKey("engine", Engine)
AUTH = web.AppKey("auth", Authenticator)
ROUTE_INDEX = web.AppKey("route_index", dict)
MAX_DEPTH = 32  # deeper than any schema of the API: refused before validation
TITLE = "Maillon — API du dossier de coordination"
HEALTH = schema_of(HealthOut)


def _ping_store(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@route("GET", "/health", "État du service et de sa base", HEALTH, auth=False, tag="service")
async def health(request: web.Request) -> web.Response:
    try:
        await asyncio.to_thread(_ping_store, request.app[ENGINE])
    except Exception as exc:
        log.error("store check failed: %s", type(exc).__name__)
        return json_error(503, "M_UNAVAILABLE", "base de données injoignable")
    return web.json_response(HealthOut(status="ok", store="ok"))


@route(
    "GET", "/openapi.json", "Ce document (OpenAPI 3)", {"type": "object"}, auth=False, tag="service"
)
async def openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document(TITLE, __version__))


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    spec: Route | None = None
    if resource is not None:
        spec = request.app[ROUTE_INDEX].get((request.method, resource.canonical))
    if spec is None:
        return await handler(request)
    try:
        if spec.auth:
            request[CALLER] = await request.app[AUTH].caller(request)
        if spec.body is not None:
            try:
                payload = await request.json()
            except RecursionError:
                return json_error(
                    400, "M_BAD_JSON", f"corps JSON trop imbriqué (au plus {MAX_DEPTH} niveaux)"
                )
            except ValueError:
                return json_error(400, "M_NOT_JSON", "corps JSON illisible")
            problem = json_problem(payload, MAX_DEPTH)
            if problem is not None:
                where, what = problem
                return json_error(400, "M_BAD_JSON", f"valeur refusée pour « {where} » : {what}")
            validator = spec.validator
            assert validator is not None
            error = next(iter(sorted(validator.iter_errors(payload), key=str)), None)
            if error is not None:
                return json_error(400, "M_BAD_JSON", validation_message(error))
            request[BODY] = payload
        return await handler(request)
    except ImpersonationRefused as exc:
        dossier_id = request.match_info.get("dossier_id")
        log.warning("refused an administrator's login-as token for %s", exc.user_id)
        await asyncio.to_thread(
            request.app[SERVICE].audit_impersonation,
            exc.user_id,
            dossier_id,
            f"{request.method} {resource.canonical if resource is not None else ''}",
        )
        return exc.response
    except AuthError as exc:
        if exc.refused is not None:
            await asyncio.to_thread(
                request.app[SERVICE].record_refusal,
                exc.refused,
                f"{request.method} {spec.path}",
                request.match_info.get("dossier_id"),
                ApiError(exc.status, exc.errcode, exc.message),
            )
        return exc.response
    except ApiError as exc:
        if exc.data:
            body = {**exc.data, "errcode": exc.errcode, "error": exc.message}
            return web.json_response(body, status=exc.status)
        return json_error(exc.status, exc.errcode, exc.message)


REPORTS = web.AppKey("monthly_reports", MonthlyReports)
REPORTS_EVERY_SECONDS = 3600.0


async def _monthly_reports(reports: MonthlyReports) -> None:
    """The monthly reports' job: each hour, make those of the previous month not made yet
    (the 1st of the month, or at the first start after it)."""
    while True:
        try:
            await asyncio.to_thread(reports.run_due)
        except Exception:  # the store unavailable: the next round tries again
            log.exception("monthly reports: round failed")
        await asyncio.sleep(REPORTS_EVERY_SECONDS)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    job = asyncio.create_task(_monthly_reports(app[REPORTS]))
    yield
    job.cancel()
    await app[AUTH].close()
    await app[ROOM_SYNC].close()
    app[ENGINE].dispose()


PSC_IDP = "oidc-psc"  # the homeserver's identity provider id (idp_id "psc" of oidc_providers)


def pro_sante_connect_url(deployment: Deployment) -> str:
    """The homeserver's SSO redirect to Pro Santé Connect, back to the workspace ("" when
    Pro Santé Connect is not configured)."""
    settings = deployment.settings
    if not settings.homeserver.pro_sante_connect:
        return ""
    base = (settings.homeserver.public_url or settings.homeserver.url).rstrip("/")
    back = quote(settings.dossier_api.external_url + "/login/sso", safe="")
    return f"{base}/_matrix/client/v3/login/sso/redirect/{PSC_IDP}?redirectUrl={back}"


def create_app(deployment: Deployment) -> web.Application:
    install_key_ring(KeyRing.for_secrets(deployment.secrets))
    engine = make_engine(deployment.settings.database_url)
    pathway_store.bind(engine)
    # Bodies up to 2 MiB, or an upload of the largest document allowed (JSON base64).
    body_max = max(2 * 1024**2, upload_limit(deployment.settings.attachments.max_bytes))
    app = web.Application(middlewares=[json_errors, api_middleware], client_max_size=body_max)
    app[ENGINE] = engine
    app[AUTH] = Authenticator(deployment.settings.homeserver.url)
    app[SERVICE] = DossierService(engine, deployment)
    app[ROOM_SYNC] = RoomSyncClient.for_deployment(deployment)
    app[ROUTE_INDEX] = {(r.method, r.path): r for r in ROUTES}
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)
    widget.setup(app)
    sessions.setup(
        app,
        SessionStore(engine, deployment.settings.sessions),
        app[AUTH],
        secure=deployment.settings.dossier_api.external_url.startswith("https://"),
        sso_url=pro_sante_connect_url(deployment),
        after_sso=dossier_api.http.enrolment.after_sso(app),
    )
    workspace_service = DossierService(engine, deployment, component="workspace")
    workspace.setup(app, workspace_service)
    workers = deployment.settings.homeserver.workers
    dossier_api.http.enrolment.setup(
        app,
        DossierService(engine, deployment, component="enrolment"),
        workspace_service,
        behind_proxy=bool(workers and workers.dossier_api_ports),
    )
    dashboards.setup(app, DashboardService(engine, deployment, component="workspace"))
    mail = deployment.settings.mail
    app[REPORTS] = MonthlyReports(
        engine,
        from_address=f"{mail.relay_localpart}@{deployment.settings.mail_domain}"
        if mail.enabled
        else None,
        domain=deployment.settings.mail_domain,
        relay_marker=relay_marker(deployment),
    )
    admin.setup(app, Administration(engine, deployment, component="admin"))
    admin_teams.setup(app)
    dossier_views.setup(app, DossierService(engine, deployment, component="widget"))
    favourites_pages.setup(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


def listen_address(deployment: Deployment) -> tuple[str, int]:
    """Where this process listens: the dossier API's address, or, for process n of a worker
    deployment (instance ``n``, behind nginx), its loopback port."""
    listener = deployment.settings.dossier_api
    workers = deployment.settings.homeserver.workers
    ports = workers.dossier_api_ports if workers is not None else ()
    name = instance()
    if not ports or not name:
        return listener.host, listener.port
    if not digits(name) or not 1 <= int(name) <= len(ports):
        raise SystemExit(f"dossier_api : instance {name!r} inconnue (1 à {len(ports)})")
    return "127.0.0.1", ports[int(name) - 1]


def run(deployment: Deployment) -> None:
    host, port = listen_address(deployment)
    web.run_app(
        create_app(deployment),
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )
