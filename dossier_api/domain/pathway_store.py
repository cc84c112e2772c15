"""Pathway versions in the store: seeded from ``config/pathways/*.yaml``, edited in the
administration console, one ``published`` version per pathway (what new dossiers follow).
The one parser is ``dossier_api.domain.pathways.parse_pathway``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dossier_api.domain.models import PathwayVersion
from dossier_api.domain.pathways import PATHWAYS, Pathway, parse_pathway, read_definitions
from maillon.shared.clock import utcnow

SEED_AUTHOR = "config/pathways"


def seed(session: Session, definitions: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Insert each YAML pathway the store does not hold yet (or holds only older versions
    of: a shipped update), published; returns the pathways inserted."""
    inserted = []
    for pid, definition in (definitions or read_definitions()).items():
        newest = session.scalar(
            select(func.max(PathwayVersion.version)).where(PathwayVersion.pathway_id == pid)
        )
        version = int(definition.get("version", 1))
        if newest is not None and newest >= version:
            continue
        _retire(session, pid)
        session.add(
            PathwayVersion(
                pathway_id=pid,
                version=version,
                definition=definition,
                status="published",
                author=SEED_AUTHOR,
                published_at=utcnow(),
            )
        )
        inserted.append(pid)
    session.flush()
    return inserted


def _retire(session: Session, pathway_id: str) -> None:
    for row in session.scalars(
        select(PathwayVersion).where(
            PathwayVersion.pathway_id == pathway_id, PathwayVersion.status == "published"
        )
    ):
        row.status = "retired"


def parsed(row: PathwayVersion) -> Pathway:
    return parse_pathway(row.definition, f"{row.pathway_id} v{row.version}")


def published_rows(session: Session) -> dict[str, PathwayVersion]:
    rows = session.scalars(select(PathwayVersion).where(PathwayVersion.status == "published"))
    return {r.pathway_id: r for r in rows}


def published_version(session: Session, pathway_id: str) -> int | None:
    """The version a dossier opened now on this pathway follows (None: no such pathway).
    A store never seeded (no process bound to it yet) is seeded first."""
    query = select(PathwayVersion.version).where(
        PathwayVersion.pathway_id == pathway_id, PathwayVersion.status == "published"
    )
    found = session.scalar(query)
    if found is None and not session.scalar(select(func.count()).select_from(PathwayVersion)):
        seed(session)
        found = session.scalar(query)
    return found


def versions(session: Session, pathway_id: str) -> list[PathwayVersion]:
    return list(
        session.scalars(
            select(PathwayVersion)
            .where(PathwayVersion.pathway_id == pathway_id)
            .order_by(PathwayVersion.version.desc())
        )
    )


def get_version(session: Session, pathway_id: str, version: int) -> PathwayVersion | None:
    return session.scalar(
        select(PathwayVersion).where(
            PathwayVersion.pathway_id == pathway_id, PathwayVersion.version == version
        )
    )


def add_version(
    session: Session, definition: dict[str, Any], author: str, *, published: bool
) -> PathwayVersion:
    """A new version (the next number) of the definition's pathway, validated first: a
    refused definition writes nothing."""
    pid = str(definition.get("id", ""))
    newest = session.scalar(
        select(func.max(PathwayVersion.version)).where(PathwayVersion.pathway_id == pid)
    )
    numbered = {**definition, "version": (newest or 0) + 1}
    parse_pathway(numbered, pid or "parcours")
    if published:
        _retire(session, pid)
    row = PathwayVersion(
        pathway_id=pid,
        version=numbered["version"],
        definition=numbered,
        status="published" if published else "draft",
        author=author,
        published_at=utcnow() if published else None,
    )
    session.add(row)
    session.flush()
    return row


def publish(session: Session, row: PathwayVersion) -> None:
    parsed(row)  # never publish what the parser refuses
    _retire(session, row.pathway_id)
    row.status = "published"
    row.published_at = utcnow()
    session.flush()


def bind(engine: Engine) -> None:
    """Make the store the source of ``PATHWAYS`` (seeding it first if needed)."""
    try:
        with Session(engine) as session, session.begin():
            seed(session)
    except IntegrityError:  # another process seeded it at the same moment
        pass

    def every_version() -> dict[tuple[str, int], Pathway]:
        with Session(engine) as session:
            rows = session.scalars(select(PathwayVersion).where(PathwayVersion.status != "draft"))
            return {(r.pathway_id, r.version): parsed(r) for r in rows}

    def published() -> dict[str, Pathway]:
        with Session(engine) as session:
            return {pid: parsed(r) for pid, r in published_rows(session).items()}

    PATHWAYS.bind(every_version, published)
