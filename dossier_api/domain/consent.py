"""Consent that is checked (secret partagé, CSP L1110-4): sharing a dossier outside the
care team — a circle role the pathway does not count as care team (``outside_care_team``)
— needs the person's prior consent, and an opposition blocks it on every path (API, bot,
widget: they all add members through ``DossierService.add_member``; the room follows the
circle, and the care-circle module refuses any invite of someone outside it). Every change
of consent is dated, attributed and kept (``ConsentEvent``). The operations as the
``ConsentRecords`` mixin of ``DossierService``; the rule as a module function (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore, _iso
from dossier_api.domain.models import ConsentEvent, Dossier
from dossier_api.domain.pathways import Pathway
from dossier_api.domain.shapes import ConsentEventOut, ConsentHistoryOut
from maillon.shared.circle import role_label

FIELDS = {
    "consent_informed": ("informed", "consent_informed"),
    "consent_share_outside": ("share_outside", "consent_share_outside"),
    "opposition": ("opposition", "opposition"),
}
OPPOSED = "MAILLON_OPPOSITION"
NO_CONSENT = "MAILLON_CONSENT_REQUIRED"


def outside_care_team(pathway: Pathway | None, role: str) -> bool:
    return pathway is not None and role in pathway.outside_care_team


def sharing_refusal(
    pathway: Pathway | None, role: str, dossier: Dossier, attested: bool = False
) -> ApiError | None:
    """Why this role may not enter the circle as consent stands (None if it may): the
    sharing consent, or the coordinator's attestation that the person was informed and did
    not object; an opposition always blocks."""
    if pathway is None or not outside_care_team(pathway, role):
        return None
    if dossier.opposition:
        return ApiError(
            403,
            OPPOSED,
            f"la personne s'est opposée au partage de son dossier hors de l'équipe de soins : "
            f"le rôle « {role_label(role)} » n'entre pas dans le cercle",
        )
    if not (dossier.consent_share_outside or attested):
        return ApiError(
            403,
            NO_CONSENT,
            f"le rôle « {role_label(role)} » est hors de l'équipe de soins du parcours "
            f"« {pathway.name} » : il faut d'abord recueillir et enregistrer le consentement "
            "de la personne au partage, ou attester qu'elle a été informée et ne s'y est pas "
            "opposée",
        )
    return None


def team_sharing_refusal(dossier: Dossier, who: str, attested: bool) -> ApiError | None:
    """Why this dossier may not be shared with a resource team or a structure solicited
    through its address (``who``: « l'équipe « X » », « la structure « Y » »; None if it
    may): it is outside the care team until one of it joins; it needs the sharing consent,
    or the requester's attestation that the person was informed and did not object. An
    opposition always blocks."""
    if dossier.opposition:
        return ApiError(
            403,
            OPPOSED,
            "la personne s'est opposée au partage de son dossier hors de l'équipe de soins : "
            f"{who} ne peut pas être sollicitée",
        )
    if not (dossier.consent_share_outside or attested):
        return ApiError(
            403,
            NO_CONSENT,
            f"{who} est hors de l'équipe de soins : il faut le consentement de "
            "la personne au partage, ou attester qu'elle a été informée et ne s'y est pas "
            "opposée",
        )
    return None


def record_attestation(
    session: Session, dossier: Dossier, actor: str, at: dt.datetime | None, purpose: str
) -> str | None:
    """Record, with the consent history, the actor's attestation that the person was
    informed and did not object, when it is what lets the sharing through (no recorded
    consent); the audit detail to add (None when the consent already allowed it)."""
    if dossier.consent_share_outside:
        return None
    session.add(
        ConsentEvent(
            dossier_id=dossier.id,
            actor=actor,
            field="attestation",
            value=True,
            note=f"personne informée, sans opposition : {purpose}",
            **({"at": at} if at is not None else {}),
        )
    )
    return "attestation : personne informée, sans opposition"


def event_json(e: ConsentEvent) -> ConsentEventOut:
    return {"at": _iso(e.at), "actor": e.actor, "field": e.field, "value": e.value, "note": e.note}


class ConsentRecords(ServiceCore):
    """Consent changes recorded with the dossier; their history."""

    @staticmethod
    def record_consent(
        session: Session, dossier: Dossier, caller: Caller, body: dict[str, Any]
    ) -> str | None:
        """Apply and record the consent fields of ``body`` that change; the audit detail."""
        changes = []
        for key, (name, column) in FIELDS.items():
            if key in body and bool(body[key]) != getattr(dossier, column):
                setattr(dossier, column, bool(body[key]))
                session.add(
                    ConsentEvent(
                        dossier_id=dossier.id,
                        actor=caller.user_id,
                        field=name,
                        value=bool(body[key]),
                        note=body.get("consent_note"),
                    )
                )
                changes.append(f"{name} → {'oui' if body[key] else 'non'}")
        return "consentement : " + ", ".join(changes) if changes else None

    def consent_history(self, caller: Caller, dossier_id: str) -> ConsentHistoryOut:
        with self.acting(caller, "consent.history", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.dossier_id == dossier_id)
                .order_by(ConsentEvent.id)
            ).all()
            d = act.dossier
            return {
                "consent": {
                    "informed": d.consent_informed,
                    "share_outside": d.consent_share_outside,
                    "opposition": d.opposition,
                },
                "history": [event_json(e) for e in rows],
            }
