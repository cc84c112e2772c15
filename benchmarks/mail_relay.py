"""Benchmark (not a test): the MSSanté relay, from a mail accepted over SMTP (its ``250``)
to the mail visible, decrypted, in the dossier's room for a member's matrix-nio client.
Mails go to several dossiers with N concurrent SMTP senders: all at once (a burst, the
default) or, with ``--rate N``, N mails per second spread over time (steady). Prints JSON
with p50/p95 of that latency, the accepted and delivered (drain) mails/s, the CPU each
kind of process of the stack (and its PostgreSQL backends) used per mail, on PostgreSQL the
sessions opened and transactions made per mail, and the load.

    .venv/bin/python benchmarks/mail_relay.py [--mails 200] [--senders 8] [--dossiers 4]
                                              [--rate N] [--db postgresql|sqlite]
                                              [--workers]

``--workers``: the worker deployment (PostgreSQL), where SMTP intake runs in processes of
its own (``mail.inbound.processes``) beside the appservice's poster.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib
import psycopg
from nio import MegolmEvent, RoomMessageNotice, RoomMessageText

from benchmarks.throughput import cpu_seconds, markers_of
from maillon.shared.lease import libpq_url
from tests.harness.circle import bind_professional
from tests.harness.dossier import new_dossier
from tests.harness.mail import build_mail
from tests.harness.matrix import E2EClient
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack

SENDER = "dr.house@chu-exemple.mssante.fr"


def pg_counters(database_url: str | None) -> dict[str, int]:
    """Sessions opened and transactions ended so far in the stack's PostgreSQL database
    (Synapse's and Maillon's): a connection opened and closed again costs its backend's
    start, which the CPU of live processes (``cpu_seconds``) never shows."""
    if database_url is None:
        return {}
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    assert row is not None
    return {"sessions": int(row[0]), "transactions": int(row[1])}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(
    stack: Stack,
    workdir: Path,
    mails: int,
    senders: int,
    dossiers: int,
    rate: float | None,
    markers: tuple[str, ...],
    database_url: str | None = None,
) -> dict[str, Any]:
    seen: dict[str, float] = {}
    undecryptable = 0

    async def on_event(_: Any, event: Any) -> None:
        nonlocal undecryptable
        if isinstance(event, MegolmEvent):
            undecryptable += 1
            return
        mail = event.source.get("content", {}).get("fr.maillon.mail")
        if isinstance(mail, dict) and mail.get("message_id") not in seen:
            seen[mail["message_id"]] = time.monotonic()

    clients: list[E2EClient] = []
    addresses: list[str] = []
    for index in range(dossiers):
        account = stack.register("coordinatrice")
        client = E2EClient(stack.url, account, workdir / f"client-{index}")
        client.client.add_event_callback(
            on_event,
            (RoomMessageText, RoomMessageNotice, MegolmEvent),  # type: ignore[arg-type]
        )
        await bind_professional(stack, account.user_id, "infirmière coordinatrice")
        dossier = new_dossier(stack, account.access_token)
        await client.accept_invite(dossier["room_id"])
        await client.wait_for_member(dossier["room_id"], stack.deployment.settings.bot_user_id)
        clients.append(client)
        addresses.append(dossier["mail_address"])

    done = asyncio.Event()

    async def watch(client: E2EClient) -> None:
        sync_filter = {"room": {"timeline": {"limit": 1000}}}
        while not done.is_set():
            await client.client.sync(timeout=1000, sync_filter=sync_filter)
            if client.client.should_upload_keys:
                await client.client.keys_upload()
            if client.client.should_query_keys:
                await client.client.keys_query()

    watchers = [asyncio.create_task(watch(c)) for c in clients]
    await asyncio.sleep(2)
    port = stack.deployment.settings.mail.inbound.port
    accepted: dict[str, float] = {}
    queue: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()
    for n in range(mails):
        address = addresses[n % dossiers]
        mid, raw = build_mail(address, f"Courriel {n}", f"Texte du courriel {n}")
        queue.put_nowait((mid, raw, address))

    sent = 0
    late: list[float] = []

    async def smtp_sender() -> None:
        nonlocal sent
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        async with client:
            while not queue.empty():
                mid, raw, address = queue.get_nowait()
                if rate is not None:  # steady: mail n leaves at start + n / rate
                    due = start + sent / rate
                    sent += 1
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    else:
                        late.append(-wait)
                await client.sendmail(SENDER, [address], raw)  # raises unless 250
                accepted[mid] = time.monotonic()

    load_before = [round(x, 2) for x in os.getloadavg()]
    cpu_before = cpu_seconds(markers)
    pg_before = pg_counters(database_url)
    start = time.monotonic()
    await asyncio.gather(*(smtp_sender() for _ in range(senders)))
    accept_end = time.monotonic()
    deadline = time.monotonic() + 300
    while len(set(accepted) & set(seen)) < len(accepted) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    burst_visible = [seen[m] - accepted[m] for m in accepted if m in seen]
    last_visible = max(seen[m] for m in accepted if m in seen)
    cpu_after = cpu_seconds(markers)
    if database_url is not None:
        await asyncio.sleep(1.5)  # backends report their counters within a second or so
    pg_after = pg_counters(database_url)
    pg_per_mail = {
        f"postgresql_{key}_per_mail": round((pg_after[key] - pg_before[key]) / max(1, len(seen)), 2)
        for key in pg_after
    }
    cpu_ms = {
        kind: round((cpu_after[kind] - cpu_before.get(kind, 0.0)) * 1000 / max(1, len(seen)), 2)
        for kind in sorted(cpu_after)
    }

    # One mail at a time (no queue): the relay's own latency.
    single: list[float] = []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
    async with client:
        for n in range(20 if rate is None else 0):
            mid, raw = build_mail(addresses[0], f"Seul {n}", "Texte")
            await client.sendmail(SENDER, [addresses[0]], raw)
            sent_at = time.monotonic()
            while mid not in seen and time.monotonic() - sent_at < 30:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            if mid in seen:
                single.append(seen[mid] - sent_at)
    done.set()
    await asyncio.gather(*watchers, return_exceptions=True)
    for client in clients:
        await client.close()
    visible = burst_visible
    mode = {"mode": "burst"} if rate is None else {"mode": "steady", "rate_mails_per_s": rate}
    return {
        **mode,
        "mails": mails,
        "smtp_senders": senders,
        "dossiers": dossiers,
        "accepted": len(accepted),
        "visible": len(visible),
        "undecryptable_events": undecryptable,
        "accepted_to_visible_ms": {
            "p50": round(percentile(visible, 0.50) * 1000, 1),
            "p95": round(percentile(visible, 0.95) * 1000, 1),
            "max": round(max(visible) * 1000, 1),
            "mean": round(statistics.fmean(visible) * 1000, 1),
        },
        **(
            {
                "one_at_a_time_accepted_to_visible_ms": {
                    "p50": round(percentile(single, 0.50) * 1000, 1),
                    "p95": round(percentile(single, 0.95) * 1000, 1),
                }
            }
            if single
            else {}
        ),
        # steady mode: how far the senders fell behind the schedule (machine too busy)
        "sends_behind_schedule": len([x for x in late if x > 0.1]),
        "accepted_mails_per_s": round(len(accepted) / (accept_end - start), 1),
        "delivered_mails_per_s": round(len(visible) / (last_visible - start), 1),
        # The stack's CPU (not this client's) from the first mail sent to the last visible.
        "cpu_ms_per_mail": round(sum(cpu_ms.values()), 2),
        "cpu_ms_per_mail_by_process": cpu_ms,
        **pg_per_mail,
        "machine_cores": os.cpu_count(),
        "load_before": load_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=200)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--dossiers", type=int, default=4)
    parser.add_argument(
        "--rate", type=float, default=None, help="mails per second, steady (default: a burst)"
    )
    parser.add_argument("--workers", action="store_true", help="the worker deployment")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maillon-bench-mail-") as tmp:
        workdir = Path(tmp)
        url = create_database("maillon_bench_mail") if args.db == "postgresql" else None
        try:
            if args.workers and url is None:
                parser.error("--workers : PostgreSQL seulement")
            stack = Stack.create(workdir / "stack", database_url=url, workers=args.workers)
            stack.start(timeout=300 if args.workers else 120)
            try:
                markers = markers_of(workdir / "stack", url)
                result = asyncio.run(
                    run(
                        stack,
                        workdir,
                        args.mails,
                        args.senders,
                        args.dossiers,
                        args.rate,
                        markers,
                        url,
                    )
                )
            finally:
                stack.stop()
        finally:
            if url is not None:
                drop_database(url)
    load = [round(x, 2) for x in os.getloadavg()]
    head = {"benchmark": "mail_relay", "db": args.db, "workers": args.workers}
    print(json.dumps({**head, **result, "load": load}, indent=2))


if __name__ == "__main__":
    main()
