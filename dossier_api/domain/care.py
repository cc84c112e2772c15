"""Forms, PPCS, agenda (with iCalendar export) and alerts of a dossier: the operations as the
``CareOperations`` mixin of ``DossierService``; their JSON and the iCalendar text as module
functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.circle_members import active_members
from dossier_api.domain.core import ApiError, ServiceCore, _iso, _parse_dt
from dossier_api.domain.directory import people_json, professionals
from dossier_api.domain.ins import display_name
from dossier_api.domain.models import (
    Alert,
    Appointment,
    CarePlan,
    Dossier,
    FormDraft,
    FormSubmission,
    Professional,
)
from dossier_api.domain.pathways import PATHWAYS, FormDefinition
from dossier_api.domain.ppcs_pdf import Person, PpcsDocument, render_ppcs
from dossier_api.domain.shapes import (
    AlertOut,
    AppointmentOut,
    DraftOut,
    FormOut,
    PathwayOut,
    People,
    PpcsOut,
)
from maillon.shared.text import displayable


def pathways_json() -> list[PathwayOut]:
    return [
        {
            "id": p.id,
            "version": p.version,
            "name": p.name,
            "roles_allowed": list(p.roles_allowed),
            "tasks_checklist": list(p.tasks_checklist),
            "forms": [
                {
                    "id": f.id,
                    "version": f.version,
                    "title": f.title,
                    "fields": [
                        {
                            "id": x.id,
                            "label": x.label,
                            "type": x.type,
                            "required": x.required,
                            "choices": list(x.choices),
                            "help": x.help,
                        }
                        for x in f.fields
                    ],
                }
                for f in p.forms
            ],
        }
        for p in PATHWAYS.values()
    ]


def _form_json(row: FormSubmission) -> FormOut:
    return {
        "id": row.id,
        "form_id": row.form_id,
        "form_version": row.form_version,
        "author": row.author,
        "created_at": _iso(row.created_at),
        "answers": row.answers,
    }


def _draft_json(row: FormDraft, form: FormDefinition) -> DraftOut:
    return {
        "form_id": row.form_id,
        "form_version": row.form_version,
        "author": row.author,
        "updated_at": _iso(row.updated_at),
        "answers": row.answers,
        # What submitting these answers would be refused for (the form shows it as it goes).
        "problems": form.validate(row.answers),
    }


def _ppcs_json(plan: CarePlan, people: People) -> PpcsOut:
    body = plan.plan  # as PPCS_IN validated it when it was saved
    out = PpcsOut(
        version=plan.version,
        author=plan.author,
        updated_at=_iso(plan.created_at),
        problems=list(body.get("problems") or []),
        actions=list(body.get("actions") or []),
        people=people,
    )
    if "unmet_goals" in body:
        out["unmet_goals"] = list(body["unmet_goals"])
    if "expectations" in body:
        out["expectations"] = str(body["expectations"])
    return out


def _plan_people(plan: CarePlan) -> set[str]:
    """The people a plan names: its author and the Matrix ids among its actions' "who"."""
    who = {str(a.get("who", "")) for a in plan.plan.get("actions") or []}
    return {plan.author} | {w for w in who if w.startswith("@")}


def _person(pro: Professional | None, role: str | None = None) -> Person:
    name = pro.display_name if pro is not None and pro.display_name else None
    return Person(
        name or "professionnel(le) sans nom à l'annuaire", pro.profession if pro else None, role
    )


def _alert_json(alert: Alert) -> AlertOut:
    return {
        "id": alert.id,
        "author": alert.author,
        "created_at": _iso(alert.created_at),
        "recipients": [r for r in alert.recipients.split(",") if r],
        "text": alert.message["text"],
    }


def _appointment_json(a: Appointment) -> AppointmentOut:
    return {
        "id": a.id,
        "dossier_id": a.dossier_id,
        "title": a.details.get("title", ""),
        "place": a.details.get("place"),
        "start": _iso(a.start),
        "end": _iso(a.end),
        "participants": [p for p in a.participants.split(",") if p],
        "created_by": a.created_by,
        "cancelled": a.cancelled,
    }


def _ics_text(value: str) -> str:
    value = displayable(value)
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _ics_time(value: str) -> str:
    # What is stored is shown, even at the edge of the calendar (never refused on read).
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def to_icalendar(items: Sequence[AppointmentOut], name: str, domain: str) -> str:
    """RFC 5545 calendar (CRLF line ends) of the given appointments."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Maillon//Agenda partagé//FR",
        "CALSCALE:GREGORIAN",
        f"X-WR-CALNAME:{_ics_text(name)}",
    ]
    for a in items:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{a['id']}@{domain}",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{_ics_time(a['start'])}",
            f"DTEND:{_ics_time(a['end'])}",
            f"SUMMARY:{_ics_text(a['title'])}",
            f"STATUS:{'CANCELLED' if a['cancelled'] else 'CONFIRMED'}",
        ]
        if place := a["place"]:
            lines.append(f"LOCATION:{_ics_text(place)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)


def _fold(line: str, limit: int = 75) -> str:
    """RFC 5545 line folding: at most 75 octets a line, continuation lines start with a
    space; never splits a UTF-8 character."""
    parts: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append(current)
            current, size = " ", 1
        current += char
        size += width
    parts.append(current)
    return "\r\n".join(parts)


class CareOperations(ServiceCore):
    """Forms, PPCS, agenda and alerts of a dossier: operations of ``DossierService``, each
    checked, done and audited in one ``self.acting`` transaction."""

    # -- forms ---------------------------------------------------------------------------

    @staticmethod
    def _form(dossier: Dossier, form_id: str) -> FormDefinition:
        pathway_id = dossier.pathway
        pathway = PATHWAYS.version(pathway_id, dossier.pathway_version)
        form = pathway.form(form_id) if pathway else None
        if form is None:
            raise ApiError(404, "M_NOT_FOUND", f"formulaire inconnu dans le parcours {pathway_id}")
        return form

    @staticmethod
    def _my_draft(session: Session, dossier_id: str, form_id: str, author: str) -> FormDraft | None:
        return session.scalar(
            select(FormDraft).where(
                FormDraft.dossier_id == dossier_id,
                FormDraft.form_id == form_id,
                FormDraft.author == author,
            )
        )

    def save_form_draft(
        self, caller: Caller, dossier_id: str, form_id: str, body: dict[str, Any]
    ) -> DraftOut:
        """Keep the caller's answers so far (their own draft, unchecked but for unknown
        fields), until they submit the form; the reply lists what submitting would refuse."""
        with self.acting(caller, "forms.draft", dossier_id, "write") as act:
            session = act.session
            form = self._form(act.dossier, form_id)
            act.detail = form.id
            known = {f.id for f in form.fields}
            unknown = [k for k in body["answers"] if k not in known]
            if unknown:
                raise ApiError(400, "M_INVALID_PARAM", f"champ inconnu : « {unknown[0][:60]} »")
            row = self._my_draft(session, dossier_id, form.id, caller.user_id)
            if row is None:
                row = FormDraft(dossier_id=dossier_id, form_id=form.id, author=caller.user_id)
                session.add(row)
            row.form_version = form.version
            row.answers = dict(body["answers"])
            row.updated_at = self.clock()
            session.flush()
            return _draft_json(row, form)

    def form_draft(self, caller: Caller, dossier_id: str, form_id: str) -> DraftOut:
        """The caller's own draft of a form (404 when they have none)."""
        with self.acting(caller, "forms.draft.read", dossier_id, "write") as act:
            form = self._form(act.dossier, form_id)
            act.detail = form.id
            row = self._my_draft(act.session, dossier_id, form.id, caller.user_id)
            if row is None:
                raise ApiError(404, "M_NOT_FOUND", "aucun brouillon de ce formulaire")
            return _draft_json(row, form)

    def submit_form(
        self, caller: Caller, dossier_id: str, form_id: str, body: dict[str, Any]
    ) -> FormOut:
        """Submit a form: the answers checked against its definition (French messages naming
        each field); the caller's draft of it, if any, is then done with."""
        with self.acting(caller, "forms.write", dossier_id, "write") as act:
            session = act.session
            form = self._form(act.dossier, form_id)
            act.detail = form.id
            problems = form.validate(body["answers"])
            if problems:
                raise ApiError(400, "M_INVALID_PARAM", "; ".join(problems))
            row = FormSubmission(
                dossier_id=dossier_id,
                form_id=form.id,
                form_version=form.version,
                author=caller.user_id,
                answers=body["answers"],
            )
            session.add(row)
            draft = self._my_draft(session, dossier_id, form.id, caller.user_id)
            if draft is not None:
                session.delete(draft)
            session.flush()
            return _form_json(row)

    def forms(self, caller: Caller, dossier_id: str) -> list[FormOut]:
        with self.acting(caller, "forms.read", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(FormSubmission)
                .where(FormSubmission.dossier_id == dossier_id)
                .order_by(FormSubmission.created_at)
            ).all()
            return [_form_json(r) for r in rows]

    # -- PPCS ----------------------------------------------------------------------------

    def put_ppcs(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> PpcsOut:
        with self.acting(caller, "ppcs.write", dossier_id, "write") as act:
            session = act.session
            last = session.scalar(
                select(CarePlan)
                .where(CarePlan.dossier_id == dossier_id)
                .order_by(CarePlan.version.desc())
                .limit(1)
            )
            plan = CarePlan(
                dossier_id=dossier_id,
                version=(last.version + 1) if last else 1,
                author=caller.user_id,
                plan=body,
            )
            session.add(plan)
            session.flush()
            act.detail = str(plan.version)
            return _ppcs_json(plan, people_json(session, _plan_people(plan)))

    @staticmethod
    def _current_plan(session: Session, dossier_id: str) -> CarePlan:
        plan = session.scalar(
            select(CarePlan)
            .where(CarePlan.dossier_id == dossier_id)
            .order_by(CarePlan.version.desc())
            .limit(1)
        )
        if plan is None:
            raise ApiError(404, "M_NOT_FOUND", "pas encore de PPCS pour ce dossier")
        return plan

    def get_ppcs(self, caller: Caller, dossier_id: str) -> PpcsOut:
        with self.acting(caller, "ppcs.read", dossier_id, "read") as act:
            plan = self._current_plan(act.session, dossier_id)
            return _ppcs_json(plan, people_json(act.session, _plan_people(plan)))

    def ppcs_pdf(self, caller: Caller, dossier_id: str) -> bytes:
        """The current PPCS as a printable PDF (audited as a read of the plan)."""
        now = self.clock()
        with self.acting(caller, "ppcs.print", dossier_id, "read") as act:
            session, dossier = act.session, act.dossier
            plan = self._current_plan(session, dossier_id)
            act.detail = f"version {plan.version}"
            members = [
                m for m in active_members(session, dossier_id, now=now) if m.role != "PATIENT"
            ]
            users = _plan_people(plan) | {m.user_id for m in members}
            directory = professionals(session, users)
            identity = dossier.identity
            try:
                birth = dt.date.fromisoformat(str(identity.get("birth_date")))
            except ValueError:
                birth = None
            pathway = PATHWAYS.version(dossier.pathway, dossier.pathway_version)
            return render_ppcs(
                PpcsDocument(
                    patient=display_name(identity),
                    sex=identity.get("sex"),
                    birth_date=birth,
                    pathway=pathway.name if pathway else dossier.pathway,
                    version=plan.version,
                    updated_at=plan.created_at,
                    author=_person(directory.get(plan.author)),
                    team=tuple(_person(directory.get(m.user_id), m.role) for m in members),
                    plan=plan.plan,
                    people={u: _person(p) for u, p in directory.items()},
                )
            )

    # -- agenda --------------------------------------------------------------------------

    def add_appointment(
        self, caller: Caller, dossier_id: str, body: dict[str, Any]
    ) -> AppointmentOut:
        with self.acting(caller, "agenda.write", dossier_id, "write") as act:
            session = act.session
            start, end = _parse_dt(body["start"], "start"), _parse_dt(body["end"], "end")
            if end <= start:
                raise ApiError(
                    400, "M_INVALID_PARAM", "la fin du rendez-vous doit suivre son début"
                )
            appointment = Appointment(
                dossier_id=dossier_id,
                start=start,
                end=end,
                created_by=caller.user_id,
                details={"title": body["title"], "place": body.get("place")},
                participants=",".join(body.get("participants", [])),
            )
            session.add(appointment)
            session.flush()
            act.detail = appointment.id
            return _appointment_json(appointment)

    def appointments(self, caller: Caller, dossier_id: str) -> list[AppointmentOut]:
        with self.acting(caller, "agenda.read", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(Appointment)
                .where(Appointment.dossier_id == dossier_id)
                .order_by(Appointment.start)
            ).all()
            return [_appointment_json(a) for a in rows]

    def my_appointments(self, caller: Caller) -> list[AppointmentOut]:
        """Appointments I take part in, in the dossiers I may still read; one audit row for the
        request, naming the dossiers read."""
        with self.acting(caller, "agenda.mine") as act:
            session = act.session
            rows = session.scalars(
                select(Appointment)
                .where(Appointment.participants.contains(caller.user_id))
                .order_by(Appointment.start)
            ).all()
            mine = [a for a in rows if caller.user_id in a.participants.split(",")]
            may_read = self.readable(session, caller, {a.dossier_id for a in mine})
            readable = [_appointment_json(a) for a in mine if a.dossier_id in may_read]
            act.detail = "dossiers : " + (", ".join(sorted(may_read)) or "aucun")
            return readable

    # -- alerts --------------------------------------------------------------------------

    def add_alert(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> AlertOut:
        now = self.clock()
        with self.acting(caller, "alerts.write", dossier_id, "write") as act:
            session = act.session
            members = {m.user_id for m in active_members(session, dossier_id, now=now)}
            wanted = set(body.get("to") or members - {caller.user_id})
            outside = wanted - members
            if outside:
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    "destinataires hors du cercle : " + ", ".join(sorted(outside)),
                )
            alert = Alert(
                dossier_id=dossier_id,
                author=caller.user_id,
                recipients=",".join(sorted(wanted)),
                message={"text": body["text"]},
            )
            session.add(alert)
            session.flush()
            act.detail = alert.id
            return _alert_json(alert)

    def alerts(self, caller: Caller, dossier_id: str) -> list[AlertOut]:
        """The dossier's alerts, newest first (one audit row for the read)."""
        with self.acting(caller, "alerts.read", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(Alert)
                .where(Alert.dossier_id == dossier_id)
                .order_by(Alert.created_at.desc())
            )
            return [_alert_json(a) for a in rows]
