"""Benchmark (not a test): how many events per second the appservice processes, and the lag
from a message's creation on the homeserver to its processing by the appservice (stored
durably, then recorded on the dossier side), with professionals sending encrypted messages
into dossier rooms at once. Prints JSON.

    .venv/bin/python benchmarks/appservice_events.py [--rooms 20] [--messages 50]
                                                     [--db sqlite|postgresql]

The lag of each message is ``processed_at - origin_server_ts`` read from the appservice's
own store; the rate is messages processed divided by the time from the first message's
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


async def _sender(client: AsyncClient, room_id: str, count: int) -> list[str]:
    sent = []
    for i in range(count):
        response = await client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": f"mesure {i}"},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, RoomSendResponse), response
        sent.append(response.event_id)
    return sent


async def run(rooms: int, messages: int, db: str, workdir: Path) -> dict[str, Any]:
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
                {
                    "pathway": "messagerie",
                    "identity": {
                        "birth_name": "Mesure",
                        "first_names": "Bench",
                        "sex": "I",
                        "birth_date": "1950-01-01",
                    },
                },
                token=client.access_token,
            )
            await client.sync(timeout=0)
            await client.join(dossier["room_id"])
            await client.sync(timeout=0)
            pairs.append((client, dossier["room_id"]))
        room_setup = (time.monotonic() - setup_start) / rooms

        start = time.monotonic()
        results = await asyncio.gather(*(_sender(c, r, messages) for c, r in pairs))
        send_seconds = time.monotonic() - start
        ids = {event_id for batch in results for event_id in batch}

        engine = make_engine(settings.database_url, create_tables=False)
        deadline = time.monotonic() + 300
        rows: list[Any] = []
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(
                            AsEvent.event_id, AsEvent.origin_server_ts, AsEvent.processed_at
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
        first = min(r.origin_server_ts / 1000 for r in mine)
        last = max(r.processed_at.timestamp() for r in mine)
        return {
            "benchmark": "appservice_events",
            "database": db,
            "rooms": rooms,
            "messages_per_room": messages,
            "messages_sent": len(ids),
            "messages_processed": len(mine),
            "send_rate_msgs_per_s": round(len(ids) / send_seconds, 1),
            "processed_events_per_s": round(len(mine) / (last - first), 1),
            "lag_ms": {
                "p50": round(statistics.median(lags) * 1000, 1),
                "p95": round(_percentile(lags, 0.95) * 1000, 1),
                "max": round(max(lags) * 1000, 1),
            },
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maillon-bench-") as tmp:
        result = asyncio.run(run(args.rooms, args.messages, args.db, Path(tmp)))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
