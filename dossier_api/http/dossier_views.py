"""The dossier page, one code for two places: the workspace (``/dossiers/{id}``, full width)
and the widget of the patient room in Element (``/widget/dossiers/{id}?room=…``, narrow).
The same template, the same context, the same handlers for every write (a note and its
documents, a reply, a correction, tasks, the agenda, the circle and inviting a favourites
group into it, pathway forms and their drafts, the PPCS, consent, a resource team's
solicitation and its advice report). Each write is the API's: the same body schema, the same
``DossierService`` call with the session's caller (rights checked, one audit row), audited
as the "widget" or the "workspace" component. The widget's session (traded for an OpenID
token) opens only the dossier of its room, as a joined member of that room."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from jsonschema import Draft7Validator, FormatChecker

from dossier_api.domain import care, vigilance
from dossier_api.domain.core import ApiError
from dossier_api.domain.favourites import MEMBER_ROLES
from dossier_api.domain.ins import IDENTITY_STATUSES
from dossier_api.domain.pathways import PATHWAYS, FormDefinition
from dossier_api.domain.reading import TIMELINE_KINDS, parse_kinds
from dossier_api.domain.scope import require_room_scope
from dossier_api.domain.service import DossierService
from dossier_api.domain.shapes import NoteOut, PpcsOut
from dossier_api.http import schemas as S
from dossier_api.http.enrolment import circle_invitations
from dossier_api.http.handlers import ROOM_SYNC
from dossier_api.http.pages import WIDGET_HEADERS, problem_page, render
from dossier_api.http.registry import validation_message
from dossier_api.http.sessions import Current, csrf_ok, current, redirect
from dossier_api.http.workspace import SERVICE as WORKSPACE_SERVICE
from maillon.shared.circle import RESTRICTED_ROLES, ROLES
from maillon.shared.dates_fr import PARIS
from maillon.shared.text import digits

WIDGET_SERVICE = web.AppKey("widget_service", DossierService)  # audited as "widget"
AUDIT_BASES = frozenset({"coordinator", "admin", "delegate"})
ID_MAX = 32
Form = Any  # the posted fields: aiohttp's MultiDictProxy (str or web.FileField values)


@dataclass(frozen=True)
class Place:
    """Where the page is shown: the workspace, or the widget of one room."""

    dossier_id: str
    room_id: str | None  # the widget's room; None in the workspace

    @property
    def widget(self) -> bool:
        return self.room_id is not None

    def url(self, suffix: str = "", **query: str) -> str:
        prefix = "/widget" if self.widget else ""
        params = {"room": self.room_id, **query} if self.room_id else dict(query)
        kept = {k: v for k, v in params.items() if v}
        return f"{prefix}/dossiers/{self.dossier_id}{suffix}" + (
            "?" + urlencode(kept) if kept else ""
        )


def _place(request: web.Request) -> Place:
    dossier_id = request.match_info["dossier_id"]
    if len(dossier_id) > ID_MAX:
        raise ApiError(404, "M_NOT_FOUND", "Dossier inconnu.")
    if not request.path.startswith("/widget/"):
        return Place(dossier_id, None)
    room_id = request.query.get("room", "")
    if not room_id:
        raise ApiError(
            400, "M_INVALID_PARAM", "Salle du widget manquante (paramètre « room ») : rouvrez-le."
        )
    return Place(dossier_id, room_id)


def _refusal(
    request: web.Request, place: Place, status: int, message: str, session: Current | None
) -> web.Response:
    """A refusal said in words, in the page's layout (the widget's is framed, narrow)."""
    if place.widget:
        return problem_page(
            request, status, message, headers=WIDGET_HEADERS, layout="widget", session=session
        )
    return problem_page(request, status, message, session=session)


def _service(request: web.Request, place: Place) -> DossierService:
    return request.app[WIDGET_SERVICE if place.widget else WORKSPACE_SERVICE]


async def _session(request: web.Request, place: Place) -> Current | web.Response:
    session = await current(request)
    if session is None:
        if place.widget:
            message = "Session du widget absente ou expirée : rouvrez le widget."
            return _refusal(request, place, 401, message, None)
        return redirect("/login?" + urlencode({"next": request.path_qs}))
    if session.info.kind == "openid" and not place.widget:
        # A session traded for an OpenID token opens its room's dossier only, in the widget.
        return problem_page(
            request,
            403,
            "Session du widget : ouvrez ce dossier depuis sa salle dans Element.",
            session=session,
        )
    return session


async def _opened(request: web.Request) -> tuple[Place, Current] | web.Response:
    """Where the page is and the session reading it, or the answer refusing it."""
    try:
        place = _place(request)
    except ApiError as exc:
        return problem_page(request, exc.status, exc.message)
    session = await _session(request, place)
    return session if isinstance(session, web.Response) else (place, session)


def _scoped(svc: DossierService, session: Current, place: Place, action: str) -> None:
    if place.room_id is not None:
        require_room_scope(svc, session.caller, place.dossier_id, place.room_id, action)


def _local(value: Any, name: str) -> dt.datetime:
    """A ``datetime-local`` field (Paris time) as an aware datetime."""
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ApiError(
            400, "M_INVALID_PARAM", f"« {name} » : une date et une heure attendues"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=PARIS)


# -- the page's context ------------------------------------------------------------------


def _form_values(form: FormDefinition, answers: dict[str, Any]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for f in form.fields:
        value = answers.get(f.id)
        if value is None:
            continue
        if f.type == "boolean":
            shown[f.id] = "true" if value is True else "false" if value is False else str(value)
        else:
            shown[f.id] = str(value)
    return shown


def dossier_context(
    svc: DossierService, session: Current, place: Place, query: dict[str, str]
) -> dict[str, Any]:
    """Everything the page shows, read with the caller's rights (each read audited)."""
    caller, dossier_id = session.caller, place.dossier_id
    _scoped(svc, session, place, "widget.read")
    dossier = svc.get_dossier(caller, dossier_id)
    circle = svc.circle(caller, dossier_id)
    notes = list(reversed(svc.notes(caller, dossier_id)))
    tasks = svc.tasks(caller, dossier_id)
    agenda = [a for a in svc.appointments(caller, dossier_id) if not a["cancelled"]]
    forms = svc.forms(caller, dossier_id)
    consent = svc.consent_history(caller, dossier_id)
    alerts = svc.alerts(caller, dossier_id)
    try:
        ppcs: PpcsOut | None = svc.get_ppcs(caller, dossier_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        ppcs = None  # no plan yet
    raw_kinds = query.get("kind", "")
    kinds = parse_kinds(raw_kinds or None)
    timeline = svc.timeline(caller, dossier_id, kinds, None, None, 100)
    found, directory, problems = None, None, {}
    try:
        if query.get("q", "").strip():
            found = svc.search(caller, dossier_id, query["q"])["results"]
    except ApiError as exc:
        problems["search"] = exc.message
    try:
        if query.get("annuaire", "").strip() and dossier["access"] == "coordinator":
            directory = svc.search_directory(caller, query["annuaire"].strip(), size=10)
    except ApiError as exc:
        problems["directory"] = exc.message
    audit = svc.audit(caller, dossier_id, 200) if dossier["access"] in AUDIT_BASES else None
    can_manage = dossier["access"] == "coordinator"
    teams = svc.teams(caller, dossier["pathway"])
    solicitations = svc.dossier_solicitations(caller, dossier_id)
    delegations = _current_delegations(svc, session) if can_manage else None
    favourite_groups = svc.favourites(caller) if can_manage else []
    delegate_found = None
    try:
        if query.get("delegue", "").strip() and can_manage:
            found_pros = svc.search_directory(caller, query["delegue"].strip(), size=10)
            delegate_found = [r for r in found_pros["results"] if r["user_id"]]
    except ApiError as exc:
        problems["delegate"] = exc.message
    ids = {m["user_id"] for m in circle} | {n["author"] for n in notes}
    ids |= {t["assignee"] for t in tasks} | {f["author"] for f in forms}
    ids |= {p for a in agenda for p in a["participants"]}
    ids |= {e["actor"] for e in consent["history"]}
    ids |= {u for a in alerts for u in (a["author"], *a["recipients"])}
    ids |= {e["actor"] for e in audit or []} | {
        e["on_behalf_of"] for e in audit or [] if e["on_behalf_of"]
    }
    ids |= {e["actor"] for e in timeline["entries"] if e["actor"]}
    for sol in solicitations:
        ids |= {sol["requester"]["user_id"]} | {e["actor"] for e in sol["events"] if e["actor"]}
        ids |= {str(sol["report"]["author"])} if sol["report"] else set()
    for d in (delegations or {}).values():
        ids |= {x for row in d for x in (row["from_user"], row["to_user"])}
    if ppcs is not None:
        ids |= {ppcs["author"]} | {a["who"] for a in ppcs["actions"] if a["who"].startswith("@")}
    people = svc.people(ids)
    for m in circle:
        people.setdefault(
            m["user_id"], {"display_name": m["display_name"], "profession": m["profession"]}
        )
    pathway = PATHWAYS.version(dossier["pathway"], dossier["pathway_version"])
    drafts: dict[str, dict[str, str]] = {}
    for form in pathway.forms if pathway else ():
        try:
            draft = svc.form_draft(caller, dossier_id, form.id)
        except ApiError:
            continue  # no draft of this form, or no right to write one
        drafts[form.id] = _form_values(form, draft["answers"])
    by_thread: dict[str, list[NoteOut]] = {}
    for n in reversed(notes):
        if n["reply_to"]:
            by_thread.setdefault(n["reply_to"], []).append(n)
    return {
        "dossier": dossier,
        "place": place,
        "circle": circle,
        "active_circle": [m for m in circle if m["active"]],
        "notes": [n for n in notes if not n["reply_to"]],
        "replies": by_thread,
        "open_tasks": [t for t in tasks if t["status"] == "todo"],
        "closed_tasks": [t for t in tasks if t["status"] != "todo"],
        "all_tasks": query.get("taches") == "toutes",
        "agenda": agenda,
        "forms": forms,
        "pathway_forms": pathway.forms if pathway else (),
        "roles_allowed": [
            r for r in ROLES if pathway is None or r == "COORD" or r in pathway.roles_allowed
        ],
        "note_roles": [r for r in ROLES if r not in RESTRICTED_ROLES],
        "drafts": drafts,
        "form_titles": {f.id: f.title for f in pathway.forms} if pathway else {},
        "consent_history": consent["history"],
        "alerts": alerts,
        "mail_enabled": svc.mail_enabled(),
        "mail_nonce": secrets.token_hex(16),
        "identity_statuses": IDENTITY_STATUSES,
        "document_kinds": vigilance.DOCUMENT_KINDS,
        "ins_sources": vigilance.INS_SOURCES,
        "ppcs": ppcs,
        "timeline": timeline["entries"],
        "timeline_kinds": TIMELINE_KINDS,
        "kinds_shown": set(kinds) if raw_kinds else set(),
        "query": query,
        "found": found,
        "directory": directory["results"] if directory is not None else None,
        "search_problems": problems,
        "audit": audit,
        "people": people,
        "can_write": dossier["access"] in ("coordinator", "member", "delegate")
        and dossier["status"] == "open",
        "can_manage": can_manage,
        "teams": teams,
        "solicitations": solicitations,
        "delegations": delegations,
        "delegate_found": delegate_found,
        "favourite_groups": favourite_groups,
        "favourite_roles": [
            r for r in MEMBER_ROLES if pathway is None or r in pathway.roles_allowed
        ],
        **circle_invitations(svc, caller, dossier),
    }


async def _show(
    request: web.Request,
    place: Place,
    session: Current,
    status: int = 200,
    error: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    done: dict[str, Any] | None = None,
) -> web.Response:
    svc = _service(request, place)
    query = {k: v for k, v in request.query.items() if k in ("taches", "q", "annuaire", "delegue")}
    query["kind"] = ",".join(request.query.getall("kind", []))
    try:
        context = await asyncio.to_thread(dossier_context, svc, session, place, query)
    except ApiError as exc:
        return _refusal(request, place, exc.status, exc.message, session)
    return render(
        request,
        "dossier.html",
        status=status,
        session=session,
        layout="widget" if place.widget else "page",
        headers=WIDGET_HEADERS if place.widget else None,
        matrix_to=_matrix_to,
        error=error,
        values=values or {},
        done=done,
        **context,
    )


def _current_delegations(svc: DossierService, session: Current) -> dict[str, list[Any]]:
    """The caller's delegations, given and received, that have not ended yet."""
    now = dt.datetime.now(dt.UTC)
    mine = svc.delegations(session.caller)
    return {
        side: [d for d in mine[side] if dt.datetime.fromisoformat(d["until"]) > now]
        for side in ("given", "received")
    }


def _matrix_to(room_id: str | None) -> str | None:
    return f"https://matrix.to/#/{quote(room_id, safe='!:')}" if room_id else None


async def dossier_page(request: web.Request) -> web.Response:
    opened = await _opened(request)
    if isinstance(opened, web.Response):
        return opened
    place, session = opened
    return await _show(request, place, session)


# -- writes ------------------------------------------------------------------------------


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _texts(form: Form, name: str) -> list[str]:
    return [v.strip() for v in form.getall(name, []) if isinstance(v, str) and v.strip()]


def _with(body: dict[str, Any], form: Form, *names: str) -> dict[str, Any]:
    """``body`` with the optional fields that were filled in."""
    return body | {name: _text(form, name) for name in names if _text(form, name)}


def _checked(form: Form, name: str) -> bool:
    return bool(form.get(name) == "on")


def _checked_body(schema: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The body as the API would take it: the same schema, its first error in French."""
    validator = Draft7Validator(schema, format_checker=FormatChecker())
    error = next(iter(sorted(validator.iter_errors(body), key=str)), None)
    if error is not None:
        raise ApiError(400, "M_BAD_JSON", validation_message(error))
    return body


Write = Callable[[DossierService, Current, str, Form, web.Request], Any]


def _note(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = _with(
        {"text": _text(form, "text"), "urgent": _checked(form, "urgent")}, form, "reply_to"
    )
    roles = _texts(form, "visible_to_roles")
    if roles:
        body["visible_to_roles"] = roles
    note = svc.add_note(s.caller, did, _checked_body(S.NOTE_IN, body))
    upload = form.get("file")
    if isinstance(upload, web.FileField) and upload.filename:
        content = upload.file.read(svc.attachment_settings.max_bytes + 1)
        if len(content) > svc.attachment_settings.max_bytes:
            raise ApiError(
                413,
                "M_TOO_LARGE",
                f"note enregistrée, mais document trop volumineux : au plus "
                f"{svc.attachment_settings.max_bytes} octets",
            )
        svc.add_attachment(
            s.caller, did, note["id"], upload.filename, upload.content_type or "", content
        )
    return note


def _correction(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = _checked_body(S.CORRECTION_IN, {"text": _text(form, "text")})
    return svc.add_note(s.caller, did, body, _text(form, "note_id")[:ID_MAX])


def _task(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = _with({"title": _text(form, "title"), "assignee": _text(form, "assignee")}, form, "due")
    return svc.add_task(s.caller, did, _checked_body(S.TASK_IN, body))


def _task_status(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = _checked_body(S.TASK_PATCH, {"status": _text(form, "status")})
    return svc.patch_task(s.caller, did, _text(form, "task_id")[:ID_MAX], body)


def _appointment(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    start = _local(_text(form, "start"), "début")
    minutes = _text(form, "minutes") or "30"
    if not digits(minutes) or not 5 <= int(minutes) <= 24 * 60:
        raise ApiError(400, "M_INVALID_PARAM", "« durée » : de 5 à 1440 minutes")
    body = {
        "title": _text(form, "title"),
        "start": start.isoformat(),
        "end": (start + dt.timedelta(minutes=int(minutes))).isoformat(),
        "participants": _texts(form, "participants"),
    }
    body = _with(body, form, "place")
    return svc.add_appointment(s.caller, did, _checked_body(S.APPOINTMENT_IN, body))


def _member(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body: dict[str, Any] = {
        "user_id": _text(form, "user_id"),
        "role": _text(form, "role"),
        "coordinator": _checked(form, "coordinator"),
        "attested": _checked(form, "attested"),
    }
    if not body["user_id"]:
        raise ApiError(400, "M_INVALID_PARAM", "choisissez une personne dans l'annuaire")
    if _text(form, "until"):
        day = _local(_text(form, "until") + "T23:59", "date de sortie")
        body["until"] = day.isoformat()
    return svc.add_member(s.caller, did, _checked_body(S.CIRCLE_ADD, body))


def _member_removal(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    return svc.remove_member(s.caller, did, _text(form, "user_id")[:255])


def _answers(definition: FormDefinition, form: Form, draft: bool) -> dict[str, Any]:
    """The answers typed in a pathway form, as the API takes them (an integer, a boolean, a
    date, a choice); what cannot be read is refused in French, naming the field."""
    answers: dict[str, Any] = {}
    for f in definition.fields:
        raw = _text(form, "f_" + f.id)
        if not raw:
            continue
        if f.type == "integer":
            try:
                answers[f.id] = int(raw)
            except ValueError as exc:
                if draft:
                    continue
                raise ApiError(
                    400, "M_INVALID_PARAM", f"« {f.label} » : un entier est attendu"
                ) from exc
        elif f.type == "boolean":
            answers[f.id] = raw == "true"
        else:
            answers[f.id] = raw
    return answers


def _pathway_form(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    dossier = svc.get_dossier(s.caller, did)
    pathway = PATHWAYS.version(dossier["pathway"], dossier["pathway_version"])
    form_id = _text(form, "form_id")
    definition = next((f for f in pathway.forms if f.id == form_id), None) if pathway else None
    if definition is None:
        raise ApiError(404, "M_NOT_FOUND", "formulaire inconnu pour ce parcours")
    draft = _text(form, "intent") == "draft"
    body = _checked_body(S.FORM_IN, {"answers": _answers(definition, form, draft)})
    if draft:
        return svc.save_form_draft(s.caller, did, form_id, body)
    return svc.submit_form(s.caller, did, form_id, body)


def _ppcs(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    problems = []
    for problem, goals in zip(form.getall("problem", []), form.getall("goals", []), strict=False):
        if isinstance(problem, str) and problem.strip():
            lines = goals.splitlines() if isinstance(goals, str) else []
            problems.append(
                {"problem": problem.strip(), "goals": [g.strip() for g in lines if g.strip()]}
            )
    actions = []
    for action, who, when in zip(
        form.getall("action", []), form.getall("who", []), form.getall("when", []), strict=False
    ):
        if isinstance(action, str) and action.strip():
            row = {"action": action.strip(), "who": str(who).strip()}
            if isinstance(when, str) and when.strip():
                row["when"] = when.strip()
            actions.append(row)
    unmet = [g.strip() for g in _text(form, "unmet_goals").splitlines() if g.strip()]
    body = _with(
        {"problems": problems, "actions": actions, "unmet_goals": unmet}, form, "expectations"
    )
    return svc.put_ppcs(s.caller, did, _checked_body(S.PPCS_IN, body))


def _consent(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    names = ("consent_informed", "consent_share_outside", "opposition")
    body = _with({name: _checked(form, name) for name in names}, form, "consent_note")
    return svc.patch_dossier(s.caller, did, _checked_body(S.DOSSIER_PATCH, body))


def _alert(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body: dict[str, Any] = {"text": _text(form, "text")}
    if _texts(form, "to"):
        body["to"] = _texts(form, "to")
    return svc.add_alert(s.caller, did, _checked_body(S.ALERT_IN, body))


def _mail(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = {"to": _text(form, "to"), "subject": _text(form, "subject"), "text": _text(form, "text")}
    body = _checked_body(S.MAIL_IN, body)
    nonce = _text(form, "nonce")[:64] or secrets.token_hex(16)  # one mail per filled form
    return svc.send_mail(s.caller, did, body, f"maillon.page.{did}.{nonce}")


def _status(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = _with({"status": _text(form, "status")}, form, "status_reason")
    return svc.patch_dossier(s.caller, did, _checked_body(S.DOSSIER_PATCH, body))


def _identity_status(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    evidence: dict[str, Any] = _with({}, form, "ins_source", "reason")
    if _text(form, "document_kind"):
        # A day, not an instant: checked today means now (noon would be "in the future"
        # every morning); an earlier day means that day at noon, Paris time.
        now = dt.datetime.now(PARIS)
        checked = _text(form, "checked_on") or now.date().isoformat()
        day = _local(checked + "T12:00", "date du contrôle")
        moment = now if day.date() == now.date() else day
        evidence["document"] = {
            "kind": _text(form, "document_kind"),
            "checked_at": moment.isoformat(),
        }
    body: dict[str, Any] = {"status": _text(form, "status")}
    if evidence:
        body["identity_evidence"] = evidence
    return svc.change_identity_status(s.caller, did, _checked_body(S.IDENTITY_STATUS_IN, body))


def _solicitation(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    body = {
        "team": _text(form, "team"),
        "reason": _text(form, "reason"),
        "kind": _text(form, "kind") or "avis",
        "attested": _checked(form, "attested"),
    }
    return svc.solicit(s.caller, did, _checked_body(S.SOLICITATION_IN, body))


REPORT_LABELS = {
    "question": "question posée",
    "elements": "éléments pris en compte",
    "advice": "avis",
}


def _number(form: Form, name: str, what: str) -> int:
    number = _text(form, name)
    if not digits(number) or len(number) > 12:
        raise ApiError(400, "M_INVALID_PARAM", f"un numéro de {what} attendu")
    return int(number)


def _avis(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    """The accepter's advice report (the bot's ``!sollicitation repondre``), from the page
    of the solicitation's dossier."""
    number = _number(form, "solicitation_id", "sollicitation")
    for key, label in REPORT_LABELS.items():
        if not _text(form, key):
            raise ApiError(400, "M_INVALID_PARAM", f"« {label} » : un texte est attendu")
    body = _checked_body(S.REPORT_IN, {key: _text(form, key) for key in REPORT_LABELS})
    return svc.answer_solicitation(s.caller, number, body, did)


def _favourites(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    """One of my favourites groups invited into the circle (``POST
    /v1/dossiers/{id}/favourites/{n}``): each person through ``add_member``."""
    number = _number(form, "group_id", "groupe de favoris")
    body: dict[str, Any] = {"attested": _checked(form, "attested")}
    if _text(form, "role"):
        body["role"] = _text(form, "role")
    return svc.invite_favourites(s.caller, did, number, _checked_body(S.FAVOURITES_INVITE_IN, body))


def _delegation(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    """A delegation from the page of a dossier its author coordinates (the bot's
    ``!delegation``: to a directory professional, until the end of that day)."""
    svc.check(s.caller, did, "delegation.create", "manage")
    if not _text(form, "to_user"):
        raise ApiError(400, "M_INVALID_PARAM", "choisissez la personne à qui déléguer")
    if not _text(form, "until"):
        raise ApiError(400, "M_INVALID_PARAM", "« jusqu'au » : une date attendue")
    until = _local(_text(form, "until") + "T23:59:59", "jusqu'au")
    body = {"to_user": _text(form, "to_user"), "until": until.isoformat()}
    return svc.delegate(s.caller, _checked_body(S.DELEGATION_IN, body))


def _delegation_end(svc: DossierService, s: Current, did: str, form: Form, _: web.Request) -> Any:
    svc.check(s.caller, did, "delegation.revoke", "manage")
    return svc.revoke_delegation(s.caller, _number(form, "delegation_id", "délégation"))


# action: (write, the section shown again, whether the rooms follow)
WRITES: dict[str, tuple[Write, str, bool]] = {
    "notes": (_note, "notes", False),
    "corrections": (_correction, "notes", False),
    "tasks": (_task, "tasks", False),
    "task-status": (_task_status, "tasks", False),
    "agenda": (_appointment, "agenda", False),
    "circle": (_member, "circle", True),
    "circle-removal": (_member_removal, "circle", True),
    "forms": (_pathway_form, "forms", False),
    "ppcs": (_ppcs, "ppcs", False),
    "consent": (_consent, "consent", False),
    "alerts": (_alert, "alerts", False),
    "mail": (_mail, "mail", False),
    "status": (_status, "status", True),
    "identity-status": (_identity_status, "identity", False),
    "solicitations": (_solicitation, "teams", False),
    "delegations": (_delegation, "delegations", False),
    "delegation-end": (_delegation_end, "delegations", False),
    "avis": (_avis, "teams", False),
    "favourites": (_favourites, "circle", True),
}
# Writes whose outcome is shown on the page rather than only its effect (no redirect).
SHOWN = frozenset({"favourites"})


async def write(request: web.Request) -> web.Response:
    opened = await _opened(request)
    if isinstance(opened, web.Response):
        return opened
    place, session = opened
    if not await csrf_ok(request, session):
        return _refusal(
            request, place, 403, "Jeton anti-falsification (CSRF) manquant ou incorrect.", session
        )
    action = request.match_info["action"]
    found = WRITES.get(action)
    if found is None:
        return _refusal(request, place, 404, "Action inconnue.", session)
    fn, section, rooms = found
    form = await request.post()
    svc = _service(request, place)

    def run() -> Any:
        _scoped(svc, session, place, "widget.write")
        return fn(svc, session, place.dossier_id, form, request)

    try:
        made = await asyncio.to_thread(run)
    except ApiError as exc:
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return await _show(
            request,
            place,
            session,
            exc.status,
            {"section": section, "message": exc.message},
            values,
        )
    if rooms:
        await request.app[ROOM_SYNC].sync(place.dossier_id)
    if action in SHOWN:
        return await _show(request, place, session, done={"section": section, action: made})
    return redirect(place.url() + f"#{section}-section")


# -- downloads ---------------------------------------------------------------------------


async def download(request: web.Request) -> web.StreamResponse:
    """A note's document, the PPCS as a PDF or the agenda as iCalendar, with the session."""
    opened = await _opened(request)
    if isinstance(opened, web.Response):
        return opened
    place, session = opened
    svc, what = _service(request, place), request.match_info["what"]

    def fetch() -> tuple[bytes, str, str]:
        _scoped(svc, session, place, "widget.read")
        if what == "ppcs.pdf":
            return svc.ppcs_pdf(session.caller, place.dossier_id), "application/pdf", "ppcs.pdf"
        report = re.fullmatch(r"avis-([0-9]{1,12})\.pdf", what)
        if report is not None:
            number = int(report.group(1))
            pdf = svc.report_pdf(session.caller, number, place.dossier_id)
            return pdf, "application/pdf", f"avis-{number}.pdf"
        if what == "agenda.ics":
            rows = svc.appointments(session.caller, place.dossier_id)
            text = care.to_icalendar(rows, "Agenda du dossier", request.host.split(":")[0])
            return text.encode(), "text/calendar", "agenda.ics"
        note_id, _, attachment_id = what.partition(".")
        found = svc.attachment(session.caller, place.dossier_id, note_id, attachment_id)
        return found.content, found.media_type, found.name

    try:
        content, media_type, name = await asyncio.to_thread(fetch)
    except ApiError as exc:
        return _refusal(request, place, exc.status, exc.message, session)
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'")
    return web.Response(
        body=content,
        content_type=media_type,
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


def setup(app: web.Application, widget: DossierService) -> None:
    """The page and its writes, in the workspace and in the widget (after
    ``workspace.setup``: ``/dossiers/nouveau`` is the workspace's)."""
    app[WIDGET_SERVICE] = widget
    for prefix in ("", "/widget"):
        app.router.add_get(prefix + "/dossiers/{dossier_id}", dossier_page)
        app.router.add_post(prefix + "/dossiers/{dossier_id}/{action}", write)
        app.router.add_get(prefix + "/dossiers/{dossier_id}/files/{what}", download)
