"""The workspace's "Mes favoris" (``/favoris``): my groups of colleagues with their members
(names, professions, structures from the directory), a group's page (``/favoris/{n}``) to
add a professional found in the directory (the dossier page's picker), remove one, rename or
delete the group. Each write is the API's (``/v1/me/favourites…``): the same
``DossierService`` call with the session's caller, CSRF-checked; only the owner sees a group
(another's is unknown: 404, said in French)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dossier_api.domain.core import ApiError
from dossier_api.domain.favourites import MEMBER_ROLES
from dossier_api.domain.service import DossierService
from dossier_api.http.pages import problem_page, render
from dossier_api.http.sessions import Current, redirect, session_or_login, writing
from dossier_api.http.workspace import SERVICE
from maillon.shared.text import digits

SEARCH_SIZE = 10


def _group_number(request: web.Request) -> int:
    raw = request.match_info["group_id"]
    if not digits(raw) or len(raw) > 12:
        raise ApiError(404, "M_NOT_FOUND", "groupe de favoris inconnu")
    return int(raw)


async def _session(request: web.Request, write: bool) -> Current | web.Response:
    """The session of a read (or the way to the login page) or of a write (its CSRF token
    checked); a widget's session (traded for an OpenID token) opens no workspace page."""
    session = await (writing(request) if write else session_or_login(request))
    if isinstance(session, Current) and session.info.kind == "openid":
        message = "Session du widget : ouvrez l'espace de travail de Maillon pour vos favoris."
        return problem_page(request, 403, message, session=session)
    return session


def _context(svc: DossierService, session: Current, group_id: int | None, q: str) -> Any:
    """My groups (or the one of its page), and what the directory search found."""
    caller = session.caller
    if group_id is None:
        return {"groups": svc.favourites(caller), "group": None, "found": None}
    group = svc.favourite(caller, group_id)
    found, problem = None, None
    if q.strip():
        try:
            found = svc.search_directory(caller, q.strip(), size=SEARCH_SIZE)["results"]
        except ApiError as exc:
            problem = exc.message
    return {"groups": [group], "group": group, "found": found, "search_problem": problem}


async def _show(
    request: web.Request,
    session: Current,
    group_id: int | None,
    status: int = 200,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    svc = request.app[SERVICE]
    q = request.query.get("annuaire", "")[:200]
    try:
        context = await asyncio.to_thread(_context, svc, session, group_id, q)
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    context.setdefault("search_problem", None)
    return render(
        request,
        "favourites.html",
        status=status,
        session=session,
        query=q,
        error=error,
        values=values or {},
        member_roles=MEMBER_ROLES,
        **context,
    )


async def favourites_page(request: web.Request) -> web.Response:
    session = await _session(request, write=False)
    if isinstance(session, web.Response):
        return session
    try:
        group_id = _group_number(request) if "group_id" in request.match_info else None
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=session)
    return await _show(request, session, group_id)


# -- writes ------------------------------------------------------------------------------


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _person(form: Any) -> dict[str, str]:
    """The professional chosen in the directory: an account, or an RPPS without one."""
    kind, _, value = _field(form, "person").partition(":")
    if not value or kind not in ("user", "rpps"):
        raise ApiError(400, "M_INVALID_PARAM", "choisissez une personne dans l'annuaire")
    person = {"user_id" if kind == "user" else "rpps": value}
    if _field(form, "role"):
        person["role"] = _field(form, "role")
    return person


def _create(svc: DossierService, caller: Any, _: int | None, form: Any) -> Any:
    return svc.create_favourites(caller, {"name": _field(form, "name")})


def _add(svc: DossierService, caller: Any, group_id: int | None, form: Any) -> Any:
    return svc.add_favourites(caller, group_id or 0, [_person(form)])


def _remove(svc: DossierService, caller: Any, group_id: int | None, form: Any) -> Any:
    who = _field(form, "who")[:255]
    if not who:
        raise ApiError(400, "M_INVALID_PARAM", "la personne à retirer est attendue")
    return svc.remove_favourite(caller, group_id or 0, who)


def _rename(svc: DossierService, caller: Any, group_id: int | None, form: Any) -> Any:
    return svc.rename_favourites(caller, group_id or 0, _field(form, "name"))


def _delete(svc: DossierService, caller: Any, group_id: int | None, form: Any) -> Any:
    return svc.delete_favourites(caller, group_id or 0)


Write = Callable[[DossierService, Any, int | None, Any], Any]
# action in the path: (the write, where the page goes afterwards: the group's page or the list)
WRITES: dict[str, tuple[Write, bool]] = {
    "membres": (_add, True),
    "retrait": (_remove, True),
    "nom": (_rename, True),
    "suppression": (_delete, False),
}


async def _write(
    request: web.Request, fn: Write, group_id: int | None, to_group: bool
) -> web.Response:
    session = await _session(request, write=True)
    if isinstance(session, web.Response):
        return session
    form = await request.post()
    svc = request.app[SERVICE]
    try:
        made = await asyncio.to_thread(fn, svc, session.caller, group_id, form)
    except ApiError as exc:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        if exc.status == 404 and group_id is not None:
            return problem_page(request, exc.status, exc.message, session=session)
        return await _show(request, session, group_id, exc.status, exc.message, values)
    target = made["id"] if group_id is None else group_id
    return redirect(f"/favoris/{target}" if to_group else "/favoris")


async def create(request: web.Request) -> web.Response:
    return await _write(request, _create, None, True)


async def change(request: web.Request) -> web.Response:
    found = WRITES.get(request.match_info["action"])
    try:
        group_id = _group_number(request)
        if found is None:
            raise ApiError(404, "M_NOT_FOUND", "Action inconnue.")
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message, session=await _any(request))
    fn, to_group = found
    return await _write(request, fn, group_id, to_group)


async def _any(request: web.Request) -> Current | None:
    session = await session_or_login(request)
    return session if isinstance(session, Current) else None


def setup(app: web.Application) -> None:
    """After ``workspace.setup`` (its service)."""
    app.router.add_get("/favoris", favourites_page)
    app.router.add_post("/favoris", create)
    app.router.add_get("/favoris/{group_id}", favourites_page)
    app.router.add_post("/favoris/{group_id}/{action}", change)
