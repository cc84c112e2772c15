"""The workspace at the dossier service's root: "Mes dossiers" (filters, search by the
patient's name through the blind index, pages), "À faire", opening a dossier, and the
dossier page (``dossier_views``, shared with the widget).
Every read and write goes through ``DossierService`` with the session's caller, so it is
checked and audited as on the API."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from jsonschema import Draft7Validator, FormatChecker

from dossier_api.domain.core import ApiError
from dossier_api.domain.service import DossierService
from dossier_api.domain.shapes import MeOut, SolicitationOut, WorklistOut
from dossier_api.domain.vigilance import DUPLICATE, OVERRIDE
from dossier_api.http import schemas as S
from dossier_api.http.handlers import ROOM_SYNC, dossier_filters
from dossier_api.http.pages import problem_page, render, static_file
from dossier_api.http.sessions import Current, redirect, session_or_login, writing
from maillon.shared.text import digits

# The workspace's own service: same checks, its accesses audited as the "workspace" component.
SERVICE = web.AppKey("workspace_service", DossierService)
PER_PAGE = 20
WORKLIST_SHOWN = 10  # of each list of "À faire" (only their identities are opened)
IDENTITY_FIELDS = (
    "birth_name",
    "used_name",
    "first_names",
    "sex",
    "birth_date",
    "birthplace_insee",
    "ins_matricule",
    "ins_oid",
    "identity_status",
)
_CREATE = Draft7Validator(S.DOSSIER_CREATE, format_checker=FormatChecker())


def matrix_to(room_id: str | None) -> str | None:
    return f"https://matrix.to/#/{quote(room_id, safe='!:')}" if room_id else None


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not digits(raw) or not 1 <= int(raw) <= 10000:
        raise ApiError(400, "M_INVALID_PARAM", "paramètre page : un numéro de page attendu")
    return int(raw)


async def home(request: web.Request) -> web.Response:
    session = await session_or_login(request)
    if isinstance(session, web.Response):
        return session
    svc, caller = request.app[SERVICE], session.caller
    try:
        filters = dossier_filters(request.query)
        page = _page_number(request)
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    listing = await asyncio.to_thread(
        svc.my_dossiers_page, caller, PER_PAGE, (page - 1) * PER_PAGE, filters
    )
    me = await asyncio.to_thread(svc.me, caller)
    # A search typed in the page (htmx) replaces the list only: no worklist to read.
    list_only = "HX-Request" in request.headers and "HX-History-Restore-Request" not in (
        request.headers
    )
    todo: WorklistOut = {
        "tasks": [],
        "alerts": [],
        "invitations": [],
        "counts": {"tasks": 0, "alerts": 0, "invitations": 0},
    }
    people: dict[str, Any] = {}
    solicitations: list[SolicitationOut] = []
    if not list_only:
        todo = await asyncio.to_thread(svc.worklist, caller, None, WORKLIST_SHOWN)
        solicitations = await asyncio.to_thread(svc.my_solicitations, caller)
        people = await asyncio.to_thread(
            svc.people,
            {a["author"] for a in todo["alerts"]} | {i["added_by"] for i in todo["invitations"]},
        )
    kept = {
        k: v
        for k, v in request.query.items()
        if k in ("q", "pathway", "status", "structure_id", "unread_urgent") and v
    }
    pages = max(1, -(-int(listing["total"]) // PER_PAGE))
    return render(
        request,
        "workspace.html",
        session=session,
        me=me,
        listing=listing,
        todo=todo,
        solicitations=solicitations,
        people=people,
        query=kept,
        page=page,
        pages=pages,
        page_link=lambda n: "/?" + urlencode({**kept, "page": n}),
        structures={s["id"]: s["name"] for s in me["structures"]},
        matrix_to=matrix_to,
    )


async def new_dossier_form(request: web.Request) -> web.Response:
    session = await session_or_login(request)
    if isinstance(session, web.Response):
        return session
    me = await asyncio.to_thread(request.app[SERVICE].me, session.caller)
    return _new_form(request, session, me, {}, [])


def _new_form(
    request: web.Request,
    session: Current,
    me: MeOut,
    values: dict[str, str],
    errors: list[str],
    status: int = 200,
    duplicates: dict[str, Any] | None = None,
) -> web.Response:
    return render(
        request,
        "dossier_new.html",
        status=status,
        session=session,
        me=me,
        values=values,
        errors=errors,
        structures={s["id"]: s["name"] for s in me["structures"]},
        duplicates=duplicates,
    )


def _error_text(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "formulaire"
    field = where.split(".")[-1]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"champ obligatoire : « {missing} »"
    return f"valeur refusée pour « {field} »"


async def create_dossier(request: web.Request) -> web.Response:
    session = await writing(request)
    if isinstance(session, web.Response):
        return session
    form = await request.post()
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    identity = {k: values[k] for k in IDENTITY_FIELDS if values.get(k)}
    body: dict[str, Any] = {"pathway": values.get("pathway", ""), "identity": identity}
    if values.get("structure_id"):
        body["structure_id"] = values["structure_id"]
    if values.get("duplicate_reason"):
        # The possible duplicate confirmed, with its reason (recorded), as the API allows.
        body[OVERRIDE] = {"reason": values["duplicate_reason"]}
    body["consent_informed"] = values.get("consent_informed") == "on"
    svc = request.app[SERVICE]
    me = await asyncio.to_thread(svc.me, session.caller)
    # The same schema and the same service as POST /v1/dossiers: the same checks.
    errors = sorted({_error_text(e) for e in _CREATE.iter_errors(body)})
    if errors:
        return _new_form(request, session, me, values, errors, 400)
    try:
        dossier = await asyncio.to_thread(svc.create_dossier, session.caller, body)
    except ApiError as exc:
        found = exc.data if exc.errcode == DUPLICATE else None
        return _new_form(request, session, me, values, [exc.message], exc.status, found)
    await request.app[ROOM_SYNC].sync(dossier["id"])
    return redirect(f"/dossiers/{dossier['id']}")


SOLICITATION_ACTIONS = {"accepter": "accept_solicitation", "refuser": "decline_solicitation"}


async def solicitation_action(request: web.Request) -> web.Response:
    """Accept or decline, from the worklist, a resource-team solicitation told to me."""
    session = await writing(request)
    if isinstance(session, web.Response):
        return session
    action = SOLICITATION_ACTIONS.get(request.match_info["action"])
    number = request.match_info["solicitation_id"]
    if action is None or not digits(number) or len(number) > 12:
        return problem_page(request, 404, "Action inconnue.", session=session)
    svc = request.app[SERVICE]
    try:
        done = await asyncio.to_thread(getattr(svc, action), session.caller, int(number))
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    if done["status"] == "acceptee":
        await request.app[ROOM_SYNC].sync(done["dossier_id"])  # invited into the rooms
    return redirect("/")


def setup(app: web.Application, service: DossierService) -> None:
    app[SERVICE] = service
    app.router.add_get("/", home)
    app.router.add_get("/dossiers/nouveau", new_dossier_form)
    app.router.add_post("/dossiers", create_dossier)
    app.router.add_post("/sollicitations/{solicitation_id}/{action}", solicitation_action)
    app.router.add_get("/static/{name}", static_file)
