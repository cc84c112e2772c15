"""The patient's right of access (RGPD art. 15, CSP L1111-7): on the patient's request, a
coordinator produces a copy of the dossier for them — a PDF (identity, circle, the notes
the patient's category may read, tasks, agenda, forms, PPCS) and the FHIR Bundle of the
same content. Audited as ``patient_access.export``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from dossier_api.domain import visibility
from dossier_api.domain.access import Caller
from dossier_api.domain.care import _person
from dossier_api.domain.circle_members import active_members
from dossier_api.domain.core import ServiceCore
from dossier_api.domain.directory import professionals
from dossier_api.domain.fhir import bundle_of
from dossier_api.domain.ins import display_name
from dossier_api.domain.models import Appointment, CarePlan, FormSubmission, Task
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.ppcs_pdf import Page, Person
from maillon.shared.circle import ROLES
from maillon.shared.clock import utcnow
from maillon.shared.dates_fr import format_birth_date, format_datetime

# What the patient reads: notes open to the whole circle, or restricted to their category.
PATIENT_READER = visibility.Reader(frozenset(), frozenset({"PATIENT"}))
TASK_STATUS = {"todo": "à faire", "done": "faite", "cancelled": "annulée"}


@dataclass(frozen=True)
class PatientCopy:
    patient: str
    identity: Mapping[str, Any]
    identity_status: str
    pathway: str
    made_at: dt.datetime
    made_by: Person
    circle: tuple[Person, ...]
    notes: tuple[tuple[dt.datetime, Person, str], ...]
    tasks: tuple[tuple[str, Person, str, dt.date | None], ...]
    agenda: tuple[tuple[dt.datetime, str, str | None], ...]
    forms: tuple[tuple[str, dt.datetime, tuple[tuple[str, str], ...]], ...]
    plan: Mapping[str, Any] | None


def _answer(value: Any) -> str:
    if isinstance(value, bool):
        return "oui" if value else "non"
    return str(value)


def render_patient_copy(doc: PatientCopy) -> bytes:
    page = Page(f"Copie du dossier de {doc.patient}", "Copie du dossier de coordination")
    heading, line = page.heading, page.line
    heading("Copie de votre dossier de coordination", 16)
    line(
        f"Établie le {format_datetime(doc.made_at)} par {doc.made_by.label()}, à votre "
        "demande (droit d'accès)."
    )
    heading("Identité")
    line(f"Nom : {doc.patient}")
    birth = doc.identity.get("birth_date")
    if birth:
        try:
            line(f"Date de naissance : {format_birth_date(dt.date.fromisoformat(str(birth)))}")
        except ValueError:
            line(f"Date de naissance : {birth}")
    if doc.identity.get("ins_matricule") and doc.identity_status == "QUAL":
        line(f"Matricule INS : {doc.identity['ins_matricule']}")
    line(f"Parcours : {doc.pathway}")

    heading("Cercle de soins")
    for person in doc.circle or (Person("aucun membre"),):
        line(f"- {person.label()}", 4)

    heading("Cahier de liaison")
    if not doc.notes:
        line("Aucune note.")
    for at, author, text in doc.notes:
        line(f"{format_datetime(at)} - {author.label()}", bold=True)
        line(text, 4)

    heading("Tâches")
    if not doc.tasks:
        line("Aucune tâche.")
    for title, who, status, due in doc.tasks:
        when = f", échéance {format_birth_date(due)}" if due else ""
        line(f"- {title} ({who.label()}, {status}{when})", 4)

    heading("Agenda")
    if not doc.agenda:
        line("Aucun rendez-vous.")
    for start, title, place in doc.agenda:
        line(f"- {format_datetime(start)} : {title}" + (f" ({place})" if place else ""), 4)

    heading("Formulaires")
    if not doc.forms:
        line("Aucun formulaire.")
    for title, at, answers in doc.forms:
        line(f"{title} ({format_datetime(at)})", bold=True)
        for label, value in answers:
            line(f"{label} : {value}", 4)

    heading("Plan personnalisé de coordination en santé (PPCS)")
    if doc.plan is None:
        line("Aucun PPCS.")
    else:
        for item in doc.plan.get("problems") or []:
            line(f"- Problème : {item.get('problem', '')}", 4)
            for goal in item.get("goals") or []:
                line(f"Objectif : {goal}", 10)
        for action in doc.plan.get("actions") or []:
            line(f"- Action : {action.get('action', '')}", 4)
    return page.output()


class PatientAccess(ServiceCore):
    """``patient_copy``: the PDF and the FHIR Bundle, for a coordinator (right ``manage``),
    archived dossiers included."""

    def patient_copy(self, caller: Caller, dossier_id: str) -> tuple[bytes, dict[str, Any]]:
        now = utcnow()
        # A read (an archived dossier's patient keeps the right), by a coordinator.
        with self.acting(caller, "patient_access.export", dossier_id, "read") as act:
            if not act.access.manage:
                raise self._refused(act.access)
            session, dossier = act.session, act.dossier
            members = list(active_members(session, dossier_id, now=now))
            notes = visibility.readable_notes(session, dossier_id, [PATIENT_READER])
            tasks = session.scalars(
                select(Task).where(Task.dossier_id == dossier_id).order_by(Task.created_at)
            ).all()
            rdvs = session.scalars(
                select(Appointment)
                .where(Appointment.dossier_id == dossier_id, Appointment.cancelled.is_(False))
                .order_by(Appointment.start)
            ).all()
            forms = session.scalars(
                select(FormSubmission)
                .where(FormSubmission.dossier_id == dossier_id)
                .order_by(FormSubmission.created_at)
            ).all()
            plan = session.scalar(
                select(CarePlan)
                .where(CarePlan.dossier_id == dossier_id)
                .order_by(CarePlan.version.desc())
                .limit(1)
            )
            users = {caller.user_id, *(m.user_id for m in members)}
            users |= {n.author for n in notes} | {t.assignee for t in tasks}
            directory = professionals(session, users)
            pathway = PATHWAYS.get(dossier.pathway)

            def person(user_id: str, role: str | None = None) -> Person:
                return _person(directory.get(user_id), ROLES.get(role, role) if role else None)

            def form_rows(
                f: FormSubmission,
            ) -> tuple[str, dt.datetime, tuple[tuple[str, str], ...]]:
                definition = pathway.form(f.form_id) if pathway else None
                labels = {x.id: x.label for x in definition.fields} if definition else {}
                answers = tuple((labels.get(k, k), _answer(v)) for k, v in f.answers.items())
                return (definition.title if definition else f.form_id), f.created_at, answers

            copy = PatientCopy(
                patient=display_name(dossier.identity),
                identity=dossier.identity,
                identity_status=dossier.identity_status,
                pathway=pathway.name if pathway else dossier.pathway,
                made_at=now,
                made_by=person(caller.user_id),
                circle=tuple(person(m.user_id, m.role) for m in members if m.role != "PATIENT"),
                notes=tuple(
                    (n.created_at, person(n.author), str(n.body.get("text", ""))) for n in notes
                ),
                tasks=tuple(
                    (
                        str(t.title.get("text", "")),
                        person(t.assignee),
                        TASK_STATUS.get(t.status, t.status),
                        t.due,
                    )
                    for t in tasks
                ),
                agenda=tuple(
                    (a.start, str(a.details.get("title", "")), a.details.get("place")) for a in rdvs
                ),
                forms=tuple(form_rows(f) for f in forms),
                plan=plan.plan if plan is not None else None,
            )
            bundle = bundle_of(session, dossier, [PATIENT_READER])
            act.detail = f"copie pour le patient : {len(notes)} note(s), PDF et FHIR"
            return render_patient_copy(copy), bundle
