"""Inactive patient rooms (issue 17): a dossier whose rooms had no event for the pathway's
``inactive_room_weeks`` is reported to its coordinators (a task), once per period of
inactivity; on a real SQLite store, with an injected clock."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dossier_api.domain import retention
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.mail.models import MailSpool
from dossier_api.domain.models import DossierRoom, RoomActivity
from dossier_api.domain.service import DossierFilters, DossierService
from maillon.shared.clock import utcnow
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.dates_fr import PARIS
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine
from tests.harness.bot import deployment, professionals

REFERENT = Caller("@ref:sante.test", False, "token")
IDENTITY = {"birth_name": "Martin", "first_names": "Jeanne", "sex": "F", "birth_date": "1941-03-12"}


def _store(tmp_path: Path) -> tuple[Engine, DossierService]:
    install_key_ring(
        KeyRing(
            [DataKey("k1", base64.b64encode(bytes(range(32))).decode())],
            BlindIndex(bytes(range(32, 64))),
        )
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    professionals(engine, REFERENT.user_id)
    service = DossierService(engine, deployment(tmp_path / "deployment", "sante.test"))
    return engine, service


def test_inactive_room_is_reported_once_per_period(tmp_path: Path) -> None:
    engine, service = _store(tmp_path)
    dossier = service.create_dossier(REFERENT, {"pathway": "dac", "identity": IDENTITY})
    did = dossier["id"]
    opened = dt.datetime.fromisoformat(dossier["opened_at"]) + dt.timedelta(seconds=1)
    weeks = dt.timedelta(weeks=26)

    def titles() -> list[str]:
        return [t["title"] for t in service.tasks(REFERENT, did) if "inactive" in t["title"]]

    assert retention.report_inactive(engine, opened + weeks - dt.timedelta(hours=1)) == []
    assert retention.report_inactive(engine, opened + weeks) == [did]
    assert titles() == [
        "Salle du dossier inactive depuis 26 semaines : clore le dossier ou relancer"
    ]
    # The coordinator receives it: in her "À faire" worklist of that day, the dossier named.
    reported_on = (opened + weeks).astimezone(PARIS).date()
    todo = service.worklist(REFERENT, today=reported_on)
    assert [(t["title"], t["dossier_id"]) for t in todo["tasks"]] == [
        ("Salle du dossier inactive depuis 26 semaines : clore le dossier ou relancer", did)
    ]
    assert todo["counts"]["tasks"] == 1
    assert retention.report_inactive(engine, opened + weeks + dt.timedelta(days=1)) == []
    assert len(titles()) == 1, "reported once"

    # A message in the room starts a new period: reported again 26 weeks after it.
    spoke = opened + weeks + dt.timedelta(days=2)
    with Session(engine) as session, session.begin():
        session.add(
            RoomActivity(
                event_id="$e1",
                dossier_id=did,
                room_id="!r:sante.test",
                kind="message",
                sender=REFERENT.user_id,
                at=spoke,
            )
        )
    assert retention.report_inactive(engine, spoke + weeks - dt.timedelta(hours=1)) == []
    assert retention.report_inactive(engine, spoke + weeks) == [did]
    assert len(titles()) == 2
    actions = [e["action"] for e in service.audit(REFERENT, did, 200)]
    assert actions.count("dossier.inactive") == 2


def test_purge_takes_the_dossiers_mails_too(tmp_path: Path) -> None:
    """The mail relay's rows of a dossier (spool by dossier, threads and outbox by room)
    go with it; another dossier's stay."""
    engine, service = _store(tmp_path)
    body = {"pathway": "dac", "identity": IDENTITY, "duplicate_override": {"reason": "essai"}}
    did = service.create_dossier(REFERENT, body)["id"]
    other = service.create_dossier(REFERENT, body)["id"]
    with Session(engine) as session, session.begin():
        for n, dossier_id in enumerate((did, other)):
            session.add(
                MailSpool(
                    kind="mail",
                    source="smtp",
                    dossier_id=dossier_id,
                    room_id=f"!r{n}:sante.test",
                    dedup_key=f"k{n}",
                    token=f"t{n}",
                    sealed_mail=b"courriel",
                )
            )
        session.add(
            DossierRoom(
                dossier_id=did, kind="side", room_id="!r0:sante.test", created_by=REFERENT.user_id
            )
        )
    service.patch_dossier(REFERENT, did, {"status": "closed", "status_reason": "fin"})
    steps = retention.apply(engine, utcnow() + dt.timedelta(days=21 * 366))
    assert [(s.dossier_id, s.action) for s in steps] == [(did, "purge")]
    assert steps[0].rows["mail_spool"] == 1 and steps[0].rooms == ("!r0:sante.test",)
    with Session(engine) as session:
        left = session.scalars(select(MailSpool.dossier_id)).all()
    assert left == [other]


def test_an_archived_dossier_is_read_only_and_for_its_coordinators(tmp_path: Path) -> None:
    engine, service = _store(tmp_path)
    nurse = Caller("@ide:sante.test", False, "token")
    professionals(engine, nurse.user_id)
    did = service.create_dossier(REFERENT, {"pathway": "dac", "identity": IDENTITY})["id"]
    service.add_member(REFERENT, did, {"user_id": nurse.user_id, "role": "IDE"})
    service.patch_dossier(REFERENT, did, {"status": "closed", "status_reason": "fin"})
    assert service.get_dossier(nurse, did)["status"] == "closed"
    steps = retention.apply(engine, utcnow() + dt.timedelta(days=400))
    assert [(s.dossier_id, s.action) for s in steps] == [(did, "archive")]
    assert service.get_dossier(REFERENT, did)["status"] == "archived"
    with pytest.raises(ApiError) as hidden:
        service.get_dossier(nurse, did)
    assert hidden.value.status == 403 and "coordinateurs" in hidden.value.message
    with pytest.raises(ApiError) as read_only:
        service.add_task(REFERENT, did, {"title": "encore", "assignee": REFERENT.user_id})
    assert read_only.value.status == 409
    pdf, bundle = service.patient_copy(REFERENT, did)  # the patient's right of access stays
    assert pdf.startswith(b"%PDF") and bundle["resourceType"] == "Bundle"
    listed = DossierFilters(status="archived")
    assert [d["id"] for d in service.my_dossiers(REFERENT, 50, 0)] == []
    assert [d["id"] for d in service.my_dossiers(REFERENT, 50, 0, listed)] == [did]
    assert service.my_dossiers(nurse, 50, 0, listed) == []
