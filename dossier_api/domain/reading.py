"""Reading a dossier as a whole: its timeline (« ligne de vie »: notes, tasks, appointments,
circle changes, forms, PPCS, mails, alerts and room activity on one dated line) and search in
it (full text over its notes, forms and tasks, opened in memory for an authorised caller: no
clear-text index is ever stored). Both show only what the caller may see: the notes through
the one visibility rule (``visibility``), alerts to their author and recipients only. The
operations are the ``DossierReading`` mixin of ``DossierService``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain import visibility
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore, _iso
from dossier_api.domain.directory import people_json
from dossier_api.domain.mail.models import MailOutbox, MailSpool
from dossier_api.domain.models import (
    STEPS,
    Alert,
    Appointment,
    CarePlan,
    CircleMember,
    DossierRoom,
    FormSubmission,
    Note,
    RoomActivity,
    Task,
)
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.shapes import SearchOut, SearchResultOut, TimelineEntryOut, TimelineOut
from dossier_api.domain.teams import dossier_steps, step_text
from maillon.shared.dates_fr import PARIS
from maillon.shared.text import fold, fold_compact

# Kinds of timeline entries (``?kind=`` takes a comma-separated list of them).
TIMELINE_KINDS = (
    "note",
    "task",
    "appointment",
    "circle",
    "form",
    "ppcs",
    "mail",
    "alert",
    "room",
    "solicitation",
)
ROOM_EVENTS = {
    "invite": "Invitation dans la salle",
    "join": "Entrée dans la salle",
    "leave": "Départ de la salle",
    "kick": "Retrait de la salle",
    "ban": "Exclusion de la salle",
}
MAX_QUERY = 200
MIN_QUERY = 2
MAX_RESULTS = 100  # the newest matches (a search that finds more should be narrowed)
EXCERPT = 60  # characters of context either side of a match


@dataclass
class Entry:
    at: dt.datetime
    kind: str
    action: str
    title: str
    actor: str | None = None
    subject: str | None = None
    text: str | None = None
    ref: str | None = None
    urgent: bool = False

    def json(self) -> TimelineEntryOut:
        return TimelineEntryOut(
            at=_iso(self.at),
            kind=self.kind,
            action=self.action,
            title=self.title,
            actor=self.actor,
            subject=self.subject,
            text=self.text,
            ref=self.ref,
            urgent=self.urgent,
        )


def parse_kinds(raw: str | None) -> frozenset[str]:
    """The kinds asked for (all when ``raw`` is empty); an unknown kind is a 400."""
    if not raw:
        return frozenset(TIMELINE_KINDS)
    kinds = frozenset(k.strip() for k in raw.split(",") if k.strip())
    unknown = sorted(kinds - set(TIMELINE_KINDS))
    if unknown or not kinds:
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            f"kind : type inconnu « {', '.join(unknown)[:80]} » (types : "
            f"{', '.join(TIMELINE_KINDS)})",
        )
    return kinds


def _note_entry(note: Note) -> Entry:
    if note.corrects:
        action, title = "correct", "Correction d'une note"
    elif note.reply_to:
        action, title = "reply", "Réponse à une note"
    else:
        action, title = "write", "Note urgente" if note.urgent else "Note"
    text = str(note.body.get("text", ""))
    return Entry(
        note.created_at, "note", action, title, note.author, None, text, note.id, note.urgent
    )


def _form_title(pathway: str, version: int | None, form_id: str) -> str:
    found = PATHWAYS.version(pathway, version)
    form = found.form(form_id) if found else None
    return form.title if form else form_id


def _excerpt(original: str, first: int, last: int) -> str:
    """``original[first:last]`` with some context either side."""
    left, right = max(0, first - EXCERPT), min(len(original), last + EXCERPT)
    before, after = ("…" if left else ""), ("…" if right < len(original) else "")
    return before + original[left:right].strip() + after


def match(text: str, terms: list[str]) -> str | None:
    """An excerpt of ``text`` around the first term if every term occurs in it, folded and
    without spaces (so « téléassistance » finds « télé-assistance »)."""
    quick = fold_compact(text)
    if not terms or not all(t in quick for t in terms):
        return None
    folded, where = fold(text)  # the slow form, with positions: for the excerpt only
    kept = [i for i, ch in enumerate(folded) if ch != " "]
    compact = "".join(folded[i] for i in kept)
    start = compact.find(terms[0])
    if start < 0:  # a rare mark the two forms fold differently: show the beginning
        return _excerpt(text, 0, 0)
    end = start + len(terms[0]) - 1
    return _excerpt(text, where[kept[start]], where[kept[end]] + 1)


def _answer_texts(answers: dict[str, Any]) -> list[str]:
    return [
        str(v)
        for v in answers.values()
        if isinstance(v, str | int | float) and not isinstance(v, bool)
    ]


class DossierReading(ServiceCore):
    """Timeline and search of a dossier, each one audited read (``self.acting``)."""

    def _timeline_entries(
        self,
        session: Session,
        dossier_id: str,
        pathway: tuple[str, int],
        reader: visibility.Reader,
        kinds: frozenset[str],
    ) -> list[Entry]:
        entries: list[Entry] = []
        if "note" in kinds:
            entries += [
                _note_entry(n) for n in visibility.readable_notes(session, dossier_id, [reader])
            ]
        if "task" in kinds:
            for t in session.scalars(select(Task).where(Task.dossier_id == dossier_id)):
                title = str(t.title.get("text", ""))
                entries.append(
                    Entry(
                        t.created_at,
                        "task",
                        "create",
                        "Tâche créée",
                        t.created_by,
                        t.assignee,
                        title,
                        t.id,
                    )
                )
                if t.status == "done" and t.done_at is not None:
                    entries.append(
                        Entry(
                            t.done_at,
                            "task",
                            "done",
                            "Tâche faite",
                            t.done_by,
                            t.assignee,
                            title,
                            t.id,
                        )
                    )
        if "appointment" in kinds:
            for a in session.scalars(
                select(Appointment).where(Appointment.dossier_id == dossier_id)
            ):
                title = "Rendez-vous annulé" if a.cancelled else "Rendez-vous"
                action = "cancelled" if a.cancelled else "scheduled"
                entries.append(
                    Entry(
                        a.start,
                        "appointment",
                        action,
                        title,
                        a.created_by,
                        None,
                        str(a.details.get("title", "")),
                        a.id,
                    )
                )
        if "circle" in kinds:
            for m in session.scalars(
                select(CircleMember).where(CircleMember.dossier_id == dossier_id)
            ):
                entries.append(
                    Entry(
                        m.since,
                        "circle",
                        "add",
                        "Entrée dans le cercle de soins",
                        m.added_by,
                        m.user_id,
                        m.role,
                    )
                )
                if m.removed_at is not None:
                    entries.append(
                        Entry(
                            m.removed_at,
                            "circle",
                            "remove",
                            "Sortie du cercle de soins",
                            m.removed_by,
                            m.user_id,
                            m.role,
                        )
                    )
                elif m.until is not None and m.until <= self.clock():
                    entries.append(
                        Entry(
                            m.until,
                            "circle",
                            "end",
                            "Fin de la participation au cercle",
                            None,
                            m.user_id,
                            m.role,
                        )
                    )
        if "form" in kinds:
            for f in session.scalars(
                select(FormSubmission).where(FormSubmission.dossier_id == dossier_id)
            ):
                entries.append(
                    Entry(
                        f.created_at,
                        "form",
                        "submit",
                        "Formulaire rempli",
                        f.author,
                        None,
                        _form_title(*pathway, f.form_id),
                        f.id,
                    )
                )
        if "ppcs" in kinds:
            for p in session.scalars(select(CarePlan).where(CarePlan.dossier_id == dossier_id)):
                entries.append(
                    Entry(
                        p.created_at,
                        "ppcs",
                        "update",
                        f"PPCS mis à jour (version {p.version})",
                        p.author,
                        None,
                        None,
                        str(p.version),
                    )
                )
        if "alert" in kinds:
            for al in session.scalars(select(Alert).where(Alert.dossier_id == dossier_id)):
                recipients = set(al.recipients.split(","))
                if reader.people & ({al.author} | recipients):
                    entries.append(
                        Entry(
                            al.created_at,
                            "alert",
                            "send",
                            "Alerte",
                            al.author,
                            None,
                            str(al.message.get("text", "")),
                            al.id,
                            True,
                        )
                    )
        if "mail" in kinds:
            for sp in session.scalars(select(MailSpool).where(MailSpool.dossier_id == dossier_id)):
                title = (
                    "Avis de non-remise d'un courriel" if sp.kind == "bounce" else "Courriel reçu"
                )
                entries.append(
                    Entry(
                        sp.accepted_at,
                        "mail",
                        "received" if sp.kind == "mail" else "bounce",
                        title,
                        ref=str(sp.id),
                    )
                )
            rooms = select(DossierRoom.room_id).where(
                DossierRoom.dossier_id == dossier_id, DossierRoom.room_id.is_not(None)
            )
            for out in session.scalars(select(MailOutbox).where(MailOutbox.room_id.in_(rooms))):
                if out.sent_at is not None:
                    entries.append(
                        Entry(out.sent_at, "mail", "sent", "Courriel envoyé", ref=str(out.id))
                    )
        if "room" in kinds:
            days: dict[dt.date, tuple[dt.datetime, int]] = {}  # by day, Paris time
            for r in session.scalars(
                select(RoomActivity).where(RoomActivity.dossier_id == dossier_id)
            ):
                if r.kind == "message":
                    day = r.at.astimezone(PARIS).date()
                    last, count = days.get(day, (r.at, 0))
                    days[day] = (max(last, r.at), count + 1)
                else:
                    entries.append(
                        Entry(
                            r.at,
                            "room",
                            r.kind,
                            ROOM_EVENTS.get(r.kind, r.kind),
                            r.sender,
                            r.subject,
                        )
                    )
            for last, count in days.values():
                title = f"{count} message{'s' if count > 1 else ''} dans les salles"
                entries.append(Entry(last, "room", "messages", title, text=None, ref=None))
        if "solicitation" in kinds:
            for ev, sol, team_name in dossier_steps(session, dossier_id):
                entries.append(
                    Entry(
                        ev.at,
                        "solicitation",
                        ev.status,
                        f"Équipe ressource « {team_name} » : {STEPS[ev.status]}",
                        ev.actor,
                        sol.accepted_by if ev.status == "acceptee" else None,
                        step_text(ev, sol),
                        str(sol.id),
                    )
                )
        return entries

    def timeline(
        self,
        caller: Caller,
        dossier_id: str,
        kinds: frozenset[str] = frozenset(TIMELINE_KINDS),
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 200,
    ) -> TimelineOut:
        """The dossier's dated line, latest first, of the kinds asked for, within the period
        ``[since, until)``; with the names and professions of the people it mentions."""
        with self.acting(caller, "timeline.read", dossier_id, "read") as act:
            session = act.session
            reader = visibility.reader_of(session, dossier_id, act.access)
            entries = self._timeline_entries(
                session,
                dossier_id,
                (act.dossier.pathway, act.dossier.pathway_version),
                reader,
                kinds,
            )
            shown = [
                e
                for e in entries
                if (since is None or e.at >= since) and (until is None or e.at < until)
            ]
            shown.sort(key=lambda e: (e.at, e.kind, e.ref or ""), reverse=True)
            shown = shown[:limit]
            act.detail = f"{len(shown)} événements"
            return {
                "entries": [e.json() for e in shown],
                "people": people_json(session, (u for e in shown for u in (e.actor, e.subject))),
            }

    def search(self, caller: Caller, dossier_id: str, query: str) -> SearchOut:
        """Notes, forms and tasks of the dossier whose text holds every word of ``query``
        (accents, case and hyphens ignored), opened in memory; the audit records how many
        results, never the query (it may itself be health information)."""
        folded, _ = fold(query[: MAX_QUERY + 1])
        terms = folded.split()
        if len(query) > MAX_QUERY or len("".join(terms)) < MIN_QUERY:
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                f"q : une recherche de {MIN_QUERY} à {MAX_QUERY} caractères est attendue",
            )
        with self.acting(caller, "search", dossier_id, "read") as act:
            session = act.session
            reader = visibility.reader_of(session, dossier_id, act.access)
            # What may be searched, newest first: (kind, id, date, title, texts).
            items: list[tuple[str, str, dt.datetime, str, list[str]]] = []
            for n in visibility.readable_notes(session, dossier_id, [reader]):
                text = str(n.body.get("text", ""))
                items.append(("note", n.id, n.created_at, _note_entry(n).title, [text]))
            for f in session.scalars(
                select(FormSubmission).where(FormSubmission.dossier_id == dossier_id)
            ):
                title = _form_title(act.dossier.pathway, act.dossier.pathway_version, f.form_id)
                answers = " ".join(_answer_texts(f.answers))
                items.append(("form", f.id, f.created_at, title, [answers, title]))
            for t in session.scalars(select(Task).where(Task.dossier_id == dossier_id)):
                items.append(("task", t.id, t.created_at, "Tâche", [str(t.title.get("text", ""))]))
            items.sort(key=lambda item: item[2], reverse=True)
            results: list[SearchResultOut] = []
            for kind, ref, at, title, texts in items:
                excerpt = next((e for e in (match(x, terms) for x in texts) if e), None)
                if excerpt is not None:
                    results.append(
                        SearchResultOut(
                            kind=kind, id=ref, at=_iso(at), title=title, excerpt=excerpt
                        )
                    )
                    if len(results) == MAX_RESULTS:
                        break
            act.detail = f"{len(results)} résultats"
            return {"results": results}
