"""Benchmark (not a test): the dossier API on PostgreSQL with 100,000 dossiers and
1,000,000 liaison notes (sealed like real ones). Measures "my dossiers" and "read one
dossier" (p50/p95 latency, requests/s, with concurrent clients) through the real HTTP API
of a running Maillon stack, and prints JSON.

    .venv/bin/python benchmarks/dossier_api.py [--dossiers 100000] [--notes 1000000]
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

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    START,
    bench_stack,
    coordinator_row,
    dossier_row,
    member_row,
    run_measure,
)
from dossier_api.domain.models import CircleMember, Dossier, Note
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.stack import Stack

BATCH = 10_000


def load(stack: Stack, me: str, dossiers: int, notes: int, mine: int) -> list[str]:
    """Bulk-load the data set; returns the ids of the dossiers whose circle holds ``me``."""
    deployment = stack.deployment
    install_key_ring(KeyRing.for_secrets(deployment.secrets))
    engine = make_engine(deployment.settings.database_url)
    rng = random.Random(7)
    ids = [uuid.uuid4().hex for _ in range(dossiers)]
    my_ids = set(rng.sample(ids, mine))
    with engine.begin() as conn:
        for offset in range(0, dossiers, BATCH):
            chunk = ids[offset : offset + BATCH]
            identity = {"first_names": "Test", "sex": "F", "birth_date": "1950-01-01"}
            conn.execute(
                insert(Dossier),
                [
                    dossier_row(i, n, {"birth_name": f"Patient{n}", **identity}, "dac")
                    for n, i in enumerate(chunk, start=offset)
                ],
            )
            members = [coordinator_row(i, n) for n, i in enumerate(chunk, start=offset)]
            members += [member_row(i, me, "IDE", "@bench:localhost") for i in chunk if i in my_ids]
            conn.execute(insert(CircleMember), members)
        for offset in range(0, notes, BATCH):
            conn.execute(
                insert(Note),
                [
                    {
                        "id": uuid.uuid4().hex,
                        "dossier_id": ids[(offset + k) % dossiers],
                        "author": "@coord1:localhost",
                        "urgent": k % 17 == 0,
                        "body": {"text": f"Note de liaison numéro {offset + k}", "attachments": []},
                        "created_at": START + dt.timedelta(seconds=offset + k),
                    }
                    for k in range(min(BATCH, notes - offset))
                ],
            )
    engine.dispose()
    return sorted(my_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=1_000_000)
    parser.add_argument("--mine", type=int, default=300, help="dossiers in my circle")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients")
    args = parser.parse_args()
    with bench_stack("maillon_bench_dossiers") as stack:
        me = stack.register("bench")
        t0 = time.perf_counter()
        mine = load(stack, me.user_id, args.dossiers, args.notes, args.mine)
        load_seconds = time.perf_counter() - t0
        api = stack.deployment.settings.dossier_api.url
        rng = random.Random(11)
        results: dict[str, Any] = {}
        for name, paths in (
            (
                "my_dossiers",
                [
                    f"/v1/dossiers?limit=50&offset={rng.randrange(0, 250)}"
                    for _ in range(args.requests)
                ],
            ),
            (
                "read_one_dossier",
                [f"/v1/dossiers/{rng.choice(mine)}" for _ in range(args.requests)],
            ),
        ):
            bearer = {"Authorization": f"Bearer {me.access_token}"}
            results[name] = run_measure(api, bearer, paths, args.concurrency, warm_up=20)
    print(
        json.dumps(
            {
                "benchmark": "dossier_api",
                "database": "postgresql",
                "dossiers": args.dossiers,
                "liaison_notes": args.notes,
                "dossiers_in_my_circle": args.mine,
                "concurrency": args.concurrency,
                "load_seconds": round(load_seconds, 1),
                "target_p95_ms": 50,
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
