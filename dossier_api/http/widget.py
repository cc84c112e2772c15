"""The dossier widget shown in each patient room (Element's ``im.vector.modular.widgets``):
a static page that obtains the user's Matrix OpenID token through the widget API, trades it
at ``POST /session/openid`` (the only place an OpenID token is accepted) for a short-lived
Maillon session, then shows the dossier page rendered here for that user, with that user's
rights (and audited). The widget's page opens only the dossier of the room it is shown in."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from aiohttp import web

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.ins import display_name
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.scope import require_room_scope
from dossier_api.domain.service import DossierService
from dossier_api.http import sessions
from dossier_api.http.pages import Formats
from maillon.shared.circle import ROLES
from maillon.shared.dates_fr import format_iso
from maillon.shared.text import displayable

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEXTS: dict[str, dict[str, Any]] = {
    "fr": {
        "reference": "Réf.",
        "unknown": "personne hors annuaire",
        "identity_status": {
            "PROV": "Identité provisoire — à vérifier",
            "RECUP": "Identité récupérée (téléservice INSi) — pièce d'identité à contrôler",
            "VALI": "Identité validée (pièce d'identité contrôlée) — INS à récupérer",
            "QUAL": "Identité qualifiée — INS utilisable",
        },
        "done_tasks": "Tâches faites ou annulées",
        "task_states": {"todo": "à faire", "done": "faite", "cancelled": "annulée"},
        "duration": "durée",
        "title": "Dossier de coordination",
        "loading": "Chargement du dossier…",
        "born": "Né(e) le",
        "identity": "identité",
        "sex": {"F": "femme", "M": "homme", "I": "indéterminé"},
        "pathway": "Parcours",
        "status": {"open": "Ouvert le", "closed": "Clos le", "archived": "Archivé le"},
        "opened": "Ouvert le",
        "mail": "Messagerie sécurisée du dossier",
        "circle": "Cercle de soins",
        "coordinator": "coordinateur",
        "until": "jusqu'au",
        "notes": "Dernières notes du cahier de liaison",
        "urgent": "urgent",
        "tasks": "Tâches en cours",
        "due": "échéance",
        "agenda": "Agenda",
        "forms": "Formulaires remplis",
        "none": "Aucun élément.",
    },
    "en": {
        "reference": "Ref.",
        "unknown": "person outside the directory",
        "identity_status": {
            "PROV": "Provisional identity — to be checked",
            "RECUP": "Identity retrieved (INSi service) — identity document to check",
            "VALI": "Validated identity (document checked) — INS to retrieve",
            "QUAL": "Qualified identity — INS usable",
        },
        "done_tasks": "Done or cancelled tasks",
        "task_states": {"todo": "to do", "done": "done", "cancelled": "cancelled"},
        "duration": "duration",
        "title": "Coordination record",
        "loading": "Loading the record…",
        "born": "Born",
        "identity": "identity",
        "sex": {"F": "female", "M": "male", "I": "undetermined"},
        "pathway": "Pathway",
        "status": {"open": "Opened on", "closed": "Closed on", "archived": "Archived on"},
        "opened": "Opened on",
        "mail": "Secure mail address",
        "circle": "Care team",
        "coordinator": "coordinator",
        "until": "until",
        "notes": "Latest log entries",
        "urgent": "urgent",
        "tasks": "Open tasks",
        "due": "due",
        "agenda": "Agenda",
        "forms": "Completed forms",
        "none": "Nothing yet.",
    },
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.globals["fmt"] = format_iso


def _lang(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "fr"


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=displayable(body),  # what is stored is shown, even a lone surrogate
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def _problem(message: str, status: int) -> web.Response:
    return _html(f'<p class="notice" role="alert">{markupsafe.escape(message)}</p>', status)


def page_context(svc: DossierService, caller: Caller, dossier_id: str) -> dict[str, Any]:
    """Everything the page shows, read with the caller's rights (each read is audited)."""
    dossier = svc.get_dossier(caller, dossier_id)
    pathway = PATHWAYS.version(dossier["pathway"], dossier["pathway_version"])
    now = dt.datetime.now(dt.UTC).isoformat()
    notes = list(reversed(svc.notes(caller, dossier_id)[-5:]))
    tasks = svc.tasks(caller, dossier_id)
    forms = svc.forms(caller, dossier_id)[-10:]
    return {
        "dossier": dossier,
        "identity_name": display_name(dossier["identity"]),
        "birth_date": format_iso(dossier["identity"].get("birth_date")),
        "opened_at": format_iso(dossier["opened_at"]),
        "pathway_name": pathway.name if pathway else dossier["pathway"],
        "circle": svc.circle(caller, dossier_id),
        "notes": notes,
        "tasks": tasks,
        "agenda": [
            a
            for a in svc.appointments(caller, dossier_id)
            if not a["cancelled"] and (a["end"] or "") >= now
        ][:10],
        "forms": forms,
        "form_titles": {f.id: f.title for f in pathway.forms} if pathway else {},
        "roles": ROLES,
        "people": {
            user_id: p["name"] + (f", {p['profession']}" if p["profession"] else "")
            for user_id, p in svc.people(
                {n["author"] for n in notes}
                | {t["assignee"] for t in tasks}
                | {f["author"] for f in forms}
            ).items()
            if p["name"]
        },
    }


def scoped_page_context(
    svc: DossierService, caller: Caller, dossier_id: str, room_id: str
) -> dict[str, Any]:
    """The page of the widget shown in ``room_id``: that room's dossier only, for a joined
    member of the room (an OpenID token reaches no other dossier)."""
    require_room_scope(svc, caller, dossier_id, room_id, "widget.read")
    return page_context(svc, caller, dossier_id)


def setup(app: web.Application, service_key: Any) -> None:
    async def shell(request: web.Request) -> web.Response:
        lang = _lang(request)
        return _html(_env.get_template("widget.html").render(lang=lang, t=TEXTS[lang]))

    async def dossier_page(request: web.Request) -> web.Response:
        lang = _lang(request)
        session = await sessions.current(request)
        if session is None:
            return _problem("Session du widget absente ou expirée : rouvrez le widget.", 401)
        room_id = request.query.get("room", "")
        if not room_id:
            return _problem("Salle du widget manquante (paramètre « room ») : rouvrez-le.", 400)
        try:
            context = await asyncio.to_thread(
                scoped_page_context,
                request.app[service_key],
                session.caller,
                request.match_info["dossier_id"],
                room_id,
            )
        except ApiError as exc:
            return _problem(exc.message, exc.status)
        page = _env.get_template("dossier_page.html")
        return _html(page.render(t=TEXTS[lang], f=Formats(lang), **context))

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ("widget.js", "widget.css"):
            raise web.HTTPNotFound()
        kind = "application/javascript" if name.endswith(".js") else "text/css"
        return web.Response(
            body=(STATIC / name).read_bytes(),
            content_type=kind,
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
        )

    app.router.add_get("/widget", shell)
    app.router.add_get("/widget/dossiers/{dossier_id}", dossier_page)
    app.router.add_get("/widget/{name}", static)
