"""Store transactions durably before acknowledging them; process their events once each."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session

from appservice.models import EVENT_CONTENT, AsEvent, AsTransaction
from maillon.shared.clock import utcnow
from maillon.shared.crypto import KeyRing

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


class MalformedTransaction(ValueError):
    """The pushed body is not a transaction we can store; the message says why."""


@dataclass(frozen=True)
class StoreResult:
    replayed: bool
    new_events: int
    duplicate_events: int


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
    def __init__(self, engine: Engine, keys: KeyRing) -> None:
        self._engine = engine
        self._keys = keys

    def store(self, txn_id: str, body: dict[str, Any]) -> StoreResult:
        """Commit the transaction and its new events in one database transaction."""
        events = _validated_events(body)
        digest = _digest(events)
        with Session(self._engine) as session, session.begin():
            seen = session.scalar(
                select(AsTransaction.id).where(
                    AsTransaction.txn_id == txn_id, AsTransaction.digest == digest
                )
            )
            if seen is not None:
                return StoreResult(replayed=True, new_events=0, duplicate_events=len(events))
            txn = AsTransaction(txn_id=txn_id, digest=digest, event_count=len(events))
            session.add(txn)
            session.flush()
            ids = [e["event_id"] for e in events]
            known = set(session.scalars(select(AsEvent.event_id).where(AsEvent.event_id.in_(ids))))
            rows = []
            for event in events:
                event_id = event["event_id"]
                if event_id in known:
                    continue
                known.add(event_id)
                ts = event.get("origin_server_ts")
                rows.append(
                    {
                        "event_id": event_id,
                        "room_id": event["room_id"],
                        "event_type": event["type"],
                        "sender": event["sender"],
                        "origin_server_ts": ts if isinstance(ts, int) else 0,
                        "transaction_id": txn.id,
                        "sealed_event": EVENT_CONTENT.seal_json(
                            self._keys, kept_part(event), event_id
                        ),
                        "received_at": utcnow(),
                        "attempts": 0,
                    }
                )
            if rows:
                session.execute(insert(AsEvent), rows)
            new = len(rows)
        return StoreResult(replayed=False, new_events=new, duplicate_events=len(events) - new)

    def pending(
        self, limit: int = 100, waiting: Sequence[int] = ()
    ) -> list[tuple[int, dict[str, Any]]]:
        """Unprocessed events in order, but those ``waiting`` for their retry time."""
        query = select(AsEvent.seq, AsEvent.event_id, AsEvent.sealed_event).where(
            AsEvent.processed_at.is_(None), AsEvent.attempts < MAX_ATTEMPTS
        )
        if waiting:
            query = query.where(AsEvent.seq.not_in(list(waiting)))
        with Session(self._engine) as session:
            rows = session.execute(query.order_by(AsEvent.seq).limit(limit)).all()
        return [
            (seq, EVENT_CONTENT.open_json(self._keys, sealed, eid)) for seq, eid, sealed in rows
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
