"""FHIR R4 export of a dossier as a Bundle (ANS guides: FR Core Patient with the INS only
when the identity is qualified, CareTeam, DocumentReference, Task, Appointment, CarePlan):
the ``FhirExport`` mixin of ``DossierService``; each resource built by a module function."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain import visibility
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ServiceCore, _iso
from dossier_api.domain.models import (
    Appointment,
    CarePlan,
    CircleMember,
    Dossier,
    Note,
    Solicitation,
    Task,
)
from dossier_api.domain.teams import LOCAL_TARGET, target_name, with_targets
from maillon.shared.text import displayable

MXID_SYSTEM = "urn:ietf:rfc:3986"  # Matrix user ids as URIs (matrix:u/…)
INS_SYSTEMS = {
    "1.2.250.1.213.1.4.8": "urn:oid:1.2.250.1.213.1.4.8",  # INS-NIR
    "1.2.250.1.213.1.4.9": "urn:oid:1.2.250.1.213.1.4.9",
}  # INS-NIA
GENDER = {"F": "female", "M": "male", "I": "unknown"}
TASK_STATUS = {"todo": "requested", "done": "completed", "cancelled": "cancelled"}


def _who(user_id: str) -> dict[str, Any]:
    uri = "matrix:u/" + user_id.lstrip("@")
    return {"identifier": {"system": MXID_SYSTEM, "value": uri}, "display": user_id}


def patient(dossier: Dossier) -> dict[str, Any]:
    ident = dossier.identity
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": f"patient-{dossier.id}",
        "meta": {"profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]},
        "name": [
            {
                "use": "official",
                "family": ident.get("birth_name"),
                "given": str(ident.get("first_names", "")).split(),
            }
        ],
        "gender": GENDER.get(str(ident.get("sex")), "unknown"),
        "birthDate": ident.get("birth_date"),
    }
    if ident.get("used_name"):
        resource["name"].append({"use": "usual", "family": ident["used_name"]})
    matricule, oid = ident.get("ins_matricule"), ident.get("ins_oid")
    if dossier.identity_status == "QUAL" and matricule and oid in INS_SYSTEMS:
        resource["identifier"] = [
            {"use": "official", "system": INS_SYSTEMS[oid], "value": matricule}
        ]
    return resource


def _care_team(dossier: Dossier, members: list[CircleMember]) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": f"careteam-{dossier.id}",
        "status": "active" if dossier.status == "open" else "inactive",
        "subject": {"reference": f"Patient/patient-{dossier.id}"},
        "participant": [
            {
                "role": [{"coding": [{"system": "urn:maillon:role", "code": m.role}]}],
                "member": _who(m.user_id),
                "period": {
                    k: v
                    for k, v in (("start", _iso(m.since)), ("end", _iso(m.removed_at or m.until)))
                    if v
                },
            }
            for m in members
        ],
    }


def _document(dossier: Dossier, note: Note, superseded: set[str]) -> dict[str, Any]:
    text = str(note.body.get("text", ""))
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": f"note-{note.id}",
        "status": "superseded" if note.id in superseded else "current",
        "subject": {"reference": f"Patient/patient-{dossier.id}"},
        "date": _iso(note.created_at),
        "author": [_who(note.author)],
        "category": [
            {
                "coding": [
                    {
                        "system": "urn:maillon:cahier-de-liaison",
                        "code": "urgent" if note.urgent else "routine",
                    }
                ]
            }
        ],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(displayable(text).encode()).decode(),
                }
            }
        ],
    }
    relates = [("appends", note.reply_to), ("replaces", note.corrects)]
    links = [
        {"code": code, "target": {"reference": f"DocumentReference/note-{ref}"}}
        for code, ref in relates
        if ref
    ]
    if links:
        resource["relatesTo"] = links
    return resource


def _report(dossier: Dossier, s: Solicitation, team: str) -> dict[str, Any]:
    """A resource team's advice report (télé-expertise) as a DocumentReference."""
    report = s.report or {}
    text = (
        f"Compte rendu de télé-expertise — équipe ressource « {team} »\n"
        f"Question : {report.get('question', '')}\n"
        f"Éléments pris en compte : {report.get('elements', '')}\n"
        f"Avis : {report.get('advice', '')}"
    )
    return {
        "resourceType": "DocumentReference",
        "id": f"avis-{s.id}",
        "status": "current",
        "subject": {"reference": f"Patient/patient-{dossier.id}"},
        "date": report.get("date"),
        "author": [_who(str(report.get("author", "")))],
        "description": f"Avis de l'équipe ressource « {team} »",
        "category": [{"coding": [{"system": "urn:maillon:tele-expertise", "code": "avis"}]}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(displayable(text).encode()).decode(),
                    "title": "Compte rendu de télé-expertise",
                }
            }
        ],
    }


def _task(dossier: Dossier, task: Task) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": f"task-{task.id}",
        "status": TASK_STATUS.get(task.status, "requested"),
        "intent": "order",
        "description": task.title.get("text", ""),
        "for": {"reference": f"Patient/patient-{dossier.id}"},
        "authoredOn": _iso(task.created_at),
        "requester": _who(task.created_by),
        "owner": _who(task.assignee),
    }
    if task.due:
        resource["restriction"] = {"period": {"end": task.due.isoformat()}}
    return resource


def _appointment(a: Appointment) -> dict[str, Any]:
    people = [p for p in a.participants.split(",") if p] or [a.created_by]
    return {
        "resourceType": "Appointment",
        "id": f"rdv-{a.id}",
        "status": "cancelled" if a.cancelled else "booked",
        "description": a.details.get("title", ""),
        "start": _iso(a.start),
        "end": _iso(a.end),
        "participant": [{"actor": _who(p), "status": "accepted"} for p in people],
    }


def _care_plan(dossier: Dossier, plan: CarePlan) -> dict[str, Any]:
    content = plan.plan
    notes = [
        {"text": f"Problème : {p['problem']} — objectifs : {', '.join(p.get('goals', []))}"}
        for p in content.get("problems", [])
    ]
    notes += [{"text": f"Objectif non atteint : {g}"} for g in content.get("unmet_goals", [])]
    return {
        "resourceType": "CarePlan",
        "id": f"ppcs-{dossier.id}",
        "status": "active",
        "intent": "plan",
        "title": "Plan personnalisé de coordination en santé (PPCS)",
        "subject": {"reference": f"Patient/patient-{dossier.id}"},
        "created": _iso(plan.created_at),
        "activity": [
            {
                "detail": {
                    "status": "not-started",
                    "description": f"{a['action']} ({a['who']})",
                    **({"scheduledString": a["when"]} if a.get("when") else {}),
                }
            }
            for a in content.get("actions", [])
        ],
        **({"note": notes} if notes else {}),
    }


def bundle_of(
    session: Session, dossier: Dossier, readers: list[visibility.Reader]
) -> dict[str, Any]:
    """The dossier as a FHIR Bundle, with the notes every one of ``readers`` may read."""
    dossier_id = dossier.id
    members = list(
        session.scalars(
            select(CircleMember)
            .where(CircleMember.dossier_id == dossier_id)
            .order_by(CircleMember.id)
        ).all()
    )
    notes = visibility.readable_notes(session, dossier_id, readers)
    tasks = session.scalars(select(Task).where(Task.dossier_id == dossier_id)).all()
    rdvs = session.scalars(select(Appointment).where(Appointment.dossier_id == dossier_id))
    plan = session.scalar(
        select(CarePlan)
        .where(CarePlan.dossier_id == dossier_id)
        .order_by(CarePlan.version.desc())
        .limit(1)
    )
    superseded = {n.corrects for n in notes if n.corrects}
    resources = [patient(dossier), _care_team(dossier, members)]
    resources += [_document(dossier, n, superseded) for n in notes]
    resources += [_task(dossier, t) for t in tasks]
    resources += [_appointment(a) for a in rdvs]
    if plan is not None:
        resources.append(_care_plan(dossier, plan))
    answered = session.execute(
        with_targets(select(Solicitation, target_name()))
        .where(
            Solicitation.dossier_id == dossier_id,
            Solicitation.report.is_not(None),
            LOCAL_TARGET,
        )
        .order_by(Solicitation.id)
    ).all()
    resources += [_report(dossier, s, team) for s, team in answered]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:maillon:{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


class FhirExport(ServiceCore):
    """The FHIR export, an operation of ``DossierService`` (audited as ``fhir.export``)."""

    def fhir_bundle(self, caller: Caller, dossier_id: str) -> dict[str, Any]:
        with self.acting(caller, "fhir.export", dossier_id, "read") as act:
            reader = visibility.reader_of(act.session, dossier_id, act.access)
            return bundle_of(act.session, act.dossier, [reader])
