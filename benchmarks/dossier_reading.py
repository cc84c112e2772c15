"""Benchmark (not a test): search in one dossier and its timeline, for a heavily used
dossier (by default 1,000 notes, 200 tasks, 100 forms, all sealed like real ones), through
``DossierService`` on the store (SQLite by default, ``--pg`` for PostgreSQL); no HTTP, no
homeserver. Search opens every note, form and task in memory (no clear-text index at rest):
this measures what that costs. Prints JSON (p50/p95 in milliseconds).

    .venv/bin/python benchmarks/dossier_reading.py [--notes 1000] [--runs 30] [--pg]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dossier_api.domain.access import Caller
from dossier_api.domain.models import CircleMember, Dossier, FormSubmission, Note, Task
from dossier_api.domain.service import DossierService
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack

WORDS = (
    "chute domicile hématome épaule infirmière pansement visite médecin traitement escarre "
    "œdème aide-soignante kinésithérapie portage repas téléassistance fille appelée douleur"
).split()
ME = "@coord:localhost"


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--forms", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pg", action="store_true")
    args = parser.parse_args()
    url = create_database() if args.pg else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stack = Stack.create(Path(tmp) / "deploy", database_url=url)
            deployment = stack.deployment
            install_key_ring(KeyRing.for_secrets(deployment.secrets))
            engine = make_engine(deployment.settings.database_url)
            rng = random.Random(7)
            with Session(engine) as session, session.begin():
                dossier = Dossier(
                    pathway="dac",
                    referent=ME,
                    identity={"birth_name": "Martin", "first_names": "Jeanne"},
                    mail_localpart="d-bench",
                )
                session.add(dossier)
                session.flush()
                did = dossier.id
                session.add(
                    CircleMember(
                        dossier_id=did, user_id=ME, role="COORD", coordinator=True, added_by=ME
                    )
                )
                session.add_all(
                    Note(dossier_id=did, author=ME, body={"text": _text(rng, 60)})
                    for _ in range(args.notes)
                )
                session.add_all(
                    Task(dossier_id=did, title={"text": _text(rng, 6)}, assignee=ME, created_by=ME)
                    for _ in range(args.tasks)
                )
                session.add_all(
                    FormSubmission(
                        dossier_id=did,
                        form_id="evaluation-autonomie",
                        form_version=1,
                        author=ME,
                        answers={"gir": "4", "vit_seul": True, "aides_en_place": _text(rng, 20)},
                    )
                    for _ in range(args.forms)
                )
            service = DossierService(engine, deployment)
            caller = Caller(ME, False, "token")
            found = len(service.search(caller, did, "hematome epaule")["results"])
            result = {
                "store": "postgresql" if args.pg else "sqlite",
                "notes": args.notes,
                "tasks": args.tasks,
                "forms": args.forms,
                "search_rare_word": _timed(
                    lambda: service.search(caller, did, "introuvable"), args.runs
                ),
                "search_common_words": {
                    **_timed(lambda: service.search(caller, did, "hematome epaule"), args.runs),
                    "results": found,
                },
                "timeline_all": _timed(lambda: service.timeline(caller, did), args.runs),
            }
            engine.dispose()
            print(json.dumps(result, indent=2, ensure_ascii=False))
    finally:
        if url is not None:
            drop_database(url)


if __name__ == "__main__":
    main()
