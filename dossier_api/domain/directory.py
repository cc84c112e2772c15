"""Directory entries (annuaire) in the dossier store: professionals bound to their Matrix
account, with their structure (the Synapse module reads the mirror kept in room state); and
the national directory imported from the Annuaire Santé extracts
(``dossier_api.domain.directory_import``), searched here: by name (accent-, case- and
hyphen-insensitive, prefix), profession, town, department or structure, through a full-text
index (PostgreSQL tsvector with GIN, SQLite FTS5; migration 0040) and, on PostgreSQL, the
listed entries in name order (whole, migration 0230, and by profession, 0331) with the token
of each name's first word (0330) for the searches that match too many entries to sort."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Engine,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from dossier_api.domain.core import ApiError
from dossier_api.domain.models import (
    DirectoryMailboxes,
    DirectoryRecord,
    Professional,
    Structure,
    StructureStaff,
)
from dossier_api.domain.shapes import (
    DirectoryActivityOut,
    DirectoryPageOut,
    DirectoryResultOut,
    People,
    PersonRefOut,
)
from maillon.shared.circle import DirectoryEntry
from maillon.shared.text import digits, words

PAGE_SIZE = 20
MAX_PAGE_SIZE = 50
MAX_WORDS = 8
# Matches counted (and, on PostgreSQL, sorted from the full-text index) up to this many;
# a search matching more is read along the name index instead.
CANDIDATES = 2000
# Entries read along the name index (its entries carry their full-text vector: tested
# there, without reading the table, about a microsecond each), at most, for a page of a
# broad search.
WALK = 10000
DENSE = 1.5  # the window is read first when the planner expects this many pages in it
UNKNOWN = 0.005  # PostgreSQL expects this share of the entries to bear a word it does not know
OTHERS = 10000  # matches of a name prefix elsewhere than in the name, at most, to merge
FEW = 200  # as many expected elsewhere: merged before the walks are tried
EXPAND = 64  # words a prefix is expanded into, at most (PostgreSQL)
# A short prefix not expanded is looked up in the full-text index when the other words
# match this many times more entries than the whole search (as the planner expects).
WIDER = 10
MIN_PREFIX = 2  # a shorter word is matched whole, not as a prefix
WORK_MEM = "16MB"  # memory of a search's statements for the entries a prefix finds
LEAD = "0n"  # the token of the first word of an entry's sort key (its name)


def normalize(value: str) -> str:
    """Lower case, no accents, every other character a blank: "Lefèvre-Saint Éloi" and
    "LEFEVRE SAINT-ELOI" are the same words (``maillon.shared.text.words``)."""
    return " ".join(words(value))


def _dept_token(code: str) -> str:
    return "dpt" + normalize(code).replace(" ", "")


def _prof_token(code: str) -> str:
    return "prof" + normalize(code).replace(" ", "")


def _lead_tokens(name: str) -> list[str]:
    """The token of the first word of a normalized name: "0nmartin" for "martin jean" (no
    word is typed so), what the full-text index tells of the name index's ranges."""
    return [LEAD + name.split()[0]] if name.split() else []


def entry_columns(national_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The searchable columns of a national-directory entry, from its content."""
    activities = data.get("activities", [])
    words = [
        data["last_name"],
        data.get("first_name", ""),
        data.get("profession", ""),
        data["identifier"],
        *data.get("skills", []),
        *(a.get(k, "") for a in activities for k in ("structure", "town", "postal_code")),
        *(a.get("departement_label", "") for a in activities),
    ]
    tokens = {_prof_token(data["profession_code"])}
    tokens |= {_dept_token(a["departement"]) for a in activities if a.get("departement")}
    last = normalize(data["last_name"])
    # One folding of all the words at once (the same words as folding each in turn); last,
    # the token of the first word of the sort key (migration 0330 appends it the same way).
    search = " ".join(
        [normalize(" ".join(w for w in words if w)), *sorted(tokens), *_lead_tokens(last)]
    )
    sort_key = f"{last} {normalize(data.get('first_name', ''))} {national_id}"
    return {
        "id_type": data["id_type"],
        "identifier": data["identifier"],
        "last_name": data["last_name"][:200],
        "first_name": data.get("first_name", "")[:200],
        "profession_code": data["profession_code"][:10],
        "profession": data.get("profession", "")[:200],
        "sort_key": sort_key[:450],
        "search_text": search,
    }


def professionals(session: Session, users: Iterable[str | None]) -> dict[str, Professional]:
    """The directory entries of these accounts (the one query of "who is this person")."""
    ids = sorted({u for u in users if u})
    if not ids:
        return {}
    rows = session.scalars(select(Professional).where(Professional.user_id.in_(ids)))
    return {p.user_id: p for p in rows}


def people_json(session: Session, users: Iterable[str | None]) -> People:
    """Names and professions of these accounts, so that answers and pages show people,
    never Matrix ids."""
    return {
        u: {"display_name": p.display_name, "profession": p.profession}
        for u, p in professionals(session, users).items()
    }


def person_ref(people: People, user_id: str) -> PersonRefOut:
    """An account with its name and profession (None for both when the directory does not
    know it), from ``people_json``."""
    known = people.get(user_id)
    return {
        "user_id": user_id,
        "display_name": known["display_name"] if known else None,
        "profession": known["profession"] if known else None,
    }


def search_directory(
    engine: Engine,
    q: str = "",
    profession: str = "",
    departement: str = "",
    page: int = 1,
    size: int = PAGE_SIZE,
) -> DirectoryPageOut:
    """One page of listed entries matching every word of ``q`` (as a word prefix) and the
    filters (profession: code or name; département: code), sorted by name; each says if the
    professional has a Maillon account."""
    words = normalize(q).split()
    if len(words) > MAX_WORDS:
        raise ApiError(400, "M_INVALID_PARAM", f"recherche trop longue ({MAX_WORDS} mots au plus)")
    exact: list[str] = []
    if profession.strip():
        prof = normalize(profession)
        if digits(prof.replace(" ", "")):
            exact.append(_prof_token(prof))
        else:
            words += prof.split()
    if departement.strip():
        if not re.fullmatch(r"[0-9]{2,3}|2[abAB]", departement.strip()):
            raise ApiError(
                400, "M_INVALID_PARAM", "département : un code attendu (ex. 31, 2A, 974)"
            )
        exact.append(_dept_token(departement))
    if not words and not exact:
        raise ApiError(
            400, "M_INVALID_PARAM", "indiquez un nom, une profession ou un département à chercher"
        )
    if not exact and all(len(w) < MIN_PREFIX for w in words):
        raise ApiError(
            400, "M_INVALID_PARAM", f"recherche trop courte : au moins {MIN_PREFIX} lettres"
        )
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, "M_INVALID_PARAM", f"taille de page : entre 1 et {MAX_PAGE_SIZE}")
    offset = (page - 1) * size
    # On PostgreSQL, each statement on its own (no BEGIN and ROLLBACK: two round trips to
    # the server, longer than many searches take there).
    alone = engine.dialect.name == "postgresql"
    with (
        (
            engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if alone
            else engine.connect()
        ) as connection,
        Session(connection) as session,
    ):
        try:
            ids, (count, whole) = _matching(session, words, exact, size + 1, offset)
            results = _results(session, ids[:size])
        finally:
            # The settings of the search back to the connection's own (the statements are
            # in no transaction), unless the page's statement did it (``_results``).
            if changed := session.info.pop("directory_settings", []):
                session.connection().exec_driver_sql(_RESET, (changed,))
        return {
            "page": page,
            "size": size,
            "has_more": len(ids) > size,
            # How many match: all of them when count_exact, else more than count ("plus
            # de 2000 résultats", or, read along the name index, "plus de 20").
            "count": count,
            "count_exact": whole,
            "results": results,
        }


_RESET = "SELECT count(set_config(name, reset_val, false)) FROM pg_settings WHERE name = ANY(%s)"


def _counted(found: int) -> tuple[int, bool]:
    """How many match, counted up to CANDIDATES only ("plus de 2000 résultats")."""
    return min(found, CANDIDATES), found <= CANDIDATES


def _matching(
    session: Session, words: list[str], exact: list[str], limit: int, offset: int
) -> tuple[list[int], tuple[int, bool]]:
    """One page of matches in name order, and how many entries match: the number and
    whether it is all of them (else there are more: counting further would cost as much as
    the search)."""
    entries = DirectoryRecord.__table__
    if session.get_bind().dialect.name == "postgresql":
        return _pg_matching(session, words, exact, limit, offset)
    query = " ".join(
        [*(f'"{w}"*' if len(w) >= MIN_PREFIX else f'"{w}"' for w in words)]
        + [f'"{t}"' for t in exact]
    )
    ids = (
        select(text("rowid"))
        .select_from(text("directory_fts"))
        .where(text("directory_fts MATCH :query").bindparams(query=query))
    )
    listed = and_(DirectoryRecord.listed.is_(True), DirectoryRecord.id.in_(ids))
    rows = list(
        session.scalars(
            select(DirectoryRecord.id)
            .where(listed)
            .order_by(DirectoryRecord.sort_key)
            .limit(limit)
            .offset(offset)
        )
    )
    capped = select(entries.c.id).where(listed).limit(CANDIDATES + 1).subquery()
    return rows, _counted(session.scalar(select(func.count()).select_from(capped)) or 0)


def _terms(session: Session, words: list[str], exact: list[str]) -> list[str]:
    """The full-text term of each word: a prefix, but a one-character word whole (the "d"
    of "d'Artagnan": as a prefix it would match a good part of the directory)."""
    return [*(_prefix(session, w) if len(w) >= MIN_PREFIX else w for w in words), *exact]


def _after(prefix: str) -> str:
    """The first string after every one that starts with ``prefix`` (words are ASCII
    letters and digits: its last character incremented)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _prefix(session: Session, prefix: str) -> str:
    """The full-text term of a prefix: the words of the directory that start with it, if
    few (the index intersects words fast, but a prefix of common words, "martin:*" or
    "pharmacie:*", costs hundreds of milliseconds at 2 million entries), else the prefix
    (looked up once per search, with the others of the search: ``_look_up``)."""
    known = _look_up(session, [prefix])
    return known[prefix]


def _look_up(session: Session, prefixes: Iterable[str]) -> dict[str, str]:
    """The full-text terms of these prefixes (``_prefix``), those not known yet looked up
    in one statement (a round trip to the server costs more than each look-up)."""
    known: dict[str, str] = session.info.setdefault("directory_prefixes", {})
    missing = sorted({p for p in prefixes if p not in known})
    if missing:
        rows = session.connection().exec_driver_sql(
            "SELECT p.prefix, ARRAY(SELECT word FROM directory_words"
            " WHERE word >= p.prefix AND word < p.after ORDER BY word LIMIT %s)"
            " FROM unnest(%s::text[], %s::text[]) AS p(prefix, after)",
            (EXPAND + 1, missing, [_after(p) for p in missing]),
        )
        found: dict[str, list[str]] = {prefix: words for prefix, words in rows}
        for prefix in missing:
            words = found.get(prefix) or []
            if not words or len(words) > EXPAND:
                known[prefix] = f"{prefix}:*"
            else:
                known[prefix] = words[0] if len(words) == 1 else f"({' | '.join(words)})"
    return known


def _estimates(session: Session, *conditions: tuple[str, str]) -> list[float]:
    """How many listed entries meet each condition (("words", a full-text query),
    ("profession", a code) or ("", "") for none), as the planner expects (its statistics of
    the full-text vectors' words; nothing read): one EXPLAIN of them all, written here (a
    statement compiled on each search costs more than the planner)."""
    tests = {
        "": "",
        "words": " AND search_vector @@ to_tsquery('simple'::regconfig, %s)",
        "profession": " AND profession_code = %s",
    }
    # Only the fixed tests above in the text; the values are bound.
    sql = " UNION ALL ".join(
        f"SELECT id FROM directory_entries WHERE listed{tests[kind]}"  # noqa: S608
        for kind, _ in conditions
    )
    explained = session.connection().exec_driver_sql(
        f"EXPLAIN (FORMAT JSON) {sql}", tuple(value for kind, value in conditions if kind)
    )
    plan: Any = explained.scalar()
    node = plan[0]["Plan"]
    while len(conditions) > 1 and node["Node Type"] != "Append" and node.get("Plans"):
        node = node["Plans"][0]
    parts = node.get("Plans", []) if len(conditions) > 1 else [node]
    if len(parts) != len(conditions):  # not the plan expected: nothing expected (way 2)
        return [0.0] * len(conditions)
    return [float(part["Plan Rows"]) for part in parts]


def _pg_matching(
    session: Session, words: list[str], exact: list[str], limit: int, offset: int
) -> tuple[list[int], tuple[int, bool]]:
    # Ways, cheapest first, each exact (the same rows in the same order):
    # 1. many matches spread over the alphabet (a profession, a département, a town, a
    #    common name or first name), as the planner expects them: a page within the first
    #    WALK entries of the profession's entries in name order when the search has its
    #    code, else of the whole name index, the words tested in the index (migration 0340);
    # 2. the full-text (GIN) index finds the matches; if they are few (a full name, a name
    #    and a town...), they are sorted here;
    # 3. many matches of a name prefix ("mart": the Martins): those whose name starts with
    #    a word of the search are read in order along that word's range of the partial name
    #    index (listed entries in name order, migration 0230), the others (whose first name,
    #    town... has the word: the full-text index tells them apart by the token of the first
    #    word of the name, migration 0330), OTHERS at most, sorted by PostgreSQL; merged
    #    here;
    # 4. the walks of 1 again, when the planner expected too few matches;
    # 5. else the full-text matches sorted by PostgreSQL (a top-N sort, no count of them).
    # Sorting hundreds of thousands of matches on each page is what took seconds.
    # Only way 2 counts the matches (up to CANDIDATES); the others tell how many they saw.
    heads = _heads(words)
    # Every prefix of the search looked up at once: its words and the names they start.
    _look_up(
        session,
        [
            *(w for w in words if len(w) >= MIN_PREFIX),
            *(t[:-2] for *_, t in heads if t.endswith(":*")),
        ],
    )
    terms = _terms(session, words, exact)
    # A two- or three-letter prefix of too many words to expand ("le" of "le goff", "mar"
    # of "martin mar") is tested on each entry the other words find, not looked up in the
    # full-text index (a hundred milliseconds and more).
    drive = [t for t in terms if not (t.endswith(":*") and len(t) <= 5)] or terms
    query = " & ".join(terms)
    match = _match(" & ".join(drive), query if drive != terms else "")
    key = DirectoryRecord.sort_key.collate("C")
    # The listed entries, not as the name indexes' predicate reads: no name index for the
    # matches the full-text index finds (the planner would read all of one, testing each
    # entry, for a LIMIT without order).
    gin = DirectoryRecord.listed.is_(True)
    need = offset + limit
    codes = [t.removeprefix("prof") for t in exact if t.startswith("prof")]
    walks = [[DirectoryRecord.profession_code == c] for c in codes[:1]] + [[]]
    # Each match tells whether its name starts with none of the words (none of the tokens).
    tokens = " | ".join(_prefix(session, t[:-2]) if t.endswith(":*") else t for *_, t in heads)
    outside = f"!({tokens})"
    settings: dict[str, str] = {}
    if "|" in query:
        # The planner takes a few rare words for many more entries than their sum and
        # reads the whole table for them: the full-text index is always the faster there.
        settings["enable_seqscan"] = "off"
    if re.search(r"(^|[^a-z0-9])(0n)?[a-z0-9]{1,3}:\*", f"{query} {tokens}"):
        # The entries of a short prefix's words ("le", "0nle", "mar" not expanded),
        # gathered, hold in memory: with the default (4 MB), they are kept by page, each
        # entry of those pages read again ("le goff": 250 ms instead of 40).
        settings["work_mem"] = WORK_MEM
    if settings:
        # For this search only (reset after it, ``search_directory``).
        session.info["directory_settings"] = list(settings)
        session.connection().exec_driver_sql(
            "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
            tuple(v for pair in settings.items() for v in pair),
        )
    tested = query if drive != terms else ""
    elsewhere = _match(f"{' & '.join(drive)} & {outside}", tested)

    tried: list[list[Any] | None] = []

    def ranges() -> list[Any] | None:
        # The matches outside the heads' ranges, if few, and each range's first matches
        # (tried once: a second time would find the same).
        if not tried:
            tried.append(read_ranges())
        return tried[0]

    def read_ranges() -> list[Any] | None:
        # The first matches elsewhere, sorted by the server, if OTHERS at most.
        spread = (
            select(DirectoryRecord.id, key.label("key"))
            .where(gin, elsewhere)
            .limit(OTHERS + 1)
            .cte("elsewhere")
            .prefix_with("MATERIALIZED")
        )
        first = session.execute(
            select(spread.c.id, spread.c.key, func.count().over())
            .order_by(spread.c.key)
            .limit(need)
        ).all()
        if first and first[0][2] > OTHERS:
            return None
        rows = [(i, k) for i, k, _ in first]
        for lo, hi, _ in heads:
            part, done = _walk(session, match, need, key >= lo, key < hi)
            if not done:
                return None  # the other ranges need not be read
            rows += part
        return sorted(rows, key=lambda r: r[1])

    def seen(rows: list[Any]) -> tuple[list[int], tuple[int, bool]]:
        # Read in name order, not counted: all the matches if fewer than a page more were
        # found, else at least this page's ("plus de 20").
        count = (len(rows), True) if len(rows) < need else (need - 1, False)
        return [i for i, _ in rows[offset:need]], count

    # Ways 1 and 3 first when the planner expects many matches (it knows the common words;
    # a word it does not know, a rare one, it supposes borne by UNKNOWN of the entries).
    named = _head_words(session, heads)
    # Of the words found through the full-text index and of all of them (the short
    # prefixes tested on each entry too: "martin mat", 1,300 Mathéos among 33,000 Martins,
    # is no broad search).
    total, expected, whole, *rest = _estimates(
        session,
        ("", ""),
        ("words", " & ".join(drive)),
        ("words", query),
        *(("profession", c) for c in codes[:1]),
        *(("words", term) for pair in named for term in pair),
    )
    among = [*rest[: len(walks) - 1], total]
    many = min(expected, whole)
    known = abs(expected - UNKNOWN * total) > total / 10000  # not the planner's default
    if many > CANDIDATES and known:
        if any(2 * rest[n + 1] >= rest[n] for n in range(len(walks) - 1, len(rest), 2)):
            # A word found mostly at the start of names ("martin", "le" of "le goff").
            if (rows := ranges()) is not None:
                return seen(rows)
        else:
            for where, entries in zip(walks, among, strict=True):
                if many / max(entries, 1) * WALK < DENSE * need:
                    continue
                rows, done = _walk(session, match, need, *where)
                if done:
                    return seen(rows)
                break  # the whole name index is no denser
    # The matches gathered from the full-text index: a three-letter prefix tested on each
    # entry only if the other words match few or it matches many of them (else each of
    # their entries would be read from the table to test it: "martin mat", 33,000 Martins
    # read for 1,300 Mathéos; but "mar" of "mar pelo", its words hundreds of thousands of
    # entries, costs more in the index than the Pelo… read); a two-letter one always (its
    # words are thousands: "le" of "le goff", 250 ms in the index); and when the planner
    # does not know the other words ("rage…" of "mat rage": a few rare names).
    short = [t for t in terms if t not in drive]
    wide = known and expected > max(CANDIDATES, WIDER * whole)
    wide = wide and all(len(t) > len("le:*") for t in short)
    gathered = _match(query, "") if short and wide else match
    # The matches (CANDIDATES and one at most) sorted by the server, which answers the
    # page alone with how many they are and how many are outside the heads' ranges (not
    # each match to sort here).
    found = (
        select(
            DirectoryRecord.id,
            key.label("key"),
            (_match(outside, "") if heads else literal_column("false")).label("out"),
        )
        .where(gin, gathered)
        .limit(CANDIDATES + 1)
        .cte("found")
        .prefix_with("MATERIALIZED")
    )
    first = session.execute(
        select(found.c.id, func.count().over(), func.count().filter(found.c.out).over())
        .order_by(found.c.key)
        .limit(need)
    ).all()
    matched, out = (first[0][1], first[0][2]) if first else (0, 0)
    counted = _counted(matched)
    if matched <= CANDIDATES:
        return [i for i, *_ in first[offset:need]], counted
    # The matches elsewhere than the heads' ranges: as many as the planner expects matches
    # (if it expects more than were found), in the share of those found. Few: the ranges
    # first; else the walks first (10,000 entries of an index at most, where the ranges
    # read up to OTHERS rows of the table).
    spread = out * max(many, matched) / max(matched, 1)
    if heads and spread <= FEW and (rows := ranges()) is not None:
        return [i for i, _ in rows[offset:need]], counted
    for where in walks:
        walked, done = _walk(session, match, need, *where)
        if done:
            return [i for i, _ in walked[offset:]], counted
    if heads and spread <= OTHERS and (rows := ranges()) is not None:
        return [i for i, _ in rows[offset:need]], counted
    # Materialized: the matches first, then their top-N sort (left to itself, the planner
    # walks the name index here too, through the whole alphabet up to the matches).
    matches = (
        select(DirectoryRecord.id, key.label("key"))
        .where(gin, gathered)
        .cte("matches")
        .prefix_with("MATERIALIZED")
    )
    ids = session.scalars(
        select(matches.c.id).order_by(matches.c.key).limit(limit).offset(offset)
    ).all()
    return list(ids), counted


def _match(query: str, tested: str) -> ColumnElement[bool]:
    """Entries whose words match ``query`` (through the full-text index) and ``tested``
    (on each entry: the function form of @@, which no index serves)."""
    # The generated tsvector column (migration 0040), not mapped.
    vector: ColumnElement[Any] = literal_column("directory_entries.search_vector")
    simple: ColumnElement[Any] = literal_column("'simple'::regconfig")
    found = vector.op("@@", return_type=Boolean)(func.to_tsquery(simple, query))
    if not tested:
        return found
    return and_(found, func.ts_match_vq(vector, func.to_tsquery(simple, tested), type_=Boolean))


def _heads(words: list[str]) -> list[tuple[str, str, str]]:
    """The ranges of the name index (first, after the last) where a name starts with a word
    of the search, and the token that tells it from the full-text index: a word matched as
    a prefix ("mart": from "mart" to "maru"), a short one
    whole ("d" of "d'artagnan": from "d " to "d!"); none inside another: disjoint. Of a
    prefix and a longer word it starts, the longer one's range, the narrower ("martin mar":
    the Martins whose first name starts with "mar" are read along "martin", not after all
    the other names that start with "mar"; a "Marchand Martin" is found elsewhere)."""
    prefixes = sorted({w for w in words if len(w) >= MIN_PREFIX})
    heads = [
        (w, _after(w), f"{LEAD}{w}:*")
        for n, w in enumerate(prefixes)
        if n == len(prefixes) - 1 or not prefixes[n + 1].startswith(w)
    ]
    return heads + [(f"{w} ", f"{w}!", LEAD + w) for w in sorted(set(words) - set(prefixes))]


def _head_words(session: Session, heads: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """The full-text terms of each head's word and of the names it starts."""
    return [
        (_prefix(session, lo), _prefix(session, token[:-2]))
        if token.endswith(":*")
        else (lo.strip(), token)
        for lo, _, token in heads
    ]


def _walk(
    session: Session, match: ColumnElement[bool], need: int, *where: Any
) -> tuple[list[Any], bool]:
    """The first ``need`` matches (id, sort key) read in name order among the entries that
    meet ``where`` (none: the whole name index; a range of it, ``_heads``; a profession),
    within WALK entries; and whether that is all of them there (else the caller looks
    further)."""
    key = DirectoryRecord.sort_key.collate("C")
    among = (DirectoryRecord.listed, *where)  # as the partial indexes' predicate reads
    window = (
        select(
            DirectoryRecord.id,
            key.label("key"),
            match.label("hit"),
            func.row_number().over(order_by=key).label("n"),
        )
        .where(*among)
        .order_by(key)
        .limit(WALK)
        .subquery()
    )
    # The matches, and the window's last entry if it is reached: the window held all the
    # entries there unless it is (one statement, the window read once).
    rows = session.execute(
        select(window.c.id, window.c.key, window.c.hit, window.c.n)
        .where(or_(window.c.hit, window.c.n == WALK))
        .order_by(window.c.key)
        .limit(need)
    ).all()
    walked = [(i, k) for i, k, hit, _ in rows if hit]
    return walked, len(walked) == need or all(n < WALK for *_, n in rows)


def _results(session: Session, ids: list[int]) -> list[DirectoryResultOut]:
    """The entries of a page, in this order, each with the account bound to its number and
    its MSSanté addresses: one statement (a round trip costs more than these look-ups)."""
    if not ids:
        return []
    entry = DirectoryRecord
    account = case(
        (
            entry.id_type == "8",
            select(Professional.user_id)
            .where(Professional.rpps == entry.identifier)
            .scalar_subquery(),
        ),
        (
            entry.id_type == "0",
            select(Professional.user_id)
            .where(Professional.adeli == entry.identifier)
            .scalar_subquery(),
        ),
        else_=None,
    )
    boxes = (
        select(DirectoryMailboxes.data)
        .where(
            DirectoryMailboxes.national_id == entry.national_id,
            DirectoryMailboxes.listed.is_(True),
        )
        .scalar_subquery()
    )
    # The search's settings reset by this statement too, once, when it gives a row (a
    # round trip less; else ``search_directory`` resets them).
    changed = session.info.get("directory_settings", [])
    reset = (
        [
            select(func.count(func.set_config(text("name"), text("reset_val"), False)))
            .select_from(text("pg_settings"))
            .where(literal_column("name") == func.any(bindparam("changed", changed)))
            .scalar_subquery()
            .label("reset")
        ]
        if changed
        else []
    )
    rows = session.execute(
        select(
            entry.id,
            entry.national_id,
            entry.id_type,
            entry.identifier,
            entry.profession_code,
            entry.data,
            account.label("account"),
            boxes.label("boxes"),
            *reset,
        ).where(entry.id.in_(ids))
    ).all()
    if rows and changed:
        session.info.pop("directory_settings")
    by_id = {
        row.id: _result(
            row.national_id,
            row.id_type,
            row.identifier,
            row.profession_code,
            row.data,
            row.account,
            (row.boxes or {}).get("mailboxes", []),
        )
        for row in rows
    }
    return [by_id[i] for i in ids]


def _activity(activity: dict[str, Any]) -> DirectoryActivityOut:
    """What the directory says of where an entry practises (the keys it gives)."""
    out: DirectoryActivityOut = {}
    for key in ("structure", "mode", "town", "postal_code", "departement"):
        if activity.get(key):
            out[key] = str(activity[key])  # type: ignore[literal-required]
    return out


def _result(
    national_id: str,
    id_type: str,
    identifier: str,
    profession_code: str,
    data: dict[str, Any],
    user_id: str | None,
    boxes: list[Any],
) -> DirectoryResultOut:
    name = f"{data.get('first_name', '')} {data['last_name']}".strip()
    civility = data.get("civility", "")
    return {
        "national_id": national_id,
        "rpps": identifier if id_type == "8" else None,
        "adeli": identifier if id_type == "0" else None,
        "display_name": f"{civility} {name}".strip() if civility else name,
        "last_name": data["last_name"],
        "first_name": data.get("first_name", ""),
        "profession": data.get("profession", ""),
        "profession_code": profession_code,
        "skills": data.get("skills", []),
        "activities": [_activity(a) for a in data.get("activities", [])],
        "mssante": [address for address, _kind in boxes],
        "has_account": user_id is not None,
        "user_id": user_id,
    }


def directory_entry(engine: Engine, user_id: str) -> DirectoryEntry | None:
    """The directory binding of an account as the store holds it (its first structure)."""
    with Session(engine) as session:
        pro = session.get(Professional, user_id)
        if pro is None:
            return None
        structure = session.scalar(
            select(Structure.name)
            .join(StructureStaff, StructureStaff.structure_id == Structure.id)
            .where(StructureStaff.user_id == user_id)
            .order_by(Structure.name)
            .limit(1)
        )
        return DirectoryEntry(user_id, pro.profession, pro.rpps, pro.adeli, structure, pro.mssante)


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
