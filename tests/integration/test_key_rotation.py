"""`maillon keys rotate --drop-old` re-encrypts every sealed value of the store, whatever
component owns its table. The expected set of sealed columns comes from the ORM metadata
(the registry), never from a list kept here: a new sealed column that rotation missed, or a
binary column sealed by hand outside the registry, fails this test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import LargeBinary, select, type_coerce
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from appservice.transactions import TransactionStore
from coordination_bot.models import BotFormDialogue
from dossier_api.domain.mail.routing import Target
from dossier_api.domain.mail.spool import Spool
from dossier_api.domain.models import (
    ATTACHMENT_CONTENT,
    REPORT_PDF,
    Alert,
    Appointment,
    CarePlan,
    ConsentEvent,
    Dossier,
    FormDraft,
    FormSubmission,
    IdentityEvent,
    MonthlyReport,
    Note,
    NoteAttachment,
    Solicitation,
    Structure,
    Task,
    Team,
)
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import SealedColumn, install_key_ring, sealed_columns
from maillon.shared.settings import load
from maillon.shared.store import make_engine
from maillon.wiring.tables import METADATA
from tests.harness.dossier import IDENTITY
from tests.harness.stack import Stack

ROOM = "!salle:localhost"
PDF = b"%PDF-1.4 compte rendu"
COORD = "@coord:localhost"

Values = dict[str, list[tuple[tuple[Any, ...], bytes]]]


def _populate(engine: Engine, ring: KeyRing) -> tuple[str, int, int]:
    """At least one value in every sealed column (the test checks that none is left out)."""
    now = dt.datetime.now(dt.UTC)
    identity = {k: v for k, v in IDENTITY.items() if k != "identity_status"}
    with Session(engine) as session, session.begin():
        dossier = Dossier(
            pathway="dac",
            referent=COORD,
            identity=identity,
            identity_status="QUAL",
            status="closed",
            status_reason="décès",
            room_id=ROOM,
            mail_localpart="d-rotation",
        )
        session.add(dossier)
        session.flush()
        did = dossier.id
        note = Note(dossier_id=did, author=COORD, body={"text": "chute à domicile"})
        session.add(note)
        session.flush()
        session.add(Team(slug="emsp", name="EMSP", level="departementale"))
        structure = Structure(name="DAC Rotation")
        session.add(structure)
        session.flush()
        report = MonthlyReport(structure_id=structure.id, month="2026-11", sha256="0", pdf=b"")
        session.add(report)
        session.flush()
        report.pdf = REPORT_PDF.seal(ring, PDF, str(report.id))
        report_id = report.id
        session.add_all(
            [
                NoteAttachment(
                    id="a" * 32,
                    note_id=note.id,
                    dossier_id=did,
                    media_type="application/pdf",
                    size=len(PDF),
                    meta={"name": "compte-rendu.pdf"},
                    content=ATTACHMENT_CONTENT.seal(ring, PDF, "a" * 32),
                    uploaded_by=COORD,
                ),
                FormDraft(
                    dossier_id=did, form_id="f", form_version=1, author=COORD, answers={"a": 2}
                ),
                Task(dossier_id=did, title={"title": "INR"}, assignee=COORD, created_by=COORD),
                FormSubmission(
                    dossier_id=did, form_id="f", form_version=1, author=COORD, answers={"a": 1}
                ),
                CarePlan(dossier_id=did, version=1, author=COORD, plan={"goals": ["marcher"]}),
                Appointment(
                    dossier_id=did,
                    start=now,
                    end=now,
                    details={"title": "visite"},
                    participants=COORD,
                    created_by=COORD,
                ),
                Alert(dossier_id=did, author=COORD, recipients=COORD, message={"text": "urgent"}),
                IdentityEvent(
                    dossier_id=did, kind="duplicate_override", actor=COORD, reason="homonyme"
                ),
                ConsentEvent(
                    dossier_id=did, actor=COORD, field="opposition", value=True, note="écrite"
                ),
                Solicitation(
                    team_slug="emsp",
                    dossier_id=did,
                    requester=COORD,
                    kind="avis",
                    reason={"text": "douleurs"},
                    deadline=dt.datetime.now(dt.UTC),
                    report={"question": "q", "elements": "e", "advice": "a"},
                ),
                BotFormDialogue(
                    room_id=ROOM,
                    user_id=COORD,
                    dossier_id=did,
                    form_id="f",
                    thread_root="$racine",
                    answers={"q1": "oui"},
                ),
            ]
        )
    spool = Spool(engine, ring)
    [spool_id] = spool.accept(
        b"Subject: avis\r\n\r\ncorps", {"from": "x"}, [Target(did, ROOM)], "d1"
    )
    spool.record_main_event(
        spool_id, ROOM, "$mail", "$mail", {"message_id": "<m1@chu>", "subject": "avis"}
    )
    assert spool.enqueue(ROOM, "$reponse", "$mail", {"message_id": "<o1@maillon>", "to": ["a@b"]})
    TransactionStore(engine, ring).store(
        "txn1",
        {
            "events": [
                {
                    "event_id": "$ev1",
                    "room_id": ROOM,
                    "type": "m.room.message",
                    "sender": COORD,
                    "content": {"body": "bonjour"},
                }
            ]
        },
    )
    return did, spool_id, report_id


def _plaintexts(engine: Engine, ring: KeyRing) -> tuple[Values, dict[str, list[bytes]]]:
    """Raw sealed values of every registry column, and what they open to with ``ring``."""
    raw: Values = {}
    opened: dict[str, list[bytes]] = {}
    with engine.connect() as conn:
        for ref in sealed_columns(METADATA):
            keys = list(ref.table.primary_key.columns)
            ctx = [ref.table.c[n] for n in ref.type.context_columns()]
            rows = (
                conn.execute(
                    select(*keys, *ctx, type_coerce(ref.column, LargeBinary).label("raw"))
                    .where(ref.column.is_not(None))
                    .order_by(*keys)
                )
                .mappings()
                .all()
            )
            raw[ref.name] = [(tuple(r[k.name] for k in keys), bytes(r["raw"])) for r in rows]
            opened[ref.name] = [ring.open(bytes(r["raw"]), ref.type.context(r)) for r in rows]
    return raw, opened


def test_rotation_reseals_every_sealed_column_of_the_registry(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path / "deploy")
    deployment = stack.deployment
    ring = KeyRing.for_secrets(deployment.secrets)
    install_key_ring(ring)

    registry = {ref.name for ref in sealed_columns(METADATA)}
    binary = {
        f"{table.name}.{column.name}"
        for table in METADATA.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary | SealedColumn)
    }
    assert binary == registry, "a binary column is not sealed, or sealed outside the registry"
    assert {
        "mail_spool.sealed_mail",
        "mail_threads.sealed_meta",
        "mail_outbox.sealed_mail",
        "as_events.sealed_event",
        "dossiers.identity",
        "note_attachments.content",
        "note_attachments.meta",
        "form_drafts.answers",
        "monthly_reports.pdf",
    } <= registry

    engine = make_engine(deployment.settings.database_url)
    try:
        did, spool_id, report_id = _populate(engine, ring)
        before_raw, before = _plaintexts(engine, ring)
        assert {name for name, values in before_raw.items() if values} == registry
        old_ids = {k.id for k in deployment.secrets.data_keys}

        done = stack.rotate_keys(drop_old=True)
        assert done.returncode == 0, done.stderr

        keys = yaml.safe_load((stack.directory / "secrets.yaml").read_text())["data_keys"]
        assert len(keys) == 1 and keys[0]["id"] not in old_ids
        new_ring = KeyRing.for_secrets(load(stack.directory).secrets)  # the new key only
        after_raw, after = _plaintexts(engine, new_ring)  # raises if any value was left
        assert after == before
        for name, values in after_raw.items():
            assert [pk for pk, _ in values] == [pk for pk, _ in before_raw[name]]
            assert all(value.startswith(keys[0]["id"].encode() + b"\x00") for _, value in values)

        # The owners read their values back with the new key only.
        install_key_ring(new_ring)
        spool = Spool(engine, new_ring)
        assert spool.payload(spool_id)[1].endswith(b"corps")
        latest = spool.thread_latest(ROOM, "$mail")
        assert latest is not None and latest["message_id"] == "<m1@chu>"
        assert [item.mail["to"] for item in spool.outbox_due()] == [["a@b"]]
        assert TransactionStore(engine, new_ring).pending()[0][1]["content"] == {"body": "bonjour"}
        with Session(engine) as session:
            dossier = session.get(Dossier, did)
            assert dossier is not None and dossier.identity["birth_name"] == "Martin"
            document = session.get(NoteAttachment, "a" * 32)
            assert document is not None and document.meta["name"] == "compte-rendu.pdf"
            assert ATTACHMENT_CONTENT.open(new_ring, document.content, document.id) == PDF
            report = session.get(MonthlyReport, report_id)
            assert report is not None
            assert REPORT_PDF.open(new_ring, report.pdf, str(report.id)) == PDF
    finally:
        engine.dispose()
