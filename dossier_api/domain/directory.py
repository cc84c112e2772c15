"""Directory entries (annuaire) in the dossier store: professionals bound to their Matrix
account, with their structure. The Synapse module reads the mirror kept in room state."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dossier_api.domain.models import Professional, Structure, StructureStaff
from maillon.shared.circle import DirectoryEntry


def upsert_professional(
    engine: Engine, entry: DirectoryEntry, display_name: str | None = None
) -> str | None:
    """Write the entry (and its display name, a person's name) to the directory; attach the
    professional to their structure, created if new. Returns the structure's id, if any."""
    with Session(engine) as session, session.begin():
        pro = session.get(Professional, entry.user_id)
        if pro is None:
            pro = Professional(user_id=entry.user_id, profession=entry.profession)
            session.add(pro)
        pro.profession, pro.rpps, pro.adeli = entry.profession, entry.rpps, entry.adeli
        pro.mssante = entry.mssante
        if display_name:
            pro.display_name = display_name
        if entry.structure:
            structure = session.scalar(select(Structure).where(Structure.name == entry.structure))
            if structure is None:
                structure = Structure(name=entry.structure)
                session.add(structure)
                session.flush()
            if session.get(StructureStaff, (structure.id, entry.user_id)) is None:
                session.add(StructureStaff(structure_id=structure.id, user_id=entry.user_id))
            return structure.id
    return None
