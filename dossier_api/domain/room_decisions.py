"""The care-circle module's decisions on patient rooms (who was let in or kept out, and
why), loaded into the dossier audit so a coordinator sees them beside the dossier-side
ones. Each file of the log (one per Synapse worker, ``maillon.shared.decision_log``) is read
from where the last load stopped, whole lines only; a decision on a room that is no
dossier's is passed over. Loading twice at once cannot duplicate rows: a load only commits
if the position it started from is still the stored one."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dossier_api.domain.models import AuditEntry, DecisionLogPosition, Dossier, DossierRoom
from maillon.shared.decision_log import FILE_PATTERN, AuditRecord, parse_record

log = logging.getLogger(__name__)
COMPONENT = "synapse"
BASIS = "room"
MAX_BYTES = 4 * 1024 * 1024  # per file and load: a long backlog loads in several reads


class _Moved(Exception):
    """Another load stored a position meanwhile."""


def _at(record: AuditRecord) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(record.ts)
    except ValueError:
        return dt.datetime.now(dt.UTC)
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _entry(record: AuditRecord, dossier_id: str) -> AuditEntry:
    target = f" ; cible : {record.target}" if record.target else ""
    return AuditEntry(
        at=_at(record),
        dossier_id=dossier_id,
        actor=record.actor[:255],
        basis=BASIS,
        action=f"room.{record.action}"[:60],
        component=COMPONENT,
        allowed=record.allowed,
        detail=f"décision du module de salle ({record.worker}) : {record.code}{target}"[:500],
    )


def _dossiers_of(session: Session, room_ids: set[str]) -> dict[str, str]:
    """The dossier of each of these rooms (its patient room or a side room)."""
    found: dict[str, str] = {}
    for query in (
        select(DossierRoom.room_id, DossierRoom.dossier_id).where(
            DossierRoom.room_id.in_(room_ids)
        ),
        select(Dossier.room_id, Dossier.id).where(Dossier.room_id.in_(room_ids)),
    ):
        for room_id, dossier_id in session.execute(query).all():
            if room_id is not None:
                found.setdefault(room_id, dossier_id)
    return found


def _load_file(engine: Engine, path: Path) -> int:
    with Session(engine) as session, session.begin():
        position = session.get(DecisionLogPosition, path.name)
        start = position.offset if position is not None else 0
        size = path.stat().st_size
        if size < start:  # the file was replaced: read it again from its start
            start = 0
        if size == start:
            return 0
        with path.open("rb") as handle:
            handle.seek(start)
            chunk = handle.read(MAX_BYTES)
        whole = chunk[: chunk.rfind(b"\n") + 1]
        if not whole:
            return 0
        records = [
            r
            for r in (parse_record(line) for line in whole.decode(errors="replace").splitlines())
            if r is not None
        ]
        rooms = _dossiers_of(session, {r.room_id for r in records})
        entries = [_entry(r, rooms[r.room_id]) for r in records if r.room_id in rooms]
        session.add_all(entries)
        end = start + len(whole)
        if position is None:
            session.add(DecisionLogPosition(file=path.name, offset=end))
        else:
            moved = session.execute(
                update(DecisionLogPosition)
                .where(
                    DecisionLogPosition.file == path.name,
                    DecisionLogPosition.offset == position.offset,
                )
                .values(offset=end)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise _Moved
        return len(entries)


def load_room_decisions(engine: Engine, directory: Path) -> int:
    """Load what is new in the decision log into the audit; the number of entries added."""
    added = 0
    for path in sorted(directory.glob(FILE_PATTERN)):
        try:
            added += _load_file(engine, path)
        except _Moved:
            continue  # the other load took these lines
        except (IntegrityError, OSError):  # a concurrent first load of the file; unreadable
            log.warning("decision log %s not loaded this time", path.name, exc_info=True)
    return added
