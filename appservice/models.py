"""Durable store of the transactions and events the homeserver pushes to the appservice."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from maillon.shared.clock import utcnow
from maillon.shared.sealed import RowSealed
from maillon.shared.store import Base

# The event, sealed with its event id as context.
EVENT_CONTENT = RowSealed("event_id")


class AsTransaction(Base):
    """One transaction as received. A replay has the same txn id *and* the same digest;
    a homeserver whose txn ids restart sends a new digest and is stored anew."""

    __tablename__ = "as_transactions"
    __table_args__ = (UniqueConstraint("txn_id", "digest", name="uq_as_txn_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txn_id: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AsEvent(Base):
    """One event, stored once per event id; its content is sealed (AES-GCM) at rest, and
    only kept for the events a handler processes after the store (``transactions.Routing``):
    the others are processed when stored, and their content is never kept."""

    __tablename__ = "as_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    room_id: Mapped[str] = mapped_column(String(255), index=True)
    event_type: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    origin_server_ts: Mapped[int] = mapped_column(BigInteger)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("as_transactions.id"))
    sealed_event: Mapped[bytes | None] = mapped_column(EVENT_CONTENT, default=None)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
