"""Benchmark (not a test) of the national directory on PostgreSQL: import of a generated
``PS_LibreAcces_Personne_activite`` extract of N lines (time, peak memory of this process),
then search latency p50/p95 at that size (names, prefixes, filters). Prints JSON.

    .venv/bin/python -m benchmarks.directory --lines 2000000 [--searches 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dossier_api.domain.directory import search_directory
from dossier_api.domain.directory_import import import_extract
from maillon.shared.store import make_engine
from tests.harness.annuaire import ascii_word, person, write_activite
from tests.harness.postgres import create_database, drop_database


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument(
        "--reimport", action="store_true", help="also time a second import of the same file"
    )
    args = parser.parse_args()
    out: dict[str, Any] = {"lines": args.lines, "database": "postgresql"}
    url = create_database("maillon_bench_directory")
    engine = make_engine(url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "PS_LibreAcces_Personne_activite_202612010000.txt"
            start = time.monotonic()
            made = write_activite(path, args.lines, keep_ids=False)
            out["generate_s"] = round(time.monotonic() - start, 1)
            out["file_mib"] = round(path.stat().st_size / 2**20, 1)
            before = _peak_mib()
            start = time.monotonic()
            report = import_extract(engine, path)
            out["import_s"] = round(time.monotonic() - start, 1)
            out["import_lines_per_s"] = round(made.lines / max(out["import_s"], 0.001))
            out["peak_rss_mib_before_import"] = round(before, 1)
            out["peak_rss_mib"] = round(_peak_mib(), 1)
            out["entries"] = report.added
            if args.reimport:
                start = time.monotonic()
                again = import_extract(engine, path)
                out["reimport_same_file_s"] = round(time.monotonic() - start, 1)
                out["reimport_changes"] = again.added + again.changed + again.removed
        people = report.added
        kinds: dict[str, list[float]] = {"rpps": [], "name": [], "prefix_dept": [], "filters": []}
        for n in range(args.searches):
            p = person((n * 7919) % max(people, 1))
            queries = {
                "rpps": (p.identifier, {}),
                "name": (f"{p.first_name} {p.last_name}", {}),
                "prefix_dept": (ascii_word(p.last_name)[:4], {"departement": p.places[0][0]}),
                "filters": ("", {"profession": p.profession_code, "departement": p.places[0][0]}),
            }
            for kind, (q, filters) in queries.items():
                start = time.perf_counter()
                search_directory(engine, q, **filters)
                kinds[kind].append((time.perf_counter() - start) * 1000)
        every = [t for times in kinds.values() for t in times]
        out["search_ms"] = {
            kind: {
                "p50": round(statistics.median(times), 2),
                "p95": round(statistics.quantiles(times, n=20)[18], 2),
            }
            for kind, times in {**kinds, "all": every}.items()
        }
    finally:
        engine.dispose()
        drop_database(url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
