"""Durable spool of the relay (blocking calls: run them in a thread).

Payloads are sealed with the deployment's key ring through their column types (see
``maillon.shared.sealed``); the sealing context is the row's random token (or Message-ID
hash), so a payload cannot be moved to another row unnoticed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dossier_api.domain.mail.models import (
    OUTBOX_MAIL,
    SPOOL_MAIL,
    THREAD_META,
    MailOutbox,
    MailSpool,
    MailThread,
)
from dossier_api.domain.mail.routing import Target
from maillon.shared.clock import utcnow
from maillon.shared.crypto import KeyRing
from maillon.shared.store import reading

# PostgreSQL NOTIFY channel: a mail was spooled (the poster LISTENs, see appservice.mail.wakeup).
SPOOL_CHANNEL = "maillon_mail_spool"
T = TypeVar("T")


def message_id_hash(message_id: str) -> str:
    return hashlib.sha256(message_id.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class SpoolItem:
    id: int
    kind: str
    room_id: str
    dossier_id: str
    event_id: str | None
    parts_done: int
    attempts: int
    accepted_at: dt.datetime
    waiting: bool = False  # a retry not due yet (it holds back the rest of its thread)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    room_id: str
    source_event_id: str
    thread_root_event_id: str | None
    attempts: int
    mail: dict[str, Any]


def _pack(meta: dict[str, Any], raw: bytes) -> bytes:
    return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + raw


def _unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, raw = data.partition(b"\n")
    meta = json.loads(head)
    return (meta if isinstance(meta, dict) else {}), raw


class Spool:
    def __init__(self, engine: Engine, keys: KeyRing) -> None:
        self._engine = engine
        self._keys = keys

    # -- inbound ---------------------------------------------------------------------

    def accept(
        self,
        raw: bytes,
        meta: dict[str, Any],
        targets: list[Target],
        dedup_key: str,
        kind: str = "mail",
        source: str = "smtp",
    ) -> list[int]:
        """Store the mail once per target dossier, in one commit; return the new ids
        (a target that already has this mail is skipped: the sender resent it)."""
        return self.in_transaction(
            lambda session: self.add(session, raw, meta, targets, dedup_key, kind, source)
        )

    def in_transaction(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction, committed when it returns: what it stored is then
        durable (only then may the sender hear ``250``). Run again from the start when a
        concurrent copy of the same mail was committed first (the dedup key is unique):
        the second run finds that copy."""
        tries = 3
        while True:
            try:
                with Session(self._engine) as session, session.begin():
                    return work(session)
            except IntegrityError:
                tries -= 1
                if tries == 0:
                    raise

    def add(
        self,
        session: Session,
        raw: bytes,
        meta: dict[str, Any],
        targets: list[Target],
        dedup_key: str,
        kind: str,
        source: str,
    ) -> list[int]:
        """Add the mail once per target dossier to ``session``'s transaction; the new ids
        (a target that already has this mail is skipped: the sender resent it)."""
        known = set(
            session.scalars(
                select(MailSpool.dossier_id).where(
                    MailSpool.dedup_key == dedup_key,
                    MailSpool.dossier_id.in_([t.dossier_id for t in targets]),
                )
            )
        )
        rows = []
        for target in targets:
            if target.dossier_id in known:
                continue
            known.add(target.dossier_id)
            token = secrets.token_hex(16)
            row = MailSpool(
                kind=kind,
                source=source,
                dossier_id=target.dossier_id,
                room_id=target.room_id,
                dedup_key=dedup_key,
                token=token,
                sealed_mail=SPOOL_MAIL.seal(self._keys, _pack(meta, raw), token),
                accepted_at=utcnow(),
                parts_done=0,
                attempts=0,
            )
            session.add(row)
            rows.append(row)
        session.flush()
        if rows and self._engine.dialect.name == "postgresql":
            # Wakes the poster, whichever process took the mail (at commit).
            session.execute(select(func.pg_notify(SPOOL_CHANNEL, "")))
        return [row.id for row in rows]

    def due(self, limit: int = 200) -> list[SpoolItem]:
        """The mails not yet delivered (nor failed for good), in acceptance order; those
        whose next attempt is not due yet are ``waiting``."""
        now = utcnow()
        with Session(self._engine) as session:
            rows = session.execute(
                select(
                    MailSpool.id,
                    MailSpool.kind,
                    MailSpool.room_id,
                    MailSpool.dossier_id,
                    MailSpool.event_id,
                    MailSpool.parts_done,
                    MailSpool.attempts,
                    MailSpool.accepted_at,
                    MailSpool.next_attempt_at,
                )
                .where(MailSpool.delivered_at.is_(None), MailSpool.failed_at.is_(None))
                .order_by(MailSpool.id)
                .limit(limit)
            ).all()
        return [
            SpoolItem(
                *row[:7],
                row.accepted_at,
                waiting=row.next_attempt_at is not None and row.next_attempt_at > now,
            )
            for row in rows
        ]

    def payload(self, spool_id: int) -> tuple[dict[str, Any], bytes]:
        with Session(self._engine) as session:
            row = session.get(MailSpool, spool_id)
            assert row is not None
            data = SPOOL_MAIL.open(self._keys, row.sealed_mail, row.token)
        return _unpack(data)

    def payloads(self, spool_ids: list[int]) -> dict[int, tuple[dict[str, Any], bytes]]:
        """:meth:`payload` of several mails, in one query."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(MailSpool.id, MailSpool.sealed_mail, MailSpool.token).where(
                    MailSpool.id.in_(spool_ids)
                )
            ).all()
            return {
                row.id: _unpack(SPOOL_MAIL.open(self._keys, row.sealed_mail, row.token))
                for row in rows
            }

    def record_main_event(
        self,
        spool_id: int,
        room_id: str,
        event_id: str,
        root: str,
        thread_meta: dict[str, Any],
        delivered: bool = False,
    ) -> None:
        """The mail's message is in the room: remember it (and its place in the thread);
        ``delivered`` when it has nothing more to post (no attachment): one commit."""
        with Session(self._engine) as session, session.begin():
            values: dict[str, Any] = {"event_id": event_id, "parts_done": 1}
            if delivered:
                values["delivered_at"] = utcnow()
            session.execute(update(MailSpool).where(MailSpool.id == spool_id).values(**values))
            self._add_thread(session, room_id, event_id, root, thread_meta)

    def _add_thread(
        self,
        session: Session,
        room_id: str,
        event_id: str,
        root: str,
        thread_meta: dict[str, Any],
    ) -> None:
        message_id = thread_meta.get("message_id")
        if not message_id:
            return
        digest = message_id_hash(message_id)
        exists = session.scalar(
            select(MailThread.id).where(
                MailThread.room_id == room_id, MailThread.message_id_hash == digest
            )
        )
        if exists is None:
            session.add(
                MailThread(
                    room_id=room_id,
                    message_id_hash=digest,
                    event_id=event_id,
                    root_event_id=root,
                    sealed_meta=THREAD_META.seal_json(self._keys, thread_meta, digest),
                    created_at=utcnow(),
                )
            )

    def record_part(self, spool_id: int, parts_done: int) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(MailSpool).where(MailSpool.id == spool_id).values(parts_done=parts_done)
            )

    def mark_delivered(self, spool_id: int) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(MailSpool)
                .where(MailSpool.id == spool_id)
                .values(delivered_at=utcnow(), last_error=None)
            )

    def mark_retry(self, spool_id: int, error: str, delay: float, final: bool) -> None:
        with Session(self._engine) as session, session.begin():
            row = session.get(MailSpool, spool_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = error[:500]
            row.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
            if final:
                row.failed_at = utcnow()

    def thread_root(self, room_id: str, message_ids: tuple[str, ...]) -> str | None:
        """The thread root of the nearest known mail among those a mail answers."""
        if not message_ids:
            return None
        digests = [message_id_hash(m) for m in message_ids]
        with Session(self._engine) as session:
            rows = dict(
                session.execute(
                    select(MailThread.message_id_hash, MailThread.root_event_id).where(
                        MailThread.room_id == room_id, MailThread.message_id_hash.in_(digests)
                    )
                ).all()
            )
        for digest in digests:
            if digest in rows:
                return str(rows[digest])
        return None

    def thread_latest(self, room_id: str, root_event_id: str) -> dict[str, Any] | None:
        """What the latest mail of a thread said (for a reply): message id, references,
        reply address, subject; None if the thread is not a mail thread."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(MailThread.message_id_hash, MailThread.sealed_meta)
                .where(MailThread.room_id == room_id, MailThread.root_event_id == root_event_id)
                .order_by(MailThread.id)
            ).all()
        if not rows:
            return None
        metas = [THREAD_META.open_json(self._keys, sealed, digest) for digest, sealed in rows]
        latest: dict[str, Any] = dict(metas[-1])
        # The address to answer is the last correspondent's (not our own outgoing mails').
        for meta in reversed(metas):
            if not meta.get("ours"):
                latest["reply_to"] = meta.get("reply_to")
                latest["subject"] = meta.get("subject", "")
                break
        return latest

    def counts(self) -> dict[str, int]:
        with Session(self._engine) as session:
            pending = session.scalar(
                select(func.count())
                .select_from(MailSpool)
                .where(MailSpool.delivered_at.is_(None), MailSpool.failed_at.is_(None))
            )
            outbox = session.scalar(
                select(func.count())
                .select_from(MailOutbox)
                .where(MailOutbox.sent_at.is_(None), MailOutbox.failed_at.is_(None))
            )
        return {"spool_pending": int(pending or 0), "outbox_pending": int(outbox or 0)}

    # -- outbound --------------------------------------------------------------------

    def is_ours(self, message_id: str | None, session: Session | None = None) -> bool:
        """Whether we sent this mail (it is never imported back)."""
        if not message_id:
            return False
        with reading(self._engine, session) as read:
            return (
                read.scalar(
                    select(MailOutbox.id).where(
                        MailOutbox.message_id_hash == message_id_hash(message_id)
                    )
                )
                is not None
            )

    def outbox_for(
        self, message_id: str, session: Session | None = None
    ) -> tuple[str, str, str | None, str] | None:
        """(room, source event, thread root, recipients) of a mail we sent."""
        with reading(self._engine, session) as read:
            row = read.scalar(
                select(MailOutbox).where(MailOutbox.message_id_hash == message_id_hash(message_id))
            )
            if row is None:
                return None
            mail = OUTBOX_MAIL.open_json(self._keys, row.sealed_mail, row.token)
            to = ", ".join(mail.get("to", []))
            return row.room_id, row.source_event_id, row.thread_root_event_id, to

    def enqueue(
        self,
        room_id: str,
        source_event_id: str,
        thread_root_event_id: str | None,
        mail: dict[str, Any],
        session: Session | None = None,
    ) -> int | None:
        """Queue a mail (``mail["message_id"]`` set); None if this event was queued before.
        With ``session``, in that transaction (the mail leaves only if it commits)."""
        token = secrets.token_hex(16)

        def add(session: Session) -> int | None:
            if session.scalar(
                select(MailOutbox.id).where(MailOutbox.source_event_id == source_event_id)
            ):
                return None
            row = MailOutbox(
                room_id=room_id,
                source_event_id=source_event_id,
                thread_root_event_id=thread_root_event_id,
                message_id_hash=message_id_hash(mail["message_id"]),
                token=token,
                sealed_mail=OUTBOX_MAIL.seal_json(self._keys, mail, token),
                created_at=utcnow(),
                next_attempt_at=utcnow(),
                attempts=0,
            )
            session.add(row)
            session.flush()
            return row.id

        if session is not None:
            return add(session)
        try:
            with Session(self._engine) as own, own.begin():
                return add(own)
        except IntegrityError:
            return None

    def _outbox_items(self, condition: Any, limit: int) -> list[OutboxItem]:
        with Session(self._engine) as session:
            rows = session.scalars(
                select(MailOutbox).where(condition).order_by(MailOutbox.id).limit(limit)
            ).all()
            return [
                OutboxItem(
                    r.id,
                    r.room_id,
                    r.source_event_id,
                    r.thread_root_event_id,
                    r.attempts,
                    {
                        **OUTBOX_MAIL.open_json(self._keys, r.sealed_mail, r.token),
                        "error": r.last_error or "",
                    },
                )
                for r in rows
            ]

    def outbox_due(self, limit: int = 50) -> list[OutboxItem]:
        return self._outbox_items(
            and_(
                MailOutbox.sent_at.is_(None),
                MailOutbox.failed_at.is_(None),
                MailOutbox.next_attempt_at <= utcnow(),
            ),
            limit,
        )

    def outbox_unreported(self, limit: int = 50) -> list[OutboxItem]:
        """Mails whose failure is final and not yet said in their room."""
        return self._outbox_items(
            and_(MailOutbox.failed_at.is_not(None), MailOutbox.reported_at.is_(None)), limit
        )

    def outbox_sent(self, item: OutboxItem, thread_meta: dict[str, Any]) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(MailOutbox)
                .where(MailOutbox.id == item.id)
                .values(sent_at=utcnow(), attempts=item.attempts + 1, last_error=None)
            )
            if item.thread_root_event_id:
                self._add_thread(
                    session,
                    item.room_id,
                    item.source_event_id,
                    item.thread_root_event_id,
                    thread_meta,
                )

    def outbox_retry(self, item_id: int, error: str, delay: float | None) -> None:
        """A failed attempt: try again after ``delay`` seconds, or never (None: final)."""
        with Session(self._engine) as session, session.begin():
            row = session.get(MailOutbox, item_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = error[:500]
            if delay is None:
                row.failed_at = utcnow()
            else:
                row.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)

    def outbox_reported(self, item_id: int) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(MailOutbox).where(MailOutbox.id == item_id).values(reported_at=utcnow())
            )
