"""HTTP handlers of the resource teams (équipes ressources) and their solicitations, for
the widget, the workspace and other clients (``dossier_api.domain.teams``)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dossier_api.domain import shapes
from dossier_api.domain.core import ApiError
from dossier_api.http import schemas as S
from dossier_api.http.handlers import ROOM_SYNC, body, call, svc
from dossier_api.http.registry import route
from maillon.shared.text import digits

TAG = "équipes ressources"


def _id(request: web.Request) -> int:
    raw = request.match_info["solicitation_id"]
    if not digits(raw) or len(raw) > 12:
        raise ApiError(400, "M_INVALID_PARAM", f"numéro de sollicitation invalide : « {raw[:20]} »")
    return int(raw)


async def _synced(
    request: web.Request, operation: Callable[..., shapes.SolicitationOut]
) -> web.Response:
    """An operation on a solicitation that changes the circle, then the rooms brought to it."""
    row = await call(request, operation, _id(request))
    if row["dossier_id"] is not None:  # an incoming one (a peer's room): no dossier here
        await request.app[ROOM_SYNC].sync(row["dossier_id"])
    return web.json_response(row)


@route(
    "GET",
    "/v1/teams",
    "Équipes ressources (celles d'un parcours)",
    S.TEAMS,
    tag=TAG,
    query={"pathway": {"type": "string", "maxLength": 60}},
)
async def get_teams(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).teams, request.query.get("pathway") or None)
    return web.json_response(shapes.TeamsOut(teams=rows))


@route(
    "POST",
    "/v1/teams",
    "Créer une équipe ressource (administrateur)",
    S.TEAM,
    status=201,
    body=S.TEAM_IN,
    tag=TAG,
)
async def post_team(request: web.Request) -> web.Response:
    team = await call(request, svc(request).add_team, body(request))
    return web.json_response(team, status=201)


@route(
    "PUT",
    "/v1/teams/{slug}/rota",
    "Planning de garde (coordinateur de l'équipe)",
    S.TEAM,
    body=S.ROTA_IN,
    tag=TAG,
)
async def put_rota(request: web.Request) -> web.Response:
    rota = body(request).get("rota")
    team = await call(request, svc(request).set_rota, request.match_info["slug"], rota)
    return web.json_response(team)


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/solicitations",
    "Solliciter une équipe ressource",
    S.SOLICITATION,
    status=201,
    body=S.SOLICITATION_IN,
    tag=TAG,
)
async def post_solicitation(request: web.Request) -> web.Response:
    row = await call(request, svc(request).solicit, request.match_info["dossier_id"], body(request))
    return web.json_response(row, status=201)


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/solicitations",
    "Sollicitations du dossier",
    S.SOLICITATIONS,
    tag=TAG,
)
async def get_dossier_solicitations(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).dossier_solicitations, request.match_info["dossier_id"])
    return web.json_response(shapes.SolicitationsOut(solicitations=rows))


@route(
    "GET",
    "/v1/solicitations",
    "Mes sollicitations (de garde ou prises en charge)",
    S.SOLICITATIONS,
    tag=TAG,
)
async def get_my_solicitations(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).my_solicitations)
    return web.json_response(shapes.SolicitationsOut(solicitations=rows))


@route(
    "POST", "/v1/solicitations/{solicitation_id}/seen", "Sollicitation vue", S.SOLICITATION, tag=TAG
)
async def post_seen(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).see_solicitation, _id(request)))


@route(
    "POST",
    "/v1/solicitations/{solicitation_id}/accept",
    "Accepter (entrée dans le cercle, rôle ERS)",
    S.SOLICITATION,
    tag=TAG,
)
async def post_accept(request: web.Request) -> web.Response:
    return await _synced(request, svc(request).accept_solicitation)  # invited into the rooms


@route("POST", "/v1/solicitations/{solicitation_id}/decline", "Décliner", S.SOLICITATION, tag=TAG)
async def post_decline(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).decline_solicitation, _id(request)))


@route(
    "POST",
    "/v1/solicitations/{solicitation_id}/answer",
    "Répondre (compte rendu d'avis)",
    S.SOLICITATION,
    body=S.REPORT_IN,
    tag=TAG,
)
async def post_answer(request: web.Request) -> web.Response:
    row = await call(request, svc(request).answer_solicitation, _id(request), body(request))
    return web.json_response(row)


@route(
    "POST",
    "/v1/solicitations/{solicitation_id}/close",
    "Clore la sollicitation",
    S.SOLICITATION,
    tag=TAG,
)
async def post_close(request: web.Request) -> web.Response:
    return await _synced(request, svc(request).close_solicitation)  # its exit date


@route(
    "GET",
    "/v1/solicitations/{solicitation_id}/report.pdf",
    "Compte rendu d'avis (PDF)",
    {"type": "string", "format": "binary"},
    content_type="application/pdf",
    tag=TAG,
)
async def get_report_pdf(request: web.Request) -> web.Response:
    pdf = await call(request, svc(request).report_pdf, _id(request))
    return web.Response(body=pdf, content_type="application/pdf")
