"""Import of the national directory's extracts (generated in the exact public shape) on a
real PostgreSQL: a 50,000-line extract, every entry searchable; a changed file applies
exactly its changes; the same file twice changes nothing; a broken line is reported by
number and nothing of it is applied; a malformed file is refused whole. SQLite (FTS5) too."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from dossier_api.domain.directory import search_directory
from dossier_api.domain.directory_import import DirectoryFileError, import_extract
from dossier_api.domain.models import DirectoryChange, DirectoryImport, DirectoryRecord
from maillon.shared.store import make_engine
from tests.harness.annuaire import ascii_word, person, write_activite, write_mssante, zipped
from tests.harness.postgres import create_database, drop_database

# The acceptance size; larger extracts (2,000,000 lines): benchmarks/directory.py.
LINES = 50_000


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    url = create_database("maillon_directory")
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_database(url)


def snapshot(engine: Engine) -> str:
    """A digest of every directory row (to show that nothing changed)."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for row in conn.execute(
            select(
                DirectoryRecord.national_id,
                DirectoryRecord.content_hash,
                DirectoryRecord.listed,
                DirectoryRecord.changed_import_id,
            ).order_by(DirectoryRecord.national_id)
        ):
            digest.update(repr(tuple(row)).encode())
        digest.update(str(conn.scalar(select(func.count()).select_from(DirectoryChange))).encode())
    return digest.hexdigest()


def found(engine: Engine, national_id: str, q: str, **filters: str) -> bool:
    page = 1
    while True:
        result = search_directory(engine, q, page=page, size=50, **filters)
        if any(r["national_id"] == national_id for r in result["results"]):
            return True
        if not result["has_more"]:
            return False
        page += 1


@pytest.mark.timeout(1200)
def test_the_national_extract_imports_incrementally(pg: Engine, tmp_path: Path) -> None:
    first = write_activite(tmp_path / "PS_LibreAcces_Personne_activite_202612010000.txt", LINES)
    assert first.lines == LINES
    start = time.monotonic()
    report = import_extract(pg, zipped(first.path))  # the distribution's zip
    elapsed = time.monotonic() - start
    people = len(first.people)
    assert (report.lines, report.added, report.rejected, report.removed) == (LINES, people, 0, 0)
    print(f"import of {LINES} lines: {elapsed:.1f} s")

    # Every entry is in the full-text index; a sample is found by name, number, filters.
    with pg.connect() as conn:
        indexed = conn.scalar(
            text(
                "SELECT count(*) FROM directory_entries WHERE listed AND search_vector @@ "
                "to_tsquery('simple', 'prof10|prof21|prof40|prof50|prof60|prof70|prof91|prof26')"
            )
        )
    assert indexed == people
    for i in range(0, people, people // 60):
        p = person(i)
        assert found(pg, p.national_id, p.identifier), p
        first_word = p.first_name.split("-")[0].lower()[:3]
        q = f"{first_word} {p.last_name.lower()}"
        assert found(pg, p.national_id, q, departement=p.places[0][0]), (q, p)

    # The same file again: nothing changes (one more import record, no other write).
    before = snapshot(pg)
    again = import_extract(pg, first.path)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, people)
    assert snapshot(pg) == before

    # A newer file: some professionals gone, some moved, some new; exactly those apply.
    drop = set(range(3, 8_000, 97))
    move = set(range(5, 8_000, 89)) - drop
    second = write_activite(tmp_path / "second.txt", LINES, drop=drop, move=move, extra=40)
    changed = import_extract(pg, second.path)
    assert (changed.added, changed.changed, changed.removed) == (40, len(move), len(drop))
    assert changed.unchanged == people - len(drop) - len(move)
    gone = person(min(drop))
    assert not found(pg, gone.national_id, gone.identifier)
    moved = person(min(move), moved=True)
    result = search_directory(pg, moved.identifier)["results"][0]
    assert {a["town"] for a in result["activities"]} == {place[2] for place in moved.places}
    with pg.connect() as conn:
        history = dict(
            conn.execute(
                select(DirectoryChange.change, func.count())
                .where(DirectoryChange.import_id == changed.import_id)
                .group_by(DirectoryChange.change)
            ).all()
        )
        kept = conn.scalar(
            select(DirectoryRecord.listed).where(DirectoryRecord.national_id == gone.national_id)
        )
    assert history == {"added": 40, "changed": len(move), "removed": len(drop)}
    assert kept is False  # no longer listed, still there with its history

    # Broken lines: reported by number; their professionals stay exactly as they were.
    before = snapshot(pg)
    third = write_activite(
        tmp_path / "third.txt",
        LINES,
        drop=drop,
        extra=40,  # the moved ones go back: a change, except on the broken lines
        broken={10: "fields", 200: "rpps", 3000: "name", 4000: "encoding", 5000: "pipe"},
    )
    broken = import_extract(pg, third.path)
    assert sorted(n for n, _ in broken.rejections) == [10, 200, 3000, 4000, 5000]
    reasons = dict(broken.rejections)
    assert "53 champs au lieu de 52" in reasons[10]
    assert "RPPS" in reasons[200] and "nom" in reasons[3000]
    assert "UTF-8" in reasons[4000] and "|" in reasons[5000]
    assert broken.held == len(set(third.broken.values()))
    assert broken.removed == 0  # a professional with a broken line is not "gone"
    with pg.connect() as conn:
        touched = set(
            conn.scalars(
                select(DirectoryChange.national_id).where(
                    DirectoryChange.import_id == broken.import_id
                )
            )
        )
    assert not touched & set(third.broken.values())
    assert broken.changed == len(touched)
    assert before != snapshot(pg)
    with pg.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(text("directory_staging"))) == 0


def test_a_malformed_file_is_refused_whole(pg: Engine, tmp_path: Path) -> None:
    with pg.connect() as conn:
        imports = conn.scalar(select(func.count()).select_from(DirectoryImport))
    bad_header = tmp_path / "bad.txt"
    bad_header.write_text("Type d'identifiant PP|Identifiant PP|Identification nationale PP|\n")
    with pytest.raises(DirectoryFileError, match="colonnes"):
        import_extract(pg, bad_header)
    other = tmp_path / "other.txt"
    other.write_text("nom;prénom\nDURAND;MARIE\n")
    with pytest.raises(DirectoryFileError, match="pas un extrait"):
        import_extract(pg, other)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DirectoryFileError, match="vide"):
        import_extract(pg, empty)
    with pg.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DirectoryImport)) == imports


def test_a_truncated_extract_is_refused_unless_forced(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    try:
        full = write_activite(tmp_path / "PS_LibreAcces_Personne_activite_1.txt", 2000)
        import_extract(engine, full.path)
        before = snapshot(engine)
        with engine.connect() as conn:
            imports = conn.scalar(select(func.count()).select_from(DirectoryImport))
        cut = write_activite(tmp_path / "PS_LibreAcces_Personne_activite_2.txt", 1200)
        with pytest.raises(DirectoryFileError, match=r"40 % de moins .* tronqué"):
            import_extract(engine, cut.path)
        assert snapshot(engine) == before  # nothing applied, nobody marked unlisted
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(DirectoryImport)) == imports
        # A little smaller (a few professionals gone) is an ordinary update.
        fewer = write_activite(tmp_path / "PS_LibreAcces_Personne_activite_3.txt", 1900)
        assert import_extract(engine, fewer.path).removed > 0
        # Forced, the truncated file is imported (its missing professionals unlisted).
        forced = import_extract(engine, cut.path, force=True)
        assert forced.removed > 0 and forced.rejected == 0
    finally:
        engine.dispose()


def test_sqlite_fts5_and_mssante_addresses(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    try:
        made = write_activite(tmp_path / "activite.txt", 3000)
        import_extract(engine, made.path)
        boxes = write_mssante(tmp_path / "Extraction_Correspondance_MSSante.txt", 3000)
        report = import_extract(engine, tmp_path / "Extraction_Correspondance_MSSante.txt")
        assert report.added > 0 and report.skipped > 0 and report.rejected == 0
        assert report.lines == boxes
        p = person(0)
        result = search_directory(engine, p.identifier)["results"][0]
        assert result["mssante"] == [p.mailbox]
        # Accents, case and hyphens do not matter; words are prefixes.
        q = f"{p.first_name.title()} {p.last_name.title()}"
        assert found(engine, p.national_id, q)
        plain = ascii_word(p.last_name)[:3]
        assert found(engine, p.national_id, plain, departement=p.places[0][0])
        again = import_extract(engine, tmp_path / "Extraction_Correspondance_MSSante.txt")
        assert (again.added, again.changed, again.removed) == (0, 0, 0)
    finally:
        engine.dispose()
