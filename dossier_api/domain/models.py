"""Coordination data (SQLAlchemy 2 typed ORM). Health data columns are ``Sealed``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    event,
    insert,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from dossier_api.domain.ins import identity_index
from dossier_api.domain.names import identity_digests
from maillon.shared.clock import utcnow
from maillon.shared.sealed import Sealed, key_ring
from maillon.shared.store import Base


def new_id() -> str:
    return uuid.uuid4().hex


class Structure(Base):
    """A personne morale: DAC, CPTS, hospital, SSIAD… owning dossiers."""

    __tablename__ = "structures"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40), default="structure")


class Professional(Base):
    """Directory entry (annuaire) bound to a Matrix account."""

    __tablename__ = "professionals"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    profession: Mapped[str] = mapped_column(String(120))
    rpps: Mapped[str | None] = mapped_column(String(11), unique=True, default=None)
    adeli: Mapped[str | None] = mapped_column(String(9), unique=True, default=None)
    mssante: Mapped[str | None] = mapped_column(String(255), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)


class StructureStaff(Base):
    __tablename__ = "structure_staff"
    structure_id: Mapped[str] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    since: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Dossier(Base):
    __tablename__ = "dossiers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    pathway: Mapped[str] = mapped_column(String(60))
    structure_id: Mapped[str | None] = mapped_column(
        ForeignKey("structures.id"), default=None, index=True
    )
    referent: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open, closed, archived
    # Why it was closed or archived (e.g. "décès"): health data, sealed.
    status_reason: Mapped[str | None] = mapped_column(Sealed(), default=None)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # INS identity (matricule, OID, names, sex, birth date and place), contacts: sealed.
    identity: Mapped[dict[str, Any]] = mapped_column(Sealed())
    identity_status: Mapped[str] = mapped_column(String(5), default="PROV")
    # Blind index of a QUAL identity's INS matricule (``dossier_api.domain.ins``): set on
    # every write of the identity, read to route a mail by INS without opening identities.
    ins_index: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    consent_informed: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_share_outside: Mapped[bool] = mapped_column(Boolean, default=False)
    opposition: Mapped[bool] = mapped_column(Boolean, default=False)
    room_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    mail_localpart: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    circle: Mapped[list[CircleMember]] = relationship(back_populates="dossier")


def _write_ins_index(_mapper: Mapper[Dossier], _conn: Connection, dossier: Dossier) -> None:
    """Whenever a dossier's identity or its status is written, so is its blind index."""
    attrs = sa_inspect(dossier).attrs
    if attrs.identity.history.has_changes() or attrs.identity_status.history.has_changes():
        dossier.ins_index = identity_index(key_ring(), dossier.identity, dossier.identity_status)


event.listen(Dossier, "before_insert", _write_ins_index)
event.listen(Dossier, "before_update", _write_ins_index)


class DossierName(Base):
    """One blind-index digest of a normalised token of a dossier's names
    (``dossier_api.domain.names``): the search by patient name reads these, not identities."""

    __tablename__ = "dossier_names"
    __table_args__ = (Index("ix_dossier_names_digest", "digest", "dossier_id"),)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)


def _write_name_index(_mapper: Mapper[Dossier], conn: Connection, dossier: Dossier) -> None:
    """Whenever a dossier's identity is written, so are the digests of its names."""
    if not sa_inspect(dossier).attrs.identity.history.has_changes():
        return
    conn.execute(delete(DossierName).where(DossierName.dossier_id == dossier.id))
    digests = identity_digests(key_ring(), dossier.identity)
    if digests:
        rows = [{"dossier_id": dossier.id, "digest": d} for d in sorted(digests)]
        conn.execute(insert(DossierName), rows)


event.listen(Dossier, "after_insert", _write_name_index)
event.listen(Dossier, "after_update", _write_name_index)


class CircleMember(Base):
    """One period of membership of the care circle (history kept: rows are never deleted)."""

    __tablename__ = "circle_members"
    __table_args__ = (Index("ix_circle_user_active", "user_id", "removed_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(12))
    coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    until: Mapped[dt.datetime | None] = mapped_column(default=None)
    added_by: Mapped[str] = mapped_column(String(255))
    removed_by: Mapped[str | None] = mapped_column(String(255), default=None)
    removed_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    dossier: Mapped[Dossier] = relationship(back_populates="circle")

    def active(self, now: dt.datetime) -> bool:
        return self.removed_at is None and (self.until is None or self.until > now)


class Note(Base):
    """Cahier de liaison entry (FHIR DocumentReference): corrections never delete."""

    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_to: Mapped[str | None] = mapped_column(ForeignKey("notes.id"), default=None)
    corrects: Mapped[str | None] = mapped_column(ForeignKey("notes.id"), default=None)
    visible_to_roles: Mapped[str | None] = mapped_column(String(200), default=None)
    body: Mapped[dict[str, Any]] = mapped_column(Sealed())  # text and attachment metadata


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    title: Mapped[dict[str, Any]] = mapped_column(Sealed())
    assignee: Mapped[str] = mapped_column(String(255), index=True)
    due: Mapped[dt.date | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(12), default="todo")  # todo, done, cancelled
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_by: Mapped[str | None] = mapped_column(String(255), default=None)
    done_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Delegation(Base):
    """A professional lets a colleague act for them until a date."""

    __tablename__ = "delegations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_user: Mapped[str] = mapped_column(String(255), index=True)
    to_user: Mapped[str] = mapped_column(String(255), index=True)
    until: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """Append-only trace of every read and write of a dossier."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dossier_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    on_behalf_of: Mapped[str | None] = mapped_column(String(255), default=None)
    basis: Mapped[str] = mapped_column(String(20))  # member, coordinator, structure, delegate…
    action: Mapped[str] = mapped_column(String(60))
    component: Mapped[str] = mapped_column(String(30))
    allowed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class FormSubmission(Base):
    """A filled pathway form (answers sealed), with the version of its definition."""

    __tablename__ = "form_submissions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    form_id: Mapped[str] = mapped_column(String(60))
    form_version: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    answers: Mapped[dict[str, Any]] = mapped_column(Sealed())


class CarePlan(Base):
    """PPCS (HAS 2019): each update is a new version; the last one is current."""

    __tablename__ = "care_plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    plan: Mapped[dict[str, Any]] = mapped_column(Sealed())


class Appointment(Base):
    """Shared agenda entry (FHIR Appointment)."""

    __tablename__ = "appointments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    start: Mapped[dt.datetime] = mapped_column(index=True)
    end: Mapped[dt.datetime] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(Sealed())  # title, place
    participants: Mapped[str] = mapped_column(Text)  # comma-separated user ids
    created_by: Mapped[str] = mapped_column(String(255))
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class Alert(Base):
    """An alert to circle members (delivered in the room by the appservice or the bot)."""

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    recipients: Mapped[str] = mapped_column(Text)
    message: Mapped[dict[str, Any]] = mapped_column(Sealed())


class DossierRoom(Base):
    """A Matrix room of a dossier: its patient room (kind "main") or a side room."""

    __tablename__ = "dossier_rooms"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="main")  # main, side
    label: Mapped[str] = mapped_column(String(120), default="")  # e.g. "coordination interne"
    audience: Mapped[str] = mapped_column(String(20), default="circle")
    room_id: Mapped[str | None] = mapped_column(String(255), default=None, unique=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set before asking the homeserver to create the room: after a crash, the room may
    # exist without its id here, so the appservice looks for it (by room key) first.
    creation_started_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class RoomSyncJob(Base):
    """Outbox of dossier changes to carry into the dossier's rooms, in order. A job holds no
    data: the appservice reads the dossier's current state and brings the rooms to it."""

    __tablename__ = "room_sync_jobs"
    __table_args__ = (Index("ix_room_sync_pending", "done_at", "seq"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    subject: Mapped[str] = mapped_column(String(255))  # "rooms" or a circle member's user id
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class RoomActivity(Base):
    """What happened in a dossier's rooms, once per Matrix event: messages (metadata only,
    never content), invites, joins and departures (the circle's room history)."""

    __tablename__ = "room_activity"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    room_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(12))  # message, invite, join, leave, kick
    sender: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255), default=None)
    at: Mapped[dt.datetime] = mapped_column()


class WebSession(Base):
    """A session of the workspace pages or of a widget (``dossier_api.http.sessions``).
    Only a digest of the session id is stored (a reader of the table cannot use one); it
    holds no health data: who, how it was opened, when it was last used and when it ends."""

    __tablename__ = "web_sessions"
    id_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(12))  # password, openid
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)
