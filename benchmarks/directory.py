"""Benchmark (not a test) of the national directory on PostgreSQL: import of a generated
``PS_LibreAcces_Personne_activite`` extract of N lines (time, peak memory of this process),
then search latency p50/p95 at that size, per query kind the API offers (RPPS, name, name
prefix, prefix and département, profession, département, town, structure, combinations, a
later page; a common name, "martin", borne by one in sixty, alone, with a first name's
prefix or a département, and a rare name, whole or its prefix: one professional in two
bears one of tens of thousands of rare names). Prints JSON.

    .venv/bin/python -m benchmarks.directory --lines 2000000 [--searches 300]

Phases, to import once and measure searches again (after a migration, say):
``--keep`` leaves the database (its URL is in the JSON), ``--database-url URL --search-only``
measures searches on it; ``--file PATH`` keeps the generated extract (reused if present).
``MAILLON_TEST_PG_URL`` points at the PostgreSQL server (else a private one is started).
``--explain N`` adds the server's time of N searches per kind (their statements replayed
under EXPLAIN ANALYZE); ``--plans KIND`` prints the plans of one search of that kind.
The JSON states the server's settings that matter here and the sizes of the table and its
indexes; ``--server-settings`` starts the private server with those of a server for the
national directory (``SERVER``, README: "Réglages de PostgreSQL pour l'annuaire national").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, select, text

from dossier_api.domain.directory import search_directory
from dossier_api.domain.directory_import import import_extract
from dossier_api.domain.models import DirectoryRecord
from maillon.shared.store import make_engine
from maillon.shared.text import words
from tests.harness.annuaire import LAST, Person, ascii_word, person, write_activite
from tests.harness.postgres import admin_url, create_database, drop_database

# A server for the national directory (24 GB of memory, the database on SSD): the table
# and its indexes (some 4 GB at 2 million entries) held in PostgreSQL's buffers.
SERVER = {
    "shared_buffers": "4GB",
    "effective_cache_size": "12GB",
    "work_mem": "16MB",
    "random_page_cost": "1.1",
}
# What the JSON states of the server measured.
SHOWN = (
    *SERVER,
    "fsync",
    "synchronous_commit",
    "jit",
    "max_parallel_workers_per_gather",
    "effective_io_concurrency",
)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _uptime() -> str:
    load = os.getloadavg()
    return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def _import(engine: Engine, path: Path, lines: int, out: dict[str, Any], again: bool) -> None:
    if path.exists():
        out["generate_s"] = "reused"
    else:
        start = time.monotonic()
        write_activite(path, lines, keep_ids=False, rare_names=True)
        out["generate_s"] = round(time.monotonic() - start, 1)
    out["file_mib"] = round(path.stat().st_size / 2**20, 1)
    out["peak_rss_mib_before_import"] = round(_peak_mib(), 1)
    out["load_before_import"] = _uptime()
    start = time.monotonic()
    report = import_extract(engine, path)
    out["import_s"] = round(time.monotonic() - start, 1)
    out["import_lines_per_s"] = round(report.lines / max(out["import_s"], 0.001))
    out["peak_rss_mib"] = round(_peak_mib(), 1)
    out["load_after_import"] = _uptime()
    out["entries"] = report.added
    if again:
        start = time.monotonic()
        second = import_extract(engine, path)
        out["reimport_same_file_s"] = round(time.monotonic() - start, 1)
        out["reimport_changes"] = second.added + second.changed + second.removed


Query = tuple[str, dict[str, Any]]


def rare_person(i: int) -> Person:
    """Professional ``i`` of the generated extract (one in two with a rare name)."""
    return person(i, rare_names=True)


def _kinds() -> dict[str, Callable[[Person], Query]]:
    def last4(p: Person) -> str:
        # What one types of a name: its words, the last one's first four letters ("mart",
        # "le gof", "d arta").
        typed = words(p.last_name)
        return " ".join([*typed[:-1], typed[-1][:4]])

    def rare(p: Person) -> str:
        # The next professional who bears a rare name (one in two does).
        return next(
            q.last_name for q in map(rare_person, count(p.index)) if q.last_name not in LAST
        )

    return {
        "rpps": lambda p: (p.identifier, {}),
        "name": lambda p: (f"{p.first_name} {p.last_name}", {}),
        "common_name": lambda p: ("martin", {}),  # 1 in 60 of the directory
        "common_name_first": lambda p: (f"martin {ascii_word(p.first_name)[:3]}", {}),
        "common_name_dept": lambda p: ("mart", {"departement": p.places[0][0]}),
        "rare_name": lambda p: (rare(p), {}),  # a few professionals
        "rare_name_prefix": lambda p: (rare(p)[:5].lower(), {}),
        "name_prefix": lambda p: (last4(p), {}),
        "first_last_prefix": lambda p: (f"{ascii_word(p.first_name)[:3]} {last4(p)}", {}),
        "prefix_dept": lambda p: (last4(p), {"departement": p.places[0][0]}),
        "profession": lambda p: ("", {"profession": p.profession_code}),
        "profession_name": lambda p: ("", {"profession": p.profession}),
        "departement": lambda p: ("", {"departement": p.places[0][0]}),
        "filters": lambda p: ("", {"profession": p.profession_code, "departement": p.places[0][0]}),
        "town": lambda p: (p.places[0][2].lower(), {}),
        "structure": lambda p: (p.structures[0], {}),
        "structure_name": lambda p: (f"{p.structures[0]} {last4(p)}", {}),
        "name_prof_dept": lambda p: (
            p.last_name,
            {"profession": p.profession_code, "departement": p.places[0][0]},
        ),
        "name_page5": lambda p: (last4(p), {"page": 5}),
        "filters_page10": lambda p: (
            "",
            {"profession": p.profession_code, "departement": p.places[0][0], "page": 10},
        ),
    }


def _server_ms(engine: Engine, q: str, filters: dict[str, Any]) -> tuple[float, list[str]]:
    """The server's time for one search: its statements replayed in one transaction under
    EXPLAIN (ANALYZE, BUFFERS), planning and execution summed; and their plans."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        search_directory(engine, q, **filters)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    total, plans = 0.0, []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                cursor.execute(statement, parameters)
                continue
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters)
            plan = cursor.fetchone()[0][0]
            took = plan["Planning Time"] + plan["Execution Time"]
            total += took
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            plans.append(f"-- {took:.2f} ms\n{statement}\n{parameters}\n")
            plans[-1] += "\n".join(row[0] for row in cursor.fetchall())
        raw.rollback()
    finally:
        raw.close()
    return total, plans


def _search(engine: Engine, searches: int, out: dict[str, Any], explain: int = 0) -> None:
    with engine.connect() as conn:
        people = conn.scalar(select(func.max(DirectoryRecord.id))) or 1
        out["entries_in_store"] = conn.scalar(select(func.count()).select_from(DirectoryRecord))
        out["postgresql"] = conn.scalar(text("SHOW server_version"))
        out["settings"] = {name: conn.scalar(text(f"SHOW {name}")) for name in SHOWN}
        out["sizes_mib"] = {
            what: round((conn.scalar(text(f"SELECT {size}('directory_entries')")) or 0) / 2**20)
            for what, size in (("table", "pg_table_size"), ("indexes", "pg_indexes_size"))
        }
    kinds = _kinds()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    empty: dict[str, int] = {k: 0 for k in kinds}
    out["load_before_search"] = _uptime()
    for n in range(searches):
        # Professionals are numbered 0, 1, … in the generated file; not every index makes
        # a row id (several lines per professional), so the index range is a bit wider.
        p = rare_person((n * 7919) % people)
        for kind, make in kinds.items():
            q, filters = make(p)
            start = time.perf_counter()
            found = search_directory(engine, q, **filters)
            times[kind].append((time.perf_counter() - start) * 1000)
            empty[kind] += not found["results"]
    every = [t for ts in times.values() for t in ts]
    out["search_ms"] = {
        kind: {
            "p50": round(statistics.median(ts), 2),
            "p95": round(statistics.quantiles(ts, n=20)[18], 2),
            "max": round(max(ts), 2),
        }
        for kind, ts in {**times, "all": every}.items()
    }
    out["empty_pages"] = {k: v for k, v in empty.items() if v}
    out["load_after_search"] = _uptime()
    if explain:
        # The server's share, as EXPLAIN ANALYZE measures it (each search run twice: its
        # second run is the one measured, as the latencies above are of warm searches).
        server: dict[str, list[float]] = {k: [] for k in kinds}
        for n in range(explain):
            p = rare_person((n * 7919) % people)
            for kind, make in kinds.items():
                q, filters = make(p)
                server[kind].append(_server_ms(engine, q, filters)[0])
        out["server_ms"] = {
            kind: {"p50": round(statistics.median(ts), 2), "max": round(max(ts), 2)}
            for kind, ts in server.items()
        }
        out["load_after_explain"] = _uptime()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument(
        "--reimport", action="store_true", help="also time a second import of the same file"
    )
    parser.add_argument("--file", type=Path, help="the extract (generated if absent, kept)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database-url", help="an existing database (with --search-only)")
    parser.add_argument("--search-only", action="store_true")
    parser.add_argument(
        "--explain", type=int, default=0, help="also the server time of N searches per kind"
    )
    parser.add_argument("--plans", help="print the plans of one search of this kind, and stop")
    parser.add_argument(
        "--server-settings",
        action="store_true",
        help="start the private server with the settings of a server for the directory",
    )
    args = parser.parse_args()
    out: dict[str, Any] = {"lines": args.lines, "database": "postgresql"}
    if args.server_settings and not args.database_url:
        admin_url(SERVER)  # if MAILLON_TEST_PG_URL names a server, its own (stated below)
    url = args.database_url or create_database("maillon_bench_directory")
    out["database_url"] = url
    engine = make_engine(url)
    if args.plans:
        for index in range(args.explain or 1):
            q, filters = _kinds()[args.plans](rare_person(index * 7919))
            took, plans = _server_ms(engine, q, filters)
            print(f"== {args.plans} {q!r} {filters} server {took:.2f} ms\n" + "\n".join(plans))
        engine.dispose()
        return
    try:
        if not args.search_only:
            with tempfile.TemporaryDirectory() as tmp:
                name = "PS_LibreAcces_Personne_activite_202612010000.txt"
                path = args.file or Path(tmp) / name
                _import(engine, path, args.lines, out, args.reimport)
        _search(engine, args.searches, out, args.explain)
    finally:
        engine.dispose()
        if not (args.keep or args.database_url):
            drop_database(url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
