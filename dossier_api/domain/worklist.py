"""The "À faire" worklist of the workspace: my tasks due (within a week) and overdue, the
alerts addressed to me, and the dossiers I was added to and have not opened yet."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from dossier_api.domain import circle_members
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ServiceCore, _iso
from dossier_api.domain.directory import people_json
from dossier_api.domain.ins import display_name
from dossier_api.domain.models import (
    Alert,
    AuditEntry,
    CircleMember,
    Dossier,
    Task,
)
from dossier_api.domain.rooms import reference
from dossier_api.domain.shapes import People, WorkCountsOut, WorkDossierOut, WorklistOut
from maillon.shared.dates_fr import PARIS

DUE_WITHIN = dt.timedelta(days=7)
ALERTS_WITHIN = dt.timedelta(days=30)
INVITATIONS_WITHIN = dt.timedelta(days=30)
MAX_INVITATIONS = 50


class WorklistOperations(ServiceCore):
    def worklist(
        self, caller: Caller, today: dt.date | None = None, shown: int = MAX_INVITATIONS
    ) -> WorklistOut:
        """What I have to do, in the dossiers I may read now: the first ``shown`` of each
        list (only their identities are opened) and how many there are (``counts``); one
        audit row for the request, naming the dossiers read."""
        now = self.clock()
        today = today or now.astimezone(PARIS).date()  # the professionals' day
        with self.acting(caller, "worklist.read") as act:
            session = act.session
            tasks = session.scalars(
                select(Task)
                .where(
                    Task.assignee == caller.user_id,
                    Task.status == "todo",
                    Task.due.is_not(None),
                    Task.due <= today + DUE_WITHIN,
                )
                .order_by(Task.due, Task.id)
                .limit(100)
            ).all()
            alerts = [
                a
                for a in session.scalars(
                    select(Alert)
                    .where(
                        Alert.recipients.contains(caller.user_id),
                        Alert.created_at >= now - ALERTS_WITHIN,
                    )
                    .order_by(Alert.created_at.desc())
                    .limit(200)
                ).all()
                if caller.user_id in a.recipients.split(",")
            ]
            entries = session.scalars(
                select(CircleMember).where(
                    CircleMember.user_id == caller.user_id, *circle_members.current(now)
                )
            ).all()
            opened = set(
                session.scalars(
                    select(AuditEntry.dossier_id).where(
                        AuditEntry.actor == caller.user_id,
                        AuditEntry.action == "dossier.read",
                        AuditEntry.allowed.is_(True),
                        AuditEntry.dossier_id.in_([m.dossier_id for m in entries]),
                    )
                )
            )
            invited = sorted(
                (
                    m
                    for m in entries
                    if m.dossier_id not in opened
                    and m.added_by != caller.user_id
                    and m.since >= now - INVITATIONS_WITHIN
                ),
                key=lambda m: m.since,
                reverse=True,
            )[:MAX_INVITATIONS]
            wanted = {t.dossier_id for t in tasks} | {a.dossier_id for a in alerts}
            wanted |= {m.dossier_id for m in invited}
            may_read = self.readable(session, caller, wanted)
            counts: WorkCountsOut = {
                "tasks": sum(t.dossier_id in may_read for t in tasks),
                "alerts": sum(a.dossier_id in may_read for a in alerts),
                "invitations": sum(m.dossier_id in may_read for m in invited),
            }
            tasks = [t for t in tasks if t.dossier_id in may_read][:shown]
            alerts = [a for a in alerts if a.dossier_id in may_read][:shown]
            invited = [m for m in invited if m.dossier_id in may_read][:shown]
            may_read = (
                {t.dossier_id for t in tasks}
                | {a.dossier_id for a in alerts}
                | {m.dossier_id for m in invited}
            )
            names = {
                dossier_id: display_name(identity)
                for dossier_id, identity in session.execute(
                    select(Dossier.id, Dossier.identity).where(Dossier.id.in_(sorted(may_read)))
                )
            }

            def about(dossier_id: str) -> WorkDossierOut:
                return {
                    "dossier_id": dossier_id,
                    "patient": names[dossier_id],
                    "reference": reference(dossier_id),
                }

            act.detail = "dossiers : " + (", ".join(sorted(may_read)) or "aucun")
            return {
                "counts": counts,
                "tasks": [
                    {
                        **about(t.dossier_id),
                        "id": t.id,
                        "title": str(t.title.get("text", "")),
                        "due": t.due.isoformat() if t.due else None,
                        "overdue": t.due is not None and t.due < today,
                    }
                    for t in tasks
                    if t.dossier_id in may_read
                ],
                "alerts": [
                    {
                        **about(a.dossier_id),
                        "id": a.id,
                        "author": a.author,
                        "created_at": _iso(a.created_at),
                        "text": str(a.message.get("text", "")),
                    }
                    for a in alerts
                    if a.dossier_id in may_read
                ],
                "invitations": [
                    {**about(m.dossier_id), "since": _iso(m.since), "added_by": m.added_by}
                    for m in invited
                    if m.dossier_id in may_read
                ],
            }

    def people(self, user_ids: set[str]) -> People:
        """Names and professions from the directory, so that pages show people rather than
        Matrix ids (directory entries only: no dossier data)."""
        if not user_ids:
            return {}
        with self.tx() as session:
            return people_json(session, user_ids)
