"""Benchmark (not a test): the dossier API on PostgreSQL with 100,000 dossiers and
1,000,000 liaison notes (sealed like real ones). Measures "my dossiers" and "read one
dossier" (p50/p95 latency, requests/s, with concurrent clients) through the real HTTP API
of a running Maillon stack, and prints JSON. With ``--creations N``: opening N dossiers one
after the other (``POST /v1/dossiers``, a circle of three, as a coordinator does), each
answered once its room exists with its initial state and invites; p50/p95 of the answer,
then a check that the room holds the circle and the invites.

    .venv/bin/python benchmarks/dossier_api.py [--dossiers 100000] [--notes 1000000]
    .venv/bin/python benchmarks/dossier_api.py --creations 40
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    START,
    bench_stack,
    coordinator_row,
    dossier_row,
    member_row,
    percentiles,
    run_measure,
)
from dossier_api.domain.models import CircleMember, Dossier, Note
from maillon.shared.circle import CIRCLE_EVENT, user_state_key
from maillon.shared.crypto import KeyRing
from maillon.shared.homeserver_client import request_any, request_json
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.dossier import dossier_body
from tests.harness.stack import Stack

BATCH = 10_000


def load(stack: Stack, me: str, dossiers: int, notes: int, mine: int) -> list[str]:
    """Bulk-load the data set; returns the ids of the dossiers whose circle holds ``me``."""
    deployment = stack.deployment
    install_key_ring(KeyRing.for_secrets(deployment.secrets))
    engine = make_engine(deployment.settings.database_url)
    rng = random.Random(7)
    ids = [uuid.uuid4().hex for _ in range(dossiers)]
    my_ids = set(rng.sample(ids, mine))
    with engine.begin() as conn:
        for offset in range(0, dossiers, BATCH):
            chunk = ids[offset : offset + BATCH]
            identity = {"first_names": "Test", "sex": "F", "birth_date": "1950-01-01"}
            conn.execute(
                insert(Dossier),
                [
                    dossier_row(i, n, {"birth_name": f"Patient{n}", **identity}, "dac")
                    for n, i in enumerate(chunk, start=offset)
                ],
            )
            members = [coordinator_row(i, n) for n, i in enumerate(chunk, start=offset)]
            members += [member_row(i, me, "IDE", "@bench:localhost") for i in chunk if i in my_ids]
            conn.execute(insert(CircleMember), members)
        for offset in range(0, notes, BATCH):
            conn.execute(
                insert(Note),
                [
                    {
                        "id": uuid.uuid4().hex,
                        "dossier_id": ids[(offset + k) % dossiers],
                        "author": "@coord1:localhost",
                        "urgent": k % 17 == 0,
                        "body": {"text": f"Note de liaison numéro {offset + k}", "attachments": []},
                        "created_at": START + dt.timedelta(seconds=offset + k),
                    }
                    for k in range(min(BATCH, notes - offset))
                ],
            )
    engine.dispose()
    return sorted(my_ids)


def _ordinary_room(invitees: list[str]) -> dict[str, Any]:
    """A private room with as many state events as a dossier room (14) and two invites."""
    extra = [
        {"type": "org.example.bench", "state_key": str(k), "content": {"k": k}} for k in range(6)
    ]
    return {
        "preset": "private_chat",
        "name": "Banc d'essai",
        "topic": "Salle ordinaire",
        "initial_state": extra,
        "invite": invitees,
    }


def creations(stack: Stack, count: int) -> dict[str, Any]:
    """Open ``count`` dossiers (after 3 not measured), each with two more circle members
    (``circle`` in the creation request is not a thing: they are added right after, as the
    coordinator's page does); the time of ``POST /v1/dossiers`` until its answer names the
    room, and of the whole (dossier, room, two members invited)."""
    coordinator = stack.register("coord", profession="coordinateur")
    nurse, physio = (
        stack.register("ide"),
        stack.register("kine", profession="masseur-kinésithérapeute"),
    )
    api = stack.deployment.settings.dossier_api.url
    token = coordinator.access_token
    create: list[float] = []
    whole: list[float] = []
    floor: list[float] = []
    last: dict[str, Any] = {}
    homeserver = stack.url + "/_matrix/client/v3"
    service = stack.deployment.secrets.as_token  # Maillon's service user sits in the room
    invitees = [coordinator.user_id, stack.deployment.settings.bot_user_id]
    for n in range(count + 3):
        # Synapse's own floor, same run: an ordinary private room (no module decides on it)
        # with as many state events in createRoom and the same two invites.
        t0 = time.perf_counter()
        request_json("POST", f"{homeserver}/createRoom", _ordinary_room(invitees), token=service)
        if n >= 3:
            floor.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        last = request_json("POST", api + "/v1/dossiers", dossier_body(), token=token)
        t1 = time.perf_counter()
        if not last.get("room_id"):
            raise RuntimeError("a dossier answered without its room")
        for member, role in ((nurse, "IDE"), (physio, "KINE")):
            request_json(
                "POST",
                f"{api}/v1/dossiers/{last['id']}/circle",
                {"user_id": member.user_id, "role": role},
                token=token,
            )
        t2 = time.perf_counter()
        if n >= 3:
            create.append((t1 - t0) * 1000)
            whole.append((t2 - t0) * 1000)
    state = request_any("GET", f"{homeserver}/rooms/{last['room_id']}/state", token=service)
    assert isinstance(state, list)
    by_key = {(e["type"], e["state_key"]): e["content"] for e in state}
    for member in (coordinator, nurse, physio):
        if (CIRCLE_EVENT, user_state_key(member.user_id)) not in by_key:
            raise RuntimeError("a circle entry is missing from the room")
        membership = by_key.get(("m.room.member", member.user_id), {}).get("membership")
        if membership not in ("invite", "join"):
            raise RuntimeError("a circle member is not invited")
    mine, ordinary = percentiles(create), percentiles(floor)
    return {
        "dossiers": len(create),
        "create_with_room": mine,
        "ordinary_create_room_same_run": ordinary,
        "ratio_p50_over_ordinary_create_room": round(mine["p50_ms"] / ordinary["p50_ms"], 3),
        "create_with_room_and_two_members": percentiles(whole),
        "target_p95_ms": 500,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=1_000_000)
    parser.add_argument("--mine", type=int, default=300, help="dossiers in my circle")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients")
    parser.add_argument(
        "--creations", type=int, default=0, help="mesurer l'ouverture de N dossiers (salle prête)"
    )
    args = parser.parse_args()
    if args.creations:
        with bench_stack("maillon_bench_creations") as stack:
            figures = creations(stack, args.creations)
        print(
            json.dumps(
                {
                    "benchmark": "dossier_creation",
                    "database": "postgresql",
                    "load_average": list(os.getloadavg()),
                    **figures,
                },
                indent=2,
            )
        )
        return
    with bench_stack("maillon_bench_dossiers") as stack:
        me = stack.register("bench")
        t0 = time.perf_counter()
        mine = load(stack, me.user_id, args.dossiers, args.notes, args.mine)
        load_seconds = time.perf_counter() - t0
        api = stack.deployment.settings.dossier_api.url
        rng = random.Random(11)
        results: dict[str, Any] = {}
        for name, paths in (
            (
                "my_dossiers",
                [
                    f"/v1/dossiers?limit=50&offset={rng.randrange(0, 250)}"
                    for _ in range(args.requests)
                ],
            ),
            (
                "read_one_dossier",
                [f"/v1/dossiers/{rng.choice(mine)}" for _ in range(args.requests)],
            ),
        ):
            bearer = {"Authorization": f"Bearer {me.access_token}"}
            results[name] = run_measure(api, bearer, paths, args.concurrency, warm_up=20)
    print(
        json.dumps(
            {
                "benchmark": "dossier_api",
                "database": "postgresql",
                "dossiers": args.dossiers,
                "liaison_notes": args.notes,
                "dossiers_in_my_circle": args.mine,
                "concurrency": args.concurrency,
                "load_seconds": round(load_seconds, 1),
                "target_p95_ms": 50,
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
