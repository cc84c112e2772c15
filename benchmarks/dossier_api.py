"""Benchmark (not a test): the dossier API on PostgreSQL with 100,000 dossiers and
1,000,000 liaison notes (sealed like real ones). Measures "my dossiers" and "read one
dossier" (p50/p95 latency, requests/s, with concurrent clients) through the real HTTP API
of a running Maillon stack, and prints JSON.

    .venv/bin/python benchmarks/dossier_api.py [--dossiers 100000] [--notes 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dossier_api.domain.models import CircleMember, Dossier, Note
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.postgres import create_database, drop_database
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
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for offset in range(0, dossiers, BATCH):
            chunk = ids[offset : offset + BATCH]
            conn.execute(
                insert(Dossier),
                [
                    {
                        "id": i,
                        "pathway": "dac",
                        "referent": f"@coord{n % 500}:localhost",
                        "identity": {
                            "birth_name": f"Patient{n}",
                            "first_names": "Test",
                            "sex": "F",
                            "birth_date": "1950-01-01",
                        },
                        "identity_status": "PROV",
                        "mail_localpart": f"d-{i[:12]}",
                        "opened_at": start + dt.timedelta(minutes=n),
                    }
                    for n, i in enumerate(chunk, start=offset)
                ],
            )
            members = [
                {
                    "dossier_id": i,
                    "user_id": f"@coord{n % 500}:localhost",
                    "role": "COORD",
                    "coordinator": True,
                    "added_by": "@bench:localhost",
                }
                for n, i in enumerate(chunk, start=offset)
            ]
            members += [
                {
                    "dossier_id": i,
                    "user_id": me,
                    "role": "IDE",
                    "coordinator": False,
                    "added_by": "@bench:localhost",
                }
                for i in chunk
                if i in my_ids
            ]
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
                        "created_at": start + dt.timedelta(seconds=offset + k),
                    }
                    for k in range(min(BATCH, notes - offset))
                ],
            )
    engine.dispose()
    return sorted(my_ids)


async def measure(url: str, token: str, paths: list[str], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    queue = list(paths)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            while queue:
                path = queue.pop()
                t0 = time.perf_counter()
                async with session.get(url + path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{path}: HTTP {resp.status}")
                latencies.append((time.perf_counter() - t0) * 1000)

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=1_000_000)
    parser.add_argument("--mine", type=int, default=300, help="dossiers in my circle")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp, ExitStack() as cleanup:
        url = create_database("maillon_bench_dossiers")
        cleanup.callback(drop_database, url)
        stack = Stack.create(Path(tmp) / "deploy", database_url=url)
        stack.start()
        cleanup.callback(stack.stop)
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
            asyncio.run(measure(api, me.access_token, paths[:20], args.concurrency))  # warm-up
            results[name] = asyncio.run(measure(api, me.access_token, paths, args.concurrency))
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
