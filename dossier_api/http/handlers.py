"""HTTP handlers of the dossier API, each declared with its schemas in the registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from dossier_api.domain import shapes
from dossier_api.domain.access import Caller
from dossier_api.domain.administration import Administration
from dossier_api.domain.core import ApiError
from dossier_api.domain.service import DossierFilters, DossierService
from dossier_api.http import schemas as S
from dossier_api.http.registry import route
from maillon.shared.room_sync_client import RoomSyncClient, main_room
from maillon.shared.text import digits

T = TypeVar("T")
SERVICE = web.AppKey("service", DossierService)
ADMIN = web.AppKey("admin_service", Administration)
ROOM_SYNC = web.AppKey("room_sync", RoomSyncClient)
CALLER = "maillon.caller"
BODY = "maillon.body"
PAGE = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "offset": {"type": "integer", "minimum": 0, "maximum": 1000000},
}


def caller(request: web.Request) -> Caller:
    value = request[CALLER]
    assert isinstance(value, Caller)
    return value


def body(request: web.Request) -> dict[str, Any]:
    value = request[BODY]
    assert isinstance(value, dict)
    return value


async def call(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, caller(request), *args)


def svc(request: web.Request) -> DossierService:
    return request.app[SERVICE]


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"paramètre {name} : entier attendu") from exc
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"paramètre {name} : entre {low} et {high}")
    return value


@route("GET", "/v1/me", "Qui suis-je (compte, annuaire, administrateur)", S.ME, tag="compte")
async def me(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).me))


@route(
    "GET",
    "/v1/me/worklist",
    "À faire : mes tâches à échéance, les alertes qui me sont adressées, les dossiers où "
    "l'on m'a ajouté·e (ce que montre la page « À faire »)",
    S.WORKLIST,
    tag="compte",
)
async def my_worklist(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).worklist))


@route(
    "POST",
    "/v1/dossiers",
    "Ouvrir un dossier de coordination (le créateur en est le référent)",
    S.DOSSIER,
    status=201,
    body=S.DOSSIER_CREATE,
)
async def create_dossier(request: web.Request) -> web.Response:
    dossier = await call(request, svc(request).create_dossier, body(request))
    dossier["room_id"] = main_room(await request.app[ROOM_SYNC].sync(dossier["id"]))
    return web.json_response(dossier, status=201)


DOSSIER_QUERY: dict[str, dict[str, Any]] = {
    **PAGE,
    "q": {
        "type": "string",
        "maxLength": 200,
        "description": "nom du patient (accents, casse et tirets indifférents ; mots entiers)",
    },
    "pathway": {"type": "string", "maxLength": 60},
    "status": {"type": "string", "enum": ["open", "closed", "archived"]},
    "structure_id": {"type": "string", "maxLength": 32},
    "unread_urgent": {
        "type": "string",
        "enum": ["1", "0"],
        "description": "1 : seulement les dossiers ayant des notes urgentes non lues",
    },
}


def dossier_filters(query: Mapping[str, str]) -> DossierFilters:
    """The filters of "Mes dossiers" from a query string (API and workspace page alike)."""
    values: dict[str, str | None] = {}
    for key, longest in (("q", 200), ("pathway", 60), ("status", 10), ("structure_id", 32)):
        raw = (query.get(key) or "").strip()
        if len(raw) > longest:
            raise ApiError(400, "M_INVALID_PARAM", f"paramètre {key} : trop long")
        values[key] = raw or None
    if values["status"] not in (None, "open", "closed", "archived"):
        raise ApiError(400, "M_INVALID_PARAM", "paramètre status : open, closed ou archived")
    unread = (query.get("unread_urgent") or "0").strip()
    if unread not in ("0", "1"):
        raise ApiError(400, "M_INVALID_PARAM", "paramètre unread_urgent : 1 ou 0")
    return DossierFilters(
        pathway=values["pathway"],
        status=values["status"],
        structure_id=values["structure_id"],
        name=values["q"],
        unread_urgent=unread == "1",
    )


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/identity/status",
    "Changer le statut de l'identité (RNIV : pièce contrôlée, source de l'INS, motif)",
    S.IDENTITY_HISTORY,
    body=S.IDENTITY_STATUS_IN,
)
async def change_identity_status(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    result = await call(request, svc(request).change_identity_status, dossier_id, body(request))
    return web.json_response(result)


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/identity/history",
    "Historique de l'identité (statuts, preuves, doublons confirmés)",
    S.IDENTITY_HISTORY,
)
async def identity_history(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    return web.json_response(await call(request, svc(request).identity_history, dossier_id))


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/consent/history",
    "Historique du consentement (daté, attribué)",
    S.CONSENT_HISTORY,
)
async def consent_history(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    return web.json_response(await call(request, svc(request).consent_history, dossier_id))


@route(
    "GET",
    "/v1/dossiers",
    "Mes dossiers (cercle, délégation, structure) ; recherche par nom du patient (q)",
    S.DOSSIER_LIST,
    query=DOSSIER_QUERY,
)
async def my_dossiers(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 50, 1, 200)
    offset = _int_query(request, "offset", 0, 0, 1000000)
    filters = dossier_filters(request.query)
    page = await call(request, svc(request).my_dossiers_page, limit, offset, filters)
    return web.json_response(page)


@route("GET", "/v1/dossiers/{dossier_id}", "Lire un dossier", S.DOSSIER)
async def get_dossier(request: web.Request) -> web.Response:
    return web.json_response(
        await call(request, svc(request).get_dossier, request.match_info["dossier_id"])
    )


@route(
    "PATCH",
    "/v1/dossiers/{dossier_id}",
    "Clore, rouvrir, archiver ; consentement",
    S.DOSSIER,
    body=S.DOSSIER_PATCH,
)
async def patch_dossier(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    dossier = await call(request, svc(request).patch_dossier, dossier_id, body(request))
    await request.app[ROOM_SYNC].sync(dossier_id)
    return web.json_response(dossier)


@route("GET", "/v1/dossiers/{dossier_id}/circle", "Cercle de soins (historique compris)", S.CIRCLE)
async def get_circle(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).circle, request.match_info["dossier_id"])
    return web.json_response(shapes.CircleOut(members=rows))


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/circle",
    "Ajouter au cercle (coordinateur)",
    S.MEMBER,
    status=201,
    body=S.CIRCLE_ADD,
)
async def add_member(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    member = await call(request, svc(request).add_member, dossier_id, body(request))
    await request.app[ROOM_SYNC].sync(dossier_id)  # invited into the rooms
    return web.json_response(member, status=201)


@route(
    "DELETE",
    "/v1/dossiers/{dossier_id}/circle/{user_id}",
    "Retirer du cercle (coordinateur)",
    S.MEMBER,
)
async def remove_member(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    member = await call(
        request, svc(request).remove_member, dossier_id, request.match_info["user_id"]
    )
    await request.app[ROOM_SYNC].sync(dossier_id)  # removed from the rooms
    return web.json_response(member)


@route("GET", "/v1/dossiers/{dossier_id}/rooms", "Salles du dossier", S.ROOMS)
async def get_rooms(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).rooms, request.match_info["dossier_id"])
    return web.json_response(shapes.RoomsOut(rooms=rows))


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/activity",
    "Activité des salles : nombre de messages, entrées et sorties du cercle",
    S.ACTIVITY,
)
async def get_activity(request: web.Request) -> web.Response:
    return web.json_response(
        await call(request, svc(request).activity, request.match_info["dossier_id"])
    )


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/rooms",
    "Ouvrir une salle annexe (ex. coordination interne, sans la famille)",
    S.ROOM,
    status=201,
    body=S.ROOM_IN,
)
async def add_side_room(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    room = await call(request, svc(request).add_side_room, dossier_id, body(request))
    rooms = await request.app[ROOM_SYNC].sync(dossier_id) or []
    room["room_id"] = next((r.get("room_id") for r in rooms if r.get("key") == room["key"]), None)
    return web.json_response(room, status=201)


@route("GET", "/v1/dossiers/{dossier_id}/notes", "Cahier de liaison", S.NOTES)
async def get_notes(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).notes, request.match_info["dossier_id"])
    return web.json_response(shapes.NotesOut(notes=rows))


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/notes",
    "Écrire dans le cahier de liaison",
    S.NOTE,
    status=201,
    body=S.NOTE_IN,
)
async def add_note(request: web.Request) -> web.Response:
    return web.json_response(
        await call(request, svc(request).add_note, request.match_info["dossier_id"], body(request)),
        status=201,
    )


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/notes/{note_id}/corrections",
    "Corriger sa note (la note d'origine est conservée)",
    S.NOTE,
    status=201,
    body=S.CORRECTION_IN,
)
async def correct_note(request: web.Request) -> web.Response:
    return web.json_response(
        await call(
            request,
            svc(request).add_note,
            request.match_info["dossier_id"],
            body(request),
            request.match_info["note_id"],
        ),
        status=201,
    )


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/tasks",
    "Tâches du dossier (toutes, ouvertes ou faites)",
    S.TASKS,
    query={"statut": {"type": "string", "enum": ["toutes", "ouvertes", "faites"]}},
)
async def get_tasks(request: web.Request) -> web.Response:
    which = request.query.get("statut", "toutes")
    rows = await call(request, svc(request).tasks, request.match_info["dossier_id"], which)
    return web.json_response(shapes.TasksOut(tasks=rows))


@route(
    "POST", "/v1/dossiers/{dossier_id}/tasks", "Créer une tâche", S.TASK, status=201, body=S.TASK_IN
)
async def add_task(request: web.Request) -> web.Response:
    return web.json_response(
        await call(request, svc(request).add_task, request.match_info["dossier_id"], body(request)),
        status=201,
    )


@route(
    "PATCH",
    "/v1/dossiers/{dossier_id}/tasks/{task_id}",
    "Changer l'état d'une tâche",
    S.TASK,
    body=S.TASK_PATCH,
)
async def patch_task(request: web.Request) -> web.Response:
    return web.json_response(
        await call(
            request,
            svc(request).patch_task,
            request.match_info["dossier_id"],
            request.match_info["task_id"],
            body(request),
        )
    )


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/audit",
    "Journal des accès (coordinateur, admin)",
    S.AUDIT,
    query={"limit": PAGE["limit"]},
)
async def get_audit(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 200, 1, 200)
    rows = await call(request, svc(request).audit, request.match_info["dossier_id"], limit)
    return web.json_response(shapes.AuditOut(entries=rows))


@route(
    "POST",
    "/v1/delegations",
    "Déléguer à un confrère jusqu'à une date",
    S.DELEGATION,
    status=201,
    body=S.DELEGATION_IN,
    tag="compte",
)
async def add_delegation(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).delegate, body(request)), status=201)


@route(
    "DELETE",
    "/v1/delegations/{delegation_id}",
    "Révoquer une délégation (son auteur, ou son délégataire qui y renonce)",
    S.DELEGATION,
    tag="compte",
)
async def revoke_delegation(request: web.Request) -> web.Response:
    raw = request.match_info["delegation_id"]
    if not digits(raw) or len(raw) > 12:
        raise ApiError(400, "M_INVALID_PARAM", "delegation_id : un numéro de délégation attendu")
    return web.json_response(await call(request, svc(request).revoke_delegation, int(raw)))


@route("GET", "/v1/delegations", "Mes délégations données et reçues", S.DELEGATIONS, tag="compte")
async def get_delegations(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).delegations))


@route(
    "POST",
    "/v1/structures",
    "Créer une structure (administrateur)",
    S.STRUCTURE,
    status=201,
    body=S.STRUCTURE_IN,
    tag="administration",
)
async def add_structure(request: web.Request) -> web.Response:
    given = body(request)
    created = await call(
        request,
        request.app[ADMIN].create_structure,
        given["name"],
        given.get("kind", "structure"),
    )
    return web.json_response(created, status=201)


@route(
    "POST",
    "/v1/structures/{structure_id}/staff",
    "Rattacher un professionnel (admin)",
    S.OK,
    body=S.STAFF_IN,
    tag="administration",
)
async def add_staff(request: web.Request) -> web.Response:
    await call(
        request,
        request.app[ADMIN].set_staff,
        request.match_info["structure_id"],
        body(request)["user_id"],
        body(request).get("role", "member"),
    )
    return web.json_response(shapes.OkOut(ok=True))


@route(
    "GET",
    "/v1/admin/retention",
    "Conservation : ce que la politique archiverait et purgerait aujourd'hui (administrateur)",
    S.RETENTION,
    tag="administration",
)
async def retention_dry_run(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).run_retention, True))


@route(
    "POST",
    "/v1/admin/retention",
    "Conservation : archiver et purger ce qui est échu (administrateur)",
    S.RETENTION,
    tag="administration",
)
async def retention_run(request: web.Request) -> web.Response:
    return web.json_response(await call(request, svc(request).run_retention, False))


@route(
    "PUT",
    "/v1/dossiers/{dossier_id}/legal-hold",
    "Poser ou lever le gel juridique d'un dossier : rien n'est purgé tant qu'il est posé "
    "(administrateur)",
    S.LEGAL_HOLD,
    body=S.LEGAL_HOLD_IN,
    tag="administration",
)
async def legal_hold(request: web.Request) -> web.Response:
    hold = bool(body(request)["legal_hold"])
    result = await call(
        request, svc(request).set_legal_hold, request.match_info["dossier_id"], hold
    )
    return web.json_response(result)


@route(
    "GET",
    "/v1/directory",
    "Chercher dans l'annuaire national (nom, profession, commune, département, structure)",
    S.DIRECTORY_PAGE,
    query={
        "q": {"type": "string", "maxLength": 200},
        "profession": {"type": "string", "maxLength": 100},
        "departement": {"type": "string", "maxLength": 3},
        "page": {"type": "integer", "minimum": 1, "maximum": 10000},
        "size": {"type": "integer", "minimum": 1, "maximum": 50},
    },
    tag="annuaire",
)
async def search_directory(request: web.Request) -> web.Response:
    page = _int_query(request, "page", 1, 1, 10000)
    size = _int_query(request, "size", 20, 1, 50)
    params = [request.query.get(k, "")[:200] for k in ("q", "profession", "departement")]
    return web.json_response(
        await call(request, svc(request).search_directory, *params, page, size)
    )
