"""What the benchmarks share: a stack of their own on a PostgreSQL database of their own,
the rows of a bulk-loaded dossier and its coordinator, and the latency measure (p50/p95
over loopback HTTP, ``concurrency`` clients at a time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@contextmanager
def bench_stack(database: str) -> Iterator[Stack]:
    """A running stack on its own PostgreSQL database, both gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp, ExitStack() as cleanup:
        url = create_database(database)
        cleanup.callback(drop_database, url)
        stack = Stack.create(Path(tmp) / "deploy", database_url=url)
        stack.start()
        cleanup.callback(stack.stop)
        yield stack


def dossier_row(dossier_id: str, n: int, identity: dict[str, Any], pathway: str) -> dict[str, Any]:
    """The ``dossiers`` row of the n-th loaded dossier (opened a minute after the last)."""
    return {
        "id": dossier_id,
        "pathway": pathway,
        "referent": f"@coord{n % 500}:localhost",
        "identity": identity,
        "identity_status": "PROV",
        "mail_localpart": f"d-{dossier_id[:12]}",
        "opened_at": START + dt.timedelta(minutes=n),
    }


def member_row(dossier_id: str, user_id: str, role: str, added_by: str) -> dict[str, Any]:
    return {
        "dossier_id": dossier_id,
        "user_id": user_id,
        "role": role,
        "coordinator": role == "COORD",
        "added_by": added_by,
    }


def coordinator_row(dossier_id: str, n: int) -> dict[str, Any]:
    """The coordinator of the n-th loaded dossier (one of 500)."""
    return member_row(dossier_id, f"@coord{n % 500}:localhost", "COORD", "@bench:localhost")


async def measure(
    url: str, headers: dict[str, str], paths: list[str], concurrency: int = 1
) -> dict[str, float]:
    """GET every path (200 expected): p50/p95 latency and requests per second."""
    latencies: list[float] = []
    queue = list(reversed(paths))
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            while queue:
                path = queue.pop()
                t0 = time.perf_counter()
                async with session.get(url + path, allow_redirects=False) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{path}: HTTP {resp.status}")
                latencies.append((time.perf_counter() - t0) * 1000)

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        **percentiles(latencies),
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p95 of latencies in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
    }


def run_measure(
    url: str, headers: dict[str, str], paths: list[str], concurrency: int = 1, warm_up: int = 10
) -> dict[str, float]:
    """``measure`` after a warm-up of the first paths."""
    asyncio.run(measure(url, headers, paths[:warm_up], concurrency))
    return asyncio.run(measure(url, headers, paths, concurrency))
