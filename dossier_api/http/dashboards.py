"""The dashboards under ``/tableaux-de-bord/``: a structure's (its managers and the
administrators), a pathway's and the region's (administrators), with their period filter,
charts (SVG, matplotlib) beside their data tables, the structure's raw extraction (CSV,
XLSX) and its monthly reports (PDF). Same session, CSRF, CSP and templates as the
workspace; every read goes through ``DashboardService`` (checked and audited)."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from dossier_api.domain.core import ApiError
from dossier_api.domain.dashboards import (
    EXTRACTION_COLUMNS,
    IDENTITY_COLUMNS,
    DashboardService,
)
from dossier_api.domain.indicators import LABELS, Period, parse_period, suppressed
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.http.charts import months_chart, solicitations_chart
from dossier_api.http.pages import PAGE_HEADERS, lang_of, problem_page, render
from dossier_api.http.sessions import Current, current, redirect, session_or_login, writing
from maillon.shared.clock import utcnow

DASHBOARDS = web.AppKey("dashboards", DashboardService)
ROOT = "/tableaux-de-bord"
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
KINDS = ("structures", "parcours")
SOLICITATIONS_SVG = "/sollicitations-par-mois.svg"
SVG_HEADERS = {
    **PAGE_HEADERS,
    # An SVG of matplotlib: its own styles, never a script.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


def _period(request: web.Request) -> Period:
    try:
        return parse_period(
            request.query.get("du") or None, request.query.get("au") or None, utcnow().date()
        )
    except ValueError as exc:
        raise ApiError(400, "M_INVALID_PARAM", str(exc)) from None


def _load(request: web.Request, session: Current, period: Period) -> dict[str, Any]:
    svc, caller = request.app[DASHBOARDS], session.caller
    kind = request.match_info.get("kind")
    if kind is None:
        return svc.region_dashboard(caller, period)
    name = request.match_info["name"]
    if kind == "structures":
        return svc.structure_dashboard(caller, name, period)
    return svc.pathway_dashboard(caller, name, period)


def _query(period: Period) -> str:
    last = period.months()[-1][0]
    return urlencode({"du": f"{period.start:%Y-%m}", "au": f"{last:%Y-%m}"})


async def to_index(_: web.Request) -> web.Response:
    return redirect(ROOT + "/")


async def index(request: web.Request) -> web.Response:
    session = await session_or_login(request)
    if isinstance(session, web.Response):
        return session
    choices = await asyncio.to_thread(request.app[DASHBOARDS].dashboard_choices, session.caller)
    return render(request, "dashboards.html", session=session, choices=choices, root=ROOT)


async def dashboard(request: web.Request) -> web.Response:
    session = await session_or_login(request)
    if isinstance(session, web.Response):
        return session
    try:
        period = _period(request)
        board = await asyncio.to_thread(_load, request, session, period)
        columns: tuple[str, ...] = ()
        if board["structure_id"]:
            columns = await asyncio.to_thread(
                request.app[DASHBOARDS].extraction_columns, session.caller, board["structure_id"]
            )
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    lang = lang_of(request)
    figures = board["indicators"]
    return render(
        request,
        "dashboard.html",
        session=session,
        board=board,
        figures=figures,
        summary=figures.summary(),
        labels={k: v[1] if lang == "en" else v[0] for k, v in LABELS.items()},
        shown=lambda value: suppressed(value, board["outside"]),
        period=period,
        last_month=period.months()[-1][0],
        query=_query(period),
        here=request.path,
        columns=columns,
        all_columns=EXTRACTION_COLUMNS,
        identity_columns=IDENTITY_COLUMNS,
        pathway_name=lambda p: PATHWAYS[p].name if p in PATHWAYS else p,
    )


async def chart(request: web.Request) -> web.Response:
    session = await current(request)
    if session is None:
        raise web.HTTPUnauthorized()
    try:
        period = _period(request)
        board = await asyncio.to_thread(_load, request, session, period)
    except ApiError as exc:
        return web.Response(status=exc.status, text=exc.message, headers=PAGE_HEADERS)
    lang = lang_of(request)
    draw = solicitations_chart if request.path.endswith(SOLICITATIONS_SVG) else months_chart
    svg = await asyncio.to_thread(draw, board["indicators"], lang, board["outside"])
    return web.Response(body=svg, content_type="image/svg+xml", headers=SVG_HEADERS)


async def extraction(request: web.Request) -> web.Response:
    session = await session_or_login(request)
    if isinstance(session, web.Response):
        return session
    try:
        period = _period(request)
        found = await asyncio.to_thread(
            request.app[DASHBOARDS].extract,
            session.caller,
            request.match_info["name"],
            period,
            request.match_info["fmt"],
            request.query.get("identite") == "oui",
        )
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    return web.Response(
        body=found.content,
        content_type=found.media_type,
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "X-Content-SHA256": found.sha256,
        },
    )


async def save_columns(request: web.Request) -> web.Response:
    session = await writing(request)
    if isinstance(session, web.Response):
        return session
    form = await request.post()
    columns = [str(v) for v in form.getall("colonne", [])]
    name = request.match_info["name"]
    try:
        await asyncio.to_thread(
            request.app[DASHBOARDS].set_extraction_columns, session.caller, name, columns
        )
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    return redirect(f"{ROOT}/structures/{name}#extraction")


async def report(request: web.Request) -> web.Response:
    session = await session_or_login(request)
    if isinstance(session, web.Response):
        return session
    month = request.match_info["month"]
    if not MONTH_RE.match(month):
        return problem_page(request, 404, "Rapport inconnu.", session=session)
    try:
        pdf = await asyncio.to_thread(
            request.app[DASHBOARDS].monthly_report,
            session.caller,
            request.match_info["name"],
            month,
        )
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": f'attachment; filename="rapport-{month}.pdf"',
        },
    )


def setup(app: web.Application, service: DashboardService) -> None:
    app[DASHBOARDS] = service
    app.router.add_get(ROOT, to_index)
    app.router.add_get(ROOT + "/", index)
    app.router.add_get(ROOT + "/region", dashboard)
    app.router.add_get(ROOT + "/region/dossiers-par-mois.svg", chart)
    app.router.add_get(ROOT + "/region" + SOLICITATIONS_SVG, chart)
    board = ROOT + "/{kind:" + "|".join(KINDS) + "}/{name}"
    app.router.add_get(board, dashboard)
    app.router.add_get(board + "/dossiers-par-mois.svg", chart)
    app.router.add_get(board + SOLICITATIONS_SVG, chart)
    app.router.add_get(ROOT + "/structures/{name}/extraction.{fmt:csv|xlsx}", extraction)
    app.router.add_post(ROOT + "/structures/{name}/colonnes", save_columns)
    app.router.add_get(ROOT + "/structures/{name}/rapports/{month}.pdf", report)
