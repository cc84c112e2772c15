"""Coordination data (SQLAlchemy 2 typed ORM). Health data columns are ``Sealed``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    false,
    insert,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from dossier_api.domain.ins import any_matricule_index, identity_index, traits_index
from dossier_api.domain.names import identity_digests
from maillon.shared.clock import utcnow
from maillon.shared.sealed import RowSealed, Sealed, key_ring
from maillon.shared.store import Base


def new_id() -> str:
    return uuid.uuid4().hex


class Structure(Base):
    """A personne morale: DAC, CPTS, hospital, SSIAD… owning dossiers."""

    __tablename__ = "structures"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40), default="structure")
    # The structure's own Matrix account (a structure account) and its MSSanté address.
    account: Mapped[str | None] = mapped_column(String(255), default=None)
    mssante: Mapped[str | None] = mapped_column(String(255), default=None)
    # Its Matrix address's slug: @structure.<slug>:<server> ("le compte du service"), an
    # invite of which into a patient room solicits its référents and managers.
    slug: Mapped[str | None] = mapped_column(String(40), default=None, unique=True, index=True)


class Professional(Base):
    """Directory entry (annuaire) bound to a Matrix account."""

    __tablename__ = "professionals"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    profession: Mapped[str] = mapped_column(String(120))
    rpps: Mapped[str | None] = mapped_column(String(11), unique=True, default=None)
    adeli: Mapped[str | None] = mapped_column(String(9), unique=True, default=None)
    mssante: Mapped[str | None] = mapped_column(String(255), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)


STAFF_ROLES = ("member", "manager", "referent")
# What inviting a favourites group (``favourites``) did for each person.
FAVOURITE_OUTCOMES = {
    "added": "ajouté(e) au cercle de soins",
    "invited": "invitation envoyée (entrée en attente de son inscription)",
    "already": "déjà dans le cercle de soins ou déjà invité(e)",
    "refused": "refusé",
}
STRUCTURE_KINDS = ("dac", "cpts", "pco", "etablissement", "ssiad", "structure")
"""A structure's staff: ``member`` (sees the structure's dossiers), ``manager`` (also its
dashboards, extractions and administration), ``referent`` (also receives its monthly report)."""


class StructureStaff(Base):
    __tablename__ = "structure_staff"
    structure_id: Mapped[str] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    role: Mapped[str] = mapped_column(String(12), default="member", server_default="member")


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
    # Identity vigilance: blind indexes of the matricule (any status) and of the traits
    # (names, birth date, sex), to find possible duplicates without opening identities.
    matricule_index: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    traits_index: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    consent_informed: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_share_outside: Mapped[bool] = mapped_column(Boolean, default=False)
    opposition: Mapped[bool] = mapped_column(Boolean, default=False)
    room_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    # Legal hold (litigation, request of a judge): the retention policy never purges it.
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Merged into another dossier of the same person (identity vigilance): that one's id.
    merged_into: Mapped[str | None] = mapped_column(String(32), default=None)
    mail_localpart: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The version of its pathway the dossier follows (``pathway_versions``): the published
    # one when it was opened, until an administrator migrates it.
    pathway_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    circle: Mapped[list[CircleMember]] = relationship(back_populates="dossier")


def _write_ins_index(_mapper: Mapper[Dossier], _conn: Connection, dossier: Dossier) -> None:
    """Whenever a dossier's identity or its status is written, so is its blind index."""
    attrs = sa_inspect(dossier).attrs
    if attrs.identity.history.has_changes() or attrs.identity_status.history.has_changes():
        ring = key_ring()
        dossier.ins_index = identity_index(ring, dossier.identity, dossier.identity_status)
        dossier.matricule_index = any_matricule_index(ring, dossier.identity)
        dossier.traits_index = traits_index(ring, dossier.identity)


event.listen(Dossier, "before_insert", _write_ins_index)
event.listen(Dossier, "before_update", _write_ins_index)


class IdentityEvent(Base):
    """Identity vigilance (RNIV) record of a dossier: a change of its identity status with
    its evidence (an identity document checked: kind, by whom, when; or the INS's source:
    INSi, IHE_XDM, import), or a creation despite possible duplicates (the candidates).
    The free-text reason is sealed."""

    __tablename__ = "identity_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # status, duplicate_override
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    from_status: Mapped[str | None] = mapped_column(String(5), default=None)
    to_status: Mapped[str | None] = mapped_column(String(5), default=None)
    document_kind: Mapped[str | None] = mapped_column(String(40), default=None)
    checked_by: Mapped[str | None] = mapped_column(String(255), default=None)
    checked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ins_source: Mapped[str | None] = mapped_column(String(10), default=None)
    candidates: Mapped[str | None] = mapped_column(Text, default=None)  # dossier ids
    reason: Mapped[str | None] = mapped_column(Sealed(), default=None)


class ConsentEvent(Base):
    """A change of a dossier's consent (informed, sharing outside the care team, opposition),
    dated and attributed; ``note`` (sealed) says how it was collected (an attestation)."""

    __tablename__ = "consent_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(20))  # informed, share_outside, opposition
    value: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Sealed(), default=None)


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


class DossierRead(Base):
    """When a person last read a dossier's notes (the "unread urgent notes" filter of "Mes
    dossiers"); a date only, no health data."""

    __tablename__ = "dossier_reads"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), primary_key=True)
    read_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# A document's bytes, sealed with its row's id as associated data (cannot move to another row).
ATTACHMENT_CONTENT = RowSealed("id")


class NoteAttachment(Base):
    """A document attached to a note (PDF, image), stored sealed in the dossier store: its
    bytes (``ATTACHMENT_CONTENT``) and its name and checksum (``meta``). Only the media type
    and the size are in clear. The bytes are loaded only when the document is downloaded."""

    __tablename__ = "note_attachments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id"), index=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(Sealed())  # name, sha256
    content: Mapped[bytes] = mapped_column(ATTACHMENT_CONTENT, deferred=True)
    uploaded_by: Mapped[str] = mapped_column(String(255))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


PATHWAY_STATUSES = ("draft", "published", "retired")


class PathwayVersion(Base):
    """One version of a pathway (its YAML definition as a mapping, every section kept,
    including those this code does not edit). One ``published`` version per pathway: the one
    new dossiers follow. Seeded from ``config/pathways/*.yaml``."""

    __tablename__ = "pathway_versions"
    __table_args__ = (UniqueConstraint("pathway_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pathway_id: Mapped[str] = mapped_column(String(60), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default="draft")
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(default=None)


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


class DecisionLogPosition(Base):
    """How far each file of the care-circle module's decision log is loaded into the audit
    (bytes of whole lines), so every decision is loaded once."""

    __tablename__ = "decision_log_positions"
    file: Mapped[str] = mapped_column(String(255), primary_key=True)
    offset: Mapped[int] = mapped_column(Integer, default=0)


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


class FormDraft(Base):
    """A pathway form being filled: one draft per author and form, kept until submitted."""

    __tablename__ = "form_drafts"
    __table_args__ = (UniqueConstraint("dossier_id", "form_id", "author", name="uq_form_draft"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    form_id: Mapped[str] = mapped_column(String(60))
    form_version: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
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


class RoomPurge(Base):
    """A room of a purged dossier that the homeserver must delete with its history and
    media (the appservice does it through Synapse's admin API). No foreign key: the
    dossier is gone; nothing here is health data."""

    __tablename__ = "room_purges"
    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(String(32), index=True)
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class RoomMedia(Base):
    """A file sent in a dossier's room (the bot reads it in the encrypted event: the
    homeserver cannot), so the room's purge deletes it from the media store too. The
    ``mxc://`` address only: no name, no content."""

    __tablename__ = "room_media"
    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    mxc: Mapped[str] = mapped_column(String(500), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


# -- national directory (Annuaire Santé extracts) --------------------------------------
# Public professional data (not health data): kept in the store, written only by the import
# (``dossier_api.domain.directory_import``), searched by ``dossier_api.domain.directory``.


class DirectoryImport(Base):
    """One run of ``maillon directory import`` over one file: its counts and rejections."""

    __tablename__ = "directory_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # activite (personne/activité), mssante
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    # The first rejections: [[line number, reason], …] (the report prints them).
    rejections: Mapped[list[Any]] = mapped_column(JSON, default=list)


class DirectoryRecord(Base):
    """A professional of the national directory (one per ``Identification nationale PP``),
    with their activities; ``listed`` false once a newer extract no longer has them."""

    __tablename__ = "directory_entries"
    # SQLite; on PostgreSQL, a partial index of the listed entries in name order instead
    # (migration 0230, read by dossier_api.domain.directory for broad searches).
    __table_args__ = (Index("ix_directory_entries_sort", "listed", "sort_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    national_id: Mapped[str] = mapped_column(String(20), unique=True)
    id_type: Mapped[str] = mapped_column(String(1))  # 8 RPPS, 0 ADELI
    identifier: Mapped[str] = mapped_column(String(11), index=True)
    last_name: Mapped[str] = mapped_column(String(200))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    profession_code: Mapped[str] = mapped_column(String(10))
    profession: Mapped[str] = mapped_column(String(200), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    sort_key: Mapped[str] = mapped_column(String(450))
    # Normalized words (no accents, lower case, hyphens as blanks) and filter tokens: what
    # the full-text index (PostgreSQL tsvector / SQLite FTS5) is built from.
    search_text: Mapped[str] = mapped_column(Text)
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    first_import_id: Mapped[int] = mapped_column(Integer)
    changed_import_id: Mapped[int] = mapped_column(Integer)


class DirectoryMailboxes(Base):
    """The MSSanté mailboxes the MSSanté extract lists for one ``Identification nationale
    PP`` (linked to the directory entry by that number)."""

    __tablename__ = "directory_mailboxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    national_id: Mapped[str] = mapped_column(String(20), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    first_import_id: Mapped[int] = mapped_column(Integer)
    changed_import_id: Mapped[int] = mapped_column(Integer)


class DirectoryWord(Base):
    """A word (full-text lexeme) of the national directory's entries, on PostgreSQL (kept by
    each import, never removed: a word no longer borne matches nothing): a search expands a
    prefix into the few words that start with it, which the full-text index intersects far
    faster than a prefix of common words (``dossier_api.domain.directory``)."""

    __tablename__ = "directory_words"
    word: Mapped[str] = mapped_column(Text, primary_key=True)


class DirectoryChange(Base):
    """History of the directory: each addition, change, removal and relisting, with the
    content it replaced."""

    __tablename__ = "directory_changes"
    __table_args__ = (Index("ix_directory_changes_key", "kind", "national_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("directory_imports.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    national_id: Mapped[str] = mapped_column(String(20))
    change: Mapped[str] = mapped_column(String(10))  # added, changed, removed, relisted
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class DirectoryStaging(Base):
    """Lines of the import under way, by key (so a file in any order is grouped per
    professional in bounded memory); emptied at the end of the run."""

    __tablename__ = "directory_staging"
    __table_args__ = (Index("ix_directory_staging_key", "import_id", "national_id", "line_no"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(Integer)
    national_id: Mapped[str] = mapped_column(String(20))
    line_no: Mapped[int] = mapped_column(Integer)
    # The line's fields kept, joined by U+001F (never in the extracts); None: rejected.
    fields: Mapped[str | None] = mapped_column(Text, default=None)


class WebSession(Base):
    """A session of the workspace pages or of a widget (``dossier_api.http.sessions``).
    Only a digest of the session id is stored (a reader of the table cannot use one); it
    holds no health data: who, how it was opened, when it was last used and when it ends."""

    __tablename__ = "web_sessions"
    id_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(12))  # password, openid, sso
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)


# -- resource teams (équipes ressources, ``dossier_api.domain.teams``) ---------------------


# What a room's membership event did (``RoomActivity.kind`` besides "message").
MEMBERSHIPS = ("invite", "join", "leave", "kick", "ban")
# The words of resource teams and their solicitations (``dossier_api.domain.teams``): the
# team's level, the solicitation's kind, its statuses and those of its steps (the events add
# "escalade" and "declinee").
LEVELS = {"regionale": "régionale", "departementale": "départementale"}
KINDS = {"avis": "avis (télé-expertise)", "prise_en_charge": "prise en charge"}
STATUSES = {
    "envoyee": "envoyée",
    "vue": "vue",
    "acceptee": "acceptée",
    "repondue": "répondue",
    "close": "close",
    "refusee": "refusée",
    "expiree": "expirée",
}
STEPS = {
    **STATUSES,
    "escalade": "escalade au niveau suivant",
    "declinee": "déclinée par un membre de l'équipe",
}
# The same words in English (pages and bot in English).
LEVELS_EN = {"regionale": "regional", "departementale": "departmental"}
KINDS_EN = {"avis": "advice (tele-expertise)", "prise_en_charge": "care"}
STEPS_EN = {
    "envoyee": "sent",
    "vue": "seen",
    "acceptee": "accepted",
    "repondue": "answered",
    "close": "closed",
    "refusee": "refused",
    "expiree": "expired",
    "escalade": "escalated to the next level",
    "declinee": "declined by a team member",
}


class Team(Base):
    """A regional or departmental expert team a care circle can solicit. ``rota``: the
    weekly on-duty pattern and its dated exceptions (Europe/Paris; see ``teams.Rota``),
    None: every member is on duty."""

    __tablename__ = "teams"
    slug: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    structure_id: Mapped[str | None] = mapped_column(ForeignKey("structures.id"), default=None)
    level: Mapped[str] = mapped_column(String(16))  # regionale, departementale
    expertise: Mapped[str] = mapped_column(String(200), default="")
    pathways: Mapped[list[str]] = mapped_column(JSON, default=list)
    territory: Mapped[str] = mapped_column(String(200), default="")
    response_seconds: Mapped[int] = mapped_column(Integer, default=4 * 3600)
    # After the solicitation ends, how long the accepter stays in the circle.
    exit_delay_seconds: Mapped[int] = mapped_column(Integer, default=7 * 86400)
    structure_account: Mapped[str | None] = mapped_column(String(255), default=None)
    rota: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TeamMember(Base):
    """A member of a team, with their role in it; ``coordinator``: keeps the rota and is the
    chain's step after the rota levels."""

    __tablename__ = "team_members"
    team_slug: Mapped[str] = mapped_column(ForeignKey("teams.slug"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(80), default="")
    coordinator: Mapped[bool] = mapped_column(Boolean, default=False)


class Solicitation(Base):
    """A circle member's request to a team about a dossier (``kind`` avis or
    prise_en_charge). The reason and the report are health data, sealed. ``step``: how far
    along the escalation chain it went; ``notified``: who was told at that step.
    ``accepted_by`` is set by one conditional update: the first accepter wins."""

    __tablename__ = "solicitations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Across regions, one of them is None: an outgoing solicitation (our dossier, a peer
    # server's team address ``remote_team``) or an incoming one (our team, a peer server's
    # patient room ``room_id``, no dossier here; ``relayed_at``: its outcome was told back
    # to that room by the team's address).
    team_slug: Mapped[str | None] = mapped_column(ForeignKey("teams.slug"), index=True)
    # Or a structure's (its address invited: its référents, then managers, then account).
    structure_id: Mapped[str | None] = mapped_column(
        ForeignKey("structures.id"), default=None, index=True
    )
    dossier_id: Mapped[str | None] = mapped_column(ForeignKey("dossiers.id"), index=True)
    remote_team: Mapped[str | None] = mapped_column(String(255), default=None)
    room_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    relayed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    requester: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[dict[str, Any]] = mapped_column(Sealed())
    status: Mapped[str] = mapped_column(String(12), default="envoyee", index=True)
    attested: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(Integer, default=0)
    notified: Mapped[list[str]] = mapped_column(JSON, default=list)
    deadline: Mapped[dt.datetime] = mapped_column()
    accepted_by: Mapped[str | None] = mapped_column(String(255), default=None)
    circle_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("circle_members.id"), default=None, unique=True
    )
    report: Mapped[dict[str, Any] | None] = mapped_column(Sealed(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SolicitationEvent(Base):
    """One step of a solicitation (sent, seen, accepted, declined, escalated, expired,
    answered, closed), dated and attributed; ``people``: who is told of it."""

    __tablename__ = "solicitation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    solicitation_id: Mapped[int] = mapped_column(ForeignKey("solicitations.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(12))
    people: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Whom the bot has told so far ("" for the patient room), written after each message it
    # sent: a bot restarted, or its standby taking over, tells nobody twice.
    told: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set once the bot told ``people`` (their "Sollicitations" chat): the outbox it reads.
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)


class ExtractionSettings(Base):
    """The columns of a structure's raw extraction the administrator allows (None: the
    default columns, no identity)."""

    __tablename__ = "extraction_settings"
    structure_id: Mapped[str] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    columns: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# A monthly report's PDF, sealed with its row's id as associated data (cannot move to
# another structure's row).
REPORT_PDF = RowSealed("id")


class SealedMonth(Base):
    """A month whose month-final activity counts are in ``indicator_months`` (computed once
    the month is over, never again — unless a merge or a purge rewrites the past, which
    forgets them all: ``indicators.forget_sealed``)."""

    __tablename__ = "indicator_sealed_months"
    month: Mapped[dt.date] = mapped_column(primary_key=True)
    sealed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IndicatorMonth(Base):
    """One activity count of a closed month for the dossiers of a structure ("": none) and
    a pathway (``indicators.SEALED``: counts of dated facts that never change)."""

    __tablename__ = "indicator_months"
    month: Mapped[dt.date] = mapped_column(
        ForeignKey("indicator_sealed_months.month", ondelete="CASCADE"), primary_key=True
    )
    structure_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pathway: Mapped[str] = mapped_column(String(60), primary_key=True)
    key: Mapped[str] = mapped_column(String(30), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class MonthlyReport(Base):
    """A structure's monthly activity report (aggregates only, no person): made once per
    structure and month, then mailed to its référents and downloadable. Its PDF is derived
    from health data (``REPORT_PDF``: sealed like every other binary column)."""

    __tablename__ = "monthly_reports"
    __table_args__ = (UniqueConstraint("structure_id", "month", name="uq_monthly_report"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    structure_id: Mapped[str] = mapped_column(ForeignKey("structures.id"), index=True)
    month: Mapped[str] = mapped_column(String(7))  # AAAA-MM
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(REPORT_PDF, deferred=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)


# What became of an invitation (``enrolment``) and of its mail through the relay.
ENROLMENT_STATUSES = ("pending", "accepted", "cancelled", "expired")
ENROLMENT_MAIL = ("queued", "sent", "failed")


class Enrolment(Base):
    """An account asked for a professional of the national directory who has none
    (``dossier_api.domain.enrolment``): a coordinator's invitation into a care circle
    (``kind`` "invitation": a single-use link mailed to their MSSanté address), or the
    professional's own request by RPPS (``kind`` "self": a code mailed to that address).
    Only a digest of the link's secret or of the code is kept. A pending invitation gives
    nothing of the dossier: its circle entry is written only when the account is made."""

    __tablename__ = "enrolments"
    __table_args__ = (Index("ix_enrolments_rpps", "rpps", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(12))  # invitation, self
    rpps: Mapped[str] = mapped_column(String(11))
    national_id: Mapped[str | None] = mapped_column(String(20), default=None)
    mailbox: Mapped[str | None] = mapped_column(String(255), default=None)
    dossier_id: Mapped[str | None] = mapped_column(
        ForeignKey("dossiers.id"), default=None, index=True
    )
    role: Mapped[str | None] = mapped_column(String(12), default=None)
    coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    invited_by: Mapped[str | None] = mapped_column(String(255), default=None)
    # Where a self-enrolment request came from (rate limit per source address).
    source: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    secret_digest: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_by: Mapped[str | None] = mapped_column(String(255), default=None)
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)


# -- favourites (groupes de favoris, ``dossier_api.domain.favourites``) ---------------------


class FavouriteGroup(Base):
    """A professional's named group of colleagues (only its owner sees it); ``name_key``:
    the name folded (one group per name and owner, whatever the accents and case)."""

    __tablename__ = "favourite_groups"
    __table_args__ = (UniqueConstraint("owner", "name_key", name="uq_favourite_group_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(80))
    name_key: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FavouriteMember(Base):
    """A colleague of a favourites group, a person of the directory: a Maillon account
    (``user_id``, bound in the directory) or a professional of the national directory
    without one yet (``rpps``); ``role``: the circle role they take when the group is
    invited into a dossier (None: the role the invite gives)."""

    __tablename__ = "favourite_members"
    __table_args__ = (
        UniqueConstraint("group_id", "user_id", name="uq_favourite_member_user"),
        UniqueConstraint("group_id", "rpps", name="uq_favourite_member_rpps"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("favourite_groups.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    rpps: Mapped[str | None] = mapped_column(String(11), default=None)
    role: Mapped[str | None] = mapped_column(String(12), default=None)
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
