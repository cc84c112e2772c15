"""Dossier operations with their authorization and audit. Synchronous (run in a thread);
every read and write of a dossier, allowed or refused, leaves an audit entry (each runs in
``ServiceCore.acting``, ``dossier_api.domain.core``)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import exists, func, insert, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dossier_api.domain import circle_members, directory, visibility
from dossier_api.domain.access import Access, Caller, decide
from dossier_api.domain.attachments import AttachmentOperations, documents_of
from dossier_api.domain.care import CareOperations
from dossier_api.domain.consent import ConsentRecords, outside_care_team, record_attestation
from dossier_api.domain.core import ApiError, _iso, _parse_date, _parse_dt
from dossier_api.domain.enrolment import EnrolmentOperations
from dossier_api.domain.favourites import FavouriteOperations, Person, members_json
from dossier_api.domain.fhir import FhirExport
from dossier_api.domain.ins import display_name as display_name  # re-exported
from dossier_api.domain.mail.sending import DossierMailing
from dossier_api.domain.merge import DossierMerge
from dossier_api.domain.models import (
    FAVOURITE_OUTCOMES,
    AuditEntry,
    CircleMember,
    Delegation,
    Dossier,
    DossierName,
    DossierRead,
    DossierRoom,
    FavouriteMember,
    Note,
    Professional,
    RoomActivity,
    Structure,
    StructureStaff,
    Task,
)
from dossier_api.domain.names import query_digests
from dossier_api.domain.pathway_store import published_version
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.patient_copy import PatientAccess
from dossier_api.domain.reading import DossierReading
from dossier_api.domain.retention import RetentionOperations
from dossier_api.domain.room_decisions import load_room_decisions
from dossier_api.domain.rooms import ROOMS, enqueue, reference
from dossier_api.domain.shapes import (
    ActivityOut,
    AuditEntryOut,
    DelegationOut,
    DelegationsOut,
    DirectoryPageOut,
    DocumentOut,
    DossierListOut,
    DossierOut,
    DossierSummaryOut,
    FavouriteInvitedOut,
    FavouritesInvitedOut,
    IdentityOut,
    MemberOut,
    MeOut,
    NoteAttachmentOut,
    NoteOut,
    ProfessionalOut,
    RoomOut,
    TaskOut,
)
from dossier_api.domain.teams import TeamOperations
from dossier_api.domain.vigilance import OVERRIDE, IdentityVigilance, parse_evidence
from dossier_api.domain.vigilance import check_transition as check_identity_status
from dossier_api.domain.worklist import WorklistOperations
from maillon.shared.circle import RESTRICTED_ROLES, ROOM_AUDIENCES, role_label, server_of
from maillon.shared.clock import utcnow
from maillon.shared.sealed import key_ring


@dataclass(frozen=True)
class DossierFilters:
    """What "Mes dossiers" is narrowed to (None: any)."""

    pathway: str | None = None
    status: str | None = None
    structure_id: str | None = None
    name: str | None = None  # a patient's name, as typed
    unread_urgent: bool = False  # only dossiers with urgent notes I have not read yet


MAX_DELEGATION_DAYS = 90
# ``GET …/tasks?statut=``: which tasks are listed (None: all, cancelled ones included).
TASK_FILTERS: dict[str, tuple[str, ...] | None] = {
    "toutes": None,
    "ouvertes": ("todo",),
    "faites": ("done",),
}


class DossierService(
    CareOperations,
    FhirExport,
    IdentityVigilance,
    ConsentRecords,
    AttachmentOperations,
    DossierReading,
    WorklistOperations,
    TeamOperations,
    EnrolmentOperations,
    RetentionOperations,
    PatientAccess,
    DossierMerge,
    DossierMailing,
    FavouriteOperations,
):
    """The dossier domain's operations: dossiers, circle, notes, tasks, delegations,
    structures and rooms here; forms (and their drafts), PPCS (and its PDF), agenda and alerts
    (``care``), the FHIR export (``fhir``), identity vigilance (``vigilance``), consent
    (``consent``), the notes' documents (``attachments``), the timeline and search
    (``reading``) as mixins. Every one runs inside ``self.acting`` (see ``ServiceCore``)."""

    # -- dossiers ------------------------------------------------------------------------

    def to_json(self, dossier: Dossier, access: Access) -> DossierOut:
        return {
            "id": dossier.id,
            "reference": reference(dossier.id),
            "pathway": dossier.pathway,
            "pathway_version": dossier.pathway_version,
            "structure_id": dossier.structure_id,
            "status": dossier.status,
            "status_reason": dossier.status_reason,
            "referent": dossier.referent,
            "opened_at": _iso(dossier.opened_at),
            "closed_at": _iso(dossier.closed_at),
            "identity": cast(IdentityOut, dossier.identity),  # as IDENTITY_IN checked it
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

    def create_dossier(self, caller: Caller, body: dict[str, Any]) -> DossierOut:
        identity = dict(body["identity"])
        status = identity.pop("identity_status", "PROV")
        evidence = parse_evidence(body.get("identity_evidence"), caller)
        override = body.get(OVERRIDE)
        with self.acting(caller, "dossier.create") as act:
            session = act.session
            if not caller.is_admin and not self._is_professional(session, caller.user_id):
                raise ApiError(
                    403,
                    "M_FORBIDDEN",
                    "seuls les professionnels inscrits à l'annuaire ouvrent un dossier de "
                    "coordination",
                )
            version = published_version(session, body["pathway"])
            if version is None:
                raise ApiError(400, "M_INVALID_PARAM", f"parcours inconnu : « {body['pathway']} »")
            structure_id = body.get("structure_id")
            if structure_id is not None and session.get(Structure, structure_id) is None:
                raise ApiError(400, "M_INVALID_PARAM", "structure inconnue")
            check_identity_status("PROV", status, evidence, identity, self.clock())
            overridden = self.vet_new_identity(session, caller, identity, override)
            dossier = Dossier(
                pathway=body["pathway"],
                pathway_version=version,
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
            act.detail = self.record_creation(
                session, dossier, caller, evidence, overridden, override
            )
            access = Access(caller.user_id, "coordinator", None, True, True, True, True)
            act.access, act.dossier_id = access, dossier.id
            return self.to_json(dossier, access)

    def my_dossiers(
        self,
        caller: Caller,
        limit: int,
        offset: int,
        filters: DossierFilters | None = None,
    ) -> list[DossierSummaryOut]:
        """My dossiers (circle, delegation, structure), newest first; ``filters``: pathway,
        status, structure and a patient name (found through the blind index of name tokens,
        ``dossier_api.domain.names``: no identity is opened to search)."""
        rows = self.my_dossiers_page(caller, limit, offset, filters)["dossiers"]
        return rows

    def my_dossiers_page(
        self,
        caller: Caller,
        limit: int,
        offset: int,
        filters: DossierFilters | None = None,
    ) -> DossierListOut:
        """``my_dossiers`` with the number of dossiers matching (for pagination)."""
        wanted = filters or DossierFilters()
        now = self.clock()
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
            conditions = []
            if wanted.pathway is not None:
                conditions.append(Dossier.pathway == wanted.pathway)
            if wanted.status is not None:
                conditions.append(Dossier.status == wanted.status)
            else:  # archived dossiers are out of the lists (found by asking for them)
                conditions.append(Dossier.status != "archived")
            if wanted.structure_id is not None:
                conditions.append(Dossier.structure_id == wanted.structure_id)
            if wanted.name is not None:
                digests = query_digests(key_ring(), wanted.name)
                if not digests:
                    return {"dossiers": [], "total": 0}
                named = (
                    select(DossierName.dossier_id)
                    .where(
                        DossierName.digest.in_(sorted(digests)),
                        DossierName.dossier_id.in_(select(visible.c[0])),
                    )
                    .group_by(DossierName.dossier_id)
                    .having(func.count() == len(digests))
                )
                conditions.append(Dossier.id.in_(named))
            if wanted.unread_urgent:
                conditions.append(self.unread_urgent(caller.user_id))
            matching = select(Dossier.id).join(visible, Dossier.id == visible.c[0])
            total = session.scalar(
                select(func.count()).select_from(matching.where(*conditions).subquery())
            )
            rows = session.execute(
                select(
                    Dossier.id,
                    Dossier.pathway,
                    Dossier.status,
                    Dossier.structure_id,
                    Dossier.identity,
                    Dossier.identity_status,
                    Dossier.opened_at,
                    Dossier.room_id,
                )
                .join(visible, Dossier.id == visible.c[0])
                .where(*conditions)
                .order_by(Dossier.opened_at.desc(), Dossier.id)
                .limit(limit)
                .offset(offset)
            ).all()
            ids = [d.id for d in rows]
            unread = set(
                session.scalars(
                    select(Dossier.id).where(
                        Dossier.id.in_(ids), self.unread_urgent(caller.user_id)
                    )
                )
            )
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
                if dossier.status == "archived" and not (access.manage or caller.is_admin):
                    continue  # an archived dossier: its coordinators only
                result.append(
                    DossierSummaryOut(
                        id=dossier.id,
                        pathway=dossier.pathway,
                        status=dossier.status,
                        display_name=display_name(dossier.identity),
                        access=access.basis,
                        reference=reference(dossier.id),
                        structure_id=dossier.structure_id,
                        identity_status=dossier.identity_status,
                        birth_date=dossier.identity.get("birth_date"),
                        opened_at=_iso(dossier.opened_at),
                        room_id=dossier.room_id,
                        unread_urgent=dossier.id in unread,
                    )
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
            return {"dossiers": result, "total": total or 0}

    @staticmethod
    def unread_urgent(user_id: str) -> Any:
        """Condition on ``Dossier``: an urgent note of someone else, readable by the whole
        circle (a restricted one says nothing of itself), written after ``user_id`` last
        read the dossier's notes."""
        read_at = (
            select(DossierRead.read_at)
            .where(DossierRead.user_id == user_id, DossierRead.dossier_id == Note.dossier_id)
            .correlate(Note)
            .scalar_subquery()
        )
        return exists().where(
            Note.dossier_id == Dossier.id,
            Note.urgent.is_(True),
            Note.author != user_id,
            Note.visible_to_roles.is_(None),
            (read_at.is_(None)) | (Note.created_at > read_at),
        )

    def get_dossier(self, caller: Caller, dossier_id: str) -> DossierOut:
        with self.acting(caller, "dossier.read", dossier_id, "read") as act:
            return self.to_json(act.dossier, act.access)

    def patch_dossier(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> DossierOut:
        with self.acting(caller, "dossier.update", dossier_id, "manage") as act:
            session, dossier, access = act.session, act.dossier, act.access
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
                dossier.closed_at = None if status == "open" else self.clock()
                enqueue(session, dossier.id, ROOMS)  # read-only room, or writable again
            act.detail = self.record_consent(session, dossier, caller, body)
            if act.detail is not None:
                # The rooms' link says whether a team of a peer server may be invited.
                enqueue(session, dossier.id, ROOMS)
            return self.to_json(dossier, access)

    # -- care circle ---------------------------------------------------------------------

    @staticmethod
    def member_json(
        m: CircleMember, now: dt.datetime, pro: Professional | None = None
    ) -> MemberOut:
        """A circle entry; with its directory entry, the person's name and profession (so
        pages show people, not Matrix ids)."""
        return {
            "user_id": m.user_id,
            "display_name": pro.display_name if pro is not None else None,
            "profession": pro.profession if pro is not None else None,
            "role": m.role,
            "coordinator": m.coordinator,
            "since": _iso(m.since),
            "until": _iso(m.until),
            "added_by": m.added_by,
            "removed_by": m.removed_by,
            "removed_at": _iso(m.removed_at),
            "active": m.active(now),
        }

    def circle(self, caller: Caller, dossier_id: str) -> list[MemberOut]:
        now = self.clock()
        with self.acting(caller, "circle.read", dossier_id, "read") as act:
            rows = act.session.execute(
                select(CircleMember, Professional)
                .outerjoin(Professional, Professional.user_id == CircleMember.user_id)
                .where(CircleMember.dossier_id == dossier_id)
                .order_by(CircleMember.id)
            ).all()
            return [self.member_json(m, now, pro) for m, pro in rows]

    def add_member(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> MemberOut:
        user_id, role = body["user_id"], body["role"]
        with self.acting(caller, "circle.add", dossier_id, "manage") as act:
            session, dossier = act.session, act.dossier
            act.detail = user_id
            pathway = PATHWAYS.version(dossier.pathway, dossier.pathway_version)
            circle_members.may_change(act.access, pathway)
            attested = bool(body.get("attested"))
            circle_members.check_role(pathway, role, dossier, attested)
            server = server_of(user_id)
            if server not in self._allowed_servers:
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"user_id : le serveur « {server} » n'est pas un serveur partenaire : ses "
                    "comptes ne peuvent pas entrer dans les salles patient",
                )
            if role not in RESTRICTED_ROLES and not self._is_professional(session, user_id):
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"user_id : {user_id} n'est pas inscrit à l'annuaire des professionnels ; "
                    "seuls les professionnels de l'annuaire, ou le patient et ses proches "
                    "avec leur rôle (PATIENT, AID, PC, RL) si le parcours les admet, entrent "
                    "dans le cercle",
                )
            now = self.clock()
            if circle_members.active_members(session, dossier_id, user_id, now):
                raise ApiError(409, "M_CONFLICT", "cette personne est déjà dans le cercle")
            until = _parse_dt(body["until"], "until") if body.get("until") else None
            if until is not None and until <= now:
                raise ApiError(400, "M_INVALID_PARAM", "la date de sortie doit être à venir")
            member = CircleMember(
                dossier_id=dossier_id,
                user_id=user_id,
                role=role,
                coordinator=bool(body.get("coordinator")),
                until=until,
                added_by=caller.user_id,
            )
            if attested and outside_care_team(pathway, role):
                attestation = record_attestation(
                    session,
                    dossier,
                    caller.user_id,
                    None,
                    f"entrée au cercle, rôle « {role_label(role)} »",
                )
                if attestation:
                    act.detail += " ; " + attestation
            session.add(member)
            enqueue(session, dossier_id, user_id)
            session.flush()
            return self.member_json(member, now, session.get(Professional, user_id))

    def remove_member(self, caller: Caller, dossier_id: str, user_id: str) -> MemberOut:
        now = self.clock()
        with self.acting(caller, "circle.remove", dossier_id, "manage") as act:
            session = act.session
            act.detail = user_id
            circle_members.may_change(
                act.access, PATHWAYS.version(act.dossier.pathway, act.dossier.pathway_version)
            )
            current = circle_members.active_members(session, dossier_id, user_id, now)
            if not current:
                raise ApiError(404, "M_NOT_FOUND", "cette personne n'est pas dans le cercle")
            for member in current:
                member.removed_at = now
                member.removed_by = caller.user_id
            enqueue(session, dossier_id, user_id)
            return self.member_json(current[0], now, session.get(Professional, user_id))

    def invite_favourites(
        self, caller: Caller, dossier_id: str, ref: int | str, body: dict[str, Any]
    ) -> FavouritesInvitedOut:
        """Invite one of the caller's favourites groups into the dossier: each member gets
        a circle entry as ``add_member`` makes it (or, for an RPPS without an account, the
        invitation ``invite`` sends), so each check applies person by person; the answer
        says per person what happened. Only a coordinator changes the circle: anyone else
        is refused, told which coordinators to ask."""
        name, people = self.favourite_people(caller, ref)
        with self.acting(caller, "circle.favourites", dossier_id, "read") as act:
            act.detail = f"groupe « {name} » ({len(people)} personne(s))"
            if not act.access.manage:
                coordinators = [
                    m.user_id
                    for m in circle_members.active_members(act.session, dossier_id)
                    if m.coordinator
                ]
                found = directory.people_json(act.session, coordinators)
                named = ", ".join(
                    str(directory.person_ref(found, u)["display_name"] or u) for u in coordinators
                )
                raise ApiError(
                    403,
                    "M_FORBIDDEN",
                    "seul un coordinateur du dossier inscrit des personnes au cercle de soins"
                    + (f" : demandez-le à {named}" if named else ""),
                )
        default = str(body.get("role") or "PRO")
        attested = bool(body.get("attested"))
        results = [self._invite_one(caller, dossier_id, p, default, attested) for p in people]
        return {
            "group": name,
            "dossier_id": dossier_id,
            "results": results,
            "counts": {k: sum(r["outcome"] == k for r in results) for k in FAVOURITE_OUTCOMES},
        }

    def _invite_one(
        self, caller: Caller, dossier_id: str, person: Person, default: str, attested: bool
    ) -> FavouriteInvitedOut:
        role = person.role or default
        user_id = person.user_id
        outcome, message = "added", None
        try:
            if user_id is None:
                try:
                    self.invite(caller, dossier_id, {"rpps": person.rpps, "role": role})
                    outcome = "invited"
                except ApiError as exc:
                    if not (exc.data and exc.data.get("user_id")):
                        raise
                    user_id = str(exc.data["user_id"])  # enrolled since it was kept
            if outcome == "added":
                member = {"user_id": user_id, "role": role, "attested": attested}
                self.add_member(caller, dossier_id, member)
        except ApiError as exc:
            already = exc.status == 409
            outcome, message = ("already" if already else "refused"), exc.message
        with self.tx() as session:
            row = FavouriteMember(user_id=user_id, rpps=None if user_id else person.rpps)
            shown = members_json(session, [row])[0]
        return {
            **shown,
            "role": role,
            "outcome": outcome,
            "label": FAVOURITE_OUTCOMES[outcome],
            "message": message,
        }

    # -- cahier de liaison ---------------------------------------------------------------

    @staticmethod
    def note_json(
        note: Note, corrected_by: str | None, documents: list[DocumentOut] | None = None
    ) -> NoteOut:
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
            "attachments": cast(list[NoteAttachmentOut], note.body.get("attachments", [])),
            "documents": documents or [],
        }

    def notes(self, caller: Caller, dossier_id: str) -> list[NoteOut]:
        """The notes the caller may read; reading them marks the dossier read for the
        caller (the "unread urgent notes" filter)."""
        with self.acting(caller, "notes.read", dossier_id, "read") as act:
            reader = visibility.reader_of(act.session, dossier_id, act.access)
            visible = visibility.readable_notes(act.session, dossier_id, [reader])
            self._mark_read(act.session, caller.user_id, dossier_id)
            return self.notes_json(act.session, visible)

    @staticmethod
    def _mark_read(session: Session, user_id: str, dossier_id: str) -> None:
        """The caller read the dossier's notes now (two reads at once: one row, no error)."""
        now = utcnow()
        where = (DossierRead.user_id == user_id, DossierRead.dossier_id == dossier_id)
        touched = session.execute(update(DossierRead).where(*where).values(read_at=now))
        if touched.rowcount:  # type: ignore[attr-defined]
            return
        try:
            with session.begin_nested():
                session.add(DossierRead(user_id=user_id, dossier_id=dossier_id, read_at=now))
        except IntegrityError:
            pass  # the other read wrote it

    def notes_in_room(
        self, caller: Caller, dossier_id: str, room_id: str
    ) -> tuple[list[NoteOut], int]:
        """The notes an answer posted in ``room_id`` may show the caller (readable by every
        reader of the room), and how many of the caller's notes were held back."""
        with self.acting(caller, "notes.read", dossier_id, "read") as act:
            reader = visibility.reader_of(act.session, dossier_id, act.access)
            shown, held = visibility.room_notes(act.session, dossier_id, room_id, reader)
            return self.notes_json(act.session, shown), held

    def notes_json(self, session: Session, visible: list[Note]) -> list[NoteOut]:
        """Notes as the API shows them, with their documents; a correction is named only if
        it is among them."""
        corrected = {n.corrects: n.id for n in visible if n.corrects}
        documents = documents_of(session, (n.id for n in visible))
        return [self.note_json(n, corrected.get(n.id), documents[n.id]) for n in visible]

    def add_note(
        self, caller: Caller, dossier_id: str, body: dict[str, Any], corrects: str | None = None
    ) -> NoteOut:
        action = "notes.correct" if corrects else "notes.write"
        with self.acting(caller, action, dossier_id, "write") as act:
            session = act.session
            if act.dossier.status != "open":
                raise ApiError(
                    409, "M_CONFLICT", "le dossier est clos : le cahier est en lecture seule"
                )
            reader = visibility.reader_of(session, dossier_id, act.access)
            roles = body.get("visible_to_roles")
            for ref in (body.get("reply_to"), corrects):
                if ref is not None:
                    # A note the caller may not read is unknown to them.
                    other = visibility.readable_note(session, dossier_id, ref, reader)
                    if other is None:
                        raise ApiError(404, "M_NOT_FOUND", "note inconnue dans ce dossier")
                    if corrects and other.author != caller.user_id:
                        raise ApiError(
                            403, "M_FORBIDDEN", "seul l'auteur d'une note peut la corriger"
                        )
                    # A reply or a correction of a restricted note stays as restricted.
                    roles = roles or sorted(visibility.restricted_to(other)) or None
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
            act.detail = note.id
            return self.note_json(note, None)

    # -- tasks ---------------------------------------------------------------------------

    @staticmethod
    def task_json(task: Task) -> TaskOut:
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

    def tasks(self, caller: Caller, dossier_id: str, which: str = "toutes") -> list[TaskOut]:
        """The dossier's tasks: all of them (``toutes``, cancelled ones included), the open
        ones (``ouvertes``) or the done ones (``faites``): done tasks stay visible."""
        statuses = TASK_FILTERS.get(which)
        if which not in TASK_FILTERS:
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                f"statut : « {which[:40]} » inconnu (valeurs : {', '.join(TASK_FILTERS)})",
            )
        with self.acting(caller, "tasks.read", dossier_id, "read") as act:
            query = select(Task).where(Task.dossier_id == dossier_id)
            if statuses is not None:
                query = query.where(Task.status.in_(statuses))
            rows = act.session.scalars(query.order_by(Task.created_at, Task.id)).all()
            return [self.task_json(t) for t in rows]

    def add_task(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> TaskOut:
        with self.acting(caller, "tasks.write", dossier_id, "write") as act:
            session = act.session
            due = _parse_date(body["due"], "due") if body.get("due") else None
            task = Task(
                dossier_id=dossier_id,
                title={"text": body["title"]},
                assignee=body["assignee"],
                due=due,
                created_by=caller.user_id,
            )
            session.add(task)
            session.flush()
            act.detail = task.id
            return self.task_json(task)

    def patch_task(
        self, caller: Caller, dossier_id: str, task_id: str, body: dict[str, Any]
    ) -> TaskOut:
        with self.acting(caller, "tasks.update", dossier_id, "write") as act:
            act.detail = task_id[:32]
            task = act.session.get(Task, task_id)
            if task is None or task.dossier_id != dossier_id:
                raise ApiError(404, "M_NOT_FOUND", "tâche inconnue dans ce dossier")
            task.status = body["status"]
            task.done_by = caller.user_id if task.status == "done" else None
            task.done_at = self.clock() if task.status == "done" else None
            return self.task_json(task)

    # -- audit ---------------------------------------------------------------------------

    def audit(self, caller: Caller, dossier_id: str, limit: int) -> list[AuditEntryOut]:
        """The dossier's audit, room-side decisions (``room_decisions``) included."""
        load_room_decisions(self._engine, self._decision_log)
        with self.acting(caller, "audit.read", dossier_id, "audit") as act:
            rows = act.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.dossier_id == dossier_id)
                .order_by(AuditEntry.id.desc())
                .limit(limit)
            ).all()
            return [
                AuditEntryOut(
                    at=_iso(a.at),
                    actor=a.actor,
                    basis=a.basis,
                    on_behalf_of=a.on_behalf_of,
                    action=a.action,
                    component=a.component,
                    allowed=a.allowed,
                    detail=a.detail,
                )
                for a in rows
            ]

    # -- delegations, structures, directory ---------------------------------------------

    @staticmethod
    def delegation_json(d: Delegation) -> DelegationOut:
        return {"id": d.id, "from_user": d.from_user, "to_user": d.to_user, "until": _iso(d.until)}

    def delegate(self, caller: Caller, body: dict[str, Any]) -> DelegationOut:
        """Let a directory professional of an allowed server act with my rights, until a
        date at most ``MAX_DELEGATION_DAYS`` ahead. The delegate gets the rights of my own
        circle entries only (never those I hold by delegation): no re-delegation."""
        to_user = body["to_user"]
        with self.acting(caller, "delegation.create") as act:
            act.detail = f"à {to_user}"
            until = _parse_dt(body["until"], "until")
            now = self.clock()
            if until <= now:
                raise ApiError(
                    400, "M_INVALID_PARAM", "until : la délégation doit finir dans le futur"
                )
            if until > now + dt.timedelta(days=MAX_DELEGATION_DAYS):
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"until : une délégation dure au plus {MAX_DELEGATION_DAYS} jours",
                )
            if to_user == caller.user_id:
                raise ApiError(400, "M_INVALID_PARAM", "to_user : on ne se délègue pas à soi-même")
            server = server_of(to_user)
            if server not in self._allowed_servers:
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"to_user : le serveur « {server} » n'est pas un serveur partenaire",
                )
            if not self._is_professional(act.session, to_user):
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"to_user : {to_user} n'est pas inscrit à l'annuaire des professionnels ; "
                    "on ne délègue qu'à un professionnel de l'annuaire",
                )
            delegation = Delegation(from_user=caller.user_id, to_user=to_user, until=until)
            act.session.add(delegation)
            act.session.flush()
            act.detail = f"n° {delegation.id} à {to_user} jusqu'au {_iso(until)}"
            return self.delegation_json(delegation)

    def revoke_delegation(self, caller: Caller, delegation_id: int) -> DelegationOut:
        """End a delegation now (its author, or its delegate who declines it)."""
        with self.acting(caller, "delegation.revoke") as act:
            act.detail = f"n° {delegation_id}"
            delegation = act.session.get(Delegation, delegation_id)
            if delegation is None or caller.user_id not in (
                delegation.from_user,
                delegation.to_user,
            ):
                raise ApiError(404, "M_NOT_FOUND", "délégation inconnue")
            if delegation.revoked_at is not None:
                raise ApiError(409, "M_CONFLICT", "cette délégation est déjà révoquée")
            delegation.revoked_at = self.clock()
            act.detail = f"n° {delegation.id} de {delegation.from_user} à {delegation.to_user}"
            return self.delegation_json(delegation)

    def delegations(self, caller: Caller) -> DelegationsOut:
        with self.tx() as session:

            def rows(column: Any) -> list[DelegationOut]:
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

    def search_directory(
        self,
        caller: Caller,
        q: str = "",
        profession: str = "",
        departement: str = "",
        page: int = 1,
        size: int = directory.PAGE_SIZE,
    ) -> DirectoryPageOut:
        """The national directory (public professional data), for any user of the server."""
        return directory.search_directory(self._engine, q, profession, departement, page, size)

    def me(self, caller: Caller) -> MeOut:
        with self.tx() as session:
            pro = session.get(Professional, caller.user_id)
            professional: ProfessionalOut | None = (
                None
                if pro is None
                else {
                    "profession": pro.profession,
                    "rpps": pro.rpps,
                    "adeli": pro.adeli,
                    "mssante": pro.mssante,
                    "display_name": pro.display_name,
                }
            )
            structures = session.execute(
                select(Structure.id, Structure.name, StructureStaff.role)
                .join(StructureStaff, StructureStaff.structure_id == Structure.id)
                .where(StructureStaff.user_id == caller.user_id)
                .order_by(Structure.name)
            ).all()
            return {
                "user_id": caller.user_id,
                "is_admin": caller.is_admin,
                "professional": professional,
                "structures": [
                    {"id": sid, "name": name, "role": role} for sid, name, role in structures
                ],
            }

    # -- rooms of the dossier ------------------------------------------------------------

    @staticmethod
    def room_json(room: DossierRoom) -> RoomOut:
        return {
            "key": room.id,
            "kind": room.kind,
            "label": room.label,
            "audience": room.audience,
            "room_id": room.room_id,
            "created_by": room.created_by,
            "created_at": _iso(room.created_at),
        }

    def rooms(self, caller: Caller, dossier_id: str) -> list[RoomOut]:
        with self.acting(caller, "rooms.read", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(DossierRoom)
                .where(DossierRoom.dossier_id == dossier_id)
                .order_by(DossierRoom.created_at, DossierRoom.id)
            ).all()
            return [self.room_json(r) for r in rows]

    def add_side_room(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> RoomOut:
        """A side room of the dossier (e.g. "coordination interne", professionals only)."""
        with self.acting(caller, "rooms.add", dossier_id, "manage") as act:
            session = act.session
            if act.dossier.status != "open":
                raise ApiError(409, "M_CONFLICT", "le dossier est clos : rouvrez-le d'abord")
            audience = body.get("audience", "professionals")
            if audience not in ROOM_AUDIENCES:
                raise ApiError(400, "M_INVALID_PARAM", f"public inconnu : « {audience} »")
            act.detail = audience
            room = DossierRoom(
                dossier_id=dossier_id,
                kind="side",
                label=body["label"],
                audience=audience,
                created_by=caller.user_id,
            )
            session.add(room)
            enqueue(session, dossier_id, ROOMS)
            session.flush()
            return self.room_json(room)

    def dossier_id_for_room(self, room_id: str) -> str | None:
        """The dossier a room (patient room or side room) belongs to (no access check: the
        caller then asks for the dossier with the user's rights)."""
        with self.tx() as session:
            return session.scalar(
                select(DossierRoom.dossier_id).where(DossierRoom.room_id == room_id)
            )

    def activity(self, caller: Caller, dossier_id: str, limit: int = 200) -> ActivityOut:
        """What happened in the dossier's rooms: message count (content stays end-to-end
        encrypted, never here) and the room history of the circle (invites, joins,
        departures, removals), latest first."""
        with self.acting(caller, "activity.read", dossier_id, "read") as act:
            session = act.session
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
