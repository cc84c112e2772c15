"""Resource teams (équipes ressources): regional or departmental expert teams a care circle
solicits about a dossier. A team has members (with their role in it and its coordinator),
a rota (weekly on-duty pattern and dated exceptions, Europe/Paris), a response-time target
and an escalation chain: the rota's next level, then the team's coordinator, then the
structure's account.

A solicitation (``avis`` — tele-expertise — or ``prise_en_charge``) goes to the members on
duty now; nobody of the team is in the care circle until one accepts: the first accepter
(one conditional update, so two accepts at once make one winner) becomes a circle member
with role ``ERS`` until the end of the solicitation plus the team's exit delay. Every step
is dated (``SolicitationEvent``), audited, and in the dossier's timeline. A team is outside
the care team: consent is checked by ``consent.team_sharing_refusal``. The operations are
the ``TeamOperations`` mixin of ``DossierService``; rota and chain are pure functions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.orm import Session

from dossier_api.domain import circle_members
from dossier_api.domain.access import Access, Caller
from dossier_api.domain.care import _person
from dossier_api.domain.consent import record_attestation, team_sharing_refusal
from dossier_api.domain.core import ApiError, ServiceCore, _iso, audit_change
from dossier_api.domain.directory import people_json, person_ref, professionals
from dossier_api.domain.ins import display_name
from dossier_api.domain.models import (
    KINDS,
    LEVELS,
    STATUSES,
    STEPS,
    CircleMember,
    Dossier,
    Solicitation,
    SolicitationEvent,
    Structure,
    StructureStaff,
    Team,
    TeamMember,
)
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.ppcs_pdf import ReportDocument, render_report
from dossier_api.domain.rooms import enqueue
from dossier_api.domain.shapes import ReportOut, RotaOut, SolicitationOut, TeamBoardOut, TeamOut
from maillon.shared.circle import (
    TEAM_SLUG_RE,
    USER_ID_RE,
    server_of,
    team_address,
)
from maillon.shared.dates_fr import DAYS, PARIS, TIME_OF_DAY
from maillon.shared.text import fold
from maillon.shared.typed_config import ConfigKeyError, parse

ROLE = "ERS"  # the circle role of a team's accepter
OPEN = ("envoyee", "vue")
TAKEN = ("acceptee", "repondue")
REASON_MAX = 2000
# A peer region's team: its exit delay is not known here (the team's default).
REMOTE_EXIT_DELAY_SECONDS = 7 * 86400
# How long an outgoing solicitation waits for the peer region's answer (its own chain
# escalates and expires there; the answer comes back through the room).
REMOTE_WAIT = dt.timedelta(days=30)
# Outcomes of an incoming solicitation told back to the requester's room (see
# ``incoming_outcomes``): accepted by someone, or nobody.
RELAYED = ("acceptee", "refusee", "expiree")
REPORT_FIELDS = ("question", "elements", "advice")


# -- rota ------------------------------------------------------------------------------


def _time(value: str) -> str | None:
    if not re.match(TIME_OF_DAY, value):
        return f"heure HH:MM attendue, pas « {value} »"
    return None


def _day(value: str) -> str | None:
    if value and value not in DAYS:
        return f"jour inconnu « {value} » (jours : {', '.join(DAYS)})"
    return None


def _date(value: str) -> str | None:
    if not value:
        return None
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return f"date AAAA-MM-JJ attendue, pas « {value} »"
    return None


def _members(value: object) -> str | None:
    bad = [m for m in value if not USER_ID_RE.match(m)] if isinstance(value, tuple) else []
    return f"identifiants Matrix invalides : {', '.join(bad)}" if bad else None


def _level(value: object) -> str | None:
    return "niveau de 1 à 9 attendu" if isinstance(value, int) and not 1 <= value <= 9 else None


@dataclass(frozen=True)
class Slot:
    """Who is on duty from ``start`` to ``end`` (Paris time) on a weekday (``day``, in the
    weekly pattern) or on one date (``date``, an exception), at a level of the chain."""

    members: tuple[str, ...] = field(metadata={"check": _members})
    start: str = field(default="00:00", metadata={"check": _time})
    end: str = field(default="24:00", metadata={"check": _time})
    day: str = field(default="", metadata={"check": _day})
    date: str = field(default="", metadata={"check": _date})
    level: int = field(default=1, metadata={"check": _level})

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ConfigKeyError("end", f"la fin ({self.end}) doit suivre le début ({self.start})")


@dataclass(frozen=True)
class Rota:
    """A team's rota: its weekly pattern; on a date with exceptions, those replace the
    pattern for the whole day (an exception with no member: nobody on duty by the rota)."""

    weekly: tuple[Slot, ...] = ()
    exceptions: tuple[Slot, ...] = ()

    def __post_init__(self) -> None:
        for i, slot in enumerate(self.weekly):
            if not slot.day or slot.date:
                raise ConfigKeyError(f"weekly[{i}].day", "un jour de la semaine est attendu")
        for i, slot in enumerate(self.exceptions):
            if not slot.date or slot.day:
                raise ConfigKeyError(f"exceptions[{i}].date", "une date AAAA-MM-JJ est attendue")

    def people(self) -> set[str]:
        return {m for slot in (*self.weekly, *self.exceptions) for m in slot.members}


ROTA_PARTS = {"weekly": "semaine", "exceptions": "exceptions"}
ROTA_KEYS = {
    "day": "jour",
    "date": "date",
    "start": "début",
    "end": "fin",
    "members": "membres de garde",
    "level": "niveau d'escalade",
}


def rota_field(key: str) -> str:
    """The rota's field a refusal names, as the console shows it: ``rota.weekly[0].end``
    is « fin », line 1 of the week (the key itself follows, for the API's callers)."""
    found = re.match(r"^rota\.(weekly|exceptions)(?:\[(\d+)\])?(?:\.(\w+))?", key)
    if found is None:
        return f"« planning » ({key})"
    part, line, name = found.groups()
    where = ROTA_PARTS[part] + (f", ligne {int(line) + 1}" if line is not None else "")
    label = ROTA_KEYS.get(name or "", name or "")
    return f"« {label} » ({where}, {key})" if label else f"« {where} » ({key})"


def parse_rota(data: object) -> Rota:
    try:
        return parse(Rota, data, "rota")
    except ConfigKeyError as exc:
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            f"planning, champ {rota_field(exc.key)} : {exc.message}",
            {"field": exc.key},
        ) from exc


def on_duty(rota: Rota | None, members: Iterable[str], now: dt.datetime) -> dict[int, list[str]]:
    """The members on duty at ``now``, by level (no rota: every member, level 1)."""
    team = set(members)
    if rota is None:
        return {1: sorted(team)} if team else {}
    local = now.astimezone(PARIS)
    today, time = local.date().isoformat(), local.strftime("%H:%M")
    slots = [s for s in rota.exceptions if s.date == today] or [
        s for s in rota.weekly if s.day == DAYS[local.weekday()]
    ]
    levels: dict[int, set[str]] = {}
    for slot in slots:
        if slot.start <= time < slot.end:
            levels.setdefault(slot.level, set()).update(m for m in slot.members if m in team)
    return {level: sorted(people) for level, people in sorted(levels.items()) if people}


def chain(team: Team, members: list[TeamMember], now: dt.datetime) -> list[list[str]]:
    """The escalation chain at ``now``: the rota's levels on duty, the team's coordinators,
    the structure's account (empty steps left out)."""
    rota = parse_rota(team.rota) if team.rota is not None else None
    steps = list(on_duty(rota, [m.user_id for m in members], now).values())
    steps.append(sorted(m.user_id for m in members if m.coordinator))
    steps.append([team.structure_account] if team.structure_account else [])
    return [s for s in steps if s]


# A structure's address solicited: its référents, then its managers, then its account; the
# accepter stays in the circle this long after the end (as a team's default).
STRUCTURE_RESPONSE_SECONDS = 4 * 3600
STRUCTURE_EXIT_DELAY_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Target:
    """Whom a solicitation is addressed to: a resource team, or a structure (its address,
    « le compte du service ») — one of ``team_slug`` and ``structure_id``."""

    team_slug: str | None
    structure_id: str | None
    name: str
    pathways: tuple[str, ...]
    response_seconds: int
    exit_delay_seconds: int

    @property
    def label(self) -> str:
        """How refusals name it."""
        return f"l'équipe « {self.name} »" if self.team_slug else f"la structure « {self.name} »"

    @staticmethod
    def of_team(team: Team) -> Target:
        return Target(
            team.slug,
            None,
            team.name,
            tuple(team.pathways),
            team.response_seconds,
            team.exit_delay_seconds,
        )

    @staticmethod
    def of_structure(structure: Structure) -> Target:
        return Target(
            None,
            structure.id,
            structure.name,
            (),
            STRUCTURE_RESPONSE_SECONDS,
            STRUCTURE_EXIT_DELAY_SECONDS,
        )


def structure_chain(session: Session, structure: Structure) -> list[list[str]]:
    """A structure's escalation chain: its référents, its managers, its account."""
    staff = session.scalars(
        select(StructureStaff).where(StructureStaff.structure_id == structure.id)
    ).all()
    steps = [sorted(m.user_id for m in staff if m.role == role) for role in ("referent", "manager")]
    steps.append([structure.account] if structure.account else [])
    return [st for st in steps if st]


# A solicitation of one of our teams or structures (not an outgoing one to a peer's team).
LOCAL_TARGET = or_(Solicitation.team_slug.is_not(None), Solicitation.structure_id.is_not(None))


def target_name() -> ColumnElement[str]:
    """A solicitation's target's name in SQL (with ``with_targets``' joins)."""
    return func.coalesce(Team.name, Structure.name, Solicitation.remote_team)


Query = TypeVar("Query", bound=Select)  # type: ignore[type-arg]


def with_targets(query: Query) -> Query:
    """``query`` on solicitations, joined to their team or structure (either may be none)."""
    return query.outerjoin(Team, Team.slug == Solicitation.team_slug).outerjoin(
        Structure, Structure.id == Solicitation.structure_id
    )


def dossier_steps(
    session: Session, dossier_id: str
) -> list[tuple[SolicitationEvent, Solicitation, str]]:
    """Every step of the dossier's solicitations, with its solicitation and team name."""
    query = select(SolicitationEvent, Solicitation, target_name()).join(
        Solicitation, Solicitation.id == SolicitationEvent.solicitation_id
    )
    rows = session.execute(
        with_targets(query).where(Solicitation.dossier_id == dossier_id, LOCAL_TARGET)
    ).all()
    return [(e, s, name) for e, s, name in rows]


def step_text(event: SolicitationEvent, s: Solicitation) -> str | None:
    """What a step says in the timeline: the reason when sent, the advice when answered."""
    if event.status == "envoyee":
        return str(s.reason.get("text", ""))
    if event.status == "repondue" and s.report:
        return str(s.report.get("advice", ""))
    return None


# -- operations ------------------------------------------------------------------------


def _text(body: dict[str, Any], key: str, limit: int = REASON_MAX) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "M_INVALID_PARAM", f"{key} : un texte est attendu")
    if len(value) > limit:
        raise ApiError(400, "M_INVALID_PARAM", f"{key} : {limit} caractères au plus")
    return value.strip()


def _of_dossier(s: Solicitation, dossier_id: str | None) -> None:
    """A solicitation reached from a dossier's page is that dossier's (else unknown)."""
    if dossier_id is not None and s.dossier_id != dossier_id:
        raise ApiError(404, "M_NOT_FOUND", f"sollicitation inconnue dans ce dossier : {s.id}")


T = TypeVar("T")


def _found(row: T | None, message: str) -> T:
    if row is None:
        raise ApiError(404, "M_NOT_FOUND", message)
    return row


def _told_requester(s: Solicitation) -> list[str]:
    """Who of the requester's side our bot tells of a step: the requester, unless the
    solicitation came from a peer region (its server tells them, from our answer)."""
    return [s.requester] if s.dossier_id is not None else []


TEAM_FIELDS = {
    "slug": "identifiant",
    "name": "nom",
    "level": "niveau",
    "structure_id": "structure",
    "expertise": "expertise",
    "pathways": "parcours servis",
    "territory": "territoire",
    "response_seconds": "délai de réponse",
    "exit_delay_seconds": "maintien dans le cercle",
    "structure_account": "compte de la structure",
    "members": "membres",
    "role": "rôle dans l'équipe",
}
# The team's fields an administrator edits (the slug, its address, never changes).
EDITABLE = (
    "name",
    "level",
    "structure_id",
    "expertise",
    "pathways",
    "territory",
    "response_seconds",
    "exit_delay_seconds",
    "structure_account",
)
# What the team's coordinator may change besides the rota: the rest of the escalation chain.
CHAIN_FIELDS = ("response_seconds", "structure_account")
MAX_DELAY = 365 * 86400


def _invalid(key: str, message: str) -> ApiError:
    """A refusal naming the team's field (its console label, then its API key)."""
    return ApiError(
        400,
        "M_INVALID_PARAM",
        f"champ « {TEAM_FIELDS[key]} » ({key}) : {message}",
        {"field": key},
    )


def _seconds(body: dict[str, Any], key: str, default: int, least: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_DELAY:
        raise _invalid(key, f"un nombre de secondes de {least} à {MAX_DELAY} est attendu")
    return value


def team_state(team: Team, members: Iterable[TeamMember]) -> dict[str, Any]:
    """A team as its audit rows record it, before and after a change."""
    return {
        **{key: getattr(team, key) for key in ("slug", *EDITABLE)},
        "members": [
            {"user_id": m.user_id, "role": m.role, "coordinator": m.coordinator}
            for m in sorted(members, key=lambda m: m.user_id)
        ],
        "rota": team.rota,
    }


class TeamRegistry(ServiceCore):
    """The teams themselves: created and edited by administrators (the CLI, the API and the
    console call these), their rota and escalation chain kept by their coordinator too;
    every change audited with its before and after."""

    def _team(self, session: Session, slug: str) -> Team:
        return _found(session.get(Team, slug), f"équipe ressource inconnue : « {slug[:40]} »")

    @staticmethod
    def _team_members(session: Session, slug: str) -> list[TeamMember]:
        return list(
            session.scalars(
                select(TeamMember).where(TeamMember.team_slug == slug).order_by(TeamMember.user_id)
            )
        )

    def _target(self, session: Session, s: Solicitation) -> Target:
        """The team or structure a solicitation of ours is addressed to."""
        if s.structure_id is not None:
            structure = session.get(Structure, s.structure_id)
            return Target.of_structure(_found(structure, "structure inconnue"))
        return Target.of_team(self._team(session, str(s.team_slug)))

    def _requested(self, session: Session, body: dict[str, Any]) -> Target:
        """The target a request names: ``structure`` (a structure's slug) or ``team``."""
        slug = body.get("structure")
        if slug is not None:
            structure = session.scalar(select(Structure).where(Structure.slug == str(slug)))
            return Target.of_structure(
                _found(structure, f"structure inconnue : « {str(slug)[:40]} »")
            )
        return Target.of_team(self._team(session, str(body.get("team", ""))))

    def _steps(self, session: Session, target: Target, now: dt.datetime) -> list[list[str]]:
        if target.structure_id is not None:
            structure = _found(session.get(Structure, target.structure_id), "structure inconnue")
            return structure_chain(session, structure)
        team = self._team(session, str(target.team_slug))
        return chain(team, self._team_members(session, team.slug), now)

    def team_json(self, session: Session, team: Team) -> TeamOut:
        members = self._team_members(session, team.slug)
        people = people_json(session, [m.user_id for m in members])
        structure = session.get(Structure, team.structure_id) if team.structure_id else None
        return {
            "slug": team.slug,
            "name": team.name,
            "address": team_address(team.slug, self._server_name),
            "level": team.level,
            "level_label": LEVELS[team.level],
            "structure": structure.name if structure else None,
            "structure_id": team.structure_id,
            "expertise": team.expertise,
            "pathways": list(team.pathways),
            "territory": team.territory,
            "response_seconds": team.response_seconds,
            "exit_delay_seconds": team.exit_delay_seconds,
            "structure_account": team.structure_account,
            "members": [
                {
                    **person_ref(people, m.user_id),
                    "role": m.role,
                    "coordinator": m.coordinator,
                }
                for m in members
            ],
            "rota": cast(RotaOut | None, team.rota),  # as ``parse_rota`` checked it
        }

    def _check_people(self, people: Iterable[str], key: str) -> None:
        for user_id in people:
            if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
                raise _invalid(key, f"identifiant Matrix invalide : « {str(user_id)[:80]} »")
            if server_of(user_id) not in self._allowed_servers:
                raise _invalid(key, f"le serveur de {user_id} n'est pas un serveur partenaire")

    def _team_fields(self, session: Session, body: dict[str, Any]) -> dict[str, Any]:
        """The editable fields of a team, checked (the refusal names the field)."""
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("name", "un texte est attendu")
        if len(name.strip()) > 200:
            raise _invalid("name", "200 caractères au plus")
        level = body.get("level")
        if level not in LEVELS:
            raise _invalid("level", f"{' ou '.join(LEVELS)} attendu")
        pathways = body.get("pathways") or []
        if not isinstance(pathways, list) or not all(isinstance(p, str) for p in pathways):
            raise _invalid("pathways", "une liste de parcours est attendue")
        unknown = [p for p in pathways if p not in PATHWAYS]
        if unknown:
            raise _invalid("pathways", f"parcours inconnus : {', '.join(unknown)}")
        structure_id = body.get("structure_id") or None
        if structure_id is not None and (
            not isinstance(structure_id, str) or session.get(Structure, structure_id) is None
        ):
            raise _invalid("structure_id", "structure inconnue")
        account = body.get("structure_account") or None
        self._check_people([account] if account else [], "structure_account")
        texts = {}
        for key in ("expertise", "territory"):
            value = body.get(key) or ""
            if not isinstance(value, str) or len(value) > 200:
                raise _invalid(key, "un texte de 200 caractères au plus est attendu")
            texts[key] = value.strip()
        return {
            "name": name.strip(),
            "level": level,
            "structure_id": structure_id,
            "pathways": list(dict.fromkeys(pathways)),
            "structure_account": account,
            "response_seconds": _seconds(body, "response_seconds", 4 * 3600, 1),
            "exit_delay_seconds": _seconds(body, "exit_delay_seconds", 7 * 86400, 0),
            **texts,
        }

    @staticmethod
    def _member_row(slug: str, member: object) -> TeamMember:
        if not isinstance(member, dict):
            raise _invalid("members", "chaque membre : {user_id, role, coordinator}")
        role = member.get("role") or ""
        if not isinstance(role, str) or len(role) > 80:
            raise _invalid("role", "un texte de 80 caractères au plus est attendu")
        return TeamMember(
            team_slug=slug,
            user_id=str(member.get("user_id", "")),
            role=role.strip(),
            coordinator=bool(member.get("coordinator", False)),
        )

    def add_team(self, caller: Caller, body: dict[str, Any]) -> TeamOut:
        """Create a team (administrators). ``members``: [{user_id, role, coordinator}]."""
        with self.acting(caller, "team.add") as act:
            if not caller.is_admin:
                raise ApiError(403, "M_FORBIDDEN", "seul l'administrateur crée les équipes")
            session = act.session
            slug = body.get("slug")
            if not isinstance(slug, str) or not TEAM_SLUG_RE.match(slug):
                raise _invalid("slug", "minuscules, chiffres et tirets, 40 caractères au plus")
            if session.get(Team, slug) is not None:
                raise ApiError(409, "M_CONFLICT", f"l'équipe « {slug} » existe déjà")
            fields = self._team_fields(session, body)
            members = body.get("members") or []
            if not isinstance(members, list) or not members:
                raise _invalid("members", "au moins un membre")
            rows = [self._member_row(slug, m) for m in members]
            self._check_people([m.user_id for m in rows], "members")
            if len({m.user_id for m in rows}) != len(rows):
                raise _invalid("members", "un membre est nommé deux fois")
            rota = parse_rota(body["rota"]) if body.get("rota") is not None else None
            team = Team(slug=slug, rota=body.get("rota") if rota is not None else None, **fields)
            session.add(team)
            session.flush()
            session.add_all(rows)
            session.flush()
            self._rota_members_known(session, team, rota)
            audit_change(act, None, team_state(team, rows), f"équipe {slug}")
            return self.team_json(session, team)

    @contextmanager
    def _changing(
        self, caller: Caller, action: str, slug: str, what: str, refusal: str | None
    ) -> Iterator[tuple[Session, Team, list[TeamMember]]]:
        """A change of one team in its transaction, audited with the team before and after:
        by an administrator (``refusal``: what others are told) or, with ``refusal=None``,
        by the team's coordinator too."""
        with self.acting(caller, action) as act:
            if refusal is not None and not caller.is_admin:
                raise ApiError(403, "M_FORBIDDEN", refusal)
            session = act.session
            team = self._team(session, slug)
            if not self._keeper(session, caller, slug):
                raise ApiError(
                    403, "M_FORBIDDEN", "seul le coordinateur de l'équipe tient son planning"
                )
            members = self._team_members(session, slug)
            before = team_state(team, members)
            yield session, team, members
            session.flush()
            audit_change(act, before, team_state(team, members), f"équipe {slug}{what}")

    def update_team(self, caller: Caller, slug: str, body: dict[str, Any]) -> TeamOut:
        """Change a team's name, level, structure, expertise, pathways, territory, delays
        and structure account (administrators); the fields absent from ``body`` are kept."""
        refusal = "seul l'administrateur modifie les équipes"
        with self._changing(caller, "team.update", slug, "", refusal) as (session, team, _):
            current = {key: getattr(team, key) for key in EDITABLE}
            for key, value in self._team_fields(session, {**current, **body}).items():
                setattr(team, key, value)
        return self._json_of(slug)

    def _json_of(self, slug: str) -> TeamOut:
        with self.tx() as session:
            return self.team_json(session, self._team(session, slug))

    def set_team_member(
        self, caller: Caller, slug: str, member: dict[str, Any] | None, user_id: str
    ) -> TeamOut:
        """Add a member to a team, change their role in it (and whether they coordinate
        it), or, with ``member=None``, remove them (administrators). A member the rota
        names is removed from the rota first; the team keeps one member at least."""
        refusal = "seul l'administrateur compose les équipes"
        changing = self._changing(caller, "team.member", slug, " : membres", refusal)
        with changing as (session, team, members):
            found = next((m for m in members if m.user_id == user_id), None)
            if member is None:
                if found is None:
                    raise ApiError(404, "M_NOT_FOUND", "ce professionnel n'est pas de l'équipe")
                if len(members) == 1:
                    raise _invalid("members", "l'équipe garde au moins un membre")
                rota = parse_rota(team.rota) if team.rota is not None else None
                if rota is not None and user_id in rota.people():
                    raise _invalid(
                        "members", "ce membre est de garde au planning : retirez-l'y d'abord"
                    )
                session.delete(found)
                members.remove(found)
            else:
                row = self._member_row(slug, {**member, "user_id": user_id})
                self._check_people([user_id], "members")
                if found is None:
                    session.add(row)
                    members.append(row)
                else:
                    found.role, found.coordinator = row.role, row.coordinator
        return self._json_of(slug)

    def _rota_members_known(self, session: Session, team: Team, rota: Rota | None) -> None:
        known = {m.user_id for m in self._team_members(session, team.slug)}
        strangers = sorted((rota.people() if rota else set()) - known)
        if strangers:
            raise ApiError(
                400,
                "M_INVALID_PARAM",
                f"planning, champ « membres de garde » (rota) : ne sont pas membres de "
                f"l'équipe : {', '.join(strangers)}",
                {"field": "rota"},
            )

    def _keeper(self, session: Session, caller: Caller, slug: str) -> bool:
        """Whether the caller keeps this team's rota: an administrator, or its coordinator."""
        if caller.is_admin:
            return True
        member = session.get(TeamMember, (slug, caller.user_id))
        return member is not None and member.coordinator

    def set_rota(
        self,
        caller: Caller,
        slug: str,
        data: dict[str, Any] | None,
        escalation: dict[str, Any] | None = None,
    ) -> TeamOut:
        """Replace a team's rota (its coordinator or the administrator); None: no rota.
        ``escalation``: the rest of the chain too (response time, structure account)."""
        changing = self._changing(caller, "team.rota", slug, " : planning", None)
        with changing as (session, team, _):
            rota = parse_rota(data) if data is not None else None
            self._rota_members_known(session, team, rota)
            if escalation is not None:
                current = {key: getattr(team, key) for key in EDITABLE}
                chained = {key: escalation[key] for key in CHAIN_FIELDS if key in escalation}
                checked = self._team_fields(session, {**current, **chained})
                for key in CHAIN_FIELDS:
                    setattr(team, key, checked[key])
            team.rota = data
        return self._json_of(slug)

    def teams(self, caller: Caller, pathway: str | None = None) -> list[TeamOut]:
        """The teams (serving ``pathway`` when given: a team with no pathway serves all)."""
        with self.acting(caller, "team.list") as act:
            rows = act.session.scalars(select(Team).order_by(Team.level, Team.name)).all()
            return [
                self.team_json(act.session, t)
                for t in rows
                if pathway is None or not t.pathways or pathway in t.pathways
            ]

    def keeps_teams(self, caller: Caller) -> bool:
        """Administrator, or coordinator of at least one team (the console's team page)."""
        if caller.is_admin:
            return True
        with self.tx() as session:
            found = session.scalars(
                select(TeamMember.team_slug).where(
                    TeamMember.user_id == caller.user_id, TeamMember.coordinator.is_(True)
                )
            ).first()
            return found is not None

    def _board(
        self, session: Session, caller: Caller, team: Team, now: dt.datetime
    ) -> TeamBoardOut:
        """A team as the console shows it: who is on duty now by level, and its escalation
        chain now, by name; whether the caller edits the team itself (administrators)."""
        members = self._team_members(session, team.slug)
        rota = parse_rota(team.rota) if team.rota is not None else None
        duty = on_duty(rota, [m.user_id for m in members], now)
        steps = chain(team, members, now)
        people = people_json(session, {u for step in steps for u in step})
        return {
            **self.team_json(session, team),
            "on_duty": [
                {"level": level, "people": [person_ref(people, u) for u in who]}
                for level, who in duty.items()
            ],
            "chain": [[person_ref(people, u) for u in step] for step in steps],
            "may_edit": caller.is_admin,
            "now": _iso(now),
        }

    def kept_teams(self, caller: Caller) -> list[TeamBoardOut]:
        """The teams the caller keeps (an administrator: all; a coordinator: theirs), each
        with who is on duty now and its escalation chain now."""
        now = self.clock()
        with self.acting(caller, "team.kept") as act:
            session = act.session
            rows = session.scalars(select(Team).order_by(Team.level, Team.name)).all()
            listed = [
                self._board(session, caller, team, now)
                for team in rows
                if self._keeper(session, caller, team.slug)
            ]
            act.detail = f"{len(listed)} équipe(s)"
            return listed

    def kept_team(self, caller: Caller, slug: str) -> TeamBoardOut:
        """One team, for an administrator or its coordinator (else 403, audited)."""
        now = self.clock()
        with self.acting(caller, "team.kept") as act:
            team = self._team(act.session, slug)
            act.detail = f"équipe {slug}"
            if not self._keeper(act.session, caller, slug):
                raise ApiError(
                    403,
                    "M_FORBIDDEN",
                    "Réservé aux administrateurs et au coordinateur de l'équipe.",
                )
            return self._board(act.session, caller, team, now)

    def find_team(self, caller: Caller, words: str) -> str | None:
        """The slug of the team named by ``words`` (its slug, or its name folded)."""
        wanted = fold(words)
        with self.tx() as session:
            for team in session.scalars(select(Team)):
                if wanted in (team.slug, fold(team.name)):
                    return team.slug
        return None


class TeamOperations(TeamRegistry):
    """Solicitations of the teams (``TeamRegistry``: the teams themselves)."""

    # -- solicitations ---------------------------------------------------------------------

    def _event(
        self,
        session: Session,
        s: Solicitation,
        status: str,
        actor: str | None,
        people: Iterable[str],
    ) -> None:
        s.updated_at = self.clock()
        session.add(
            SolicitationEvent(
                solicitation_id=s.id,
                at=s.updated_at,
                actor=actor,
                status=status,
                people=sorted({p for p in people if p}),
            )
        )

    def solicitation_json(self, session: Session, s: Solicitation) -> SolicitationOut:
        target = self._target(session, s) if s.team_slug or s.structure_id else None
        structure = session.get(Structure, s.structure_id) if s.structure_id else None
        dossier = session.get(Dossier, s.dossier_id) if s.dossier_id else None
        events = session.scalars(
            select(SolicitationEvent)
            .where(SolicitationEvent.solicitation_id == s.id)
            .order_by(SolicitationEvent.id)
        ).all()
        people = people_json(session, [s.requester, s.accepted_by])
        pathway = PATHWAYS.version(dossier.pathway, dossier.pathway_version) if dossier else None
        return {
            "id": s.id,
            "team": s.team_slug or s.remote_team or (structure.slug if structure else None),
            "team_name": target.name if target else s.remote_team,
            "structure_id": s.structure_id,
            "remote_team": s.remote_team,
            "room_id": s.room_id if s.dossier_id is None else None,
            "dossier_id": s.dossier_id,
            "pathway": pathway.name if pathway else (dossier.pathway if dossier else None),
            "pathway_id": dossier.pathway if dossier else None,
            "pathway_version": dossier.pathway_version if dossier else None,
            "kind": s.kind,
            "status": s.status,
            "status_label": STATUSES[s.status],
            "reason": s.reason.get("text", ""),
            "attested": s.attested,
            "requester": person_ref(people, s.requester),
            "accepted_by": person_ref(people, s.accepted_by) if s.accepted_by else None,
            "step": s.step,
            "notified": list(s.notified),
            "deadline": _iso(s.deadline),
            "created_at": _iso(s.created_at),
            "events": [
                {"at": _iso(e.at), "status": e.status, "label": STEPS[e.status], "actor": e.actor}
                for e in events
            ],
            "report": cast(ReportOut | None, s.report),  # as ``answer_solicitation`` wrote it
        }

    def solicit(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> SolicitationOut:
        """A circle member solicits a team about the dossier: sent to the members on duty
        now, if consent allows (or the requester attests the person was informed and did
        not object — recorded with the consent history)."""
        kind = body.get("kind", "avis")
        if kind not in KINDS:
            raise ApiError(400, "M_INVALID_PARAM", f"kind : {' ou '.join(KINDS)} attendu")
        reason = _text(body, "reason")
        attested = bool(body.get("attested", False))
        with self.acting(caller, "solicitation.create", dossier_id, "write") as act:
            session, dossier = act.session, act.dossier
            target = self._requested(session, body)
            act.detail = (
                f"équipe {target.team_slug}" if target.team_slug else f"structure {target.name}"
            )
            if target.pathways and dossier.pathway not in target.pathways:
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"{target.label} ne sert pas le parcours de ce dossier",
                )
            if dossier.status != "open":
                raise ApiError(409, "M_CONFLICT", "le dossier n'est pas ouvert")
            refusal = team_sharing_refusal(dossier, target.label, attested)
            if refusal is not None:
                raise refusal
            now = self.clock()
            if attested:
                attestation = record_attestation(
                    session,
                    dossier,
                    caller.user_id,
                    now,
                    f"sollicitation de {target.label}",
                )
                if attestation:
                    act.detail += " ; " + attestation
            s = self._send(
                session, target, caller.user_id, kind, reason, now, dossier_id=dossier_id
            )
            s.attested = attested
            return self.solicitation_json(session, s)

    def _send(
        self,
        session: Session,
        target: Target,
        requester: str,
        kind: str,
        reason: str,
        now: dt.datetime,
        dossier_id: str | None = None,
        room_id: str | None = None,
    ) -> Solicitation:
        """A new solicitation of ``target``, sent to the chain's first step (a team's members
        on duty now, a structure's référents), or expired at once when nobody is on it; its
        first steps recorded."""
        steps = self._steps(session, target, now)
        s = Solicitation(
            team_slug=target.team_slug,
            structure_id=target.structure_id,
            dossier_id=dossier_id,
            room_id=room_id,
            requester=requester,
            kind=kind if kind in KINDS else "avis",
            reason={"text": reason[:REASON_MAX]},
            status="envoyee" if steps else "expiree",
            step=0,
            notified=steps[0] if steps else [],
            deadline=now + dt.timedelta(seconds=target.response_seconds),
            created_at=now,
            updated_at=now,
        )
        session.add(s)
        session.flush()
        self._event(session, s, "envoyee", requester, s.notified)
        if not steps:
            self._event(session, s, "expiree", None, _told_requester(s))
        return s

    def _solicitation(self, session: Session, solicitation_id: int) -> Solicitation:
        found = session.get(Solicitation, solicitation_id)
        return _found(found, f"sollicitation inconnue : {solicitation_id}")

    @staticmethod
    def _declined(session: Session, s: Solicitation) -> set[str]:
        rows = session.scalars(
            select(SolicitationEvent.actor).where(
                SolicitationEvent.solicitation_id == s.id, SolicitationEvent.status == "declinee"
            )
        )
        return {actor for actor in rows if actor}

    def my_solicitations(self, caller: Caller) -> list[SolicitationOut]:
        """The solicitations the caller was told of (to accept or decline), or took: each
        read audited in its dossier (the reason is all of the dossier they see)."""
        with self.acting(caller, "solicitation.mine") as act:
            session = act.session
            rows = session.scalars(
                select(Solicitation)
                .where(Solicitation.status.in_((*OPEN, *TAKEN)))
                .order_by(Solicitation.id.desc())
            ).all()
            mine = [
                s
                for s in rows
                if s.accepted_by == caller.user_id
                or (s.status in OPEN and caller.user_id in s.notified)
            ]
            for s in mine:
                if s.dossier_id is not None:  # incoming from a peer region: no dossier here
                    access = Access(caller.user_id, "team")
                    self.audit_entry(session, s.dossier_id, access, "solicitation.read", True)
            return [self.solicitation_json(session, s) for s in mine]

    def dossier_solicitations(self, caller: Caller, dossier_id: str) -> list[SolicitationOut]:
        with self.acting(caller, "solicitation.list", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(Solicitation)
                .where(Solicitation.dossier_id == dossier_id)
                .order_by(Solicitation.id)
            ).all()
            return [self.solicitation_json(act.session, s) for s in rows]

    @staticmethod
    def _told(s: Solicitation, caller: Caller) -> None:
        if caller.user_id not in s.notified:
            raise ApiError(403, "M_FORBIDDEN", "cette sollicitation ne vous a pas été adressée")

    def see_solicitation(self, caller: Caller, solicitation_id: int) -> SolicitationOut:
        with self.acting(caller, "solicitation.see") as act:
            session = act.session
            s = self._solicitation(session, solicitation_id)
            act.dossier_id = s.dossier_id
            self._told(s, caller)
            if s.status == "envoyee":
                s.status = "vue"
                self._event(session, s, "vue", caller.user_id, [*_told_requester(s)])
            return self.solicitation_json(session, s)

    def accept_solicitation(self, caller: Caller, solicitation_id: int) -> SolicitationOut:
        """The first of the members told who accepts joins the circle (role ERS); the
        conditional update is the row lock: a second accepter finds it taken (409)."""
        with self.acting(caller, "solicitation.accept") as act:
            session = act.session
            s = self._solicitation(session, solicitation_id)
            act.dossier_id = s.dossier_id
            self._told(s, caller)
            target = self._target(session, s)
            if s.dossier_id is not None:  # incoming: the requester's region checked consent
                dossier = self._dossier(session, s.dossier_id)
                refusal = team_sharing_refusal(dossier, target.label, s.attested)
                if refusal is not None:
                    raise refusal
            now = self.clock()
            won = session.execute(
                update(Solicitation)
                .where(Solicitation.id == s.id, Solicitation.status.in_(OPEN))
                .values(status="acceptee", accepted_by=caller.user_id, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                session.refresh(s)
                taken = people_json(session, [s.accepted_by])
                by = person_ref(taken, s.accepted_by or "")["display_name"] or "un autre membre"
                raise ApiError(
                    409,
                    "M_CONFLICT",
                    f"sollicitation déjà prise en charge par {by}"
                    if s.accepted_by
                    else f"sollicitation {STATUSES[s.status]}",
                )
            session.refresh(s)
            self._admit(session, s, caller.user_id, now)
            others = [u for u in s.notified if u != caller.user_id]
            self._event(session, s, "acceptee", caller.user_id, [*_told_requester(s), *others])
            act.detail = f"{target.label} : prise en charge"
            return self.solicitation_json(session, s)

    @staticmethod
    def _admit(session: Session, s: Solicitation, user_id: str, now: dt.datetime) -> None:
        """The accepter's circle entry (role ERS) in the solicitation's dossier, if any."""
        if s.dossier_id is None:
            return  # incoming: the requester's region writes the entry (``remote_outcome``)
        if circle_members.active_members(session, s.dossier_id, user_id, now):
            return
        member = CircleMember(
            dossier_id=s.dossier_id,
            user_id=user_id,
            role=ROLE,
            coordinator=False,
            since=now,
            added_by=user_id,
        )
        session.add(member)
        session.flush()
        s.circle_member_id = member.id
        enqueue(session, s.dossier_id, user_id)

    def decline_solicitation(self, caller: Caller, solicitation_id: int) -> SolicitationOut:
        """A member told declines; once everyone told declined, the chain goes on."""
        with self.acting(caller, "solicitation.decline") as act:
            session = act.session
            s = self._solicitation(session, solicitation_id)
            act.dossier_id = s.dossier_id
            self._told(s, caller)
            if s.status not in OPEN:
                raise ApiError(409, "M_CONFLICT", f"sollicitation {STATUSES[s.status]}")
            if caller.user_id in self._declined(session, s):
                raise ApiError(409, "M_CONFLICT", "vous avez déjà décliné cette sollicitation")
            self._event(session, s, "declinee", caller.user_id, [])
            session.flush()
            if set(s.notified) <= self._declined(session, s):
                self._escalate(session, s, "refusee")
            return self.solicitation_json(session, s)

    def _escalate(self, session: Session, s: Solicitation, exhausted: str) -> None:
        """The next step of the chain (people not told yet), or, with no one left, the end:
        ``exhausted`` (expiree, or refusee when everyone declined); the requester is told."""
        target = self._target(session, s)
        now = self.clock()
        told = set(s.notified)
        steps = self._steps(session, target, now)
        nxt = next((st for st in steps[s.step + 1 :] if set(st) - told), None)
        if nxt is None:
            s.status = exhausted
            self._event(session, s, exhausted, None, [*_told_requester(s)])
            return
        s.step = steps.index(nxt)
        s.notified = sorted(told | set(nxt))
        s.deadline = now + dt.timedelta(seconds=target.response_seconds)
        self._event(session, s, "escalade", None, sorted(set(nxt) - told))

    def escalate_due(self) -> int:
        """Escalate every open solicitation past its response time (one runner: the
        appservice's background worker); how many moved."""
        now = self.clock()
        moved = 0
        with self.tx() as session:
            due = session.scalars(
                select(Solicitation)
                .where(
                    Solicitation.status.in_(OPEN),
                    Solicitation.deadline <= now,
                    LOCAL_TARGET,  # outgoing: the peer region's chain
                )
                .with_for_update(skip_locked=True)
            ).all()
            for s in due:
                self._escalate(session, s, "expiree")
                self.audit_entry(
                    session,
                    s.dossier_id,
                    Access("maillon", "system"),
                    "solicitation.escalate",
                    True,
                    f"{s.team_slug or s.structure_id} : {STATUSES.get(s.status, 'escalade')}",
                )
                moved += 1
        return moved

    # -- notices (the bot's outbox) -----------------------------------------------------------

    def pending_notices(self, limit: int = 50) -> list[dict[str, Any]]:
        """The steps not told yet, oldest first, with what their notice says: the team, the
        kind, the reason, the pathway, the requester and the actor (names and professions),
        and the dossier's patient room — nothing else of the dossier."""
        with self.tx() as session:
            query = select(
                SolicitationEvent, Solicitation, target_name(), Dossier.pathway, Dossier.room_id
            ).join(Solicitation, Solicitation.id == SolicitationEvent.solicitation_id)
            rows = session.execute(
                with_targets(query)
                .outerjoin(Dossier, Dossier.id == Solicitation.dossier_id)
                .where(SolicitationEvent.delivered_at.is_(None))
                .order_by(SolicitationEvent.id)
                .limit(limit)
            ).all()
            people = people_json(session, [u for e, s, *_ in rows for u in (s.requester, e.actor)])
            notices = []
            for e, s, team_name, pathway, room_id in rows:
                known = PATHWAYS.get(pathway)
                notices.append(
                    {
                        "event": e.id,
                        "at": e.at,
                        "solicitation": s.id,
                        "status": e.status,
                        "label": STEPS[e.status],
                        "people": list(e.people),
                        "told": list(e.told or ()),
                        "team_name": team_name,
                        "structure": s.structure_id is not None,
                        "kind": KINDS[s.kind],
                        "reason": s.reason.get("text", ""),
                        "pathway": known.name if known else (pathway or "autre région"),
                        "requester": {"user_id": s.requester, **people.get(s.requester, {})},
                        "actor": {"user_id": e.actor, **people.get(e.actor, {})}
                        if e.actor
                        else None,
                        "room_id": room_id,
                        "dossier_id": s.dossier_id,
                        "report": s.report if e.status == "repondue" else None,
                    }
                )
            return notices

    def note_told(self, event_id: int, recipient: str) -> None:
        """The bot told one recipient of a step (``""``: the patient room), kept at once so
        that a restart does not tell them again."""
        with self.tx() as session:
            event = session.get(SolicitationEvent, event_id)
            if event is not None and recipient not in (event.told or ()):
                event.told = [*(event.told or ()), recipient]

    def mark_notified(self, event_id: int, dossier_id: str, told: list[str]) -> None:
        """A step told to its people (audited in the dossier: who was told)."""
        with self.tx() as session:
            event = session.get(SolicitationEvent, event_id)
            if event is None or event.delivered_at is not None:
                return
            event.delivered_at = self.clock()
            if told:
                detail = f"sollicitation {event.solicitation_id} : prévenus {', '.join(told)}"
                access = Access("maillon", "system")
                self.audit_entry(session, dossier_id, access, "solicitation.notify", True, detail)

    def answer_solicitation(
        self,
        caller: Caller,
        solicitation_id: int,
        body: dict[str, Any],
        dossier_id: str | None = None,
    ) -> SolicitationOut:
        """The accepter answers; for an ``avis``, with its report (question, elements
        considered, advice), sealed in the dossier. ``dossier_id``: the dossier the answer
        is written from (a page's): a solicitation of another dossier is unknown there."""
        with self.acting(caller, "solicitation.answer") as act:
            session = act.session
            s = self._solicitation(session, solicitation_id)
            _of_dossier(s, dossier_id)
            act.dossier_id = s.dossier_id
            if s.status == "repondue" and s.accepted_by == caller.user_id:
                raise ApiError(
                    409,
                    "M_CONFLICT",
                    f"cette sollicitation a déjà sa réponse (n° {s.id}) : un seul compte rendu "
                    "d'avis par sollicitation",
                )
            if s.accepted_by != caller.user_id or s.status != "acceptee":
                raise ApiError(
                    403, "M_FORBIDDEN", "seul le membre qui l'a prise en charge y répond"
                )
            report = {key: _text(body, key, 10000) for key in REPORT_FIELDS}
            now = self.clock()
            report.update(author=caller.user_id, date=_iso(now) or "")
            s.report = report
            s.status = "repondue"
            self._event(session, s, "repondue", caller.user_id, [*_told_requester(s)])
            return self.solicitation_json(session, s)

    def report_pdf(
        self, caller: Caller, solicitation_id: int, of_dossier: str | None = None
    ) -> bytes:
        """An answered avis's report as a printable PDF (a read of the dossier, audited);
        ``of_dossier``: as for ``answer_solicitation``."""
        with self.tx() as session:
            s = self._solicitation(session, solicitation_id)
            _of_dossier(s, of_dossier)
            dossier_id = s.dossier_id
        with self.acting(caller, "solicitation.report.print", dossier_id, "read") as act:
            session, dossier = act.session, act.dossier
            s = self._solicitation(session, solicitation_id)
            if not s.report:
                raise ApiError(404, "M_NOT_FOUND", "cette sollicitation n'a pas encore de réponse")
            team_name = (
                self._target(session, s).name if s.team_slug or s.structure_id else s.remote_team
            )
            found = professionals(session, [s.requester, s.report.get("author")])
            pathway = PATHWAYS.version(dossier.pathway, dossier.pathway_version)
            act.detail = f"sollicitation {s.id}"
            return render_report(
                ReportDocument(
                    patient=display_name(dossier.identity),
                    pathway=pathway.name if pathway else dossier.pathway,
                    team=str(team_name),
                    number=s.id,
                    requester=_person(found.get(s.requester)),
                    author=_person(found.get(str(s.report.get("author")))),
                    date=dt.datetime.fromisoformat(str(s.report["date"])),
                    question=str(s.report["question"]),
                    elements=str(s.report["elements"]),
                    advice=str(s.report["advice"]),
                )
            )

    def close_solicitation(self, caller: Caller, solicitation_id: int) -> SolicitationOut:
        """The requester, the accepter or a coordinator closes it: the accepter leaves the
        circle after the team's exit delay (the circle keeper removes them then)."""
        with self.acting(caller, "solicitation.close") as act:
            session = act.session
            s = self._solicitation(session, solicitation_id)
            act.dossier_id = s.dossier_id
            if s.dossier_id is None:
                raise ApiError(
                    409,
                    "M_CONFLICT",
                    "sollicitation d'une autre région : elle se clôt dans le dossier de la "
                    "région qui l'a envoyée",
                )
            access = self._access_to(session, caller, s.dossier_id, None)
            if caller.user_id not in (s.requester, s.accepted_by) and not access.manage:
                raise ApiError(403, "M_FORBIDDEN", "vous ne pouvez pas clore cette sollicitation")
            if s.status not in (*OPEN, *TAKEN):
                raise ApiError(409, "M_CONFLICT", f"sollicitation {STATUSES[s.status]}")
            delay = (
                self._target(session, s).exit_delay_seconds
                if s.team_slug or s.structure_id
                else REMOTE_EXIT_DELAY_SECONDS
            )
            now = self.clock()
            s.status = "close"
            if s.circle_member_id is not None:
                member = session.get(CircleMember, s.circle_member_id)
                if member is not None and member.removed_at is None:
                    member.until = now + dt.timedelta(seconds=delay)
                    enqueue(session, s.dossier_id, member.user_id)
            self._event(session, s, "close", caller.user_id, [s.requester, s.accepted_by or ""])
            return self.solicitation_json(session, s)

    # -- across regions ------------------------------------------------------------------------
    # The team address of a peer server invited into one of our patient rooms (the module
    # let it out: an active circle member, consent allowing sharing outside the care team)
    # is an outgoing solicitation here; on the team's server, the invite is an incoming
    # one (no dossier there: the room, the requester, the reason, the kind). The team's
    # address answers by declining the invite, its leave event naming the accepter
    # (``fr.maillon.solicitation``): it comes from the team's server, signed by it, and
    # only the accepter — a user of that server — gets a circle entry here.

    def record_outgoing(
        self,
        caller: Caller,
        dossier_id: str,
        room_id: str,
        address: str,
        reason: str,
        kind: str,
    ) -> SolicitationOut:
        """The invite of a peer server's team address into the dossier's room ``room_id``,
        recorded (once: a retried transaction finds it)."""
        with self.acting(caller, "solicitation.create", dossier_id, "write") as act:
            session, dossier = act.session, act.dossier
            act.detail = f"équipe {address} (autre région)"
            refusal = team_sharing_refusal(dossier, f"l'équipe « {address} »", False)
            if refusal is not None:
                raise refusal
            found = self._outgoing(session, room_id, address)
            if found is not None:
                return self.solicitation_json(session, found)
            now = self.clock()
            s = Solicitation(
                team_slug=None,
                remote_team=address,
                dossier_id=dossier_id,
                room_id=room_id,
                requester=caller.user_id,
                kind=kind if kind in KINDS else "avis",
                reason={"text": reason[:REASON_MAX]},
                status="envoyee",
                notified=[],
                deadline=now + REMOTE_WAIT,
                created_at=now,
                updated_at=now,
            )
            session.add(s)
            session.flush()
            self._event(session, s, "envoyee", caller.user_id, [])
            return self.solicitation_json(session, s)

    @staticmethod
    def _outgoing(session: Session, room_id: str, address: str) -> Solicitation | None:
        return session.scalars(
            select(Solicitation)
            .where(
                Solicitation.room_id == room_id,
                Solicitation.remote_team == address,
                Solicitation.status.in_(OPEN),
            )
            .order_by(Solicitation.id.desc())
            .with_for_update()
        ).first()

    def remote_outcome(
        self, room_id: str, address: str, outcome: str, accepter: str | None
    ) -> SolicitationOut | None:
        """The peer team's answer, read from its address's leave event (the caller checked
        it came from the team's server): accepted by ``accepter`` — a user of that server,
        who gets the circle entry (role ERS) and the invite —, or refused / expired (the
        requester is told). None when no outgoing solicitation waits for it."""
        if outcome not in RELAYED:
            return None
        if outcome == "acceptee" and (
            accepter is None
            or not USER_ID_RE.match(accepter)
            or server_of(accepter) != server_of(address)
        ):
            return None
        with self.tx() as session:
            s = self._outgoing(session, room_id, address)
            if s is None or s.dossier_id is None:
                return None
            now = self.clock()
            s.status = outcome
            s.updated_at = now
            if outcome == "acceptee" and accepter is not None:
                s.accepted_by = accepter
                self._admit(session, s, accepter, now)
                detail = f"équipe {address} : prise en charge par {accepter}"
            else:
                detail = f"équipe {address} : {STATUSES[outcome]}"
            self._event(session, s, outcome, accepter, [s.requester])
            self.audit_entry(
                session,
                s.dossier_id,
                Access(address, "team"),
                "solicitation.remote_outcome",
                True,
                detail,
            )
            return self.solicitation_json(session, s)

    def receive_incoming(
        self, slug: str, room_id: str, requester: str, reason: str, kind: str
    ) -> SolicitationOut:
        """A peer region's invite of our team's address: sent to the members on duty now
        (once per room while it is open)."""
        with self.tx() as session:
            team = self._team(session, slug)
            found = session.scalars(
                select(Solicitation).where(
                    Solicitation.team_slug == slug,
                    Solicitation.room_id == room_id,
                    Solicitation.dossier_id.is_(None),
                    Solicitation.relayed_at.is_(None),
                )
            ).first()
            if found is not None:
                return self.solicitation_json(session, found)
            now = self.clock()
            target = Target.of_team(team)
            s = self._send(session, target, requester, kind, reason, now, room_id=room_id)
            self.audit_entry(
                session,
                None,
                Access(requester, "federation"),
                "solicitation.incoming",
                True,
                f"équipe {slug} : sollicitation {s.id} depuis {server_of(requester)}",
            )
            return self.solicitation_json(session, s)

    def incoming_outcomes(self) -> list[dict[str, Any]]:
        """Incoming solicitations accepted, refused or expired whose outcome the team's
        address has not told the requester's room yet."""
        with self.tx() as session:
            rows = session.scalars(
                select(Solicitation)
                .where(
                    Solicitation.dossier_id.is_(None),
                    Solicitation.relayed_at.is_(None),
                    Solicitation.status.in_(RELAYED),
                )
                .order_by(Solicitation.id)
            ).all()
            people = people_json(session, [s.accepted_by for s in rows])
            return [
                {
                    "id": s.id,
                    "team": s.team_slug,
                    "room_id": s.room_id,
                    "status": s.status,
                    "accepted_by": s.accepted_by,
                    "accepter_name": person_ref(people, s.accepted_by or "")["display_name"],
                }
                for s in rows
            ]

    def mark_relayed(self, solicitation_id: int) -> None:
        with self.tx() as session:
            s = session.get(Solicitation, solicitation_id)
            if s is not None and s.relayed_at is None:
                s.relayed_at = self.clock()
