"""Accounts for professionals who have none (``dossier_api.domain.enrolment``): the API of
a dossier's invitations (coordinators), the invitation link's page and the self-enrolment
pages (``/inscription``). Pages posted before any session carry a CSRF token in the form
and in a cookie of their path; once the account exists, the browser is logged in (same
sessions as the workspace) and lands on the dossier (or the home page)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.service import DossierService
from dossier_api.domain.shapes import InvitationOut, InvitationsOut
from dossier_api.http import schemas as S
from dossier_api.http.handlers import ROOM_SYNC, body, call, svc
from dossier_api.http.pages import problem_page
from dossier_api.http.registry import route
from dossier_api.http.sessions import (
    SSO_URL,
    csrf_ok,
    current,
    form_csrf_ok,
    form_page,
    open_session,
    redirect,
)
from maillon.shared.circle import RESTRICTED_ROLES, ROLES
from maillon.shared.json_shapes import schema_of
from maillon.shared.web import client_address

ENROLMENT_SERVICE = web.AppKey("enrolment_service", DossierService)
COOKIE = "maillon_enrol"
INVITATION_COOKIE_PATH = "/invitation"
INSCRIPTION_PATH = "/inscription"
MAX_FIELD = 1024

INVITATION = schema_of(InvitationOut)
INVITATIONS = schema_of(InvitationsOut)
INVITE = S.obj(
    ["rpps", "role"],
    {
        "rpps": {"type": "string", "pattern": "^[0-9]{11}$"},
        "role": S.ROLE,
        "coordinator": {"type": "boolean"},
    },
)


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/invitations",
    "Inviter au cercle un professionnel de l'annuaire sans compte (courriel MSSanté)",
    INVITATION,
    status=201,
    body=INVITE,
)
async def invite(request: web.Request) -> web.Response:
    dossier_id = request.match_info["dossier_id"]
    invitation = await call(request, svc(request).invite, dossier_id, body(request))
    return web.json_response(invitation, status=201)


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/invitations",
    "Invitations du dossier (en attente, acceptées, annulées, expirées)",
    INVITATIONS,
)
async def invitations(request: web.Request) -> web.Response:
    rows = await call(request, svc(request).invitations, request.match_info["dossier_id"])
    return web.json_response(InvitationsOut(invitations=rows))


@route(
    "DELETE",
    "/v1/dossiers/{dossier_id}/invitations/{invitation_id}",
    "Annuler une invitation en attente (coordinateur)",
    INVITATION,
)
async def cancel_invitation(request: web.Request) -> web.Response:
    match = request.match_info
    invitation = await call(
        request, svc(request).cancel_invitation, match["dossier_id"], match["invitation_id"]
    )
    return web.json_response(invitation)


# -- pages -----------------------------------------------------------------------------


async def _form(request: web.Request) -> Any:
    """The posted form, or None if its CSRF token is not the one its page set."""
    form = await request.post()
    return form if form_csrf_ok(request, form, COOKIE) else None


EXPIRED_FORM = "Formulaire expiré ou venu d'ailleurs : rechargez la page."


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _passwords(form: Any) -> str:
    password = _field(form, "password")
    if not password:
        raise ApiError(400, "M_MISSING_PARAM", "Choisissez un mot de passe.")
    if password != _field(form, "password2"):
        raise ApiError(400, "M_INVALID_PARAM", "Les deux mots de passe ne sont pas identiques.")
    return password


async def _invitation_form(
    request: web.Request, message: str | None = None, status: int = 200
) -> web.Response:
    token = request.match_info["token"]
    try:
        invitation = await asyncio.to_thread(request.app[ENROLMENT_SERVICE].invitation_page, token)
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message)
    return form_page(
        request,
        "enrolment.html",
        COOKIE,
        INVITATION_COOKIE_PATH,
        status,
        mode="invitation",
        action=request.path,
        invitation=invitation,
        message=message,
        request_id="",
        enrolment=None,
        sso_url=request.app[SSO_URL],
    )


async def show_invitation(request: web.Request) -> web.Response:
    return await _invitation_form(request)


async def accept_invitation(request: web.Request) -> web.Response:
    form = await _form(request)
    if form is None:
        return problem_page(request, 403, EXPIRED_FORM)
    try:
        password = _passwords(form)
        user_id, dossier_id = await asyncio.to_thread(
            request.app[ENROLMENT_SERVICE].accept_invitation,
            request.match_info["token"],
            _field(form, "rpps"),
            password,
        )
    except ApiError as exc:
        if exc.status in (404, 410):
            return problem_page(request, exc.status, exc.message)
        return await _invitation_form(request, exc.message, exc.status)
    await request.app[ROOM_SYNC].bind_directory(user_id)
    await request.app[ROOM_SYNC].sync(dossier_id)  # invited into the patient room now
    response = redirect(f"/dossiers/{dossier_id}")
    await open_session(request, response, Caller(user_id, False, "password"))
    return response


def _inscription(
    request: web.Request,
    mode: str,
    message: str | None = None,
    status: int = 200,
    enrolment: dict[str, Any] | None = None,
) -> web.Response:
    return form_page(
        request,
        "enrolment.html",
        COOKIE,
        INSCRIPTION_PATH,
        status,
        mode=mode,
        action=INSCRIPTION_PATH + ("/code" if mode == "code" else ""),
        invitation=None,
        message=message,
        request_id=(enrolment or {}).get("request_id", ""),
        enrolment=enrolment,
        sso_url="",
    )


async def show_inscription(request: web.Request) -> web.Response:
    return _inscription(request, "request")


async def request_code(request: web.Request) -> web.Response:
    form = await _form(request)
    if form is None:
        return problem_page(request, 403, EXPIRED_FORM)
    try:
        enrolment = await asyncio.to_thread(
            request.app[ENROLMENT_SERVICE].request_code,
            _field(form, "rpps"),
            client_address(request, request.app[BEHIND_PROXY]),
        )
    except ApiError as exc:
        return _inscription(request, "request", exc.message, exc.status)
    return _inscription(request, "code", enrolment=enrolment)


async def enrol_with_code(request: web.Request) -> web.Response:
    form = await _form(request)
    if form is None:
        return problem_page(request, 403, EXPIRED_FORM)
    request_id = _field(form, "request_id")
    try:
        password = _passwords(form)
        user_id = await asyncio.to_thread(
            request.app[ENROLMENT_SERVICE].enrol_with_code,
            request_id,
            _field(form, "code"),
            password,
        )
    except ApiError as exc:
        if exc.status in (404, 410):  # the request is over: start again
            return _inscription(request, "request", exc.message, exc.status)
        return _inscription(request, "code", exc.message, exc.status, {"request_id": request_id})
    await request.app[ROOM_SYNC].bind_directory(user_id)
    response = redirect("/")
    await open_session(request, response, Caller(user_id, False, "password"))
    return response


# -- the dossier page's invitations (workspace) ------------------------------------------


def circle_invitations(
    svc: DossierService, caller: Caller, dossier: Mapping[str, Any]
) -> dict[str, Any]:
    """For a dossier's coordinators: its invitations and the roles one may invite with."""
    if dossier["access"] != "coordinator":
        return {"invitations": [], "invite_roles": []}
    pathway = PATHWAYS.version(dossier["pathway"], dossier["pathway_version"])
    roles = pathway.roles_allowed if pathway is not None else tuple(ROLES)
    return {
        "invitations": svc.invitations(caller, dossier["id"]),
        "invite_roles": [r for r in roles if r not in RESTRICTED_ROLES],
    }


async def _workspace_write(request: web.Request, action: Any) -> web.Response:
    """A write from the dossier page (session and CSRF required), then back to the page."""
    session = await current(request)
    dossier_id = request.match_info["dossier_id"]
    if session is None:
        return redirect(f"/login?next=/dossiers/{dossier_id}")
    if not await csrf_ok(request, session):
        return problem_page(request, 403, EXPIRED_FORM, session=session)
    form = await request.post()
    try:
        await asyncio.to_thread(action, session.caller, dossier_id, form)
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    return redirect(f"/dossiers/{dossier_id}#h-circle")


async def invite_from_page(request: web.Request) -> web.Response:
    svc = request.app[ENROLMENT_WORKSPACE]

    def act(caller: Caller, dossier_id: str, form: Any) -> None:
        role = _field(form, "role")
        if role not in ROLES:
            raise ApiError(400, "M_INVALID_PARAM", "Choisissez un rôle.")
        svc.invite(caller, dossier_id, {"rpps": _field(form, "rpps"), "role": role})

    return await _workspace_write(request, act)


async def cancel_from_page(request: web.Request) -> web.Response:
    svc = request.app[ENROLMENT_WORKSPACE]

    def act(caller: Caller, dossier_id: str, form: Any) -> None:
        svc.cancel_invitation(caller, dossier_id, request.match_info["invitation_id"])

    return await _workspace_write(request, act)


ENROLMENT_WORKSPACE = web.AppKey("enrolment_workspace", DossierService)


def after_sso(app: web.Application) -> Callable[[str], Awaitable[str]]:
    """After a Pro Santé Connect login: its RPPS's pending invitations are accepted (the
    e-CPS proved who they are) and it lands in the first dossier joined."""

    async def claim(user_id: str) -> str:
        joined = await asyncio.to_thread(app[ENROLMENT_SERVICE].claim_invitations, user_id)
        for dossier_id in joined:
            await app[ROOM_SYNC].sync(dossier_id)  # invited into the patient room now
        return f"/dossiers/{joined[0]}" if joined else "/"

    return claim


BEHIND_PROXY = web.AppKey("behind_proxy", bool)


def setup(
    app: web.Application,
    service: DossierService,
    workspace_service: DossierService,
    behind_proxy: bool = False,
) -> None:
    """``behind_proxy``: the processes of a worker deployment, reached through nginx (the
    per-address limit of self-enrolment then reads the address nginx forwards)."""
    app[BEHIND_PROXY] = behind_proxy
    app[ENROLMENT_SERVICE] = service
    app[ENROLMENT_WORKSPACE] = workspace_service
    app.router.add_post("/dossiers/{dossier_id}/invitations", invite_from_page)
    app.router.add_post(
        "/dossiers/{dossier_id}/invitations/{invitation_id}/annuler", cancel_from_page
    )
    app.router.add_get(INSCRIPTION_PATH, show_inscription)
    app.router.add_post(INSCRIPTION_PATH, request_code)
    app.router.add_post(INSCRIPTION_PATH + "/code", enrol_with_code)
    app.router.add_get(INVITATION_COOKIE_PATH + "/{token}", show_invitation)
    app.router.add_post(INVITATION_COOKIE_PATH + "/{token}", accept_invitation)
