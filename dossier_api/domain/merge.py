"""Merging two dossiers of one person (identity vigilance, RNIV): done by an
administrator or a referent of the structure owning both dossiers. The older dossier
stays; the other one's circle, notes (and their documents), tasks, agenda, alerts,
forms, PPCS versions, consent and identity records move to it; the other dossier is
closed, read-only, with a pointer to the one that stays (``merged_into``; its rooms get a
state event and a notice from the appservice). Audited on both dossiers."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from dossier_api.domain import circle_members
from dossier_api.domain.access import Access, Caller
from dossier_api.domain.core import ApiError, ServiceCore
from dossier_api.domain.indicators import forget_sealed
from dossier_api.domain.models import (
    Alert,
    Appointment,
    CarePlan,
    CircleMember,
    ConsentEvent,
    Dossier,
    FormDraft,
    FormSubmission,
    IdentityEvent,
    Note,
    NoteAttachment,
    StructureStaff,
    Task,
)
from dossier_api.domain.rooms import ROOMS, enqueue, reference
from dossier_api.domain.shapes import MergeOut
from maillon.shared.clock import utcnow
from maillon.shared.store import Base

# What moves to the dossier that stays (every table of the dossier's own content).
MOVED = tuple(
    m.__tablename__
    for m in (
        Note,
        NoteAttachment,
        Task,
        Appointment,
        Alert,
        FormSubmission,
        ConsentEvent,
        IdentityEvent,
    )
)


def _may_merge(session: Session, caller: Caller, dossiers: list[Dossier]) -> None:
    if caller.is_admin:
        return
    structures = {d.structure_id for d in dossiers}
    if len(structures) == 1 and None not in structures:
        staff = session.get(StructureStaff, (structures.pop(), caller.user_id))
        if staff is not None and staff.role == "referent":
            return
    raise ApiError(
        403,
        "M_FORBIDDEN",
        "la fusion de dossiers est réservée au référent d'identitovigilance de la structure "
        "des deux dossiers, ou à un administrateur",
    )


class DossierMerge(ServiceCore):
    def merge_dossiers(
        self, caller: Caller, dossier_id: str, other_id: str, reason: str
    ) -> MergeOut:
        if dossier_id == other_id:
            raise ApiError(400, "M_INVALID_PARAM", "un dossier ne se fusionne pas avec lui-même")
        with self.acting(caller, "dossier.merge", dossier_id) as act:
            session = act.session
            other = self._dossier(session, other_id)
            _may_merge(session, caller, [act.dossier, other])
            if other.merged_into or act.dossier.merged_into:
                raise ApiError(409, "M_CONFLICT", "l'un des dossiers est déjà fusionné")
            # The older dossier stays.
            kept, gone = sorted((act.dossier, other), key=lambda d: (d.opened_at, d.id))
            moved = self._move(session, kept, gone, caller)
            forget_sealed(session)  # the past's counts moved with the dossier's facts
            gone.status, gone.closed_at = "closed", utcnow()
            gone.status_reason = f"fusionné avec le dossier {reference(kept.id)} : {reason}"
            gone.merged_into = kept.id
            enqueue(session, gone.id, ROOMS)
            enqueue(session, kept.id, ROOMS)
            counts = ", ".join(f"{k} {v}" for k, v in sorted(moved.items()) if v)
            act.dossier_id = kept.id
            act.detail = f"fusion : {reference(gone.id)} -> {reference(kept.id)} ({counts})"
            self.audit_entry(
                session,
                gone.id,
                Access(caller.user_id, "admin" if caller.is_admin else "referent"),
                "dossier.merged_into",
                True,
                f"fusionné dans {reference(kept.id)}",
            )
            return {"kept": kept.id, "merged": gone.id, "moved": moved}

    @staticmethod
    def _move(session: Session, kept: Dossier, gone: Dossier, caller: Caller) -> dict[str, int]:
        moved: dict[str, int] = {}
        for name in MOVED:
            table = Base.metadata.tables[name]
            result = session.execute(
                update(table).where(table.c.dossier_id == gone.id).values(dossier_id=kept.id)
            )
            moved[name] = cast(CursorResult[Any], result).rowcount
        # Drafts: one per author and form (the one that stays wins).
        kept_drafts = select(FormDraft.form_id, FormDraft.author).where(
            FormDraft.dossier_id == kept.id
        )
        for form_id, author in session.execute(kept_drafts).all():
            session.execute(
                delete(FormDraft).where(
                    FormDraft.dossier_id == gone.id,
                    FormDraft.form_id == form_id,
                    FormDraft.author == author,
                )
            )
        session.execute(
            update(FormDraft).where(FormDraft.dossier_id == gone.id).values(dossier_id=kept.id)
        )
        # PPCS: the other dossier's versions come before the current one of the kept.
        base = session.scalar(
            select(func.coalesce(func.max(CarePlan.version), 0)).where(
                CarePlan.dossier_id == gone.id
            )
        )
        session.execute(
            update(CarePlan)
            .where(CarePlan.dossier_id == kept.id)
            .values(version=CarePlan.version + (base or 0))
        )
        plans = session.execute(
            update(CarePlan).where(CarePlan.dossier_id == gone.id).values(dossier_id=kept.id)
        )
        moved["care_plans"] = cast(CursorResult[Any], plans).rowcount
        # Circle: who is not in the kept dossier's circle joins it (history kept there).
        now = utcnow()
        present = {m.user_id for m in circle_members.active_members(session, kept.id, now=now)}
        joined = 0
        for member in circle_members.active_members(session, gone.id, now=now):
            if member.user_id not in present:
                session.add(
                    CircleMember(
                        dossier_id=kept.id,
                        user_id=member.user_id,
                        role=member.role,
                        coordinator=member.coordinator,
                        until=member.until,
                        added_by=caller.user_id,
                    )
                )
                enqueue(session, kept.id, member.user_id)
                present.add(member.user_id)
                joined += 1
        moved["circle_members"] = joined
        return moved
