"""Durable spool of the mail relay: accepted mails, mail threads, outgoing mails.

Every mail body, address and subject is sealed (AES-GCM) at rest, each bound to its row
(``RowSealed``: part of the registry of sealed columns that key rotation walks); only hashes
of Message-IDs (for threading and de-duplication) and routing keys are in clear.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from maillon.shared.clock import utcnow
from maillon.shared.sealed import RowSealed
from maillon.shared.store import Base

# Sealed payloads, each bound to a column of its row (token, Message-ID hash).
SPOOL_MAIL = RowSealed("token")
THREAD_META = RowSealed("message_id_hash")
OUTBOX_MAIL = RowSealed("token")


class MailSpool(Base):
    """One accepted mail for one dossier (or a delivery report about a mail we sent).
    Stored before the SMTP ``250``; delivered into the room exactly once: the Matrix
    transaction ids derive from ``id``, ``event_id`` is set once the mail is posted."""

    __tablename__ = "mail_spool"
    __table_args__ = (UniqueConstraint("dossier_id", "dedup_key", name="uq_mail_spool_dedup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12))  # "mail" or "bounce"
    source: Mapped[str] = mapped_column(String(8))  # "smtp" or "imap"
    dossier_id: Mapped[str] = mapped_column(String(32))
    room_id: Mapped[str] = mapped_column(String(255), index=True)
    # sha256 of the Message-ID (or of the whole mail when it has none): a mail resent
    # by its sender, or seen both over SMTP and IMAP, is stored once per dossier.
    dedup_key: Mapped[str] = mapped_column(String(64))
    # Random value: the sealing context of the payload.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    sealed_mail: Mapped[bytes] = mapped_column(SPOOL_MAIL)
    accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_id: Mapped[str | None] = mapped_column(String(255), default=None)
    parts_done: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class MailThread(Base):
    """A mail posted into a room (or sent from it): Matrix event and thread root, so that
    replies by mail land in the right thread and replies in Matrix become mails."""

    __tablename__ = "mail_threads"
    __table_args__ = (
        UniqueConstraint("room_id", "message_id_hash", name="uq_mail_threads_message"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(String(255))
    message_id_hash: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(255), index=True)
    root_event_id: Mapped[str] = mapped_column(String(255), index=True)
    # Message-ID, references, reply address and subject: sealed.
    sealed_meta: Mapped[bytes] = mapped_column(THREAD_META)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MailOutbox(Base):
    """A mail to send: a reply written in a mail thread, or the bot's ``!mail``.
    One per Matrix event (``source_event_id``), so a message is never mailed twice."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(String(255))
    source_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    thread_root_event_id: Mapped[str | None] = mapped_column(String(255), default=None)
    message_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    sealed_mail: Mapped[bytes] = mapped_column(OUTBOX_MAIL)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    failed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    reported_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
