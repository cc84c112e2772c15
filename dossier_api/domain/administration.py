"""The administration console's operations: pathway versions (create, publish, restore,
import, export, preview) and the migration of dossiers to a version, each checked, done and
audited with its before and after in one transaction (``ServiceCore.acting``).

Who administers what: regional administrators (``caller.is_admin``) everything; a
structure's managers their structure (``manages_structure``, the one rule)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dossier_api.domain import pathway_store
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore, audit_change
from dossier_api.domain.directory import people_json, person_ref, search_directory
from dossier_api.domain.directory_import import (
    DirectoryFileError,
    ImportReport,
    detect_format,
    import_extract,
    open_source,
)
from dossier_api.domain.federation import FORBIDDEN, FederationPeers
from dossier_api.domain.mail.outbox import ADDRESS_RE
from dossier_api.domain.models import (
    STAFF_ROLES,
    STRUCTURE_KINDS,
    AuditEntry,
    DirectoryImport,
    Dossier,
    DossierRoom,
    PathwayVersion,
    Structure,
    StructureStaff,
)
from dossier_api.domain.pathways import (
    PATHWAYS,
    Pathway,
    PathwayError,
    from_yaml,
    parse_pathway,
    to_yaml,
)
from dossier_api.domain.rooms import ROOMS, enqueue, name_fields, reference
from dossier_api.domain.shapes import (
    AuditPage,
    AuditRow,
    DirectoryResultOut,
    PathwayDefinitionRow,
    PathwaySummaryRow,
    PathwayVersionRow,
    StructureOut,
)
from dossier_api.domain.teams import TeamRegistry
from maillon.shared.circle import USER_ID_RE, numbered_slug, slugify, structure_address

SAMPLE_FIELDS = {"initiales": "J. D.", "annee": "1950", "ref": "ABC123"}


def manages_structure(session: Session, caller: Caller, structure_id: str) -> bool:
    """Whether the caller administers this structure: a regional administrator, or one of
    the structure's managers."""
    if caller.is_admin:
        return True
    staff = session.get(StructureStaff, (structure_id, caller.user_id))
    return staff is not None and staff.role == "manager"


def managed_structures(session: Session, caller: Caller) -> list[str]:
    """The structures a (non-administrator) caller manages."""
    return list(
        session.scalars(
            select(StructureStaff.structure_id).where(
                StructureStaff.user_id == caller.user_id, StructureStaff.role == "manager"
            )
        )
    )


def free_slug(session: Session, name: str) -> str:
    """A slug for a new structure's address, from its name (numbered when taken)."""
    base = slugify(name)
    slug, n = base, 1
    while session.scalar(select(Structure.id).where(Structure.slug == slug)) is not None:
        n += 1
        slug = numbered_slug(base, n)
    return slug


def new_structure(session: Session, name: str, kind: str = "structure") -> Structure:
    """A structure (personne morale), its name unique."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ApiError(400, "M_INVALID_PARAM", "nom de la structure : 1 à 200 caractères")
    if kind not in STRUCTURE_KINDS:
        raise ApiError(400, "M_INVALID_PARAM", f"type de structure inconnu : {kind}")
    if session.scalar(select(Structure).where(Structure.name == name)):
        raise ApiError(409, "M_CONFLICT", "une structure porte déjà ce nom")
    structure = Structure(name=name, kind=kind, slug=free_slug(session, name))
    session.add(structure)
    session.flush()
    return structure


def put_staff(session: Session, structure_id: str, user_id: str, role: str | None) -> str | None:
    """Attach a professional to a structure, change their role (``member``, ``manager``,
    ``referent``) or, with ``role=None``, detach them; returns their role before."""
    if role is not None and role not in STAFF_ROLES:
        raise ApiError(400, "M_BAD_JSON", f"rôle inconnu : {role}")
    if not USER_ID_RE.match(user_id):
        raise ApiError(400, "M_INVALID_PARAM", f"identifiant Matrix invalide : « {user_id} »")
    if session.get(Structure, structure_id) is None:
        raise ApiError(404, "M_NOT_FOUND", "structure inconnue")
    staff = session.get(StructureStaff, (structure_id, user_id))
    before = staff.role if staff else None
    if role is None:
        if staff is not None:
            session.delete(staff)
    elif staff is None:
        session.add(StructureStaff(structure_id=structure_id, user_id=user_id, role=role))
    else:
        staff.role = role
    return before


def _structure_json(structure: Structure, server_name: str) -> StructureOut:
    return {
        "id": structure.id,
        "name": structure.name,
        "kind": structure.kind,
        "slug": structure.slug,
        "address": structure_address(structure.slug, server_name) if structure.slug else None,
        "account": structure.account,
        "mssante": structure.mssante,
    }


@dataclass(frozen=True)
class RoomPreview:
    name: str
    topic: str
    welcome: str
    allow_patient: bool
    allow_knock: bool


def room_preview(pathway: Pathway, fields: dict[str, str] | None = None) -> RoomPreview:
    """The room a dossier on this pathway would get (with sample name variables)."""
    template = pathway.room_template
    return RoomPreview(
        name=template.name.format(**(fields or SAMPLE_FIELDS)),
        topic=template.topic,
        welcome=template.welcome,
        allow_patient=template.allow_patient,
        allow_knock=template.allow_knock,
    )


def _version_json(row: PathwayVersion) -> PathwayVersionRow:
    return {
        "pathway_id": row.pathway_id,
        "version": row.version,
        "status": row.status,
        "author": row.author,
        "created_at": row.created_at,
        "published_at": row.published_at,
        "name": str(row.definition.get("name", row.pathway_id)),
    }


def _forms_of(pathway: Pathway) -> dict[str, set[str]]:
    return {f.id: {x.id for x in f.fields} for f in pathway.forms}


def forms_change(old: Pathway, new: Pathway) -> list[str]:
    """What changes in the forms, roles and checklist from one version to another (French)."""
    changes = []
    before, after = _forms_of(old), _forms_of(new)
    for form_id in sorted(after.keys() - before.keys()):
        changes.append(f"formulaire ajouté : {form_id}")
    for form_id in sorted(before.keys() - after.keys()):
        changes.append(f"formulaire retiré : {form_id}")
    for form_id in sorted(before.keys() & after.keys()):
        for field_id in sorted(after[form_id] - before[form_id]):
            changes.append(f"formulaire {form_id} : champ ajouté « {field_id} »")
        for field_id in sorted(before[form_id] - after[form_id]):
            changes.append(f"formulaire {form_id} : champ retiré « {field_id} »")
    for role in new.roles_allowed:
        if role not in old.roles_allowed:
            changes.append(f"rôle ajouté : {role}")
    for role in old.roles_allowed:
        if role not in new.roles_allowed:
            changes.append(f"rôle retiré : {role}")
    if old.tasks_checklist != new.tasks_checklist:
        changes.append("liste de tâches modifiée")
    return changes


def room_changes(old: Pathway, new: Pathway, fields: dict[str, str], kind: str) -> list[str]:
    """What changes in one room: name, topic, knocking (join rule: the power to knock),
    patient admitted or not."""
    a, b = room_preview(old, fields), room_preview(new, fields)
    changes = []
    if a.name != b.name:
        changes.append(f"nom : « {a.name} » → « {b.name} »")
    if a.topic != b.topic:
        changes.append(f"sujet : « {a.topic} » → « {b.topic} »")
    if kind == "main" and a.allow_knock != b.allow_knock:
        changes.append(
            "niveaux d'accès : demande d'entrée (knock) "
            + ("autorisée" if b.allow_knock else "retirée")
        )
    if a.allow_patient != b.allow_patient:
        changes.append(
            "niveaux d'accès : patient et proches " + ("admis" if b.allow_patient else "exclus")
        )
    return changes


@dataclass(frozen=True)
class AuditFilters:
    """What the audit browser is asked for (every field optional)."""

    dossier_id: str | None = None
    person: str | None = None  # a Matrix id: the actor, or whom they acted for
    structure_id: str | None = None
    component: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None  # included

    def describe(self) -> str:
        return json.dumps(
            {k: str(v) for k, v in self.__dict__.items() if v is not None}, sort_keys=True
        )


AUDIT_CSV_HEADER = (
    "date",
    "dossier",
    "acteur",
    "nom",
    "pour le compte de",
    "fondement",
    "action",
    "composant",
    "autorisé",
    "détail",
)


def _entry_json(row: AuditEntry) -> AuditRow:
    return {
        "id": row.id,
        "at": row.at,
        "dossier_id": row.dossier_id,
        "actor": row.actor,
        "on_behalf_of": row.on_behalf_of,
        "basis": row.basis,
        "action": row.action,
        "component": row.component,
        "allowed": row.allowed,
        "detail": row.detail,
    }


class Administration(TeamRegistry, FederationPeers, ServiceCore):
    """Operations of the console, for regional administrators (pathways, migrations,
    federation peers, resource teams — whose rota their coordinators keep too)."""

    def refuse(self, caller: Caller, action: str) -> None:
        """Refuse (and audit) a page the caller may not see."""
        with self.acting(caller, action):
            raise ApiError(403, "M_FORBIDDEN", FORBIDDEN)

    def may_administer(self, caller: Caller) -> bool:
        """Administrator, or manager of at least one structure."""
        if caller.is_admin:
            return True
        with Session(self._engine) as session:
            return bool(managed_structures(session, caller))

    # -- pathways ------------------------------------------------------------------------

    def pathways(self, caller: Caller) -> list[PathwaySummaryRow]:
        """Each pathway with its versions (latest first), the published one (named by it,
        else by the latest) and how many dossiers follow each version."""
        with self.acting(caller, "admin.pathways.read") as act:
            self._require_admin(caller)
            rows = act.session.scalars(
                select(PathwayVersion).order_by(
                    PathwayVersion.pathway_id, PathwayVersion.version.desc()
                )
            )
            versions: dict[str, list[PathwayVersionRow]] = {}
            published: dict[str, PathwayVersionRow] = {}
            for row in rows:
                version = _version_json(row)
                versions.setdefault(row.pathway_id, []).append(version)
                if row.status == "published":
                    published[row.pathway_id] = version
            found = []
            for pathway_id, listed in versions.items():
                counts = act.session.execute(
                    select(Dossier.pathway_version, func.count())
                    .where(Dossier.pathway == pathway_id)
                    .group_by(Dossier.pathway_version)
                )
                entry: PathwaySummaryRow = {
                    "id": pathway_id,
                    "name": published.get(pathway_id, listed[0])["name"],
                    "versions": listed,
                    "dossiers": {version: count for version, count in counts.tuples()},
                }
                if pathway_id in published:
                    entry["published"] = published[pathway_id]["version"]
                found.append(entry)
            return found

    def definition(
        self, caller: Caller, pathway_id: str, version: int | None
    ) -> PathwayDefinitionRow:
        """A version's definition (the published one when ``version`` is None)."""
        with self.acting(caller, "admin.pathway.read") as act:
            self._require_admin(caller)
            row = self._row(act.session, pathway_id, version)
            act.detail = f"{pathway_id} v{row.version}"
            return {**_version_json(row), "definition": row.definition}

    @staticmethod
    def _row(session: Session, pathway_id: str, version: int | None) -> PathwayVersion:
        if version is None:
            row = pathway_store.published_rows(session).get(pathway_id)
        else:
            row = pathway_store.get_version(session, pathway_id, version)
        if row is None:
            raise ApiError(404, "M_NOT_FOUND", f"version de parcours inconnue : {pathway_id}")
        return row

    def create_version(
        self, caller: Caller, definition: dict[str, Any], publish: bool = False
    ) -> PathwayVersionRow:
        """A new version of a pathway (or a new pathway); refused with the field named when
        the parser refuses it, and then nothing is written."""
        with self.acting(caller, "admin.pathway.create") as act:
            self._require_admin(caller)
            published = pathway_store.published_rows(act.session).get(str(definition.get("id", "")))
            try:
                row = pathway_store.add_version(
                    act.session, definition, caller.user_id, published=publish
                )
            except PathwayError as exc:
                raise ApiError(400, "M_INVALID_PARAM", str(exc)) from exc
            audit_change(
                act,
                published.definition if published else None,
                row.definition,
                f"{row.pathway_id} v{row.version}" + (" (publiée)" if publish else ""),
            )
            result = _version_json(row)
        if publish:
            PATHWAYS.refresh()
        return result

    def import_yaml(self, caller: Caller, text: str) -> PathwayVersionRow:
        try:
            definition, _ = from_yaml(text, "YAML importé")
        except PathwayError as exc:
            with self.acting(caller, "admin.pathway.import"):
                raise ApiError(400, "M_INVALID_PARAM", str(exc)) from exc
        return self.create_version(caller, definition)

    def export_yaml(self, caller: Caller, pathway_id: str, version: int | None) -> str:
        return to_yaml(self.definition(caller, pathway_id, version)["definition"])

    def publish(self, caller: Caller, pathway_id: str, version: int) -> None:
        with self.acting(caller, "admin.pathway.publish") as act:
            self._require_admin(caller)
            row = self._row(act.session, pathway_id, version)
            before = pathway_store.published_rows(act.session).get(pathway_id)
            try:
                pathway_store.publish(act.session, row)
            except PathwayError as exc:
                raise ApiError(400, "M_INVALID_PARAM", str(exc)) from exc
            audit_change(
                act,
                {"version": before.version if before else None},
                {"version": row.version},
                f"{pathway_id} : version publiée",
            )
        PATHWAYS.refresh()

    def restore(self, caller: Caller, pathway_id: str, version: int) -> PathwayVersionRow:
        """An older version becomes the published one again, as a new version (numbers only
        grow: a dossier's version always names what it follows)."""
        with Session(self._engine) as session:
            row = self._row(session, pathway_id, version)
            definition = dict(row.definition)
        return self.create_version(caller, definition, publish=True)

    # -- migrating dossiers ----------------------------------------------------------------

    def migration_plan(self, caller: Caller, pathway_id: str, version: int) -> dict[str, Any]:
        """Dry run: per dossier on another version of the pathway, what would change in each
        of its rooms (name, topic, access levels) and in its forms, roles and checklist."""
        with self.acting(caller, "admin.migration.dry_run") as act:
            self._require_admin(caller)
            act.detail = f"{pathway_id} → v{version}"
            return self._plan(act.session, pathway_id, version)

    def _plan(self, session: Session, pathway_id: str, version: int) -> dict[str, Any]:
        target_row = self._row(session, pathway_id, version)
        if target_row.status == "draft":
            raise ApiError(409, "M_INVALID_PARAM", "publiez d'abord cette version")
        target = parse_pathway(target_row.definition, f"{pathway_id} v{version}")
        dossiers = session.scalars(
            select(Dossier)
            .where(Dossier.pathway == pathway_id, Dossier.pathway_version != version)
            .order_by(Dossier.opened_at)
        ).all()
        rooms = session.scalars(
            select(DossierRoom).where(DossierRoom.dossier_id.in_([d.id for d in dossiers]))
        ).all()
        by_dossier: dict[str, list[DossierRoom]] = {}
        for room in rooms:
            by_dossier.setdefault(room.dossier_id, []).append(room)
        planned = []
        for dossier in dossiers:
            old = PATHWAYS.version(pathway_id, dossier.pathway_version)
            if old is None:
                continue
            fields = name_fields(dossier)
            planned.append(
                {
                    "dossier_id": dossier.id,
                    "reference": reference(dossier.id),
                    "from_version": dossier.pathway_version,
                    "rooms": [
                        {
                            "kind": r.kind,
                            "label": r.label,
                            "changes": room_changes(old, target, fields, r.kind),
                        }
                        for r in by_dossier.get(dossier.id, [])
                    ],
                    "changes": forms_change(old, target),
                }
            )
        return {"pathway_id": pathway_id, "version": version, "dossiers": planned}

    def migrate(self, caller: Caller, pathway_id: str, version: int) -> list[str]:
        """Apply: the dossiers follow the version, their rooms are brought to its template
        by the room-sync jobs; one audit row with each dossier's before and after."""
        with self.acting(caller, "admin.migration.apply") as act:
            self._require_admin(caller)
            plan = self._plan(act.session, pathway_id, version)
            moved = [d["dossier_id"] for d in plan["dossiers"]]
            for dossier in act.session.scalars(select(Dossier).where(Dossier.id.in_(moved))):
                detail = json.dumps(
                    {"avant": {"version": dossier.pathway_version}, "apres": {"version": version}}
                )
                dossier.pathway_version = version
                enqueue(act.session, dossier.id, ROOMS)
                self.audit_entry(
                    act.session, dossier.id, act.access, "pathway.migrate", True, detail
                )
            audit_change(
                act,
                {d["reference"]: d["from_version"] for d in plan["dossiers"]},
                {d["reference"]: version for d in plan["dossiers"]},
                f"{pathway_id} : dossiers migrés vers la version {version}",
            )
            return moved

    # -- audit browser -----------------------------------------------------------------------

    def _audit_query(self, session: Session, caller: Caller, wanted: AuditFilters) -> Any:
        """Administrators see every row; a structure's managers the rows of its dossiers
        only (asking for another structure is refused)."""
        query = select(AuditEntry)
        if not caller.is_admin:
            mine = managed_structures(session, caller)
            if not mine or (wanted.structure_id and wanted.structure_id not in mine):
                raise ApiError(
                    403, "M_FORBIDDEN", "Ce journal est réservé aux managers de la structure."
                )
            scope = [wanted.structure_id] if wanted.structure_id else mine
            query = query.where(
                AuditEntry.dossier_id.in_(select(Dossier.id).where(Dossier.structure_id.in_(scope)))
            )
        elif wanted.structure_id:
            query = query.where(
                AuditEntry.dossier_id.in_(
                    select(Dossier.id).where(Dossier.structure_id == wanted.structure_id)
                )
            )
        if wanted.dossier_id:
            query = query.where(AuditEntry.dossier_id == wanted.dossier_id)
        if wanted.person:
            query = query.where(
                (AuditEntry.actor == wanted.person) | (AuditEntry.on_behalf_of == wanted.person)
            )
        if wanted.component:
            query = query.where(AuditEntry.component == wanted.component)
        if wanted.since:
            start = dt.datetime.combine(wanted.since, dt.time(), dt.UTC)
            query = query.where(AuditEntry.at >= start)
        if wanted.until:
            end = dt.datetime.combine(wanted.until + dt.timedelta(days=1), dt.time(), dt.UTC)
            query = query.where(AuditEntry.at < end)
        return query

    def audit(
        self, caller: Caller, wanted: AuditFilters, limit: int = 100, offset: int = 0
    ) -> AuditPage:
        """One page of the audit, latest first, with the people's names and professions."""
        with self.acting(caller, "admin.audit.read") as act:
            act.detail = wanted.describe()
            query = self._audit_query(act.session, caller, wanted)
            total = act.session.scalar(select(func.count()).select_from(query.subquery()))
            rows = act.session.scalars(
                query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
            ).all()
            people = people_json(
                act.session, {r.actor for r in rows} | {r.on_behalf_of for r in rows}
            )
            components = (
                list(act.session.scalars(select(AuditEntry.component).distinct()))
                if caller.is_admin
                else []
            )
            return {
                "entries": [_entry_json(r) for r in rows],
                "total": int(total or 0),
                "people": people,
                "components": sorted(components),
            }

    def audit_csv(self, caller: Caller, wanted: AuditFilters) -> str:
        """The rows the filters select, as CSV (audited with the filters)."""
        with self.acting(caller, "admin.audit.export") as act:
            act.detail = wanted.describe()
            rows = act.session.scalars(
                self._audit_query(act.session, caller, wanted).order_by(AuditEntry.id)
            ).all()
            people = people_json(act.session, {r.actor for r in rows})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(AUDIT_CSV_HEADER)
        for r in rows:
            name = person_ref(people, r.actor)["display_name"] or ""
            writer.writerow(
                [
                    r.at.isoformat(timespec="seconds"),
                    r.dossier_id or "",
                    r.actor,
                    name,
                    r.on_behalf_of or "",
                    r.basis,
                    r.action,
                    r.component,
                    "oui" if r.allowed else "non",
                    r.detail or "",
                ]
            )
        return out.getvalue()

    # -- structures ----------------------------------------------------------------------------

    def _manage(self, session: Session, caller: Caller, structure_id: str) -> Structure:
        structure = session.get(Structure, structure_id)
        if structure is None:
            raise ApiError(404, "M_NOT_FOUND", "structure inconnue")
        if not manages_structure(session, caller, structure_id):
            raise ApiError(403, "M_FORBIDDEN", "Réservé aux managers de cette structure.")
        return structure

    def structures(self, caller: Caller) -> list[dict[str, Any]]:
        """The structures the caller administers, with their staff (names and professions)."""
        with self.acting(caller, "admin.structures.read") as act:
            query = select(Structure).order_by(Structure.name)
            if not caller.is_admin:
                query = query.where(Structure.id.in_(managed_structures(act.session, caller)))
            structures = act.session.scalars(query).all()
            staff = act.session.scalars(
                select(StructureStaff).where(
                    StructureStaff.structure_id.in_([s.id for s in structures])
                )
            ).all()
            people = people_json(act.session, {m.user_id for m in staff})
            listed = []
            for structure in structures:
                staffed: dict[str, Any] = {
                    **_structure_json(structure, self._server_name),
                    "staff": [
                        {"user_id": m.user_id, "role": m.role, **people.get(m.user_id, {})}
                        for m in staff
                        if m.structure_id == structure.id
                    ],
                }
                listed.append(staffed)
            return listed

    def create_structure(self, caller: Caller, name: str, kind: str) -> StructureOut:
        with self.acting(caller, "admin.structure.create") as act:
            self._require_admin(caller)
            created = _structure_json(new_structure(act.session, name, kind), self._server_name)
            audit_change(act, None, created, "structure")
            return created

    def set_contact(
        self, caller: Caller, structure_id: str, account: str | None, mssante: str | None
    ) -> None:
        """The structure's account (a Matrix id) and MSSanté address (either may be empty)."""
        with self.acting(caller, "admin.structure.contact") as act:
            structure = self._manage(act.session, caller, structure_id)
            if account and not USER_ID_RE.match(account):
                raise ApiError(
                    400, "M_INVALID_PARAM", f"compte : identifiant Matrix invalide « {account} »"
                )
            if mssante and not ADDRESS_RE.match(mssante):
                raise ApiError(400, "M_INVALID_PARAM", f"adresse MSSanté invalide : « {mssante} »")
            before = {"account": structure.account, "mssante": structure.mssante}
            structure.account, structure.mssante = account or None, mssante or None
            after = {"account": structure.account, "mssante": structure.mssante}
            audit_change(act, before, after, f"structure {structure.name}")

    def set_staff(self, caller: Caller, structure_id: str, user_id: str, role: str | None) -> None:
        """Attach, change the role of, or (``role=None``) detach a member of the staff."""
        with self.acting(caller, "admin.structure.staff") as act:
            structure = self._manage(act.session, caller, structure_id)
            before = put_staff(act.session, structure_id, user_id, role)
            audit_change(
                act,
                {"user_id": user_id, "role": before},
                {"user_id": user_id, "role": role},
                f"personnel de {structure.name}",
            )

    # -- directory imports -------------------------------------------------------------------

    def directory_imports(self, caller: Caller, limit: int = 20) -> list[dict[str, Any]]:
        """The latest imports of the national directory and their reports."""
        with self.acting(caller, "admin.directory.read") as act:
            self._require_admin(caller)
            rows = act.session.scalars(
                select(DirectoryImport).order_by(DirectoryImport.id.desc()).limit(limit)
            ).all()
            return [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "file_name": r.file_name,
                    "sha256": r.sha256,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "lines": r.lines,
                    "added": r.added,
                    "changed": r.changed,
                    "removed": r.removed,
                    "rejected": r.rejected,
                    "rejections": r.rejections,
                }
                for r in rows
            ]

    def find_professionals(self, caller: Caller, words: str) -> list[DirectoryResultOut]:
        """The national directory's entries matching ``words`` (the console's search of a
        team's new member), with their account when they have one."""
        with self.acting(caller, "admin.directory.search") as act:
            self._require_admin(caller)
            act.detail = words[:200]
            found = search_directory(self._engine, words, size=10)
            return list(found["results"])

    def start_directory_import(self, caller: Caller, path: Path, name: str) -> None:
        """Check (and audit) an import before it runs: an administrator, a file whose header
        is one of the directory's extracts (else 400, nothing imported)."""
        with self.acting(caller, "admin.directory.import") as act:
            self._require_admin(caller)
            act.detail = name[:200]
            try:
                source = open_source(path)
                with source.opener() as stream:
                    detect_format(stream.readline())
            except DirectoryFileError as exc:
                raise ApiError(400, "M_INVALID_PARAM", f"fichier refusé : {exc}") from exc

    def run_directory_import(self, path: Path) -> ImportReport:
        """The import itself (long: run it off the event loop); its report is stored."""
        return import_extract(self._engine, path)
