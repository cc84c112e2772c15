"""Benchmark (not a test): resource teams. Prints JSON.

1. On a real stack: a solicitation sent (``POST /v1/dossiers/{id}/solicitations``) until
   each on-duty member's encrypted client has the notice in its "Sollicitations" chat with
   the bot (p50 / p95 over every member and solicitation; goal p95 < 1 s).
2. In process: the care-circle module's decision for an invite of a team address — the
   room's policy view built from its state events, then ``policy.check_invite`` — as the
   module makes it on every worker (p50 / p95 in microseconds; goal < 1 ms).

    .venv/bin/python benchmarks/teams.py [--solicitations 20] [--members 3]
                                         [--db sqlite|postgresql] [--decisions 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    CircleEntry,
    DossierLink,
    team_address,
    user_state_key,
)
from synapse_modules import policy
from tests.harness.dossier import api, new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _decisions(count: int) -> dict[str, Any]:
    ctx = policy.PolicyContext("sante.test", "@maillon:sante.test", "@coordination:sante.test")
    coordinator = "@coord:sante.test"
    items = [
        policy.StateItem("m.room.create", "", "@maillon:sante.test", {}),
        policy.StateItem(DOSSIER_EVENT, "", "@maillon:sante.test", DossierLink("d1").to_content()),
    ]
    for i in range(30):  # a circle of 30 members
        user = coordinator if i == 0 else f"@pro{i}:sante.test"
        entry = CircleEntry(user, "COORD" if i == 0 else "IDE", coordinator=i == 0)
        items.append(
            policy.StateItem(
                CIRCLE_EVENT, user_state_key(user), "@maillon:sante.test", entry.to_content()
            )
        )
        items.append(policy.StateItem("m.room.member", user, user, {"membership": "join"}))
    team = team_address("emsp-31", "sante.test")
    now = dt.datetime.now(dt.UTC)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        decision = policy.check_invite(ctx, policy.build_view(items), coordinator, team, now, False)
        times.append((time.perf_counter() - start) * 1e6)
        assert decision.code == "team_solicitation"
    return {
        "decisions": count,
        "p50_us": round(_percentile(times, 0.5), 1),
        "p95_us": round(_percentile(times, 0.95), 1),
    }


async def _notified(stack: Stack, solicitations: int, members: int, work: Path) -> dict[str, Any]:
    coord = E2EClient(stack.url, stack.register("coord"), work / "coord")
    team = [E2EClient(stack.url, stack.register("emsp"), work / f"m{i}") for i in range(members)]
    command = [sys.executable, "-m", "maillon.wiring.cli", "team", "add", "--dir"]
    command += [str(stack.directory), "bench", "--name", "EMSP", "--level", "departementale"]
    for member in team:
        command += ["--member", member.user_id]
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, timeout=60)
    token = coord.account.access_token
    dossier = new_dossier(stack, token)
    consent = {"consent_share_outside": True, "consent_note": "recueilli"}
    api(stack, token, "PATCH", f"/v1/dossiers/{dossier['id']}", consent)
    path = f"/v1/dossiers/{dossier['id']}/solicitations"
    body = {"team": "bench", "reason": "avis", "kind": "avis"}
    # A first solicitation opens each member's "Sollicitations" chat; they join it.
    first = api(stack, token, "POST", path, body)
    chats = {}
    for member in team:

        def chat(m: E2EClient = member) -> str | None:
            rooms = {**m.client.invited_rooms, **m.client.rooms}
            return next((r for r, room in rooms.items() if room.name == "Sollicitations"), None)

        chats[member.user_id] = await member.wait_until(chat, "the chat", 60)
        await member.accept_invite(chats[member.user_id])
        await member.wait_until(
            lambda m=member: any(f"n° {first['id']} " in e.body for _, e in m.texts), "notice", 60
        )
    seen: dict[tuple[str, int], float] = {}
    stop, complete = asyncio.Event(), asyncio.Event()

    async def listen(member: E2EClient) -> None:
        while not stop.is_set():
            await member.sync(timeout_ms=1000)
            now = time.monotonic()
            for _, event in member.texts:
                for number in sent:
                    if f"n° {number} " in event.body:
                        seen.setdefault((member.user_id, number), now)
            if len(seen) >= len(sent) * len(team) and len(sent) == solicitations:
                complete.set()

    sent: dict[int, float] = {}
    listeners = [asyncio.create_task(listen(m)) for m in team]
    for _ in range(solicitations):
        start = time.monotonic()
        made = await asyncio.to_thread(api, stack, token, "POST", path, body)
        sent[made["id"]] = start
        await asyncio.sleep(0.3)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(complete.wait(), timeout=60)
    stop.set()
    await asyncio.gather(*listeners)
    lags = [seen[k] - sent[k[1]] for k in seen]
    for client in (coord, *team):
        await client.close()
    return {
        "solicitations": solicitations,
        "members_on_duty": members,
        "notices_received": len(lags),
        "p50_s": round(_percentile(lags, 0.5), 3),
        "p95_s": round(_percentile(lags, 0.95), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--solicitations", type=int, default=20)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    result: dict[str, Any] = {"module_decision_team_invite": _decisions(args.decisions)}
    url = create_database("maillon_bench") if args.db == "postgresql" else None
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.create(Path(tmp) / "stack", database_url=url)
        stack.start()
        try:
            result["solicitation_to_on_duty_notified"] = asyncio.run(
                _notified(stack, args.solicitations, args.members, Path(tmp))
            )
        finally:
            stack.stop()
            if url:
                drop_database(url)
    result["db"] = args.db
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
