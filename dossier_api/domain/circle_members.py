"""Who is in a dossier's care circle now: one query, for the API, the bot and the appservice.

A member is current while not removed and before their exit date (``until``); rows are never
deleted, so the history stays beside them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from dossier_api.domain.models import CircleMember
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
