"""Benchmark (not a test): command-to-visible-reply latency of the coordination bot with
N patient rooms active at once. A whole Maillon stack is started; N coordinators (E2EE
nio clients) each open a dossier (its encrypted patient room, with the bot in it) and then
send commands in their own room all at the same time; each latency runs from the moment
the command is sent to the moment the bot's answer is decrypted in the sender's client.
Prints JSON.

    .venv/bin/python benchmarks/bot_latency.py [--rooms 20] [--commands 10]
                                               [--db sqlite|postgresql] [--rate 1 2 4]

Without ``--rate``, every room sends its next command as soon as the previous one is
answered, all rooms at once (a burst: it measures the queue). With ``--rate N…``, on the
same stack, one phase per rate: commands arrive spread over the rooms at N per second in
all, whatever the answers (a steady load); each phase reports p50/p95, and the result
names the highest rate whose p95 stays under one second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def _latency(latencies: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies, 0.50), 1),
        "p95": round(percentile(latencies, 0.95), 1),
        "mean": round(statistics.fmean(latencies), 1),
        "max": round(max(latencies), 1),
    }


async def run(
    rooms: int, commands: int, database_url: str | None, rates: list[float] | None = None
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="maillon-bot-bench-") as tmp:
        workdir = Path(tmp)
        stack = Stack.create(workdir / "stack", database_url=database_url)
        stack.start()
        chats: list[tuple[BotChat, str]] = []
        try:
            chats = list(await asyncio.gather(*(prepare(stack, workdir, i) for i in range(rooms))))
            steady: list[dict[str, object]] = []
            under_1s: list[float] = []
            for rate in rates or []:
                interval = rooms / rate
                phase = await asyncio.gather(
                    *(
                        drive_steady(c, r, commands, interval, i * interval / rooms)
                        for i, (c, r) in enumerate(chats)
                    )
                )
                measured = [x for r in phase for x in r]
                if percentile(measured, 0.95) < 1000:
                    under_1s.append(rate)
                steady.append(
                    {
                        "rate_per_s": rate,
                        "commands": len(measured),
                        "latency_ms": _latency(measured),
                    }
                )
            start = asyncio.Event()
            tasks = [asyncio.create_task(drive(c, r, commands, start)) for c, r in chats]
            began = time.perf_counter()
            start.set()
            results = await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - began
        finally:
            for chat, _ in chats:
                await chat.user.close()
            stack.stop()
    latencies = [x for r in results for x in r]
    return {
        "benchmark": "bot command -> visible reply (E2EE, patient rooms)",
        "database": "postgresql" if database_url else "sqlite",
        "rooms_active_at_once": rooms,
        "commands_per_room": commands,
        "commands": len(latencies),
        "latency_ms": _latency(latencies),
        "commands_per_second": round(len(latencies) / elapsed, 2),
        "steady": steady,
        "highest_rate_with_p95_under_1s": max(under_1s) if under_1s else None,
        "commands_sent": list(COMMANDS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--rate", type=float, nargs="*", default=[], help="commandes par seconde (régime régulier)"
    )
    args = parser.parse_args()
    url = create_database("maillon_bot_bench") if args.db == "postgresql" else None
    try:
        result = asyncio.run(run(args.rooms, args.commands, url, args.rate))
    finally:
        if url:
            drop_database(url)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
