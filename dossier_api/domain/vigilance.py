"""Identity vigilance (RNIV, référentiel national d'identitovigilance): possible duplicates
refused at every creation of a dossier unless confirmed with a reason, and the transitions
of the identity status with their evidence. The operations as the ``IdentityVigilance``
mixin of ``DossierService``; the rules themselves as module functions (pure).

Possible duplicates are found through the blind indexes of the matricule and of the traits
(``dossier_api.domain.ins``, queried by ``dossier_api.domain.lookup``): no identity is
opened to look for them. Only the identities of candidates the caller may read are opened,
to show them.

Identity statuses (RNIV): PROV (provisional), VALI (validated: an identity document of high
trust checked), RECUP (the INS retrieved from the INSi teleservice, no document checked),
QUAL (both). INSi is not reachable from here: an INS is accepted as retrieved when recorded
from INSi, from an IHE_XDM package, or an explicit import (an identity already qualified by
the system it comes from: the one source that makes QUAL without a document checked here).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore, _iso, _parse_dt
from dossier_api.domain.ins import (
    any_matricule_index,
    display_name,
    normalise_ins_matricule,
    traits_index,
)
from dossier_api.domain.lookup import Candidate, possible_duplicates
from dossier_api.domain.models import Dossier, IdentityEvent, Structure
from dossier_api.domain.shapes import IdentityEventOut
from maillon.shared.clock import utcnow
from maillon.shared.sealed import key_ring

# What each status asserts: a document checked, an INS retrieved.
_ASSERTS: dict[str, frozenset[str]] = {
    "PROV": frozenset(),
    "VALI": frozenset({"document"}),
    "RECUP": frozenset({"ins"}),
    "QUAL": frozenset({"document", "ins"}),
}
# Identity documents of high trust (RNIV): only these validate an identity.
DOCUMENT_KINDS = ("passeport", "carte_identite", "titre_sejour", "livret_famille", "acte_naissance")
INS_SOURCES = ("INSi", "IHE_XDM", "import")
DUPLICATE = "MAILLON_POSSIBLE_DUPLICATE"
OVERRIDE = "duplicate_override"


@dataclass(frozen=True)
class Evidence:
    """What a status change rests on."""

    document_kind: str | None = None
    checked_by: str | None = None
    checked_at: dt.datetime | None = None
    ins_source: str | None = None
    reason: str | None = None


def parse_evidence(body: Mapping[str, Any] | None, caller: Caller) -> Evidence:
    """The evidence of a request (``identity_evidence``: ``document`` {kind, checked_by,
    checked_at}, ``ins_source``, ``reason``); the document's checker defaults to the caller."""
    if not body:
        return Evidence()
    document = body.get("document") or {}
    checked_at = document.get("checked_at")
    return Evidence(
        document_kind=document.get("kind"),
        checked_by=document.get("checked_by") or (caller.user_id if document else None),
        checked_at=_parse_dt(checked_at, "document.checked_at") if checked_at else None,
        ins_source=body.get("ins_source"),
        reason=body.get("reason"),
    )


def is_downgrade(old: str, new: str) -> bool:
    """A change that loses something the old status asserted."""
    return not _ASSERTS[old] <= _ASSERTS[new]


def check_transition(
    old: str, new: str, evidence: Evidence, identity: Mapping[str, Any], now: dt.datetime
) -> None:
    """Refuse (400) a status change that its evidence does not support."""
    if new not in _ASSERTS:
        raise ApiError(400, "M_INVALID_PARAM", f"statut d'identité inconnu : « {new} »")
    needs = _ASSERTS[new] - _ASSERTS.get(old, frozenset())
    if new == "QUAL" and evidence.ins_source == "import":
        needs = needs - {"document"}
    if "document" in needs:
        if evidence.document_kind is None or evidence.checked_at is None:
            raise ApiError(
                400,
                "MAILLON_IDENTITY_EVIDENCE",
                f"le statut {new} exige le contrôle d'une pièce d'identité enregistré "
                "(identity_evidence.document : kind, checked_at)",
            )
        if evidence.checked_at > now:
            raise ApiError(
                400, "MAILLON_IDENTITY_EVIDENCE", "date de contrôle de la pièce dans le futur"
            )
    if "ins" in needs:
        if evidence.ins_source not in INS_SOURCES:
            raise ApiError(
                400,
                "MAILLON_IDENTITY_EVIDENCE",
                f"le statut {new} exige une INS obtenue par le téléservice INSi, un paquet "
                "IHE_XDM ou un import (identity_evidence.ins_source)",
            )
        if normalise_ins_matricule(identity.get("ins_matricule")) is None:
            raise ApiError(
                400,
                "MAILLON_IDENTITY_EVIDENCE",
                f"le statut {new} exige le matricule INS de l'identité (ins_matricule)",
            )
    if is_downgrade(old, new) and not evidence.reason:
        raise ApiError(
            400,
            "MAILLON_IDENTITY_EVIDENCE",
            f"passer de {old} à {new} fait perdre une vérification : un motif est requis "
            "(identity_evidence.reason)",
        )


def status_event(
    dossier_id: str, actor: str, old: str | None, new: str, evidence: Evidence
) -> IdentityEvent:
    return IdentityEvent(
        dossier_id=dossier_id,
        kind="status",
        actor=actor,
        from_status=old,
        to_status=new,
        document_kind=evidence.document_kind,
        checked_by=evidence.checked_by if evidence.document_kind else None,
        checked_at=evidence.checked_at,
        ins_source=evidence.ins_source,
        reason=evidence.reason,
    )


def event_json(e: IdentityEvent) -> IdentityEventOut:
    return {
        "kind": e.kind,
        "at": _iso(e.at),
        "actor": e.actor,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "document": (
            {"kind": e.document_kind, "checked_by": e.checked_by, "checked_at": _iso(e.checked_at)}
            if e.document_kind
            else None
        ),
        "ins_source": e.ins_source,
        "candidates": e.candidates.split(",") if e.candidates else [],
        "reason": e.reason,
    }


class IdentityVigilance(ServiceCore):
    """Duplicates and identity statuses (see the module's docstring)."""

    def possible_duplicates(
        self, session: Session, caller: Caller, identity: Mapping[str, Any]
    ) -> list[Candidate]:
        ring = key_ring()
        return possible_duplicates(
            session, any_matricule_index(ring, identity), traits_index(ring, identity)
        )

    def refuse_duplicates(
        self, session: Session, caller: Caller, candidates: list[Candidate]
    ) -> ApiError:
        """The 409 for possible duplicates: those the caller may read are listed (with the
        patient's name); for the others, the structure that holds them and whom to ask.
        The message names no patient (it is audited)."""
        visible: list[dict[str, Any]] = []
        elsewhere: list[str] = []
        for c in candidates:
            if self._access_to(session, caller, c.id, c.structure_id).read:
                identity = session.scalar(select(Dossier.identity).where(Dossier.id == c.id))
                visible.append(
                    {
                        "id": c.id,
                        "display_name": display_name(identity or {}),
                        "birth_date": (identity or {}).get("birth_date"),
                        "pathway": c.pathway,
                        "status": c.status,
                        "opened_at": _iso(c.opened_at),
                        "same_ins": c.same_ins,
                    }
                )
            else:
                structure = session.get(Structure, c.structure_id) if c.structure_id else None
                where = (
                    f"dans la structure « {structure.name} »"
                    if structure is not None
                    else "hors de vos structures"
                )
                sentence = (
                    f"un dossier existe déjà pour cette identité {where} : contactez son référent"
                )
                if sentence not in elsewhere:
                    elsewhere.append(sentence)
        parts = []
        if visible:
            ids = ", ".join(f"{v['id']} ({v['pathway']}, {v['status']})" for v in visible)
            parts.append(f"dossier(s) de la même identité que vous pouvez consulter : {ids}")
        parts.extend(elsewhere)
        message = (
            "Doublon possible : "
            + " ; ".join(parts)
            + ". Pour ouvrir tout de même un dossier, confirmez avec un motif "
            f"({OVERRIDE}.reason)."
        )
        return ApiError(409, DUPLICATE, message, {"candidates": visible, "elsewhere": elsewhere})

    def vet_new_identity(
        self,
        session: Session,
        caller: Caller,
        identity: Mapping[str, Any],
        override: Mapping[str, Any] | None,
    ) -> list[Candidate]:
        """Refuse a possible duplicate unless ``override`` gives a reason; the candidates
        overridden (to record with the new dossier)."""
        candidates = self.possible_duplicates(session, caller, identity)
        if not candidates:
            return []
        if not override or not str(override.get("reason") or "").strip():
            raise self.refuse_duplicates(session, caller, candidates)
        return candidates

    def record_creation(
        self,
        session: Session,
        dossier: Dossier,
        caller: Caller,
        evidence: Evidence,
        overridden: list[Candidate],
        override: Mapping[str, Any] | None,
    ) -> str | None:
        """The identity events of a new dossier; the audit detail (no patient data)."""
        if dossier.identity_status != "PROV":
            session.add(
                status_event(dossier.id, caller.user_id, None, dossier.identity_status, evidence)
            )
        if not overridden:
            return None
        session.add(
            IdentityEvent(
                dossier_id=dossier.id,
                kind=OVERRIDE,
                actor=caller.user_id,
                candidates=",".join(c.id for c in overridden),
                reason=str((override or {}).get("reason")),
            )
        )
        return f"doublon possible confirmé par l'auteur malgré {len(overridden)} dossier(s)"

    def change_identity_status(
        self, caller: Caller, dossier_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        new = body["status"]
        evidence = parse_evidence(body.get("identity_evidence"), caller)
        action = "identity.status"
        with self.acting(caller, action, dossier_id, "manage") as act:
            dossier = act.dossier
            old = dossier.identity_status
            if old == new:
                raise ApiError(400, "M_INVALID_PARAM", f"l'identité est déjà au statut {new}")
            check_transition(old, new, evidence, dossier.identity, utcnow())
            dossier.identity_status = new
            act.session.add(status_event(dossier.id, caller.user_id, old, new, evidence))
            kind = "rétrogradation" if is_downgrade(old, new) else "changement"
            proof = [
                f"pièce {evidence.document_kind} contrôlée par {evidence.checked_by}"
                if evidence.document_kind
                else "",
                f"INS de source {evidence.ins_source}" if evidence.ins_source else "",
            ]
            act.detail = f"{kind} du statut d'identité {old} → {new}" + "".join(
                f" ; {p}" for p in proof if p
            )
            return {"identity_status": new, "history": self._identity_history(act.session, dossier)}

    def identity_history(self, caller: Caller, dossier_id: str) -> dict[str, Any]:
        with self.acting(caller, "identity.history", dossier_id, "read") as act:
            return {
                "identity_status": act.dossier.identity_status,
                "history": self._identity_history(act.session, act.dossier),
            }

    @staticmethod
    def _identity_history(session: Session, dossier: Dossier) -> list[IdentityEventOut]:
        rows = session.scalars(
            select(IdentityEvent)
            .where(IdentityEvent.dossier_id == dossier.id)
            .order_by(IdentityEvent.id)
        ).all()
        return [event_json(e) for e in rows]
