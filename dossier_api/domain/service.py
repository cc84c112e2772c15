"""Dossier operations with their authorization and audit. Synchronous (run in a thread);
every read and write of a dossier, allowed or refused, leaves an audit entry."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, func, insert, select, union
from sqlalchemy.orm import Session

from dossier_api.domain import circle_members
from dossier_api.domain.access import Access, Caller, decide
from dossier_api.domain.models import (
    AuditEntry,
    CircleMember,
    Delegation,
    Dossier,
    DossierRoom,
    Note,
    Professional,
    RoomActivity,
    Structure,
    StructureStaff,
    Task,
)
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.rooms import ROOMS, enqueue
from maillon.shared.circle import RESTRICTED_ROLES, ROOM_AUDIENCES, server_of
from maillon.shared.clock import utcnow


class ApiError(Exception):
    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="seconds")


def _parse_dt(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, "M_INVALID_PARAM", f"date et heure illisibles : « {value} »") from exc
    aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC)


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, "M_INVALID_PARAM", f"date illisible : « {value} »") from exc


def display_name(identity: dict[str, Any]) -> str:
    name = identity.get("used_name") or identity.get("birth_name") or "?"
    return f"{str(name).upper()} {identity.get('first_names', '')}".strip()


class DossierService:
    def __init__(
        self,
        engine: Engine,
        mail_domain: str,
        component: str = "api",
        allowed_servers: frozenset[str] | None = None,
    ) -> None:
        self._engine = engine
        self._mail_domain = mail_domain
        self._component = component
        # Our homeserver and its peers: nobody else can sit in a patient room.
        self._allowed_servers = allowed_servers

    @contextmanager
    def tx(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- access and audit ----------------------------------------------------------------

    def audit_entry(
        self,
        session: Session,
        dossier_id: str | None,
        access: Access,
        action: str,
        allowed: bool,
        detail: str | None = None,
    ) -> None:
        session.add(
            AuditEntry(
                dossier_id=dossier_id,
                actor=access.user_id,
                on_behalf_of=access.on_behalf_of,
                basis=access.basis,
                action=action,
                component=self._component,
                allowed=allowed,
                detail=detail,
            )
        )

    def _access(self, session: Session, caller: Caller, dossier: Dossier) -> Access:
        now = dt.datetime.now(dt.UTC)
        circle = session.scalars(
            select(CircleMember).where(CircleMember.dossier_id == dossier.id)
        ).all()
        staff = (
            dossier.structure_id is not None
            and session.get(StructureStaff, (dossier.structure_id, caller.user_id)) is not None
        )
        delegations = session.scalars(
            select(Delegation).where(Delegation.to_user == caller.user_id)
        ).all()
        return decide(caller.user_id, circle, now, staff, delegations, caller.is_admin)

    def _dossier(self, session: Session, dossier_id: str) -> Dossier:
        dossier = session.get(Dossier, dossier_id)
        if dossier is None:
            raise ApiError(404, "M_NOT_FOUND", "dossier inconnu")
        return dossier

    def require(
        self, caller: Caller, dossier_id: str, action: str, right: str
    ) -> tuple[Dossier, Access]:
        """Check a right and audit the attempt; a refusal is committed on its own."""
        with self.tx() as session:
            dossier = self._dossier(session, dossier_id)
            access = self._access(session, caller, dossier)
            allowed = bool(getattr(access, right))
            self.audit_entry(session, dossier.id, access, action, allowed)
        if not allowed:
            if access.basis == "none":
                raise ApiError(
                    403,
                    "M_FORBIDDEN",
                    "Vous ne faites pas partie du cercle de soins de ce dossier.",
                )
            raise ApiError(
                403,
                "M_FORBIDDEN",
                f"Votre accès à ce dossier ({access.basis}) ne permet pas cette action.",
            )
        return dossier, access

    # -- dossiers ------------------------------------------------------------------------

    def to_json(self, dossier: Dossier, access: Access) -> dict[str, Any]:
        return {
            "id": dossier.id,
            "pathway": dossier.pathway,
            "structure_id": dossier.structure_id,
            "status": dossier.status,
            "status_reason": dossier.status_reason,
            "referent": dossier.referent,
            "opened_at": _iso(dossier.opened_at),
            "closed_at": _iso(dossier.closed_at),
            "identity": dossier.identity,
            "identity_status": dossier.identity_status,
            "consent": {
                "informed": dossier.consent_informed,
                "share_outside": dossier.consent_share_outside,
                "opposition": dossier.opposition,
            },
            "mail_address": f"{dossier.mail_localpart}@{self._mail_domain}",
            "room_id": dossier.room_id,
            "access": access.basis,
        }

    def create_dossier(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        identity = dict(body["identity"])
        status = identity.pop("identity_status", "PROV")
        with self.tx() as session:
            structure_id = body.get("structure_id")
            if structure_id is not None and session.get(Structure, structure_id) is None:
                raise ApiError(400, "M_INVALID_PARAM", "structure inconnue")
            dossier = Dossier(
                pathway=body["pathway"],
                structure_id=structure_id,
                referent=caller.user_id,
                identity=identity,
                identity_status=status,
                consent_informed=bool(body.get("consent_informed", False)),
                mail_localpart="d-" + secrets.token_hex(5),
            )
            session.add(dossier)
            session.flush()
            session.add(
                CircleMember(
                    dossier_id=dossier.id,
                    user_id=caller.user_id,
                    role="COORD",
                    coordinator=True,
                    added_by=caller.user_id,
                )
            )
            session.add(DossierRoom(dossier_id=dossier.id, kind="main", created_by=caller.user_id))
            enqueue(session, dossier.id, ROOMS)
            access = Access(caller.user_id, "coordinator", None, True, True, True, True)
            self.audit_entry(session, dossier.id, access, "dossier.create", True)
            return self.to_json(dossier, access)

    def my_dossiers(self, caller: Caller, limit: int, offset: int) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        with self.tx() as session:
            delegators = select(Delegation.from_user).where(
                Delegation.to_user == caller.user_id,
                Delegation.revoked_at.is_(None),
                Delegation.until > now,
            )
            current = circle_members.current(now)
            # Separate branches, each served by the (user_id, removed_at) index.
            own = select(CircleMember.dossier_id).where(
                CircleMember.user_id == caller.user_id, *current
            )
            delegated = select(CircleMember.dossier_id).where(
                CircleMember.user_id.in_(delegators), *current
            )
            structures = select(StructureStaff.structure_id).where(
                StructureStaff.user_id == caller.user_id
            )
            by_structure = select(Dossier.id.label("id")).where(
                Dossier.structure_id.in_(structures)
            )
            visible = union(own, delegated, by_structure).subquery()
            rows = session.execute(
                select(
                    Dossier.id,
                    Dossier.pathway,
                    Dossier.status,
                    Dossier.structure_id,
                    Dossier.identity,
                )
                .join(visible, Dossier.id == visible.c[0])
                .order_by(Dossier.opened_at.desc(), Dossier.id)
                .limit(limit)
                .offset(offset)
            ).all()
            ids = [d.id for d in rows]
            delegations = session.scalars(
                select(Delegation).where(Delegation.to_user == caller.user_id)
            ).all()
            # Only the entries that can ground my access: mine and my delegators'.
            people = {caller.user_id, *(d.from_user for d in delegations)}
            circles: dict[str, list[CircleMember]] = {i: [] for i in ids}
            for member in session.scalars(
                select(CircleMember).where(
                    CircleMember.user_id.in_(people), CircleMember.dossier_id.in_(ids)
                )
            ):
                circles[member.dossier_id].append(member)
            staff_of = set(session.scalars(structures))
            result = []
            audit_rows = []
            for dossier in rows:
                access = decide(
                    caller.user_id,
                    circles[dossier.id],
                    now,
                    dossier.structure_id in staff_of,
                    delegations,
                    caller.is_admin,
                )
                result.append(
                    {
                        "id": dossier.id,
                        "pathway": dossier.pathway,
                        "status": dossier.status,
                        "display_name": display_name(dossier.identity),
                        "access": access.basis,
                    }
                )
                audit_rows.append(
                    {
                        "at": now,
                        "dossier_id": dossier.id,
                        "actor": access.user_id,
                        "on_behalf_of": access.on_behalf_of,
                        "basis": access.basis,
                        "action": "dossier.list",
                        "component": self._component,
                        "allowed": True,
                    }
                )
            if audit_rows:
                session.execute(insert(AuditEntry), audit_rows)
            return result

    def get_dossier(self, caller: Caller, dossier_id: str) -> dict[str, Any]:
        dossier, access = self.require(caller, dossier_id, "dossier.read", "read")
        return self.to_json(dossier, access)

    def patch_dossier(
        self, caller: Caller, dossier_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        _, access = self.require(caller, dossier_id, "dossier.update", "manage")
        with self.tx() as session:
            dossier = self._dossier(session, dossier_id)
            status = body.get("status")
            if status is not None and status != dossier.status:
                if status != "open" and not body.get("status_reason"):
                    raise ApiError(
                        400,
                        "M_INVALID_PARAM",
                        "un motif (status_reason) est requis pour clore ou archiver",
                    )
                dossier.status = status
                dossier.status_reason = body.get("status_reason")
                dossier.closed_at = None if status == "open" else utcnow()
                enqueue(session, dossier.id, ROOMS)  # read-only room, or writable again
            for key, column in (
                ("consent_informed", "consent_informed"),
                ("consent_share_outside", "consent_share_outside"),
                ("opposition", "opposition"),
            ):
                if key in body:
                    setattr(dossier, column, body[key])
            return self.to_json(dossier, access)

    # -- care circle ---------------------------------------------------------------------

    @staticmethod
    def member_json(m: CircleMember, now: dt.datetime) -> dict[str, Any]:
        return {
            "user_id": m.user_id,
            "role": m.role,
            "coordinator": m.coordinator,
            "since": _iso(m.since),
            "until": _iso(m.until),
            "added_by": m.added_by,
            "removed_by": m.removed_by,
            "removed_at": _iso(m.removed_at),
            "active": m.active(now),
        }

    def circle(self, caller: Caller, dossier_id: str) -> list[dict[str, Any]]:
        self.require(caller, dossier_id, "circle.read", "read")
        now = dt.datetime.now(dt.UTC)
        with self.tx() as session:
            rows = session.scalars(
                select(CircleMember)
                .where(CircleMember.dossier_id == dossier_id)
                .order_by(CircleMember.id)
            ).all()
            return [self.member_json(m, now) for m in rows]

    def add_member(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> dict[str, Any]:
        dossier, access = self.require(caller, dossier_id, "circle.add", "manage")
        pathway = PATHWAYS.get(dossier.pathway)
        role = body["role"]
        if pathway is not None and role not in pathway.roles_allowed and role != "COORD":
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                f"le rôle {role} n'est pas prévu par le parcours « {pathway.name} » "
                f"(rôles possibles : {', '.join(pathway.roles_allowed)})",
            )
        if role in RESTRICTED_ROLES and not (pathway and pathway.room_template.allow_patient):
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                "ce parcours n'admet pas le patient ni ses proches dans le cercle",
            )
        server = server_of(body["user_id"])
        if self._allowed_servers is not None and server not in self._allowed_servers:
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                f"le serveur « {server} » n'est pas un serveur partenaire : ses comptes ne "
                "peuvent pas entrer dans les salles patient",
            )
        now = dt.datetime.now(dt.UTC)
        with self.tx() as session:
            if circle_members.active_members(session, dossier_id, body["user_id"], now):
                raise ApiError(409, "M_CONFLICT", "cette personne est déjà dans le cercle")
            until = _parse_dt(body["until"]) if body.get("until") else None
            if until is not None and until <= now:
                raise ApiError(400, "M_INVALID_PARAM", "la date de sortie doit être à venir")
            member = CircleMember(
                dossier_id=dossier_id,
                user_id=body["user_id"],
                role=body["role"],
                coordinator=bool(body.get("coordinator")),
                until=until,
                added_by=caller.user_id,
            )
            session.add(member)
            enqueue(session, dossier_id, body["user_id"])
            self.audit_entry(session, dossier_id, access, "circle.add", True, body["user_id"])
            session.flush()
            return self.member_json(member, now)

    def remove_member(self, caller: Caller, dossier_id: str, user_id: str) -> dict[str, Any]:
        _, access = self.require(caller, dossier_id, "circle.remove", "manage")
        now = dt.datetime.now(dt.UTC)
        with self.tx() as session:
            current = circle_members.active_members(session, dossier_id, user_id, now)
            if not current:
                raise ApiError(404, "M_NOT_FOUND", "cette personne n'est pas dans le cercle")
            for member in current:
                member.removed_at = now
                member.removed_by = caller.user_id
            enqueue(session, dossier_id, user_id)
            self.audit_entry(session, dossier_id, access, "circle.remove", True, user_id)
            return self.member_json(current[0], now)

    # -- cahier de liaison ---------------------------------------------------------------

    @staticmethod
    def note_json(note: Note, corrected_by: str | None) -> dict[str, Any]:
        return {
            "id": note.id,
            "author": note.author,
            "created_at": _iso(note.created_at),
            "urgent": note.urgent,
            "text": note.body.get("text", ""),
            "reply_to": note.reply_to,
            "corrects": note.corrects,
            "corrected_by": corrected_by,
            "visible_to_roles": note.visible_to_roles.split(",") if note.visible_to_roles else None,
            "attachments": note.body.get("attachments", []),
        }

    def _my_roles(self, session: Session, dossier_id: str, access: Access) -> set[str]:
        who = access.on_behalf_of or access.user_id
        return {m.role for m in circle_members.active_members(session, dossier_id, who)}

    def notes(self, caller: Caller, dossier_id: str) -> list[dict[str, Any]]:
        _, access = self.require(caller, dossier_id, "notes.read", "read")
        with self.tx() as session:
            roles = self._my_roles(session, dossier_id, access)
            rows = session.scalars(
                select(Note).where(Note.dossier_id == dossier_id).order_by(Note.created_at, Note.id)
            ).all()
            corrected = {n.corrects: n.id for n in rows if n.corrects}
            visible = [
                n
                for n in rows
                if not n.visible_to_roles
                or n.author == caller.user_id
                or roles & set(n.visible_to_roles.split(","))
            ]
            return [self.note_json(n, corrected.get(n.id)) for n in visible]

    def add_note(
        self, caller: Caller, dossier_id: str, body: dict[str, Any], corrects: str | None = None
    ) -> dict[str, Any]:
        action = "notes.correct" if corrects else "notes.write"
        dossier, access = self.require(caller, dossier_id, action, "write")
        if dossier.status != "open":
            raise ApiError(
                409, "M_CONFLICT", "le dossier est clos : le cahier est en lecture seule"
            )
        with self.tx() as session:
            for ref in (body.get("reply_to"), corrects):
                if ref is not None:
                    other = session.get(Note, ref)
                    if other is None or other.dossier_id != dossier_id:
                        raise ApiError(404, "M_NOT_FOUND", "note inconnue dans ce dossier")
                    if corrects and other.author != caller.user_id:
                        raise ApiError(
                            403, "M_FORBIDDEN", "seul l'auteur d'une note peut la corriger"
                        )
            roles = body.get("visible_to_roles")
            note = Note(
                dossier_id=dossier_id,
                author=caller.user_id,
                urgent=bool(body.get("urgent")),
                reply_to=body.get("reply_to"),
                corrects=corrects,
                visible_to_roles=",".join(roles) if roles else None,
                body={"text": body["text"], "attachments": body.get("attachments", [])},
            )
            session.add(note)
            session.flush()
            self.audit_entry(session, dossier_id, access, action, True, note.id)
            return self.note_json(note, None)

    # -- tasks ---------------------------------------------------------------------------

    @staticmethod
    def task_json(task: Task) -> dict[str, Any]:
        return {
            "id": task.id,
            "title": task.title.get("text", ""),
            "assignee": task.assignee,
            "due": task.due.isoformat() if task.due else None,
            "status": task.status,
            "created_by": task.created_by,
            "done_by": task.done_by,
            "done_at": _iso(task.done_at),
        }

    def tasks(self, caller: Caller, dossier_id: str) -> list[dict[str, Any]]:
        self.require(caller, dossier_id, "tasks.read", "read")
        with self.tx() as session:
            rows = session.scalars(
                select(Task).where(Task.dossier_id == dossier_id).order_by(Task.created_at, Task.id)
            ).all()
            return [self.task_json(t) for t in rows]

    def add_task(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> dict[str, Any]:
        _, access = self.require(caller, dossier_id, "tasks.write", "write")
        with self.tx() as session:
            due = _parse_date(body["due"]) if body.get("due") else None
            task = Task(
                dossier_id=dossier_id,
                title={"text": body["title"]},
                assignee=body["assignee"],
                due=due,
                created_by=caller.user_id,
            )
            session.add(task)
            session.flush()
            self.audit_entry(session, dossier_id, access, "tasks.write", True, task.id)
            return self.task_json(task)

    def patch_task(
        self, caller: Caller, dossier_id: str, task_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        _, access = self.require(caller, dossier_id, "tasks.update", "write")
        with self.tx() as session:
            task = session.get(Task, task_id)
            if task is None or task.dossier_id != dossier_id:
                raise ApiError(404, "M_NOT_FOUND", "tâche inconnue dans ce dossier")
            task.status = body["status"]
            task.done_by = caller.user_id if task.status == "done" else None
            task.done_at = utcnow() if task.status == "done" else None
            self.audit_entry(session, dossier_id, access, "tasks.update", True, task.id)
            return self.task_json(task)

    # -- audit ---------------------------------------------------------------------------

    def audit(self, caller: Caller, dossier_id: str, limit: int) -> list[dict[str, Any]]:
        self.require(caller, dossier_id, "audit.read", "audit")
        with self.tx() as session:
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.dossier_id == dossier_id)
                .order_by(AuditEntry.id.desc())
                .limit(limit)
            ).all()
            return [
                {
                    "at": _iso(a.at),
                    "actor": a.actor,
                    "basis": a.basis,
                    "on_behalf_of": a.on_behalf_of,
                    "action": a.action,
                    "component": a.component,
                    "allowed": a.allowed,
                    "detail": a.detail,
                }
                for a in rows
            ]

    # -- delegations, structures, directory ---------------------------------------------

    @staticmethod
    def delegation_json(d: Delegation) -> dict[str, Any]:
        return {"id": d.id, "from_user": d.from_user, "to_user": d.to_user, "until": _iso(d.until)}

    def delegate(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        until = _parse_dt(body["until"])
        if until <= dt.datetime.now(dt.UTC):
            raise ApiError(400, "M_INVALID_PARAM", "la délégation doit finir dans le futur")
        if body["to_user"] == caller.user_id:
            raise ApiError(400, "M_INVALID_PARAM", "on ne se délègue pas à soi-même")
        with self.tx() as session:
            delegation = Delegation(from_user=caller.user_id, to_user=body["to_user"], until=until)
            session.add(delegation)
            session.flush()
            return self.delegation_json(delegation)

    def delegations(self, caller: Caller) -> dict[str, list[dict[str, Any]]]:
        with self.tx() as session:

            def rows(column: Any) -> list[dict[str, Any]]:
                return [
                    self.delegation_json(d)
                    for d in session.scalars(
                        select(Delegation).where(
                            column == caller.user_id, Delegation.revoked_at.is_(None)
                        )
                    ).all()
                ]

            return {"given": rows(Delegation.from_user), "received": rows(Delegation.to_user)}

    def _admin(self, caller: Caller) -> None:
        if not caller.is_admin:
            raise ApiError(403, "M_FORBIDDEN", "réservé aux administrateurs")

    def add_structure(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        self._admin(caller)
        with self.tx() as session:
            if session.scalar(select(Structure).where(Structure.name == body["name"])):
                raise ApiError(409, "M_CONFLICT", "une structure porte déjà ce nom")
            structure = Structure(name=body["name"], kind=body.get("kind", "structure"))
            session.add(structure)
            session.flush()
            return {"id": structure.id, "name": structure.name, "kind": structure.kind}

    def add_staff(self, caller: Caller, structure_id: str, user_id: str) -> None:
        self._admin(caller)
        with self.tx() as session:
            if session.get(Structure, structure_id) is None:
                raise ApiError(404, "M_NOT_FOUND", "structure inconnue")
            if session.get(StructureStaff, (structure_id, user_id)) is None:
                session.add(StructureStaff(structure_id=structure_id, user_id=user_id))

    def me(self, caller: Caller) -> dict[str, Any]:
        with self.tx() as session:
            pro = session.get(Professional, caller.user_id)
            professional = (
                None
                if pro is None
                else {
                    "profession": pro.profession,
                    "rpps": pro.rpps,
                    "adeli": pro.adeli,
                    "mssante": pro.mssante,
                }
            )
            return {
                "user_id": caller.user_id,
                "is_admin": caller.is_admin,
                "professional": professional,
            }

    # -- rooms of the dossier ------------------------------------------------------------

    @staticmethod
    def room_json(room: DossierRoom) -> dict[str, Any]:
        return {
            "key": room.id,
            "kind": room.kind,
            "label": room.label,
            "audience": room.audience,
            "room_id": room.room_id,
            "created_by": room.created_by,
            "created_at": _iso(room.created_at),
        }

    def rooms(self, caller: Caller, dossier_id: str) -> list[dict[str, Any]]:
        self.require(caller, dossier_id, "rooms.read", "read")
        with self.tx() as session:
            rows = session.scalars(
                select(DossierRoom)
                .where(DossierRoom.dossier_id == dossier_id)
                .order_by(DossierRoom.created_at, DossierRoom.id)
            ).all()
            return [self.room_json(r) for r in rows]

    def add_side_room(
        self, caller: Caller, dossier_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A side room of the dossier (e.g. "coordination interne", professionals only)."""
        dossier, access = self.require(caller, dossier_id, "rooms.add", "manage")
        if dossier.status != "open":
            raise ApiError(409, "M_CONFLICT", "le dossier est clos : rouvrez-le d'abord")
        audience = body.get("audience", "professionals")
        if audience not in ROOM_AUDIENCES:
            raise ApiError(400, "M_INVALID_PARAM", f"public inconnu : « {audience} »")
        with self.tx() as session:
            room = DossierRoom(
                dossier_id=dossier_id,
                kind="side",
                label=body["label"],
                audience=audience,
                created_by=caller.user_id,
            )
            session.add(room)
            enqueue(session, dossier_id, ROOMS)
            self.audit_entry(session, dossier_id, access, "rooms.add", True, audience)
            session.flush()
            return self.room_json(room)

    def dossier_id_for_room(self, room_id: str) -> str | None:
        """The dossier a room (patient room or side room) belongs to (no access check: the
        caller then asks for the dossier with the user's rights)."""
        with self.tx() as session:
            return session.scalar(
                select(DossierRoom.dossier_id).where(DossierRoom.room_id == room_id)
            )

    def activity(self, caller: Caller, dossier_id: str, limit: int = 200) -> dict[str, Any]:
        """What happened in the dossier's rooms: message count (content stays end-to-end
        encrypted, never here) and the room history of the circle (invites, joins,
        departures, removals), latest first."""
        self.require(caller, dossier_id, "activity.read", "read")
        with self.tx() as session:
            count, last = session.execute(
                select(func.count(), func.max(RoomActivity.at)).where(
                    RoomActivity.dossier_id == dossier_id, RoomActivity.kind == "message"
                )
            ).one()
            history = session.scalars(
                select(RoomActivity)
                .where(RoomActivity.dossier_id == dossier_id, RoomActivity.kind != "message")
                .order_by(RoomActivity.at.desc(), RoomActivity.event_id)
                .limit(limit)
            ).all()
            return {
                "messages": int(count or 0),
                "last_message_at": _iso(last),
                "history": [
                    {
                        "kind": h.kind,
                        "user_id": h.subject,
                        "sender": h.sender,
                        "room_id": h.room_id,
                        "at": _iso(h.at),
                    }
                    for h in history
                ],
            }
