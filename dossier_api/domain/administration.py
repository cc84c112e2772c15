"""Who administers what: a structure is administered by the regional administrators and by
its own managers (``StructureStaff.role == "manager"``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.models import StructureStaff


def manages_structure(session: Session, caller: Caller, structure_id: str) -> bool:
    """May the caller administer this structure (its dashboard, extractions, settings)?"""
    if caller.is_admin:
        return True
    staff = session.get(StructureStaff, (structure_id, caller.user_id))
    return staff is not None and staff.role == "manager"
