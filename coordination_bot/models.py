"""The bot's own durable state in Maillon's store: commands received and handled (a
redelivered event runs once, a received one is not lost), liaison-note threads (a reply in
the thread answers the note) and form dialogues in progress (a restart does not lose them;
answers are sealed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from maillon.shared.clock import utcnow
from maillon.shared.sealed import Sealed
from maillon.shared.store import Base


class BotHandledEvent(Base):
    """A message the bot may have to handle, recorded when its sync arrives (before the
    sync token is saved): pending until handled (answered), then done. A done event
    redelivered is skipped; a pending one, found by the next active instance, is handled."""

    __tablename__ = "bot_handled_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(255))
    handled_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    done: Mapped[bool] = mapped_column(Boolean, server_default=true(), index=True)


class BotNoteThread(Base):
    """An event of a note's thread (the command, the confirmation) and the note it is about."""

    __tablename__ = "bot_note_threads"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(String(32))
    note_id: Mapped[str] = mapped_column(String(32))


class BotFormDialogue(Base):
    """A form being filled in, question by question, by one person in one room."""

    __tablename__ = "bot_form_dialogues"
    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(String(32))
    form_id: Mapped[str] = mapped_column(String(100))
    thread_root: Mapped[str] = mapped_column(String(255))
    step: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[dict[str, Any]] = mapped_column(Sealed())
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
