"""The bot's bridge to the dossier: the API's own ``DossierService`` in-process (same rights,
same audit, component "bot"), always called as the sender of the command, in a thread;
plus the bot's own small durable state (received and handled events, note threads, form
dialogues)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from coordination_bot.models import BotFormDialogue, BotHandledEvent, BotNoteThread
from dossier_api.domain.access import Caller
from dossier_api.domain.circle_members import active_members
from dossier_api.domain.models import Dossier
from dossier_api.domain.service import DossierService
from maillon.shared.room_sync_client import RoomSyncClient, main_room
from maillon.shared.settings import Deployment
from maillon.shared.store import insert_once

T = TypeVar("T")
Item = TypeVar("Item")


class GroupCommit(Generic[Item, T]):
    """Small writes asked for while one transaction is being committed go together in the
    next one: under load, one commit (one write lock, one fsync of a shared SQLite file)
    for many commands; alone, a write waits for nothing. ``write`` (run in a thread) does
    a batch in one transaction and returns one result per item, in order; if it fails,
    every item of the batch gets the error."""

    def __init__(self, write: Callable[[list[Item]], list[T]]) -> None:
        self._write = write
        self._waiting: list[tuple[Item, asyncio.Future[T]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await asyncio.to_thread(self._write, [item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writer = None


class Services:
    def __init__(
        self,
        engine: Engine,
        deployment: Deployment,
        room_sync: RoomSyncClient | None = None,
    ) -> None:
        self.engine = engine
        self.dossiers = DossierService(engine, deployment, component="bot")
        self.room_sync = room_sync
        self._room_dossier: dict[str, str] = {}  # a room's dossier never changes
        self._handling: set[str] = set()  # claimed events being handled by this instance
        self._finishes = GroupCommit(self._finish_all)
        self._note_links = GroupCommit(self._link_notes)

    async def sync_rooms(self, dossier_id: str) -> str | None:
        """Ask the appservice to carry the dossier's change into its rooms now (as the API
        does after a write); the main room id when known. The outbox retries anyway."""
        if self.room_sync is None:
            return None
        return main_room(await self.room_sync.sync(dossier_id))

    @staticmethod
    def caller(user_id: str) -> Caller:
        """The sender of a command: the bot never acts with rights of its own."""
        return Caller(user_id=user_id, is_admin=False, via="bot")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def as_sender(self, sender: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(Caller(sender), *args)`` of the service, in a thread."""
        return await asyncio.to_thread(fn, self.caller(sender), *args)

    # -- rooms and dossiers --------------------------------------------------------------

    def _dossier_of_room(self, room_id: str) -> str | None:
        known = self._room_dossier.get(room_id)
        if known is None:
            known = self.dossiers.dossier_id_for_room(room_id)
            if known is not None:
                if len(self._room_dossier) > 100_000:
                    self._room_dossier.clear()
                self._room_dossier[room_id] = known
        return known

    async def dossier_for_room(self, room_id: str) -> str | None:
        """The dossier of a patient room or side room (no access check: every command
        then calls the service as its sender)."""
        if room_id in self._room_dossier:
            return self._room_dossier[room_id]
        return await asyncio.to_thread(self._dossier_of_room, room_id)

    def _room_of(self, dossier_id: str) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(select(Dossier.room_id).where(Dossier.id == dossier_id))

    async def room_of(self, dossier_id: str) -> str | None:
        return await asyncio.to_thread(self._room_of, dossier_id)

    def _circle_users(self, room_id: str) -> set[str] | None:
        """Active members of the care circle of the room's dossier (None: not a patient
        room). Used only to decide which devices receive the bot's room keys."""
        dossier_id = self._dossier_of_room(room_id)
        if dossier_id is None:
            return None
        with Session(self.engine) as session:
            return {m.user_id for m in active_members(session, dossier_id)}

    async def circle_users(self, room_id: str) -> set[str] | None:
        return await asyncio.to_thread(self._circle_users, room_id)

    # -- received events (each handled once: none lost, none twice) ----------------------

    def _record_all(self, events: list[tuple[str, str]]) -> set[str]:
        """Each (event id, room id) recorded as pending unless it was already: one
        transaction. The ids already done (redeliveries)."""
        with self.engine.begin() as connection:
            known = [
                e
                for e, r in events
                if not insert_once(
                    connection, BotHandledEvent, {"event_id": e, "room_id": r, "done": False}
                )
            ]
            if not known:
                return set()
            query = select(BotHandledEvent.event_id).where(
                BotHandledEvent.event_id.in_(known), BotHandledEvent.done
            )
            return set(connection.scalars(query))

    def _claim(self, event_ids: list[str], done: set[str]) -> list[str]:
        """Those this instance handles now: not done, not already being handled here."""
        claimed = [e for e in dict.fromkeys(event_ids) if e not in done and e not in self._handling]
        self._handling.update(claimed)
        return claimed

    async def receive(self, events: list[tuple[str, str]]) -> list[str]:
        """The events of one sync response recorded (pending) in one transaction, before
        its sync token is saved; the ids to handle now (a done one is a redelivery; a
        pending one is handled unless this instance is handling it already)."""
        if not events:
            return []
        done = await asyncio.to_thread(self._record_all, events)
        return self._claim([e for e, _ in events], done)

    def _pending(self) -> list[tuple[str, str]]:
        with Session(self.engine) as session:
            query = (
                select(BotHandledEvent.event_id, BotHandledEvent.room_id)
                .where(BotHandledEvent.done.is_(False))
                .order_by(BotHandledEvent.handled_at)
            )
            return [(e, r) for e, r in session.execute(query)]

    async def claim_pending(self) -> list[tuple[str, str]]:
        """Becoming active: the (event id, room id) recorded but never handled (the
        instance that received them died first), claimed by this one."""
        rows = await asyncio.to_thread(self._pending)
        claimed = set(self._claim([e for e, _ in rows], set()))
        return [(e, r) for e, r in rows if e in claimed]

    def _finish_all(self, event_ids: list[str]) -> list[None]:
        with self.engine.begin() as connection:
            connection.execute(
                update(BotHandledEvent)
                .where(BotHandledEvent.event_id.in_(event_ids))
                .values(done=True)
            )
        return [None] * len(event_ids)

    async def finish(self, event_id: str) -> None:
        """A claimed event handled (answered, or needing no answer): done for good
        (marks made at the same time share a transaction)."""
        try:
            await self._finishes.submit(event_id)
        finally:
            self._handling.discard(event_id)

    def release(self, event_id: str) -> None:
        """A claimed event left pending (stopped before it was handled): the next active
        instance handles it."""
        self._handling.discard(event_id)

    def _forget_old(self, days: int) -> None:
        limit = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        with Session(self.engine) as session, session.begin():
            session.execute(delete(BotHandledEvent).where(BotHandledEvent.handled_at < limit))

    async def forget_old_events(self, days: int = 30) -> None:
        await asyncio.to_thread(self._forget_old, days)

    # -- liaison-note threads ------------------------------------------------------------

    def _link_notes(self, links: list[tuple[list[str], str, str]]) -> list[None]:
        """Each event of each (events, dossier, note) linked to its note unless it is
        already (to a note: the first link stays): one transaction."""
        with self.engine.begin() as connection:
            for event_ids, dossier_id, note_id in links:
                for event_id in event_ids:
                    values = {"event_id": event_id, "dossier_id": dossier_id, "note_id": note_id}
                    insert_once(connection, BotNoteThread, values)
        return [None] * len(links)

    async def link_note(self, event_ids: list[str], dossier_id: str, note_id: str) -> None:
        """The events of a note's thread (the command, the answer) lead to the note (links
        made at the same time share a transaction)."""
        await self._note_links.submit((event_ids, dossier_id, note_id))

    def _note_for(self, event_ids: list[str]) -> tuple[str, str] | None:
        with Session(self.engine) as session:
            for event_id in event_ids:
                row = session.get(BotNoteThread, event_id)
                if row is not None:
                    return row.dossier_id, row.note_id
        return None

    async def note_for(self, event_ids: list[str]) -> tuple[str, str] | None:
        return await asyncio.to_thread(self._note_for, event_ids)

    # -- form dialogues ------------------------------------------------------------------

    def _dialogue(self, room_id: str, user_id: str) -> BotFormDialogue | None:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(BotFormDialogue, (room_id, user_id))
            if row is not None:
                session.expunge(row)
            return row

    async def dialogue(self, room_id: str, user_id: str) -> BotFormDialogue | None:
        return await asyncio.to_thread(self._dialogue, room_id, user_id)

    def _save_dialogue(self, row: BotFormDialogue) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(row)

    async def save_dialogue(self, row: BotFormDialogue) -> None:
        await asyncio.to_thread(self._save_dialogue, row)

    def _end_dialogue(self, room_id: str, user_id: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(BotFormDialogue).where(
                    BotFormDialogue.room_id == room_id, BotFormDialogue.user_id == user_id
                )
            )

    async def end_dialogue(self, room_id: str, user_id: str) -> None:
        await asyncio.to_thread(self._end_dialogue, room_id, user_id)

    async def queue_mail(
        self,
        sender: str,
        dossier_id: str,
        room_id: str,
        event_id: str,
        address: str,
        subject: str,
        text: str,
    ) -> bool:
        """Queue a secure mail from the dossier's address, with the sender's rights (writing
        to the dossier: ``DossierService.send_mail``, as the dossier page does); False if
        this command was queued already. Failures to send are told in ``room_id``."""
        body = {"to": address, "subject": subject, "text": text}
        queued = await self.as_sender(
            sender, self.dossiers.send_mail, dossier_id, body, event_id, room_id
        )
        return queued["queued"]
