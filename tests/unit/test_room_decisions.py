"""Loading the decision log into the audit: whole lines once, rooms of no dossier passed
over, a line being written loaded when complete."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.models import AuditEntry, Dossier
from dossier_api.domain.room_decisions import load_room_decisions
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.decision_log import file_name
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine


def _line(room_id: str, actor: str, allowed: bool = False) -> str:
    record = {
        "ts": "2026-12-01T10:00:00.000+00:00",
        "room_id": room_id,
        "actor": actor,
        "action": "invite",
        "target": "@x:sante.test",
        "allowed": allowed,
        "code": "not_in_circle",
        "worker": "master",
    }
    return json.dumps(record) + "\n"


def test_each_decision_is_loaded_once_for_its_dossier(tmp_path: Path) -> None:
    key = DataKey("k", base64.b64encode(secrets.token_bytes(32)).decode())
    install_key_ring(KeyRing([key], BlindIndex(secrets.token_bytes(32))))
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with Session(engine) as session, session.begin():
        session.add(
            Dossier(
                id="d1",
                pathway="dac",
                referent="@c:sante.test",
                identity={"birth_name": "X"},
                room_id="!r1:sante.test",
                mail_localpart="d-1",
            )
        )
    log_dir = tmp_path / "audit"
    log_dir.mkdir()
    path = log_dir / file_name("master")
    path.write_text(_line("!r1:sante.test", "@a:sante.test") + _line("!other:x", "@b:x"))
    assert load_room_decisions(engine, log_dir) == 1
    assert load_room_decisions(engine, log_dir) == 0
    with path.open("a") as handle:
        handle.write(_line("!r1:sante.test", "@c:sante.test")[:40])  # being written
    assert load_room_decisions(engine, log_dir) == 0
    with path.open("a") as handle:
        handle.write(_line("!r1:sante.test", "@c:sante.test")[40:])
    assert load_room_decisions(engine, log_dir) == 1
    with Session(engine) as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(r.dossier_id, r.actor, r.action, r.allowed) for r in rows] == [
            ("d1", "@a:sante.test", "room.invite", False),
            ("d1", "@c:sante.test", "room.invite", False),
        ]
        assert rows[0].component == "synapse" and "not_in_circle" in (rows[0].detail or "")
    engine.dispose()
