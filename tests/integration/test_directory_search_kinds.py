"""Every kind of directory search the API offers (name prefix without accents, case or
hyphens; number; profession by code or name; town; département; structure; combinations;
later pages), on a real PostgreSQL and on SQLite, against a reference computed here from
the generated professionals. On PostgreSQL the ways of answering are checked: few matches
sorted from the full-text index, many matches of a name prefix read along its range of the
name index, many matches read along the name index, many matches gathered in one part of the
alphabet sorted by PostgreSQL (thresholds lowered so that a
small extract has searches of every size)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, create_engine, event, select, text

from dossier_api.domain import directory
from dossier_api.domain.core import ApiError
from dossier_api.domain.directory import search_directory
from dossier_api.domain.directory_import import import_extract
from dossier_api.domain.models import DirectoryRecord
from maillon.shared.store import make_engine
from maillon.shared.text import words
from tests.harness.annuaire import person, write_activite
from tests.harness.postgres import create_database, drop_database

LINES = 3000
DROPPED = set(range(2, 300, 11))  # in the first file only: then no longer listed


def _load(engine: Engine, tmp: Path) -> None:
    import_extract(
        engine, write_activite(tmp / "PS_LibreAcces_Personne_activite_1.txt", LINES).path
    )
    second = write_activite(tmp / "PS_LibreAcces_Personne_activite_2.txt", LINES, drop=DROPPED)
    import_extract(engine, second.path)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("kinds")
    url = create_database("maillon_kinds") if request.param == "postgresql" else ""
    made = make_engine(url or f"sqlite:///{tmp}/store.db")
    try:
        _load(made, tmp)
        yield made
    finally:
        made.dispose()
        if url:
            drop_database(url)


def reference(engine: Engine, q: str, profession: str = "", departement: str = "") -> list[str]:
    """The national ids a search must give, in order: every word of ``q`` (and of a
    profession's name) the start of a word of the entry (a one-letter word: a whole
    word), the profession's code and the département among the entry's, listed only."""
    wanted = words(q)
    code = profession if profession.isdigit() else ""
    if profession and not code:
        wanted += words(profession)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                DirectoryRecord.national_id,
                DirectoryRecord.sort_key,
                DirectoryRecord.search_text,
                DirectoryRecord.profession_code,
                DirectoryRecord.data,
            ).where(DirectoryRecord.listed.is_(True))
        ).all()
    hits = []
    for national, key, search, prof, data in rows:
        have = search.split()
        if not all(any(h == w if len(w) < 2 else h.startswith(w) for h in have) for w in wanted):
            continue
        if code and prof != code:
            continue
        if departement and departement not in {a.get("departement") for a in data["activities"]}:
            continue
        hits.append((key, national))
    return [national for _, national in sorted(hits)]


def pages(engine: Engine, q: str, size: int = 7, **filters: Any) -> tuple[list[str], Any]:
    """Every page of a search (national ids in order), and the first page."""
    got: list[str] = []
    first = None
    for page in range(1, 400):
        result = search_directory(engine, q, page=page, size=size, **filters)
        first = first or result
        got += [r["national_id"] for r in result["results"]]
        if not result["has_more"]:
            return got, first
    raise AssertionError("no last page")


P = person(0)  # MÜLLER FRANÇOIS, dentist in Lyon (69)
KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "name, accents and case": ("Müller François", {}),
    "name without accents": ("MULLER FRANCOIS", {}),
    "name prefix": ("mül", {}),
    "hyphenated name, as two prefixes": ("jean pi", {}),
    # A word and a prefix that starts it: read along the longer word's names.
    "name and a prefix it starts": ("martin mar", {}),
    "prefix and a name it starts, first name": ("ma martin", {}),
    "three-letter prefixes": ("jea mar", {}),
    "hyphenated name": ("Jean-Pierre", {}),
    "apostrophe, one-letter word whole": ("d'artag", {}),
    "rpps": (P.identifier, {}),
    "profession code": ("", {"profession": "60"}),
    "profession name": ("", {"profession": "kinésithérapeute"}),
    "town": ("toulouse", {}),
    "département": ("", {"departement": "2A"}),
    "structure": (P.structures[0], {}),
    "name and département": ("dur", {"departement": "31"}),
    "name, profession and département": ("martin", {"profession": "10", "departement": "34"}),
    "profession and département": ("", {"profession": "60", "departement": "974"}),
    "structure and name": ("maison de sante", {"profession": "pharmacien"}),
    "no match": ("zzzz", {}),
}


# The thresholds lowered so that a small extract has "many" matches: read along the name
# index (a window of all the extract, or of part of it, before any count), along a name
# prefix's range of it (merged with the few matches elsewhere, or too many of those), or,
# past a short window, sorted by PostgreSQL.
THRESHOLDS = {
    "default": {},
    # Read along an index first, as the planner expects many matches: a window of part of
    # the extract; and the planner taking every search for a broad one.
    "read first": {"CANDIDATES": 15, "WALK": 120, "DENSE": 1},
    "all read first": {"CANDIDATES": 15, "WALK": 120, "DENSE": 0},
    "walk": {"CANDIDATES": 15},
    "name ranges": {"CANDIDATES": 15, "WALK": 120},
    "few elsewhere": {"CANDIDATES": 15, "WALK": 120, "OTHERS": 2},
    "sorted, prefixes not expanded": {"CANDIDATES": 15, "WALK": 30, "EXPAND": 1},
    # A short prefix not expanded ("mar" of "martin mar") looked up in the
    # full-text index, the other words matching more than the whole search, then the
    # matches sorted by PostgreSQL (or, past them, read along the name index).
    "short prefix through the index": {"CANDIDATES": 15, "EXPAND": 0, "WIDER": 1},
    "short prefix through the index, walked": {
        "CANDIDATES": 15,
        "WALK": 30,
        "EXPAND": 0,
        "WIDER": 1,
    },
}


@pytest.mark.parametrize("threshold", list(THRESHOLDS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_query_kind_gives_exactly_the_matches_in_name_order(
    engine: Engine, kind: str, threshold: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in THRESHOLDS[threshold].items():
        monkeypatch.setattr(directory, name, value)
    q, filters = KINDS[kind]
    expected = reference(engine, q, **filters)
    got, first = pages(engine, q, **filters)
    assert got == expected, kind
    assert len(set(got)) == len(got)  # pages do not overlap
    if kind != "no match":
        assert expected, kind  # the reference finds something: the kind is exercised
    # Counted: all the matches (always when they fit in a page), or more than count
    # ("plus de 2000", or, read along the name index, "plus de 7": at least a page).
    if first["count_exact"]:
        assert first["count"] == len(expected)
    else:
        assert 7 <= first["count"] < len(expected)
        assert first["count"] in (directory.CANDIDATES, 7)
    assert first["count_exact"] or len(expected) > 7
    if len(expected) > directory.CANDIDATES:
        assert not first["count_exact"]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # the index's ways
@pytest.mark.parametrize("q", ["martin jea", "martin mat", "martin tou"])
def test_a_short_prefix_is_looked_up_in_the_full_text_index_when_the_others_are_broad(
    engine: Engine, q: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a three-letter prefix of too many words to expand ("mar") is tested
    on each entry the other words find, unless they find many more entries than the whole
    search: then it is looked up in the full-text index with them. The same rows in the
    same order either way (the extract is small: the thresholds lowered so that it is the
    way taken)."""
    assert engine.dialect.name == "postgresql"
    for name, value in THRESHOLDS["short prefix through the index"].items():
        monkeypatch.setattr(directory, name, value)
    looked_up: list[str] = []
    short = q.split()[1]
    match = directory._match

    def spy(query: str, tested: str) -> Any:
        # The whole search through the index: the short prefix in it, nothing tested on
        # each entry (not the test of a name's first word, "!(0nmartin:*)").
        if not tested and not query.startswith("!") and short in query:
            looked_up.append(query)
        return match(query, tested)

    monkeypatch.setattr(directory, "_match", spy)
    got, first = pages(engine, q)
    assert looked_up, "the short prefix was tested on each entry"
    assert got == reference(engine, q)
    assert first["count_exact"] is True  # the matches gathered: counted, all of them
    assert first["count"] == len(got)


def test_the_reference_agrees_with_the_generated_professionals(engine: Engine) -> None:
    assert P.national_id in reference(engine, "muller fran", departement="69")
    nurses = reference(engine, "", profession="60", departement="974")
    for national in nurses[:20]:
        hit = search_directory(engine, national[1:])["results"][0]
        assert hit["profession"] == "Infirmier"
        assert "974" in {a["departement"] for a in hit["activities"]}
    dropped = person(min(DROPPED))
    assert search_directory(engine, dropped.identifier)["results"] == []


def test_a_lone_letter_is_no_search(engine: Engine) -> None:
    with pytest.raises(ApiError, match="2 lettres"):
        search_directory(engine, "d")
    assert search_directory(engine, "d artagnan")["results"]


def test_a_broad_search_read_along_the_name_index_says_more_than_a_page(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many matches read in name order first are not counted: the answer says "more than"
    this page (its pages still every match, in order); SQLite counts them (FTS5) up to
    CANDIDATES."""
    for name, value in THRESHOLDS["read first"].items():
        monkeypatch.setattr(directory, name, value)
    expected = reference(engine, "", departement="31")
    assert len(expected) > directory.WALK  # more than the window holds
    first = search_directory(engine, "", departement="31", size=7)
    assert first["has_more"] is True
    postgresql = engine.dialect.name == "postgresql"
    assert first["count_exact"] is False
    assert first["count"] == (7 if postgresql else directory.CANDIDATES)
    third = search_directory(engine, "", departement="31", size=7, page=3)
    assert [r["national_id"] for r in third["results"]] == expected[14:21]
    assert third["count_exact"] is False  # a later page: counted by the full-text index


def test_a_search_leaves_its_connection_as_it_found_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a search's statements run in no transaction; the settings it changes
    for itself (more memory for the entries of a prefix not expanded, no sequential scan
    for expanded prefixes) are reset after it, on the very connection the pool hands out
    next."""
    one = (
        create_engine(
            engine.url,
            pool_size=1,
            max_overflow=0,
            connect_args={"options": "-c search_path=maillon"},
        )
        if engine.dialect.name == "postgresql"
        else engine
    )
    executed: list[str] = []
    event.listen(one, "before_cursor_execute", lambda *a: executed.append(f"{a[2]} {a[3]}"))
    try:
        with one.connect() as conn:
            before = _settings(conn)
        monkeypatch.setattr(directory, "EXPAND", 1)  # "mar": a prefix not expanded
        assert search_directory(one, "martin mar")["results"]
        monkeypatch.undo()
        assert search_directory(one, "jean pi")["results"]  # "pi": expanded
        with one.connect() as conn:
            assert _settings(conn) == before
        changed = [s for s in executed if "set_config(%s" in s]
        if one.dialect.name == "postgresql":
            assert "'work_mem'" in changed[0]  # changed, then reset
        else:
            assert not changed
    finally:
        if one is not engine:
            one.dispose()


def _settings(conn: Any) -> tuple[Any, ...]:
    if conn.dialect.name != "postgresql":
        return ()
    return tuple(conn.scalar(text(f"SHOW {name}")) for name in ("work_mem", "enable_seqscan"))


def test_after_an_import_the_name_indexes_are_read_without_the_table(tmp_path: Path) -> None:
    """On PostgreSQL an import ends with a VACUUM of the entries (outside its transaction):
    their pages are marked visible to all, so that the walks along the name indexes read
    the indexes only, from the first search on, not each entry's row (autovacuum would
    mark them only minutes later)."""
    url = create_database("maillon_visible")
    with psycopg.connect(url, autocommit=True) as admin:
        # As a server runs (the tests' cluster commits asynchronously: a row's commit is
        # not known from its page, nor the page visible to all, until the log is written).
        name = url.rpartition("/")[2]
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(sql.Identifier(name))
        )
    made = make_engine(url)
    try:
        path = write_activite(tmp_path / "PS_LibreAcces_Personne_activite_1.txt", 300).path
        import_extract(made, path)
        with made.connect() as conn:
            pages, visible = conn.execute(
                text(
                    "SELECT relpages, relallvisible FROM pg_class"
                    " WHERE oid = 'directory_entries'::regclass"
                )
            ).one()
        assert pages > 0
        assert visible == pages
    finally:
        made.dispose()
        drop_database(url)
