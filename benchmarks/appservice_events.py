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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nio import AsyncClient, AsyncClientConfig, RoomSendResponse
from sqlalchemy import select

from appservice.models import AsEvent
from maillon.shared.homeserver_client import request_json
from maillon.shared.store import make_engine
from tests.harness.dossier import dossier_body
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(stack: Stack, store: Path) -> AsyncClient:
    account = stack.register("bench")
    await asyncio.to_thread(store.mkdir, parents=True, exist_ok=True)
    client = AsyncClient(
        stack.url,
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


async def run(
    rooms: int, messages: int, db: str, workdir: Path, rate: float = 0.0
) -> dict[str, Any]:
    url = create_database() if db == "postgresql" else None
    stack = Stack.create(workdir / "deploy", database_url=url)
    stack.start()
    clients: list[AsyncClient] = []
    try:
        settings = stack.deployment.settings
        api = settings.dossier_api.url
        setup_start = time.monotonic()
        pairs = []
        for i in range(rooms):
            client = await _client(stack, workdir / f"store-{i}")
            clients.append(client)
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
        room_setup = (time.monotonic() - setup_start) / rooms

        start = time.monotonic()
        interval = rooms / rate if rate else 0.0  # each room's share of the steady rate
        results = await asyncio.gather(
            *(
                _sender(c, r, messages, interval, i * interval / rooms)
                for i, (c, r) in enumerate(pairs)
            )
        )
        send_seconds = time.monotonic() - start
        returned = {event_id: at for batch in results for event_id, at in batch.items()}
        ids = set(returned)

        engine = make_engine(settings.database_url, create_tables=False)
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
        first = min(r.origin_server_ts / 1000 for r in mine)
        last = max(r.processed_at.timestamp() for r in mine)
        return {
            "benchmark": "appservice_events",
            "database": db,
            "rooms": rooms,
            "messages_per_room": messages,
            "messages_sent": len(ids),
            "messages_processed": len(mine),
            "mode": f"steady {rate:g} msgs/s" if rate else "burst",
            "send_rate_msgs_per_s": round(len(ids) / send_seconds, 1),
            "processed_events_per_s": round(len(mine) / (last - first), 1),
            "lag_ms": _summary(lags),
            "lag_homeserver_to_store_ms": _summary(homeserver),
            "lag_store_to_processed_ms": _summary(appservice),
            # Creation → the sender's request returned: the homeserver checking and
            # persisting the event (the client's own wait, with or without an appservice).
            "lag_created_to_send_returned_ms": _summary(before_return),
            # After the sender's request returned (the event persisted): what Synapse's
            # appservice sender adds (negative: stored before the sender heard back).
            "lag_send_returned_to_store_ms": _summary(after_send),
            "dossier_room_setup_s": round(room_setup, 2),
        }
    finally:
        for client in clients:
            await client.close()
        stack.stop()
        if url is not None:
            drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=0.0, help="messages par seconde (0 : rafale)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp:
        result = asyncio.run(run(args.rooms, args.messages, args.db, Path(tmp), args.rate))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
