"""Benchmark (not a test): the workspace on PostgreSQL with 100,000 dossiers, 300 of them in
my circle. Measures the "Mes dossiers" page (``GET /``, with the "À faire" worklist), the
search by patient name on the page (``GET /?q=``) and in the API (``GET /v1/dossiers?q=``):
p50/p95 latency over loopback HTTP, one client at a time (so close to server time), and
prints JSON.

    .venv/bin/python benchmarks/workspace.py [--dossiers 100000] [--mine 300]

Names are drawn from 400 surnames and 120 first names: a surname is held by about 250
dossiers of the whole base, about one of mine, as a real name search would be.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_stack, coordinator_row, dossier_row, member_row, run_measure
from dossier_api.domain.models import CircleMember, Dossier, DossierName, Task
from dossier_api.domain.names import identity_digests
from dossier_api.domain.sessions import SessionStore
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.stack import Stack

BATCH = 5_000
SYLLABLES = ["ber", "mar", "du", "lef", "rou", "vre", "tin", "bois", "gar", "nier", "mo", "lin"]
FIRST = ["Jeanne", "Paul", "Zoé", "Étienne", "Léa", "Marc", "Anaïs", "Hélène", "Noé", "Inès"]


def names(rng: random.Random) -> tuple[list[str], list[str]]:
    surnames = sorted({"".join(rng.sample(SYLLABLES, 3)).capitalize() for _ in range(2000)})
    surnames = surnames[:400]
    firsts = sorted({f + suffix for f in FIRST for suffix in ("", "-Marie", " Louise")})[:120]
    return surnames, firsts


def load(stack: Stack, me: str, dossiers: int, mine: int) -> tuple[list[str], list[str]]:
    """Bulk-load the data set (identities sealed, name digests written as the ORM writes
    them); returns my dossiers' surnames and the surnames of others' dossiers."""
    deployment = stack.deployment
    ring = KeyRing.for_secrets(deployment.secrets)
    install_key_ring(ring)
    engine = make_engine(deployment.settings.database_url)
    rng = random.Random(7)
    surnames, firsts = names(rng)
    ids = [uuid.uuid4().hex for _ in range(dossiers)]
    my_ids = set(rng.sample(ids, mine))
    my_names: list[str] = []
    with engine.begin() as conn:
        for offset in range(0, dossiers, BATCH):
            chunk = ids[offset : offset + BATCH]
            rows, digests, members, tasks = [], [], [], []
            for n, i in enumerate(chunk, start=offset):
                identity = {
                    "birth_name": rng.choice(surnames),
                    "first_names": rng.choice(firsts),
                    "sex": "F",
                    "birth_date": "1950-01-01",
                }
                rows.append(dossier_row(i, n, identity, rng.choice(["dac", "cpts", "pco-tnd"])))
                digests += [
                    {"dossier_id": i, "digest": d} for d in identity_digests(ring, identity)
                ]
                members.append(coordinator_row(i, n))
                if i in my_ids:
                    my_names.append(identity["birth_name"])
                    members.append(member_row(i, me, "IDE", f"@coord{n % 500}:localhost"))
                    tasks.append(
                        {
                            "id": uuid.uuid4().hex,
                            "dossier_id": i,
                            "title": {"text": "Passage infirmier"},
                            "assignee": me,
                            "due": dt.date.today() + dt.timedelta(days=rng.randrange(-5, 5)),
                            "created_by": "@bench:localhost",
                        }
                    )
            conn.execute(insert(Dossier), rows)
            conn.execute(insert(DossierName), digests)
            conn.execute(insert(CircleMember), members)
            if tasks:
                conn.execute(insert(Task), tasks)
    engine.dispose()
    return my_names, [s for s in surnames if s not in set(my_names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--mine", type=int, default=300, help="dossiers in my circle")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with bench_stack("maillon_bench_workspace") as stack:
        me = stack.register("bench")
        t0 = time.perf_counter()
        my_names, other_names = load(stack, me.user_id, args.dossiers, args.mine)
        load_seconds = time.perf_counter() - t0
        engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
        secret, _ = SessionStore(engine, stack.deployment.settings.sessions).open(
            me.user_id, False, "password"
        )
        engine.dispose()
        base = stack.deployment.settings.dossier_api.url
        cookie = {"Cookie": f"maillon_session={secret}"}
        bearer = {"Authorization": f"Bearer {me.access_token}"}
        rng = random.Random(11)
        searched = [rng.choice(my_names) for _ in range(args.requests)]
        missing = [rng.choice(other_names or my_names) for _ in range(args.requests)]
        results: dict[str, Any] = {}
        for name, headers, paths in (
            ("mes_dossiers_page", cookie, [f"/?page={rng.randrange(1, 15)}" for _ in searched]),
            ("name_search_page", cookie, ["/?q=" + quote(n.lower()) for n in searched]),
            (
                "name_search_as_typed",  # what htmx asks while the name is typed: the list
                {**cookie, "HX-Request": "true"},
                ["/?q=" + quote(n.lower()) for n in searched],
            ),
            ("name_search_api", bearer, ["/v1/dossiers?q=" + quote(n.upper()) for n in searched]),
            ("name_search_api_no_match", bearer, ["/v1/dossiers?q=" + quote(n) for n in missing]),
        ):
            results[name] = run_measure(base, headers, paths)
    print(
        json.dumps(
            {
                "benchmark": "workspace",
                "database": "postgresql",
                "dossiers": args.dossiers,
                "dossiers_in_my_circle": args.mine,
                "load_seconds": round(load_seconds, 1),
                "target_p95_ms": 50,
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
