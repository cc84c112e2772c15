"""The console's resource teams (``/admin/equipes``): the teams (name, structure, level,
expertise, pathways, territory, members by name and profession, response time), created and
edited by administrators, members found in the directory; the rota (weekly pattern and
dated exceptions, Europe/Paris) and the escalation chain, kept by administrators and by the
team's coordinator; who is on duty now. Every operation is ``TeamRegistry``'s (the one the
CLI and the API call), checked and audited with its before and after."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from dossier_api.domain.core import ApiError
from dossier_api.domain.models import LEVELS
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.http.admin import _page, _show
from dossier_api.http.handlers import ADMIN
from dossier_api.http.sessions import Current, redirect
from maillon.shared.dates_fr import DAYS
from maillon.shared.text import digits

TEAMS = "/admin/equipes"
BLANK_ROWS = 2  # empty lines offered under the rota's rows
MAX_ROWS = 100


def _value(form: MultiDictProxy[Any], name: str) -> str:
    got = form.get(name)
    return got.strip() if isinstance(got, str) else ""


def _count(form: MultiDictProxy[Any], name: str) -> int:
    raw = _value(form, name)
    return min(int(raw), MAX_ROWS) if digits(raw) else 0


def _number(raw: str, label: str, unit: str, seconds: int) -> int:
    if not digits(raw) or len(raw) > 9:
        raise ApiError(
            400, "M_INVALID_PARAM", f"champ « {label} » : un nombre entier de {unit} est attendu"
        )
    return int(raw) * seconds


def escalation_from_form(form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {
        "response_seconds": _number(
            _value(form, "response_minutes"), "délai de réponse", "minutes", 60
        ),
        "structure_account": _value(form, "structure_account") or None,
    }


def team_from_form(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """A team's fields as the console's form gives them (delays in minutes and days)."""
    return {
        "name": _value(form, "name"),
        "level": _value(form, "level"),
        "structure_id": _value(form, "structure_id") or None,
        "expertise": _value(form, "expertise"),
        "pathways": [p for p in form.getall("pathways", []) if isinstance(p, str)],
        "territory": _value(form, "territory"),
        "exit_delay_seconds": _number(
            _value(form, "exit_days"), "maintien dans le cercle", "jours", 86400
        ),
        **escalation_from_form(form),
    }


def rota_from_form(form: MultiDictProxy[Any]) -> dict[str, Any] | None:
    """The rota the form describes: its weekly lines (``w0_…``) and exceptions (``x0_…``),
    empty lines left out; None when "no rota" is ticked (every member on duty)."""
    if form.get("no_rota") == "on":
        return None

    def lines(prefix: str, when: str) -> list[dict[str, Any]]:
        found = []
        for i in range(_count(form, f"{prefix}_count")):
            p = f"{prefix}{i}_"
            members = [m for m in form.getall(p + "members", []) if isinstance(m, str)]
            if form.get(p + "remove") == "on" or not (_value(form, p + when) or members):
                continue
            level = _value(form, p + "level") or "1"
            line: dict[str, Any] = {
                when: _value(form, p + when),
                "start": _value(form, p + "start") or "00:00",
                "end": _value(form, p + "end") or "24:00",
                "members": members,
                "level": int(level) if digits(level) and len(level) < 4 else level,
            }
            found.append(line)
        return found

    return {"weekly": lines("w", "day"), "exceptions": lines("x", "date")}


def _member_of(form: MultiDictProxy[Any]) -> str:
    """The professional chosen in the directory's results, or the Matrix id typed."""
    chosen = _value(form, "user_id") or _value(form, "matrix_id")
    if not chosen:
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            "champ « membre » : choisissez une personne dans l'annuaire ou donnez son "
            "identifiant Matrix",
        )
    return chosen


async def _search(request: web.Request, session: Current) -> tuple[list[Any] | None, list[str]]:
    words = request.query.get("annuaire", "").strip()
    if not words or not session.caller.is_admin:
        return None, []
    try:
        found = await asyncio.to_thread(
            request.app[ADMIN].find_professionals, session.caller, words[:200]
        )
    except ApiError as exc:
        return None, [f"champ « annuaire » : {exc.message}"]
    return found, []


async def _context(request: web.Request, session: Current, errors: list[str]) -> dict[str, Any]:
    """What both pages show besides the teams: the refusals, the directory's results, the
    choices of the forms (structures for administrators)."""
    found, problems = await _search(request, session)
    svc, caller = request.app[ADMIN], session.caller
    structures = await asyncio.to_thread(svc.structures, caller) if caller.is_admin else []
    return {
        "errors": errors + problems,
        "found": found,
        "query": request.query.get("annuaire", ""),
        "structures": structures,
        "levels": LEVELS,
        "days": DAYS,
        "pathways": {pid: PATHWAYS[pid].name for pid in PATHWAYS},
        "blank_rows": BLANK_ROWS,
    }


async def _teams(
    request: web.Request, session: Current, errors: list[str], status: int = 200
) -> web.Response:
    teams = await asyncio.to_thread(request.app[ADMIN].kept_teams, session.caller)
    context = await _context(request, session, errors)
    return _show(request, "admin_teams.html", session, teams=teams, status=status, **context)


async def _team(
    request: web.Request,
    session: Current,
    errors: list[str],
    status: int = 200,
    rota: dict[str, Any] | None = None,
) -> web.Response:
    slug = request.match_info["slug"]
    team = await asyncio.to_thread(request.app[ADMIN].kept_team, session.caller, slug)
    shown = rota if rota is not None else (team["rota"] or {"weekly": [], "exceptions": []})
    context = await _context(request, session, errors)
    return _show(
        request, "admin_team.html", session, team=team, rota=shown, status=status, **context
    )


@_page("admin.teams.read", keepers=True)
async def teams_page(request: web.Request, session: Current) -> web.StreamResponse:
    return await _teams(request, session, [])


@_page("admin.team.read", keepers=True)
async def team_page(request: web.Request, session: Current) -> web.StreamResponse:
    return await _team(request, session, [])


@_page("admin.team.create", write=True)
async def create(request: web.Request, session: Current) -> web.StreamResponse:
    """A new team with its first member (found in the directory), the team's coordinator
    when the box is ticked; the other members are added on the team's page."""
    form = await request.post()
    try:
        body = team_from_form(form)
        body["slug"] = _value(form, "slug")
        body["members"] = [
            {
                "user_id": _member_of(form),
                "role": _value(form, "member_role"),
                "coordinator": form.get("member_coordinator") == "on",
            }
        ]
        made = await asyncio.to_thread(request.app[ADMIN].add_team, session.caller, body)
    except ApiError as exc:
        if exc.status == 403:
            raise
        return await _teams(request, session, [exc.message], exc.status)
    return redirect(f"{TEAMS}/{made['slug']}")


@_page("admin.team.change", write=True, keepers=True)
async def change(request: web.Request, session: Current) -> web.StreamResponse:
    """One form per change: the team's fields, a member (added, changed, removed), the
    rota and the escalation chain."""
    form = await request.post()
    svc, caller = request.app[ADMIN], session.caller
    slug = request.match_info["slug"]
    what = _value(form, "what")
    rota = None
    try:
        if what == "team":
            await asyncio.to_thread(svc.update_team, caller, slug, team_from_form(form))
        elif what == "member":
            member = {
                "role": _value(form, "member_role"),
                "coordinator": form.get("member_coordinator") == "on",
            }
            await asyncio.to_thread(svc.set_team_member, caller, slug, member, _member_of(form))
        elif what == "remove":
            await asyncio.to_thread(svc.set_team_member, caller, slug, None, _member_of(form))
        elif what == "rota":
            rota = rota_from_form(form)
            escalation = escalation_from_form(form)
            await asyncio.to_thread(svc.set_rota, caller, slug, rota, escalation)
        else:
            raise ApiError(400, "M_INVALID_PARAM", "action inconnue")
    except ApiError as exc:
        if exc.status in (403, 404):
            raise
        return await _team(request, session, [exc.message], exc.status, rota)
    return redirect(f"{TEAMS}/{slug}")


def setup(app: web.Application) -> None:
    app.router.add_get(TEAMS, teams_page)
    app.router.add_post(TEAMS, create)
    app.router.add_get(TEAMS + "/{slug}", team_page)
    app.router.add_post(TEAMS + "/{slug}", change)
