"""Store transactions durably before acknowledging them; process their events once each."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from appservice.models import EVENT_CONTENT, AsEvent, AsTransaction
from maillon.shared.clock import utcnow
from maillon.shared.crypto import KeyRing
from maillon.shared.store import insert_or_skip

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]

MAX_ATTEMPTS = 20  # then the event stays in the store, unprocessed, with its last error
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds after the 1st, 2nd… failure


def retry_delay(attempts: int) -> float:
    """Seconds to wait before the next try of an event that failed ``attempts`` times."""
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]


def kept_part(event: dict[str, Any]) -> dict[str, Any]:
    """What of an event the appservice keeps: all of it, except the ciphertext of an
    end-to-end encrypted message, which no handler can read (the keys stay with the
    clients). Sealing and storing it would only cost time and space."""
    if event.get("type") != "m.room.encrypted" or "state_key" in event:
        return event
    content = event.get("content")
    kept = {k: v for k, v in event.items() if k != "content"}
    if isinstance(content, dict):
        kept["content"] = {k: content[k] for k in ("algorithm", "m.relates_to") if k in content}
    return kept


def _always(event: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Routing:
    """What the store does with each new event of a transaction, in the database
    transaction that stores it (committed before the homeserver hears the 200):

    - ``at_store(connection, events)`` is given every new event: what only writes to the
      store (a message recorded as room activity) is done there, at no extra round trip;
    - ``queued(event)``: whether a handler must still see the event afterwards (it acts on
      the homeserver, may fail and be tried again). An event no handler wants is stored
      already processed and without its content, which nothing would ever open.

    By default every event is queued, and nothing is done at store time."""

    queued: Callable[[dict[str, Any]], bool] = _always
    at_store: Callable[[Connection, Sequence[dict[str, Any]]], None] | None = field(default=None)


class MalformedTransaction(ValueError):
    """The pushed body is not a transaction we can store; the message says why."""


@dataclass(frozen=True)
class StoreResult:
    replayed: bool
    new_events: int
    duplicate_events: int
    queued_events: int = 0  # of the new events, those a handler must still see


def _digest(events: Sequence[dict[str, Any]]) -> str:
    canonical = json.dumps(events, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def _validated_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    events = body.get("events", [])
    if not isinstance(events, list):
        raise MalformedTransaction("« events » doit être une liste")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise MalformedTransaction(f"events[{index}] n'est pas un objet")
        for key in ("event_id", "room_id", "type", "sender"):
            if not isinstance(event.get(key), str):
                raise MalformedTransaction(f"events[{index}].{key} manque ou n'est pas un texte")
    return events


class TransactionStore:
    def __init__(self, engine: Engine, keys: KeyRing, routing: Routing | None = None) -> None:
        self._engine = engine
        self._keys = keys
        self.routing = routing or Routing()

    def store(self, txn_id: str, body: dict[str, Any]) -> StoreResult:
        """Commit the transaction and its new events in one database transaction; the
        events no handler wants are settled in it too (``Routing``)."""
        events = _validated_events(body)
        digest = _digest(events)
        routing = self.routing
        now = utcnow()
        with self._engine.begin() as conn:
            txn_pk = conn.execute(
                insert_or_skip(conn, AsTransaction)
                .values(txn_id=txn_id, digest=digest, event_count=len(events), received_at=now)
                .returning(AsTransaction.id)
            ).scalar()
            if txn_pk is None:  # the same id with the same events: a replay
                return StoreResult(replayed=True, new_events=0, duplicate_events=len(events))
            unique = list({e["event_id"]: e for e in events}.values())
            rows = [self._row(event, txn_pk, now, routing.queued(event)) for event in unique]
            inserted: set[str] = set()
            if rows:  # events already stored (by an earlier transaction) are left alone
                inserted = set(
                    conn.execute(
                        insert_or_skip(conn, AsEvent).values(rows).returning(AsEvent.event_id)
                    ).scalars()
                )
            new = [e for e in unique if e["event_id"] in inserted]
            if new and routing.at_store is not None:
                routing.at_store(conn, new)
        queued = sum(1 for r in rows if r["event_id"] in inserted and r["processed_at"] is None)
        return StoreResult(
            replayed=False,
            new_events=len(new),
            duplicate_events=len(events) - len(new),
            queued_events=queued,
        )

    def _row(
        self, event: dict[str, Any], txn_pk: int, now: dt.datetime, queued: bool
    ) -> dict[str, Any]:
        event_id = event["event_id"]
        ts = event.get("origin_server_ts")
        return {
            "event_id": event_id,
            "room_id": event["room_id"],
            "event_type": event["type"],
            "sender": event["sender"],
            "origin_server_ts": ts if isinstance(ts, int) else 0,
            "transaction_id": txn_pk,
            "sealed_event": (
                EVENT_CONTENT.seal_json(self._keys, kept_part(event), event_id) if queued else None
            ),
            "received_at": now,
            "processed_at": None if queued else now,
            "attempts": 0 if queued else 1,
        }

    def pending(
        self, limit: int = 100, waiting: Sequence[int] = ()
    ) -> list[tuple[int, dict[str, Any]]]:
        """Unprocessed events in order, but those ``waiting`` for their retry time."""
        query = select(AsEvent.seq, AsEvent.event_id, AsEvent.sealed_event).where(
            AsEvent.processed_at.is_(None),
            AsEvent.attempts < MAX_ATTEMPTS,
            AsEvent.sealed_event.is_not(None),  # always so: only settled events have none
        )
        if waiting:
            query = query.where(AsEvent.seq.not_in(list(waiting)))
        with Session(self._engine) as session:
            rows = session.execute(query.order_by(AsEvent.seq).limit(limit)).all()
        return [
            (seq, EVENT_CONTENT.open_json(self._keys, sealed, eid))
            for seq, eid, sealed in rows
            if sealed is not None
        ]

    def mark_processed(self, seqs: list[int]) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(AsEvent)
                .where(AsEvent.seq.in_(seqs), AsEvent.processed_at.is_(None))
                .values(processed_at=utcnow(), attempts=AsEvent.attempts + 1)
            )

    def mark_failed(self, seq: int, reason: str) -> int:
        """Record a failed try; returns how many tries failed so far."""
        with Session(self._engine) as session, session.begin():
            event = session.get(AsEvent, seq)
            if event is None:
                return MAX_ATTEMPTS
            event.attempts += 1
            event.last_error = reason[:500]
            return event.attempts

    def backlog(self) -> int:
        with Session(self._engine) as session:
            count = session.scalar(
                select(func.count()).select_from(AsEvent).where(AsEvent.processed_at.is_(None))
            )
        return int(count or 0)
