"""Benchmark (not a test): message throughput and latency with N concurrent senders,
on a Maillon homeserver (modules and appservice loaded, whole stack running, senders in a
patient room) and on a vanilla Synapse with the same database kind (senders in a private
room), in the same run; then invite and join latency, one at a time, on both. Prints JSON
with both figures, their ratio and the membership overhead.

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

from appservice.directory import bind_directory_entry
from appservice.matrix_api import AppserviceApi
from appservice.patient_rooms import create_patient_room, set_circle_member
from maillon.circle import DirectoryEntry, DossierLink
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


EVENT = {  # same payload on both servers: an end-to-end encrypted message as clients send it
    "algorithm": "m.megolm.v1.aes-sha2",
    "ciphertext": "A" * 320,
    "device_id": "BENCH",
    "sender_key": "B" * 43,
    "session_id": "C" * 43,
}


async def plain_room(session: aiohttp.ClientSession, url: str, users: list[Registered]) -> str:
    """Vanilla baseline: a private room created and joined the ordinary way."""
    api = url + "/_matrix/client/v3"
    owner = users[0]
    room = await _call(
        session,
        "POST",
        f"{api}/createRoom",
        owner.access_token,
        {"preset": "private_chat", "invite": [u.user_id for u in users[1:]]},
    )
    await asyncio.gather(
        *(
            _call(session, "POST", f"{api}/rooms/{room['room_id']}/join", u.access_token, {})
            for u in users[1:]
        )
    )
    return str(room["room_id"])


async def patient_room(stack: Stack, users: list[Registered]) -> str:
    """Maillon: a patient room opened by the coordinator path, every sender in its circle."""
    async with AppserviceApi.for_deployment(stack.deployment) as api:
        link = DossierLink(dossier_id=f"BENCH-{time.monotonic_ns()}")
        room_id = await create_patient_room(api, link, "Banc d'essai", users[0].user_id)
        for user in users[1:]:
            await set_circle_member(api, room_id, user.user_id, "IDE", users[0].user_id)
            await api.invite(room_id, user.user_id)
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(
            *(
                _call(
                    session,
                    "POST",
                    f"{stack.url}/_matrix/client/v3/rooms/{room_id}/join",
                    u.access_token,
                    {},
                )
                for u in users
            )
        )
    return room_id


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 2),
    }


async def measure(
    url: str, room_id: str, users: list[Registered], messages: int
) -> dict[str, float]:
    api = url + "/_matrix/client/v3"
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def sender(index: int, user: Registered) -> None:
            for n in range(messages):
                txn = f"b{time.monotonic_ns()}-{index}-{n}"
                start = time.perf_counter()
                await _call(
                    session,
                    "PUT",
                    f"{api}/rooms/{room_id}/send/m.room.encrypted/{txn}",
                    user.access_token,
                    EVENT,
                )
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(sender(i, u) for i, u in enumerate(users)))
        elapsed = time.perf_counter() - started
    return {
        "messages": len(latencies),
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(len(latencies) / elapsed, 2),
        **_percentiles(latencies),
    }


async def membership_latency(
    url: str, room_id: str, inviter: Registered, joiners: list[Registered]
) -> dict[str, dict[str, float]]:
    """Invite then join, one professional at a time: the policy's per-decision overhead."""
    api = url + "/_matrix/client/v3"
    invites: list[float] = []
    joins: list[float] = []
    async with aiohttp.ClientSession() as session:
        for user in joiners:
            start = time.perf_counter()
            await _call(
                session,
                "POST",
                f"{api}/rooms/{room_id}/invite",
                inviter.access_token,
                {"user_id": user.user_id},
            )
            invites.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await _call(session, "POST", f"{api}/rooms/{room_id}/join", user.access_token, {})
            joins.append((time.perf_counter() - start) * 1000)
    return {"invite": _percentiles(invites), "join": _percentiles(joins)}


def register_many(url: str, secret: str, count: int, prefix: str) -> list[Registered]:
    return [register_user(url, secret, f"{prefix}{i}", f"pw-{prefix}-{i}") for i in range(count)]


async def _prepare(name: str, stack: Stack, url: str, users: list[Registered]) -> str:
    if name == "maillon":
        return await patient_room(stack, users)
    async with aiohttp.ClientSession() as session:
        return await plain_room(session, url, users)


async def _membership(
    name: str, stack: Stack, url: str, users: list[Registered]
) -> dict[str, dict[str, float]]:
    coordinator, joiners = users[0], users[1:]
    if name == "maillon":
        async with AppserviceApi.for_deployment(stack.deployment) as api:
            for user in joiners:  # known professionals the coordinator may add to the circle
                entry = DirectoryEntry(
                    user.user_id, "infirmier", rpps=f"{time.time_ns() % 10**11:011d}"
                )
                await bind_directory_entry(api, stack.server_name, entry)
        room_id = await patient_room(stack, [coordinator])
    else:
        async with aiohttp.ClientSession() as session:
            room_id = await plain_room(session, url, [coordinator])
    return await membership_latency(url, room_id, coordinator, joiners)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--messages", type=int, default=30, help="messages per sender")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=2, help="alternating measured rounds")
    parser.add_argument("--joiners", type=int, default=20, help="invite+join latency samples")
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
                room_id = asyncio.run(_prepare(name, stack, url, users))
                figures = asyncio.run(measure(url, room_id, users, args.messages))
                if round_no > 0:
                    results[name].append(figures)
        membership = {}
        for name in order:
            url, secret = targets[name]
            users = register_many(url, secret, args.joiners + 1, "adh")
            membership[name] = asyncio.run(_membership(name, stack, url, users))

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
                "target_throughput_ratio": 0.95,
                "membership_latency": membership,
                "membership_overhead_p50_ms": {
                    op: round(
                        membership["maillon"][op]["p50_ms"] - membership["vanilla"][op]["p50_ms"], 2
                    )
                    for op in ("invite", "join")
                },
                "rounds_detail": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
