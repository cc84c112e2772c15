"""Favourites (groupes de favoris): a professional's named groups of colleagues, people of
the directory — a Maillon account bound in it, or a professional of the national directory
without an account yet (by RPPS) —, each with the circle role they take (optional). Only
the owner sees and changes their groups (another's group is unknown: 404).

Inviting a group into a dossier adds nobody by itself: each member gets the same circle
entry a coordinator would make one by one (``DossierService.invite_favourites`` calls
``add_member``, or ``invite`` for an RPPS without an account, person by person, so every
check of the circle applies: peer servers, roles of the pathway, consent for roles outside
the care team, pending invitations), and the answer says per person what happened. Only a
coordinator of the dossier changes its circle: for anyone else the request is refused, the
answer naming the dossier's coordinators to ask (the circle's rule; no request is queued).
The CRUD (renaming included) is the ``FavouriteOperations`` mixin of ``DossierService``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore, _iso
from dossier_api.domain.directory import professionals
from dossier_api.domain.enrolment import Listed, check_rpps, listed
from dossier_api.domain.models import (
    FavouriteGroup,
    FavouriteMember,
    Professional,
    Structure,
    StructureStaff,
)
from dossier_api.domain.shapes import FavouriteDeletedOut, FavouriteGroupOut, FavouriteMemberOut
from maillon.shared.circle import RESTRICTED_ROLES, ROLES, USER_ID_RE
from maillon.shared.text import fold_text

NAME_MAX = 80
MAX_GROUPS = 50
MAX_MEMBERS = 50
DEFAULT_ROLE = "PRO"
# Roles a colleague may be kept with: the professionals' (not the patient's, their
# relatives', nor a solicited team's).
MEMBER_ROLES = tuple(r for r in ROLES if r not in RESTRICTED_ROLES and r != "ERS")


def name_key(name: str) -> str:
    """A group's name as compared: no accents, no case, blanks as one."""
    return " ".join(fold_text(name).split())


def _name(value: object) -> str:
    name = " ".join(value.split()) if isinstance(value, str) else ""
    if not name:
        raise ApiError(400, "M_INVALID_PARAM", "name : le nom du groupe est attendu")
    if len(name) > NAME_MAX:
        raise ApiError(400, "M_INVALID_PARAM", f"name : {NAME_MAX} caractères au plus")
    return name


def _role(value: object) -> str | None:
    if value is None:
        return None
    if value not in MEMBER_ROLES:
        raise ApiError(400, "M_INVALID_PARAM", f"role : un de {', '.join(MEMBER_ROLES)} attendu")
    return str(value)


@dataclass(frozen=True)
class Person:
    """A member to keep: an account of the directory, or an RPPS without an account."""

    user_id: str | None
    rpps: str | None
    role: str | None


def person_of(session: Session, item: object) -> Person:
    """A member as given (``{"user_id"}`` or ``{"rpps"}``, optional ``role``), checked
    against the directory; an RPPS whose professional has an account is kept as that
    account."""
    if not isinstance(item, dict):
        raise ApiError(400, "M_INVALID_PARAM", "members : {user_id} ou {rpps} attendu")
    role = _role(item.get("role"))
    user_id = item.get("user_id")
    if user_id is not None:
        if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
            raise ApiError(400, "M_INVALID_PARAM", f"user_id : identifiant invalide : {user_id}")
        if session.get(Professional, user_id) is None:
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                f"{user_id} n'est pas inscrit à l'annuaire des professionnels",
            )
        return Person(user_id, None, role)
    rpps = check_rpps(item.get("rpps"))
    account = session.scalar(select(Professional.user_id).where(Professional.rpps == rpps))
    if account is not None:
        return Person(account, None, role)
    if listed(session, rpps) is None:
        raise ApiError(
            404, "M_NOT_FOUND", f"le numéro RPPS {rpps} n'est pas dans l'annuaire national"
        )
    return Person(None, rpps, role)


def _structures(session: Session, user_ids: list[str]) -> dict[str, list[str]]:
    """The structures these accounts are attached to, by name."""
    found: dict[str, list[str]] = {}
    if user_ids:
        rows = session.execute(
            select(StructureStaff.user_id, Structure.name)
            .join(Structure, Structure.id == StructureStaff.structure_id)
            .where(StructureStaff.user_id.in_(sorted(set(user_ids))))
            .order_by(Structure.name)
        )
        for user_id, name in rows:
            found.setdefault(user_id, []).append(name)
    return found


def _activity_structures(entry: Listed | None) -> list[str]:
    """The structures of a national-directory entry's activities (a member by RPPS)."""
    if entry is None:
        return []
    names = (a.get("structure") for a in entry.record.data.get("activities", []))
    return list(dict.fromkeys(n for n in names if n))


def members_json(session: Session, rows: list[FavouriteMember]) -> list[FavouriteMemberOut]:
    """The members with their names, professions and structures from the directory."""
    accounts = [m.user_id for m in rows if m.user_id is not None]
    people = professionals(session, accounts)
    attached = _structures(session, accounts)
    out: list[FavouriteMemberOut] = []
    for m in rows:
        if m.user_id is not None:
            pro = people.get(m.user_id)
            name = pro.display_name if pro else None
            profession = pro.profession if pro else None
            # Its structures in Maillon, else those of its national-directory entry.
            structures = attached.get(m.user_id) or (
                _activity_structures(listed(session, pro.rpps)) if pro and pro.rpps else []
            )
        else:
            entry = listed(session, str(m.rpps))
            name = entry.display_name if entry else None
            profession = entry.profession if entry else None
            structures = _activity_structures(entry)
        out.append(
            {
                "user_id": m.user_id,
                "rpps": m.rpps,
                "display_name": name,
                "profession": profession,
                "role": m.role,
                "structures": structures,
                "has_account": m.user_id is not None,
            }
        )
    return out


class FavouriteOperations(ServiceCore):
    """The caller's favourites groups: list, create, add or remove members, delete."""

    @staticmethod
    def _members(session: Session, group: FavouriteGroup) -> list[FavouriteMember]:
        return list(
            session.scalars(
                select(FavouriteMember)
                .where(FavouriteMember.group_id == group.id)
                .order_by(FavouriteMember.id)
            )
        )

    def _group_json(self, session: Session, group: FavouriteGroup) -> FavouriteGroupOut:
        return {
            "id": group.id,
            "name": group.name,
            "created_at": _iso(group.created_at),
            "members": members_json(session, self._members(session, group)),
        }

    @staticmethod
    def _own_group(session: Session, caller: Caller, ref: int | str) -> FavouriteGroup:
        """The caller's group by its id or its name (another's: unknown)."""
        which = (
            FavouriteGroup.id == ref
            if isinstance(ref, int)
            else FavouriteGroup.name_key == name_key(ref)
        )
        found = session.scalar(
            select(FavouriteGroup).where(FavouriteGroup.owner == caller.user_id, which)
        )
        if found is None:
            shown = f"n° {ref}" if isinstance(ref, int) else f"« {str(ref)[:NAME_MAX]} »"
            raise ApiError(404, "M_NOT_FOUND", f"groupe de favoris inconnu : {shown}")
        return found

    def _add_people(self, session: Session, group: FavouriteGroup, items: list[Any]) -> None:
        rows = self._members(session, group)
        if len(rows) + len(items) > MAX_MEMBERS:
            raise ApiError(400, "M_INVALID_PARAM", f"{MAX_MEMBERS} membres au plus par groupe")
        kept = {(m.user_id, m.rpps) for m in rows}
        for item in items:
            person = person_of(session, item)
            if (person.user_id, person.rpps) in kept:
                [shown] = members_json(
                    session, [FavouriteMember(user_id=person.user_id, rpps=person.rpps)]
                )
                who = shown["display_name"] or person.user_id or f"RPPS {person.rpps}"
                raise ApiError(409, "M_CONFLICT", f"{who} est déjà dans le groupe « {group.name} »")
            kept.add((person.user_id, person.rpps))
            session.add(
                FavouriteMember(
                    group_id=group.id, user_id=person.user_id, rpps=person.rpps, role=person.role
                )
            )
        session.flush()

    def favourites(self, caller: Caller) -> list[FavouriteGroupOut]:
        with self.acting(caller, "favourites.list") as act:
            rows = act.session.scalars(
                select(FavouriteGroup)
                .where(FavouriteGroup.owner == caller.user_id)
                .order_by(FavouriteGroup.name_key)
            ).all()
            return [self._group_json(act.session, g) for g in rows]

    def favourite(self, caller: Caller, ref: int | str) -> FavouriteGroupOut:
        with self.acting(caller, "favourites.read") as act:
            return self._group_json(act.session, self._own_group(act.session, caller, ref))

    def create_favourites(self, caller: Caller, body: dict[str, Any]) -> FavouriteGroupOut:
        """A new named group with its first members (people of the directory)."""
        with self.acting(caller, "favourites.create") as act:
            session = act.session
            name = _name(body.get("name"))
            act.detail = name
            owned = session.scalar(
                select(func.count()).where(FavouriteGroup.owner == caller.user_id)
            )
            if (owned or 0) >= MAX_GROUPS:
                raise ApiError(400, "M_INVALID_PARAM", f"{MAX_GROUPS} groupes au plus")
            self._name_free(session, caller, name, None)
            group = FavouriteGroup(owner=caller.user_id, name=name, name_key=name_key(name))
            session.add(group)
            session.flush()
            members = body.get("members") or []
            if not isinstance(members, list):
                raise ApiError(400, "M_INVALID_PARAM", "members : une liste est attendue")
            self._add_people(session, group, members)
            return self._group_json(session, group)

    def rename_favourites(self, caller: Caller, ref: int | str, name: object) -> FavouriteGroupOut:
        """A new name for one of the caller's groups (not one of their other groups')."""
        with self.acting(caller, "favourites.rename") as act:
            session = act.session
            group = self._own_group(session, caller, ref)
            new_name = _name(name)
            act.detail = f"{group.name} → {new_name}"
            self._name_free(session, caller, new_name, group.id)
            group.name, group.name_key = new_name, name_key(new_name)
            session.flush()
            return self._group_json(session, group)

    @staticmethod
    def _name_free(session: Session, caller: Caller, name: str, group_id: int | None) -> None:
        taken = session.scalar(
            select(FavouriteGroup.id).where(
                FavouriteGroup.owner == caller.user_id,
                FavouriteGroup.name_key == name_key(name),
                FavouriteGroup.id != (group_id or 0),
            )
        )
        if taken is not None:
            raise ApiError(409, "M_CONFLICT", f"vous avez déjà un groupe « {name} »")

    def add_favourites(
        self, caller: Caller, ref: int | str, members: list[Any]
    ) -> FavouriteGroupOut:
        with self.acting(caller, "favourites.add") as act:
            group = self._own_group(act.session, caller, ref)
            act.detail = group.name
            if not members:
                raise ApiError(400, "M_INVALID_PARAM", "members : au moins une personne")
            self._add_people(act.session, group, members)
            return self._group_json(act.session, group)

    def remove_favourite(self, caller: Caller, ref: int | str, who: str) -> FavouriteGroupOut:
        """Take a person (their Matrix id or their RPPS) out of the group."""
        with self.acting(caller, "favourites.remove") as act:
            session = act.session
            group = self._own_group(session, caller, ref)
            act.detail = group.name
            found = next(
                (m for m in self._members(session, group) if who in (m.user_id, m.rpps)), None
            )
            if found is None:
                raise ApiError(
                    404, "M_NOT_FOUND", f"{who[:255]} n'est pas dans le groupe « {group.name} »"
                )
            session.delete(found)
            session.flush()
            return self._group_json(session, group)

    def delete_favourites(self, caller: Caller, ref: int | str) -> FavouriteDeletedOut:
        with self.acting(caller, "favourites.delete") as act:
            session = act.session
            group = self._own_group(session, caller, ref)
            act.detail = group.name
            for m in self._members(session, group):
                session.delete(m)
            session.delete(group)
            return {"ok": True, "name": group.name}

    def favourite_people(self, caller: Caller, ref: int | str) -> tuple[str, list[Person]]:
        """The group's name and members, to be invited one by one."""
        with self.tx() as session:
            group = self._own_group(session, caller, ref)
            return group.name, [
                Person(m.user_id, m.rpps, m.role) for m in self._members(session, group)
            ]
