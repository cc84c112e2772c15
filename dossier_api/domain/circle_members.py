"""Who is in a dossier's care circle now: one query, for the API, the bot and the appservice.

A member is current while not removed and before their exit date (``until``); rows are never
deleted, so the history stays beside them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Access
from dossier_api.domain.consent import sharing_refusal
from dossier_api.domain.core import ApiError
from dossier_api.domain.models import CircleMember, Dossier
from dossier_api.domain.pathways import Pathway
from maillon.shared.circle import RESTRICTED_ROLES
from maillon.shared.clock import utcnow


def current(now: dt.datetime) -> tuple[ColumnElement[bool], ...]:
    """The SQL condition of a current membership row (``CircleMember.active`` in memory)."""
    return (
        CircleMember.removed_at.is_(None),
        or_(CircleMember.until.is_(None), CircleMember.until > now),
    )


def active_members(
    session: Session, dossier_id: str, user_id: str | None = None, now: dt.datetime | None = None
) -> list[CircleMember]:
    """The dossier's current circle rows (only ``user_id``'s when given)."""
    query = select(CircleMember).where(
        CircleMember.dossier_id == dossier_id, *current(now or utcnow())
    )
    if user_id is not None:
        query = query.where(CircleMember.user_id == user_id)
    return list(session.scalars(query.order_by(CircleMember.id)).all())


def may_change(access: Access, pathway: Pathway | None) -> None:
    """A delegate changes the circle only where the pathway lets delegates do so."""
    if access.basis == "delegate" and not (pathway and pathway.delegates_manage_circle):
        raise ApiError(
            403,
            "M_FORBIDDEN",
            "par délégation, vous ne pouvez pas modifier le cercle de soins "
            "(le parcours ne le prévoit pas)",
        )


def check_role(
    pathway: Pathway | None, role: str, dossier: Dossier, attested: bool = False
) -> None:
    """Whether the dossier's pathway admits someone with this role in its circle (and its
    consent the sharing it means): raise the refusal, in words, if not."""
    if pathway is not None and role not in pathway.roles_allowed and role != "COORD":
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            f"le rôle {role} n'est pas prévu par le parcours « {pathway.name} » "
            f"(rôles possibles : {', '.join(pathway.roles_allowed)})",
        )
    if role in RESTRICTED_ROLES and not (pathway and pathway.room_template.allow_patient):
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            "ce parcours n'admet pas le patient ni ses proches dans le cercle",
        )
    refusal = sharing_refusal(pathway, role, dossier, attested)
    if refusal is not None:
        raise refusal
