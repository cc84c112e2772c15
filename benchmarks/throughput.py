"""Benchmark (not a test): message throughput and latency with N concurrent senders,
on a Maillon homeserver (modules and appservice loaded, whole stack running) and on a
vanilla Synapse with the same database kind, in the same run. Prints JSON with the ratio.

    .venv/bin/python benchmarks/throughput.py [--senders 20] [--messages 30]
                                              [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maillon.homeserver_client import Registered, is_up, register_user
from maillon.init_deployment import InitOptions, init_deployment
from tests.harness.ports import free_port
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack


class VanillaSynapse:
    """Synapse alone, generated from the same templates without Maillon's modules."""

    def __init__(self, directory: Path, database_url: str | None) -> None:
        self.port = free_port()
        self.directory = init_deployment(
            InitOptions(
                directory=directory,
                server_name="localhost",
                database_url=database_url,
                client_port=self.port,
                dossier_port=free_port(),
                appservice_port=free_port(),
                testing=True,
                with_maillon=False,
            )
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.secret = _shared_secret(self.directory)

    def start(self) -> None:
        log = (self.directory / "logs" / "synapse.out").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.directory / "homeserver.yaml"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while not is_up(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("vanilla Synapse did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def _shared_secret(directory: Path) -> str:
    import yaml

    return str(
        yaml.safe_load((directory / "homeserver.yaml").read_text())["registration_shared_secret"]
    )


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with session.request(
        method, url, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        data: dict[str, Any] = await r.json()
        if r.status != 200:
            raise RuntimeError(f"{method} {url}: {r.status} {data}")
        return data


async def measure(url: str, users: list[Registered], messages: int) -> dict[str, float]:
    api = url + "/_matrix/client/v3"
    async with aiohttp.ClientSession() as session:
        owner = users[0]
        room = await _call(
            session,
            "POST",
            f"{api}/createRoom",
            owner.access_token,
            {"preset": "private_chat", "invite": [u.user_id for u in users[1:]]},
        )
        room_id = room["room_id"]
        await asyncio.gather(
            *(
                _call(session, "POST", f"{api}/rooms/{room_id}/join", u.access_token, {})
                for u in users[1:]
            )
        )
        latencies: list[float] = []

        async def sender(index: int, user: Registered) -> None:
            for n in range(messages):
                txn = f"b{time.monotonic_ns()}-{index}-{n}"
                start = time.perf_counter()
                await _call(
                    session,
                    "PUT",
                    f"{api}/rooms/{room_id}/send/m.room.message/{txn}",
                    user.access_token,
                    {"msgtype": "m.text", "body": f"message {n}"},
                )
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(sender(i, u) for i, u in enumerate(users)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "messages": len(latencies),
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 2),
    }


def register_many(url: str, secret: str, count: int, prefix: str) -> list[Registered]:
    return [register_user(url, secret, f"{prefix}{i}", f"pw-{prefix}-{i}") for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--messages", type=int, default=30, help="messages per sender")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=2, help="alternating measured rounds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp, ExitStack() as cleanup:
        urls = {}
        for name in ("vanilla", "maillon"):
            if args.db == "postgresql":
                urls[name] = create_database(f"maillon_bench_{name}")
                cleanup.callback(drop_database, urls[name])
            else:
                urls[name] = None
        vanilla = VanillaSynapse(Path(tmp) / "vanilla", urls["vanilla"])
        vanilla.start()
        cleanup.callback(vanilla.stop)
        stack = Stack.create(Path(tmp) / "maillon", database_url=urls["maillon"])
        stack.start()
        cleanup.callback(stack.stop)
        maillon_secret = stack.deployment.secrets.registration_shared_secret

        results: dict[str, list[dict[str, float]]] = {"vanilla": [], "maillon": []}
        targets = {
            "vanilla": (vanilla.url, vanilla.secret),
            "maillon": (stack.url, maillon_secret),
        }
        order = ["vanilla", "maillon"]
        for round_no in range(args.rounds + 1):  # round 0 warms both servers up
            for name in order if round_no % 2 == 0 else reversed(order):
                url, secret = targets[name]
                users = register_many(url, secret, args.senders, f"r{round_no}s")
                figures = asyncio.run(measure(url, users, args.messages))
                if round_no > 0:
                    results[name].append(figures)

    def summary(rows: list[dict[str, float]]) -> dict[str, float]:
        return {
            key: round(statistics.median(row[key] for row in rows), 2)
            for key in ("msgs_per_s", "p50_ms", "p95_ms")
        }

    v, m = summary(results["vanilla"]), summary(results["maillon"])
    print(
        json.dumps(
            {
                "benchmark": "message_throughput",
                "database": args.db,
                "senders": args.senders,
                "messages_per_sender": args.messages,
                "rounds": args.rounds,
                "vanilla_synapse": v,
                "maillon": m,
                "ratio_throughput_maillon_over_vanilla": round(
                    m["msgs_per_s"] / v["msgs_per_s"], 3
                ),
                "ratio_p50_latency_maillon_over_vanilla": round(m["p50_ms"] / v["p50_ms"], 3),
                "rounds_detail": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
