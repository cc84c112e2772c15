"""The dossier side of room → dossier changes, on a real (SQLite) store: a change made in
the room a few milliseconds after the dossier's own is applied; an older one is not."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.models import CircleMember, RoomSyncJob
from dossier_api.domain.rooms import RoomLinks
from dossier_api.domain.service import DossierService
from maillon.shared.circle import CircleEntry
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine
from tests.harness.bot import deployment, professionals

REFERENT = Caller("@ref:sante.test", False, "token")
NURSE = "@ide:sante.test"


def _setup(tmp_path: Path) -> tuple[DossierService, RoomLinks, str, dt.datetime]:
    install_key_ring(
        KeyRing(
            [DataKey("k1", base64.b64encode(bytes(range(32))).decode())],
            BlindIndex(bytes(range(32, 64))),
        )
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    professionals(engine, REFERENT.user_id, NURSE)
    service = DossierService(engine, deployment(tmp_path / "deployment", "sante.test"))
    dossier = service.create_dossier(
        REFERENT,
        {
            "pathway": "dac",
            "identity": {
                "birth_name": "Martin",
                "first_names": "Jeanne",
                "sex": "F",
                "birth_date": "1941-03-12",
            },
        },
    )
    member = service.add_member(REFERENT, dossier["id"], {"user_id": NURSE, "role": "IDE"})
    since = dt.datetime.fromisoformat(member["since"])
    return service, RoomLinks(engine), dossier["id"], since


def _rows(links: RoomLinks, dossier_id: str) -> list[CircleMember]:
    with Session(links._engine) as session:
        return list(
            session.scalars(
                select(CircleMember).where(
                    CircleMember.dossier_id == dossier_id, CircleMember.user_id == NURSE
                )
            )
        )


def test_a_departure_just_after_joining_is_applied_once(tmp_path: Path) -> None:
    _, links, dossier_id, _ = _setup(tmp_path)
    [row] = _rows(links, dossier_id)
    since = row.since if row.since.tzinfo else row.since.replace(tzinfo=dt.UTC)
    left = CircleEntry(NURSE, "IDE", since=since).removed(
        NURSE, since + dt.timedelta(milliseconds=5)
    )
    stored = CircleEntry.from_content(NURSE, left.to_content())  # as read back from the room
    assert stored is not None
    assert links.apply_room_entry(dossier_id, stored) is True
    assert links.apply_room_entry(dossier_id, stored) is False, "a second delivery is a no-op"
    [row] = _rows(links, dossier_id)
    assert row.removed_at is not None and row.removed_by == NURSE
    with Session(links._engine) as session:
        jobs = session.scalars(select(RoomSyncJob.subject)).all()
    assert jobs.count(NURSE) == 2, "the API's add and the room's departure, once each"


def test_a_stale_room_change_does_not_undo_a_newer_dossier_change(tmp_path: Path) -> None:
    service, links, dossier_id, since = _setup(tmp_path)
    # The room says "left" at a time before the dossier (re)added the nurse: stale.
    old = CircleEntry(NURSE, "IDE", since=since - dt.timedelta(hours=1)).removed(
        NURSE, since - dt.timedelta(minutes=1)
    )
    assert links.apply_room_entry(dossier_id, old) is False
    assert [r.removed_at for r in _rows(links, dossier_id)] == [None]
    # An invite accepted in the room while the dossier already has them: nothing doubles.
    again = CircleEntry(NURSE, "PRO", since=since + dt.timedelta(seconds=1), added_by="@ref:x")
    assert links.apply_room_entry(dossier_id, again) is False
    assert len(_rows(links, dossier_id)) == 1
    assert service.circle(REFERENT, dossier_id)[-1]["active"] is True
