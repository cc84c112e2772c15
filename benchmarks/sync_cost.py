"""Benchmark (not a test): the server CPU a client's ``/sync`` costs, by kind of process, on
vanilla Synapse and on the whole Maillon stack, same run, same database kind. N clients sit
in one room (a private room on vanilla, a patient room on Maillon) and long-poll ``/sync``
as Element does; three phases are measured on each server:

- idle: nobody writes, every sync waits its timeout and returns empty;
- sends only: one sender posts encrypted messages at a steady rate, nobody syncs (the CPU
  of the messages themselves, subtracted below);
- active: the same messages while the N clients sync (each message wakes every client).

Prints JSON: syncs answered, CPU (user + system of every process of that deployment, its
PostgreSQL backends included) per sync request by kind, idle and active (active: the CPU of
the same messages without syncing clients taken off). The README's sizing note reads it.

    .venv/bin/python benchmarks/sync_cost.py [--clients 20] [--seconds 20] [--rate 5]
                                             [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appservice.matrix_api import AppserviceApi
from benchmarks.throughput import (
    EVENT,
    SynapseOnly,
    Target,
    _call,
    cpu_seconds,
    markers_of,
    prepare_room,
    register_many,
)
from maillon.shared.homeserver_client import Registered
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack


async def _initial_tokens(url: str, users: list[Registered]) -> list[str]:
    """Each client's first sync (not measured): its ``next_batch``."""
    async with aiohttp.ClientSession() as session:
        bodies = await asyncio.gather(
            *(
                _call(session, "GET", f"{url}/_matrix/client/v3/sync?timeout=0", u.access_token, {})
                for u in users
            )
        )
    return [str(b["next_batch"]) for b in bodies]


async def _phase(
    target: Target,
    room_id: str,
    clients: list[Registered],
    tokens: list[str],
    sender: Registered | None,
    seconds: float,
    rate: float,
    poll_ms: int,
) -> dict[str, Any]:
    """Run for ``seconds``: ``clients`` long-polling (none: no sync), ``sender`` posting at
    ``rate`` per second (None: nobody writes). CPU by kind, syncs answered, messages sent."""
    api = target.url + "/_matrix/client/v3"
    deadline = time.monotonic() + seconds
    syncs = 0
    sent = 0
    cpu_before = cpu_seconds(target.markers)
    timeout = aiohttp.ClientTimeout(total=poll_ms / 1000 + 60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def client(index: int, user: Registered) -> None:
            nonlocal syncs
            since = tokens[index]
            while time.monotonic() < deadline:
                body = await _call(
                    session,
                    "GET",
                    f"{api}/sync?since={since}&timeout={poll_ms}",
                    user.access_token,
                    {},
                )
                since = str(body["next_batch"])
                syncs += 1
            tokens[index] = since

        async def write(user: Registered) -> None:
            nonlocal sent
            start = time.monotonic()
            while time.monotonic() < deadline:
                txn = f"s{time.monotonic_ns()}"
                url = f"{api}/rooms/{room_id}/send/m.room.encrypted/{txn}"
                await _call(session, "PUT", url, user.access_token, EVENT)
                sent += 1
                pause = start + sent / rate - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)

        jobs = [client(i, u) for i, u in enumerate(clients)]
        if sender is not None:
            jobs.append(write(sender))
        await asyncio.gather(*jobs)
    cpu_after = cpu_seconds(target.markers)
    cpu_ms = {k: (cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 for k in sorted(cpu_after)}
    return {"syncs": syncs, "messages": sent, "cpu_ms": cpu_ms}


def _per(figures: dict[str, float], count: int) -> dict[str, float]:
    return {k: round(v / max(1, count), 3) for k, v in figures.items()}


def measure_target(
    target: Target, clients: int, seconds: float, rate: float, poll_ms: int
) -> dict[str, Any]:
    users = register_many(target.url, target.secret, clients + 1, "sync")
    room_id = asyncio.run(prepare_room(target, users))
    sender, syncing = users[0], users[1:]
    tokens = asyncio.run(_initial_tokens(target.url, syncing))
    run = partial(_phase, target, room_id)
    asyncio.run(run(syncing, tokens, None, 3, rate, poll_ms))  # warm-up
    idle = asyncio.run(run(syncing, tokens, None, seconds, rate, poll_ms))
    sends = asyncio.run(run([], [], sender, seconds, rate, poll_ms))
    active = asyncio.run(run(syncing, tokens, sender, seconds, rate, poll_ms))
    per_message = {k: v / max(1, sends["messages"]) for k, v in sends["cpu_ms"].items()}
    active_sync_ms = {
        k: v - per_message.get(k, 0.0) * active["messages"] for k, v in active["cpu_ms"].items()
    }
    idle_per = _per(idle["cpu_ms"], idle["syncs"])
    active_per = _per(active_sync_ms, active["syncs"])
    return {
        "idle": {
            "syncs": idle["syncs"],
            "syncs_per_s": round(idle["syncs"] / seconds, 2),
            "cpu_ms_per_sync": round(sum(idle_per.values()), 3),
            "cpu_ms_per_sync_by_kind": idle_per,
        },
        "messages_only": {
            "messages": sends["messages"],
            "cpu_ms_per_msg": round(sum(per_message.values()), 3),
        },
        "active": {
            "syncs": active["syncs"],
            "messages": active["messages"],
            "syncs_per_s": round(active["syncs"] / seconds, 2),
            "cpu_ms_per_sync": round(sum(active_per.values()), 3),
            "cpu_ms_per_sync_by_kind": active_per,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20, help="clients syncing")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second (active)")
    parser.add_argument("--poll-ms", type=int, default=5000, help="timeout of each /sync")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp, ExitStack() as cleanup:
        urls: dict[str, str | None] = {"vanilla": None, "maillon": None}
        if args.db == "postgresql":
            for name in urls:
                urls[name] = create_database(f"maillon_bench_sync_{name}")
                cleanup.callback(drop_database, str(urls[name]))
        vanilla = SynapseOnly(Path(tmp) / "vanilla", urls["vanilla"], with_maillon=False)
        vanilla.start()
        cleanup.callback(vanilla.stop)
        stack = Stack.create(Path(tmp) / "maillon", database_url=urls["maillon"])
        stack.start(timeout=240)
        cleanup.callback(stack.stop)
        targets = {
            "vanilla_synapse": Target(
                vanilla.url,
                vanilla.secret,
                markers=markers_of(Path(tmp) / "vanilla", urls["vanilla"]),
            ),
            "maillon_full_stack": Target(
                stack.url,
                stack.deployment.secrets.registration_shared_secret,
                partial(AppserviceApi.for_deployment, stack.deployment),
                markers_of(Path(tmp) / "maillon", urls["maillon"]),
            ),
        }
        results = {
            name: measure_target(t, args.clients, args.seconds, args.rate, args.poll_ms)
            for name, t in targets.items()
        }
    print(
        json.dumps(
            {
                "benchmark": "sync_cost",
                "database": args.db,
                "clients": args.clients,
                "seconds_per_phase": args.seconds,
                "messages_per_s": args.rate,
                "sync_timeout_ms": args.poll_ms,
                "machine_cores": os.cpu_count(),
                "load_average": list(os.getloadavg()),
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
