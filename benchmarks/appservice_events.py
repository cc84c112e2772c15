"""Benchmark (not a test): how many events per second the appservice processes, and the lag
from a message's creation on the homeserver to its processing by the appservice (stored
durably, then recorded on the dossier side), with professionals sending encrypted messages
into dossier rooms at once. Prints JSON.

    .venv/bin/python benchmarks/appservice_events.py [--rooms 20] [--messages 50]
                                                     [--db sqlite|postgresql] [--rate N]

Without ``--rate`` every room's sender sends as fast as it can (a burst: it measures the
queue); with ``--rate N`` the messages are spread over the rooms at N per second in all
(a steady load: it measures the lag).

The lag of each message is ``processed_at - origin_server_ts`` read from the appservice's
own store, split in two: the homeserver's part (creation → transaction stored by the
appservice, ``received_at``) and the appservice's part (stored → processed: nothing, since
a message is recorded in the database transaction that stores it). ``origin_server_ts`` is
stamped when the homeserver builds the event, before its checks and its persistence: the
homeserver's part is split again at the moment the sender's request returned (the event
persisted). The rate is messages processed divided by the time from the first message's
creation to the last one's processing.
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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nio import AsyncClient, AsyncClientConfig, RoomSendResponse
from sqlalchemy import select

from appservice.models import AsEvent
from benchmarks.throughput import (
    Target,
    cpu_seconds,
    markers_of,
    prepare_room,
    register_many,
    start_synapse_only,
)
from maillon.shared.homeserver_client import Registered, request_json
from maillon.shared.store import make_engine
from tests.harness.dossier import dossier_body
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(url: str, account: Registered, store: Path) -> AsyncClient:
    await asyncio.to_thread(store.mkdir, parents=True, exist_ok=True)
    client = AsyncClient(
        url,
        account.user_id,
        device_id=account.device_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    client.restore_login(account.user_id, account.device_id, account.access_token)
    await client.sync(timeout=0)
    if client.should_upload_keys:
        await client.keys_upload()
    return client


async def _sender(
    client: AsyncClient, room_id: str, count: int, interval: float = 0.0, offset: float = 0.0
) -> dict[str, float]:
    """Send ``count`` messages; with an ``interval``, one every ``interval`` seconds from
    ``offset`` on (a steady rate), whatever each send took. Returns each message's event id
    and the wall-clock time its send returned (the event was persisted by then)."""
    sent: dict[str, float] = {}
    start = time.monotonic() + offset
    for i in range(count):
        if interval:
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        response = await client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": f"mesure {i}"},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, RoomSendResponse), response
        sent[response.event_id] = time.time()
    return sent


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values) * 1000, 1),
        "p95": round(_percentile(values, 0.95) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


@dataclass
class _Server:
    """One homeserver under the same load: its target (address, CPU markers), the rooms
    and their senders' clients, and what each phase sent (event id → send returned)."""

    target: Target
    pairs: list[tuple[AsyncClient, str]] = field(default_factory=list)
    returned: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # by kind of process


async def _full_stack_rooms(
    stack: Stack, workdir: Path, rooms: int
) -> list[tuple[AsyncClient, str]]:
    """The full stack: each sender a professional opening a dossier (its patient room is
    created by the dossier service and the appservice), then joining it."""
    api = stack.deployment.settings.dossier_api.url
    pairs = []
    for i in range(rooms):
        client = await _client(stack.url, stack.register("bench"), workdir / f"full-{i}")
        dossier = request_json(
            "POST",
            api + "/v1/dossiers",
            dossier_body(
                pathway="messagerie",
                identity={
                    "birth_name": "Mesure",
                    "first_names": "Bench",
                    "sex": "I",
                    "birth_date": "1950-01-01",
                },
            ),
            token=client.access_token,
        )
        await client.sync(timeout=0)
        await client.join(dossier["room_id"])
        await client.sync(timeout=0)
        pairs.append((client, dossier["room_id"]))
    return pairs


async def _baseline_rooms(
    target: Target, workdir: Path, rooms: int, name: str
) -> list[tuple[AsyncClient, str]]:
    """Vanilla Synapse (a private room, encrypted by default as on Maillon) or Synapse
    with Maillon's modules only (a patient room opened by the coordinator path): one
    sender in each, as on the full stack."""
    users = await asyncio.to_thread(register_many, target.url, target.secret, rooms, "bench")
    pairs = []
    for i, user in enumerate(users):
        client = await _client(target.url, user, workdir / f"{name}-{i}")
        room_id = await prepare_room(target, [user])
        await client.sync(timeout=0)
        pairs.append((client, room_id))
    return pairs


async def _send_phase(server: _Server, messages: int, rate: float) -> None:
    """Every room's sender sends ``messages`` (at ``rate`` per second in all, or at once)."""
    rooms = len(server.pairs)
    interval = rooms / rate if rate else 0.0  # each room's share of the steady rate
    before = cpu_seconds(server.target.markers)
    results = await asyncio.gather(
        *(
            _sender(c, r, messages, interval, i * interval / rooms)
            for i, (c, r) in enumerate(server.pairs)
        )
    )
    after = cpu_seconds(server.target.markers)
    for kind in after:
        spent = (after[kind] - before.get(kind, 0.0)) * 1000
        server.cpu_ms[kind] = server.cpu_ms.get(kind, 0.0) + spent
    for batch in results:
        server.returned.update(batch)


def _created_at(server: _Server) -> dict[str, float]:
    """Each sent event's creation time (``origin_server_ts``), as the room's timeline gives
    it back to its sender."""
    created: dict[str, float] = {}
    for client, room_id in server.pairs:
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=1000"
        page = request_json("GET", server.target.url + path, token=client.access_token)
        for event in page.get("chunk", []):
            if event["event_id"] in server.returned:
                created[event["event_id"]] = event["origin_server_ts"] / 1000
    return created


def _send_path(server: _Server) -> dict[str, Any]:
    created = _created_at(server)
    waits = [server.returned[e] - at for e, at in created.items()]
    return {
        "messages": len(waits),
        "lag_created_to_send_returned_ms": _summary(waits),
        # Server CPU (user + system) per message, its reactions included: every process
        # of that homeserver's deployment, by kind (``throughput.cpu_seconds``).
        "server_cpu_ms_per_msg": round(sum(server.cpu_ms.values()) / len(server.returned), 2),
        **{
            f"server_cpu_ms_per_msg_{kind}": round(ms / len(server.returned), 2)
            for kind, ms in sorted(server.cpu_ms.items())
        },
    }


async def _appservice_lags(
    database_url: str, returned: dict[str, float]
) -> tuple[list[Any], dict[str, Any]]:
    """The appservice's store read until every sent message is processed (5 minutes at
    most): its rows of these messages, and the lags they give."""
    ids = set(returned)
    engine = make_engine(database_url, create_tables=False)
    deadline = time.monotonic() + 300
    rows: list[Any] = []
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(
                        AsEvent.event_id,
                        AsEvent.origin_server_ts,
                        AsEvent.received_at,
                        AsEvent.processed_at,
                    ).where(
                        AsEvent.event_type == "m.room.encrypted",
                        AsEvent.processed_at.is_not(None),
                    )
                ).all()
            )
        if ids <= {r.event_id for r in rows}:
            break
        await asyncio.sleep(0.5)
    engine.dispose()
    mine = [r for r in rows if r.event_id in ids]
    lags = [r.processed_at.timestamp() - r.origin_server_ts / 1000 for r in mine]
    homeserver = [r.received_at.timestamp() - r.origin_server_ts / 1000 for r in mine]
    appservice = [r.processed_at.timestamp() - r.received_at.timestamp() for r in mine]
    after_send = [r.received_at.timestamp() - returned[r.event_id] for r in mine]
    before_return = [returned[r.event_id] - r.origin_server_ts / 1000 for r in mine]
    return mine, {
        "lag_ms": _summary(lags),
        "lag_homeserver_to_store_ms": _summary(homeserver),
        "lag_store_to_processed_ms": _summary(appservice),
        # Creation → the sender's request returned: the homeserver checking and
        # persisting the event (the client's own wait, with or without an appservice).
        "lag_created_to_send_returned_ms": _summary(before_return),
        # After the sender's request returned (the event persisted): what Synapse's
        # appservice sender adds (negative: stored before the sender heard back).
        "lag_send_returned_to_store_ms": _summary(after_send),
    }


async def run(
    rooms: int,
    messages: int,
    db: str,
    workdir: Path,
    rate: float = 0.0,
    baseline: bool = True,
) -> dict[str, Any]:
    """The full stack under the load; with ``baseline``, vanilla Synapse and Synapse with
    Maillon's modules only too, under the same load in the same run (each running while
    the others send; two halves, in turn then in reverse order)."""
    names = ("vanilla", "modules", "full_stack") if baseline else ("full_stack",)
    clients: list[AsyncClient] = []
    with ExitStack() as cleanup:
        urls: dict[str, str | None] = {}
        for name in names:
            urls[name] = None
            if db == "postgresql":
                urls[name] = create_database(f"maillon_bench_as_{name}")
                cleanup.callback(drop_database, str(urls[name]))
        stack = Stack.create(workdir / "deploy", database_url=urls["full_stack"])
        stack.start()
        cleanup.callback(stack.stop)
        servers = {
            "full_stack": _Server(
                Target(
                    stack.url,
                    stack.deployment.secrets.registration_shared_secret,
                    markers=markers_of(workdir / "deploy", urls["full_stack"]),
                )
            )
        }
        for name in names[:-1]:
            servers[name] = _Server(start_synapse_only(workdir / name, urls[name], name, cleanup))
        try:
            setup_start = time.monotonic()
            servers["full_stack"].pairs = await _full_stack_rooms(stack, workdir, rooms)
            room_setup = (time.monotonic() - setup_start) / rooms
            for name in names[:-1]:
                servers[name].pairs = await _baseline_rooms(
                    servers[name].target, workdir, rooms, name
                )
            for server in servers.values():
                clients.extend(c for c, _ in server.pairs)

            start = time.monotonic()
            halves = (messages - messages // 2, messages // 2) if baseline else (messages,)
            for half, count in enumerate(halves):
                for name in names if half == 0 else reversed(names):
                    if count:
                        await _send_phase(servers[name], count, rate)
            full = servers["full_stack"]
            send_seconds = time.monotonic() - start
            settings = stack.deployment.settings
            mine, lags = await _appservice_lags(settings.database_url, full.returned)
            first = min(r.origin_server_ts / 1000 for r in mine)
            last = max(r.processed_at.timestamp() for r in mine)
            send_path = {name: _send_path(servers[name]) for name in names}
        finally:
            for client in clients:
                await client.close()

    report: dict[str, Any] = {
        "benchmark": "appservice_events",
        "database": db,
        "rooms": rooms,
        "messages_per_room": messages,
        "messages_sent": len(full.returned),
        "messages_processed": len(mine),
        "mode": f"steady {rate:g} msgs/s" if rate else "burst",
        "load_average": list(os.getloadavg()),
        "processed_events_per_s": round(len(mine) / (last - first), 1),
        **lags,
        "dossier_room_setup_s": round(room_setup, 2),
    }
    report["send_path"] = send_path
    if not baseline:
        report["send_rate_msgs_per_s"] = round(len(full.returned) / send_seconds, 1)
        return report
    vanilla = send_path["vanilla"]["lag_created_to_send_returned_ms"]
    # The homeserver's send path with Maillon over vanilla Synapse's (same clients, rate
    # and database kind): what of the lag is Maillon's.
    report["send_path_ratio_over_vanilla"] = {
        name: {
            p: round(send_path[name]["lag_created_to_send_returned_ms"][p] / vanilla[p], 3)
            for p in ("p50", "p95")
        }
        for name in names[1:]
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=0.0, help="messages par seconde (0 : rafale)")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="la pile complète seule (sans Synapse nu ni Synapse avec les seuls modules)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp:
        result = asyncio.run(
            run(args.rooms, args.messages, args.db, Path(tmp), args.rate, not args.no_baseline)
        )
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
