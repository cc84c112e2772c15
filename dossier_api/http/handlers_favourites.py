"""HTTP handlers of the caller's favourites groups (groupes de favoris) and of inviting one
into a dossier's care circle (``dossier_api.domain.favourites``)."""

from __future__ import annotations

from aiohttp import web

from dossier_api.domain import shapes
from dossier_api.domain.core import ApiError
from dossier_api.http import schemas as S
from dossier_api.http.handlers import ROOM_SYNC, body, call, svc
from dossier_api.http.registry import route
from maillon.shared.text import digits

TAG = "favoris"


def _group(request: web.Request) -> int:
    raw = request.match_info["group_id"]
    if not digits(raw) or len(raw) > 12:
        raise ApiError(400, "M_INVALID_PARAM", f"numéro de groupe invalide : « {raw[:20]} »")
    return int(raw)


@route("GET", "/v1/me/favourites", "Mes groupes de favoris", S.FAVOURITES_LIST, tag=TAG)
async def get_favourites(request: web.Request) -> web.Response:
    return web.json_response(
        shapes.FavouriteGroupsOut(groups=await call(request, svc(request).favourites))
    )


@route(
    "POST",
    "/v1/me/favourites",
    "Créer un groupe de favoris (des personnes de l'annuaire)",
    S.FAVOURITES,
    status=201,
    body=S.FAVOURITES_IN,
    tag=TAG,
)
async def post_favourites(request: web.Request) -> web.Response:
    group = await call(request, svc(request).create_favourites, body(request))
    return web.json_response(group, status=201)


@route("GET", "/v1/me/favourites/{group_id}", "Un groupe de favoris", S.FAVOURITES, tag=TAG)
async def get_favourite(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).favourite, _group(request)))


@route(
    "PATCH",
    "/v1/me/favourites/{group_id}",
    "Renommer un groupe de favoris",
    S.FAVOURITES,
    body=S.FAVOURITES_RENAME_IN,
    tag=TAG,
)
async def patch_favourites(request: web.Request) -> web.Response:
    name = body(request)["name"]
    group = await call(request, svc(request).rename_favourites, _group(request), name)
    return web.json_response(group)


@route(
    "DELETE",
    "/v1/me/favourites/{group_id}",
    "Supprimer un groupe de favoris",
    S.FAVOURITES_DELETED,
    tag=TAG,
)
async def delete_favourites(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).delete_favourites, _group(request)))


@route(
    "POST",
    "/v1/me/favourites/{group_id}/members",
    "Ajouter des personnes au groupe",
    S.FAVOURITES,
    body=S.FAVOURITE_MEMBERS_IN,
    tag=TAG,
)
async def post_favourite_members(request: web.Request) -> web.Response:
    members = body(request)["members"]
    group = await call(request, svc(request).add_favourites, _group(request), members)
    return web.json_response(group)


@route(
    "DELETE",
    "/v1/me/favourites/{group_id}/members/{who}",
    "Retirer une personne du groupe (identifiant Matrix ou RPPS)",
    S.FAVOURITES,
    tag=TAG,
)
async def delete_favourite_member(request: web.Request) -> web.Response:
    who = request.match_info["who"]
    group = await call(request, svc(request).remove_favourite, _group(request), who)
    return web.json_response(group)


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/favourites/{group_id}",
    "Inviter un groupe de favoris au cercle (coordinateur) : le résultat par personne",
    S.FAVOURITES_INVITED,
    body=S.FAVOURITES_INVITE_IN,
    tag=TAG,
)
async def post_invite_favourites(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    made = await call(
        request, svc(request).invite_favourites, dossier_id, _group(request), body(request)
    )
    if made["counts"]["added"]:
        await request.app[ROOM_SYNC].sync(dossier_id)  # invited into the rooms
    return web.json_response(made)
