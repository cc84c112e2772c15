"""Benchmark (not a test): command-to-visible-reply latency of the coordination bot with
N patient rooms active at once. A whole Maillon stack is started; N coordinators (E2EE
nio clients) each open a dossier (its encrypted patient room, with the bot in it) and then
send commands in their own room all at the same time; each latency runs from the moment
the command is sent to the moment the bot's answer is decrypted in the sender's client.
Prints JSON.

    .venv/bin/python benchmarks/bot_latency.py [--rooms 20] [--commands 10]
                                               [--db sqlite|postgresql] [--rate 1 2 4]
                                               [--vanilla]

Without ``--rate``, every room sends its next command as soon as the previous one is
answered, all rooms at once (a burst: it measures the queue). With ``--rate N…``, on the
same stack, one phase per rate: commands arrive spread over the rooms at N per second in
all, whatever the answers (a steady load); each phase reports p50/p95, and the result
names the highest rate whose p95 stays under one second. Each phase also gives the CPU
a command costs by kind of process (Synapse, appservice, bot, dossier API, PostgreSQL
backends; "clients": this benchmark's own nio clients, which share the machine).

With ``--vanilla``, vanilla Synapse's message rate (``benchmarks/throughput.py``'s
measure: as many concurrent senders as rooms, same database kind) is measured in the same
run, before the bot's phases and after them, and the result gives the highest steady rate
over it (issue 16's goal: at least 0.3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.throughput import (
    SynapseOnly,
    Target,
    cpu_seconds,
    markers_of,
    measure_round,
    summary,
)
from tests.harness.bot_chat import BotChat, replies_to
from tests.harness.dossier import new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack

COMMANDS = ("!note point de situation {i}", "!taches", "!dossier", "!cercle")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def prepare(stack: Stack, workdir: Path, index: int) -> tuple[BotChat, str]:
    account = stack.register(f"coord{index}-")
    client = E2EClient(stack.url, account, workdir / f"store-{index}")
    chat = BotChat(stack, client)
    dossier = await asyncio.to_thread(new_dossier, stack, account.access_token)
    room_id = dossier["room_id"]
    assert room_id, "the dossier API answers with the patient room"
    await client.accept_invite(room_id, timeout=60)
    await client.wait_for_member(room_id, chat.bot, timeout=60)
    return chat, room_id


async def keep_syncing(user: E2EClient, arrived: asyncio.Event) -> None:
    """A real client's sync loop (long poll, no full state), waking the waiter each time."""
    client = user.client
    while True:
        await client.sync(timeout=30000)
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        arrived.set()


async def send_command(chat: BotChat, room_id: str, i: int) -> str:
    """Send the i-th command of the mix; its event id."""
    response = await chat.user.client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": COMMANDS[i % len(COMMANDS)].format(i=i)},
        ignore_unverified_devices=True,
    )
    return str(response.event_id)


async def drive(chat: BotChat, room_id: str, count: int, start: asyncio.Event) -> list[float]:
    await chat.user.sync()
    arrived = asyncio.Event()
    syncer = asyncio.create_task(keep_syncing(chat.user, arrived))
    await start.wait()
    latencies = []
    try:
        for i in range(count):
            began = time.perf_counter()
            sent = await send_command(chat, room_id, i)
            deadline = began + 120
            while not any(
                rid == room_id and e.sender == chat.bot and replies_to(e, sent)
                for rid, e in chat.user.texts
            ):
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), max(0.1, deadline - time.perf_counter()))
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        syncer.cancel()
    return latencies


async def drive_steady(
    chat: BotChat, room_id: str, count: int, interval: float, offset: float
) -> list[float]:
    """Send ``count`` commands, one every ``interval`` seconds from ``offset`` on, without
    waiting for the answers; each latency runs from its send to its answer's decryption."""
    await chat.user.sync()
    arrived = asyncio.Event()
    syncer = asyncio.create_task(keep_syncing(chat.user, arrived))
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}

    def collect() -> None:
        now = time.perf_counter()
        for rid, event in chat.user.texts:
            if rid != room_id or event.sender != chat.bot:
                continue
            for command_id in sent.keys() - answered.keys():
                if replies_to(event, command_id):
                    answered[command_id] = now

    async def watch() -> None:
        while True:
            await arrived.wait()
            arrived.clear()
            collect()

    watcher = asyncio.create_task(watch())
    try:
        start = time.perf_counter() + offset
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            began = time.perf_counter()
            sent[await send_command(chat, room_id, i)] = began
        deadline = time.perf_counter() + 120
        while len(answered) < len(sent):
            assert time.perf_counter() < deadline, "the bot left commands unanswered"
            await asyncio.sleep(0.05)
            collect()
    finally:
        watcher.cancel()
        syncer.cancel()
    return [(answered[e] - sent[e]) * 1000 for e in sent]


def cpu_now(markers: tuple[str, ...]) -> dict[str, float]:
    """CPU seconds used so far by the stack's processes, by kind, and by this benchmark's
    own process (its nio clients) as "clients"."""
    times = os.times()
    return {**cpu_seconds(markers), "clients": times.user + times.system}


def cpu_split(
    before: dict[str, float], after: dict[str, float], commands: int, seconds: float
) -> dict[str, dict[str, float]]:
    """CPU ms per command and cores busy (CPU seconds per second), by kind of process."""
    used = {kind: after[kind] - before.get(kind, 0.0) for kind in sorted(after)}
    return {
        "cpu_ms_per_command": {k: round(v * 1000 / commands, 1) for k, v in used.items()},
        "cores_busy": {k: round(v / seconds, 2) for k, v in used.items()},
    }


async def vanilla_rounds(target: Target, senders: int, rounds: int, tag: str) -> list[dict]:
    """``rounds`` measured rounds of vanilla Synapse (40 messages per sender each)."""
    return [await measure_round(target, senders, 40, f"{tag}{n}s") for n in range(rounds)]


def _latency(latencies: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies, 0.50), 1),
        "p95": round(percentile(latencies, 0.95), 1),
        "mean": round(statistics.fmean(latencies), 1),
        "max": round(max(latencies), 1),
    }


async def run(
    rooms: int,
    commands: int,
    database_url: str | None,
    rates: list[float] | None = None,
    vanilla_url: str | None = None,
    vanilla_rounds_each: int = 0,
) -> dict[str, object]:
    """The bot's phases on a stack; with ``vanilla_rounds_each``, vanilla Synapse (on
    ``vanilla_url``, the same database kind) measured before and after them."""
    with tempfile.TemporaryDirectory(prefix="maillon-bot-bench-") as tmp:
        workdir = Path(tmp)
        stack = Stack.create(workdir / "stack", database_url=database_url)
        stack.start()
        markers = markers_of(workdir / "stack", database_url)
        chats: list[tuple[BotChat, str]] = []
        vanilla: SynapseOnly | None = None
        vanilla_before: list[dict[str, float]] = []
        vanilla_after: list[dict[str, float]] = []
        try:
            if vanilla_rounds_each:
                vanilla = SynapseOnly(workdir / "vanilla", vanilla_url, with_maillon=False)
                vanilla.start()
                target = Target(
                    vanilla.url,
                    vanilla.secret,
                    markers=markers_of(workdir / "vanilla", vanilla_url),
                )
                await vanilla_rounds(target, rooms, 1, "warm")
                vanilla_before = await vanilla_rounds(target, rooms, vanilla_rounds_each, "pre")
            chats = list(await asyncio.gather(*(prepare(stack, workdir, i) for i in range(rooms))))
            steady: list[dict[str, object]] = []
            under_1s: list[float] = []
            for rate in rates or []:
                interval = rooms / rate
                cpu_before, began = cpu_now(markers), time.perf_counter()
                phase = await asyncio.gather(
                    *(
                        drive_steady(c, r, commands, interval, i * interval / rooms)
                        for i, (c, r) in enumerate(chats)
                    )
                )
                seconds = time.perf_counter() - began
                measured = [x for r in phase for x in r]
                if percentile(measured, 0.95) < 1000:
                    under_1s.append(rate)
                steady.append(
                    {
                        "rate_per_s": rate,
                        "commands": len(measured),
                        "latency_ms": _latency(measured),
                        **cpu_split(cpu_before, cpu_now(markers), len(measured), seconds),
                    }
                )
            start = asyncio.Event()
            tasks = [asyncio.create_task(drive(c, r, commands, start)) for c, r in chats]
            cpu_before, began = cpu_now(markers), time.perf_counter()
            start.set()
            results = await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - began
            burst_cpu = cpu_split(
                cpu_before, cpu_now(markers), sum(len(r) for r in results), elapsed
            )
            if vanilla_rounds_each:
                vanilla_after = await vanilla_rounds(target, rooms, vanilla_rounds_each, "post")
        finally:
            for chat, _ in chats:
                await chat.user.close()
            stack.stop()
            if vanilla is not None:
                vanilla.stop()
    latencies = [x for r in results for x in r]
    highest = max(under_1s) if under_1s else None
    report: dict[str, object] = {
        "benchmark": "bot command -> visible reply (E2EE, patient rooms)",
        "database": "postgresql" if database_url else "sqlite",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rooms_active_at_once": rooms,
        "commands_per_room": commands,
        "commands": len(latencies),
        "latency_ms": _latency(latencies),
        "commands_per_second": round(len(latencies) / elapsed, 2),
        **burst_cpu,
        "steady": steady,
        "highest_rate_with_p95_under_1s": highest,
        "commands_sent": list(COMMANDS),
    }
    if vanilla_rounds_each:
        rate = summary(vanilla_before + vanilla_after)["msgs_per_s"]
        report["vanilla_synapse"] = {
            "senders": rooms,
            "msgs_per_s": rate,
            "before": [r["msgs_per_s"] for r in vanilla_before],
            "after": [r["msgs_per_s"] for r in vanilla_after],
        }
        report["ratio_highest_rate_over_vanilla"] = round(highest / rate, 3) if highest else 0.0
        report["burst_over_vanilla"] = round(len(latencies) / elapsed / rate, 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--rate", type=float, nargs="*", default=[], help="commandes par seconde (régime régulier)"
    )
    parser.add_argument(
        "--vanilla",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="ROUNDS",
        help="Synapse nu mesuré avant et après (ROUNDS tours chaque fois, 2 par défaut)",
    )
    args = parser.parse_args()
    postgres = args.db == "postgresql"
    url = create_database("maillon_bot_bench") if postgres else None
    vanilla_url = (
        create_database("maillon_bot_bench_vanilla") if postgres and args.vanilla else None
    )
    try:
        result = asyncio.run(
            run(args.rooms, args.commands, url, args.rate, vanilla_url, args.vanilla)
        )
    finally:
        for database in (url, vanilla_url):
            if database:
                drop_database(database)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
