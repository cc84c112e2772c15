"""Vocabulary shared by the Synapse modules, the appservice and the bot: patient-room state
(dossier link, care circle) and directory bindings, as namespaced Matrix state events."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

# Matrix user ids as Maillon accepts them (historical uppercase localparts refused), and
# server names (host, optional port): the one definition the API, the bot and the Synapse
# module check against.
USER_ID_PATTERN = r"^@[a-z0-9._=/+-]+:[A-Za-z0-9.:-]+$"
USER_ID_RE = re.compile(USER_ID_PATTERN)
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")

NAMESPACE = "fr.maillon"
PATIENT_ROOM_MARKER = f"{NAMESPACE}.patient_room"  # in m.room.create content, immutable
DIRECTORY_ROOM_MARKER = f"{NAMESPACE}.directory_room"
DOSSIER_EVENT = f"{NAMESPACE}.dossier"  # state_key ""
CIRCLE_EVENT = f"{NAMESPACE}.circle.member"  # state_key = user_state_key(member)
DIRECTORY_EVENT = f"{NAMESPACE}.directory.entry"  # state_key = user_state_key(professional)
SIDE_ROOM_EVENT = f"{NAMESPACE}.dossier.side_room"  # in the main room, state_key = side room id
WIDGET_EVENT = "im.vector.modular.widgets"  # Element's widget state (state_key = widget id)
DOSSIER_WIDGET_ID = "maillon_dossier"
DIRECTORY_ALIAS_LOCALPART = "_maillon_annuaire"
MEGOLM = "m.megolm.v1.aes-sha2"

# Roles of the care circle (FHIR CareTeam participant roles of the ANS guides, and ours).
ROLES: dict[str, str] = {
    "COORD": "coordinateur / référent",
    "MT": "médecin traitant",
    "MED": "médecin",
    "IDE": "infirmier / infirmière",
    "KINE": "masseur-kinésithérapeute",
    "PHARM": "pharmacien",
    "AS": "assistant / assistante de service social",
    "AD": "aide à domicile",
    "PRO": "professionnel",
    "PATIENT": "patient / usager",
    "AID": "aidant",
    "PC": "personne de confiance",
    "RL": "responsable légal",
    "ERS": "équipe ressource (membre d'une équipe sollicitée)",
}
ROLES_EN: dict[str, str] = {
    "COORD": "coordinator / referent",
    "MT": "attending physician (médecin traitant)",
    "MED": "physician",
    "IDE": "nurse",
    "KINE": "physiotherapist",
    "PHARM": "pharmacist",
    "AS": "social worker",
    "AD": "home help",
    "PRO": "professional",
    "PATIENT": "patient",
    "AID": "carer",
    "PC": "trusted person",
    "RL": "legal guardian",
    "ERS": "resource team (member of a solicited team)",
}


def role_label(code: str, lang: str = "fr") -> str:
    """A circle role in words, in French or English (the code when it is unknown)."""
    return (ROLES_EN if lang == "en" else ROLES).get(code, code)


# Roles of people who are not professionals: admitted only where the pathway allows it.
RESTRICTED_ROLES = frozenset({"PATIENT", "AID", "PC", "RL"})
# Who of the circle sits in a dossier room: everyone, professionals only, coordinators only.
ROOM_AUDIENCES: dict[str, str] = {
    "circle": "tout le cercle de soins",
    "professionals": "les professionnels du cercle (sans le patient ni ses proches)",
    "coordinators": "les coordinateurs du dossier",
}


def in_audience(audience: str, role: str, coordinator: bool) -> bool:
    if audience == "coordinators":
        return coordinator
    if audience == "professionals":
        return role not in RESTRICTED_ROLES
    return True


COORDINATOR_LEVEL = 50
SERVICE_LEVEL = 100
# Event types nobody may send but the appservice (Maillon's coordinator path).
PROTECTED_STATE = (
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.room.canonical_alias",
    "m.room.aliases",
    WIDGET_EVENT,
    "m.room.third_party_invite",
    # Not end-to-end encrypted, kept by every server of the room: fixed by Maillon from the
    # pathway's template (initials, birth year, reference), never typed by a member.
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    DOSSIER_EVENT,
    CIRCLE_EVENT,
    SIDE_ROOM_EVENT,
)


# Maillon's routed addresses, in the appservice's namespace: a resource team's
# (@equipe.<slug>:<server>) and a structure's (@structure.<slug>:<server>, "le compte du
# service"). Inviting one into a patient room admits nobody (no one logs in as it): it is
# turned into a solicitation of its owner, routed to the people who answer for it.
ROUTED_PREFIXES: dict[str, str] = {"team": "equipe.", "structure": "structure."}
TEAM_LOCALPART_PREFIX = ROUTED_PREFIXES["team"]
STRUCTURE_LOCALPART_PREFIX = ROUTED_PREFIXES["structure"]
TEAM_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
SLUG_RE = TEAM_SLUG_RE  # a team's or a structure's slug


@dataclass(frozen=True)
class RoutedAddress:
    kind: str  # team, structure
    slug: str


def routed_address(user_id: str) -> RoutedAddress | None:
    """The owner of a routed address (any server), None for anyone else."""
    localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else ""
    for kind, prefix in ROUTED_PREFIXES.items():
        if localpart.startswith(prefix):
            slug = localpart[len(prefix) :]
            return RoutedAddress(kind, slug) if SLUG_RE.match(slug) else None
    return None


def routed_user_id(kind: str, slug: str, server_name: str) -> str:
    return f"@{ROUTED_PREFIXES[kind]}{slug}:{server_name}"


def team_address(slug: str, server_name: str) -> str:
    return routed_user_id("team", slug, server_name)


def structure_address(slug: str, server_name: str) -> str:
    return routed_user_id("structure", slug, server_name)


def team_slug(user_id: str) -> str | None:
    """The team slug of a team address (any server), None for anyone else."""
    found = routed_address(user_id)
    return found.slug if found is not None and found.kind == "team" else None


def slugify(name: str) -> str:
    """A slug from a name: lower-case ASCII letters, digits and single hyphens, 40 at most."""
    bare = "".join(
        c for c in unicodedata.normalize("NFKD", name.lower()) if not unicodedata.combining(c)
    )
    slug = re.sub(r"[^a-z0-9]+", "-", bare).strip("-")[:40].strip("-")
    return slug or "structure"


def numbered_slug(base: str, n: int) -> str:
    """The ``n``-th variant of a taken slug (``base`` itself for 1), 40 characters at most."""
    return base if n == 1 else f"{base[: 40 - len(str(n)) - 1]}-{n}"


_USER_KEY_PREFIX = "user:"


def user_state_key(user_id: str) -> str:
    """State key for per-user state. Keys starting with "@" are reserved by the Matrix
    auth rules to the user themselves, so ours carry a prefix."""
    return _USER_KEY_PREFIX + user_id


def user_from_state_key(state_key: str) -> str | None:
    if state_key.startswith(_USER_KEY_PREFIX):
        return state_key[len(_USER_KEY_PREFIX) :]
    return None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


@dataclass(frozen=True)
class CircleEntry:
    """One member of the care circle as kept in room state (history is the state's history)."""

    user_id: str
    role: str
    coordinator: bool = False
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    added_by: str = ""
    active: bool = True
    removed_by: str | None = None
    removed_at: dt.datetime | None = None

    def is_active(self, now: dt.datetime) -> bool:
        return self.active and (self.until is None or self.until > now)

    def to_content(self) -> dict[str, Any]:
        content = asdict(self)
        content.pop("user_id")
        for key in ("since", "until", "removed_at"):
            content[key] = _iso(content[key])
        return content

    @classmethod
    def from_content(cls, user_id: str, content: dict[str, Any]) -> CircleEntry | None:
        """The entry, or None if the content is not one: unknown role, a flag that is not a
        boolean, a date that does not parse (an unreadable exit date must not read as "no
        exit date"), a name that is not a string."""
        role = content.get("role")
        if not isinstance(role, str) or role not in ROLES:
            return None
        coordinator, active = content.get("coordinator", False), content.get("active", True)
        if not isinstance(coordinator, bool) or not isinstance(active, bool):
            return None
        added_by, removed_by = content.get("added_by", ""), content.get("removed_by")
        if not isinstance(added_by, str) or not isinstance(removed_by, str | None):
            return None
        times: dict[str, dt.datetime | None] = {}
        for key in ("since", "until", "removed_at"):
            raw = content.get(key)
            times[key] = _parse_time(raw)
            if raw not in (None, "") and times[key] is None:
                return None
        return cls(
            user_id=user_id,
            role=role,
            coordinator=coordinator,
            added_by=added_by,
            active=active,
            removed_by=removed_by,
            **times,
        )

    def removed(self, by: str, when: dt.datetime) -> CircleEntry:
        return CircleEntry(
            self.user_id,
            self.role,
            self.coordinator,
            self.since,
            self.until,
            self.added_by,
            False,
            by,
            when,
        )


@dataclass(frozen=True)
class DossierLink:
    """The patient room's link to its dossier and what its pathway allows. The pathway
    itself is not named: room state is kept in clear by every server of the room, and a
    pathway (PCO-TND, palliative care…) is health information."""

    dossier_id: str
    allow_patient: bool = False
    allow_knock: bool = False
    status: str = "open"  # open, closed, archived: a room whose dossier is not open is read-only
    kind: str = "main"  # main (the whole circle) or side (e.g. professionals only)
    room_key: str = ""  # the dossier's own key for this room (finds it again after a crash)
    audience: str = "circle"  # who of the circle sits in the room (see ROOM_AUDIENCES)
    # The person's consent allows sharing outside the care team (and no opposition): the
    # module lets a team address of a peer server be invited only then (no health data).
    share_outside: bool = False

    @property
    def read_only(self) -> bool:
        return self.status != "open"

    def to_content(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> DossierLink | None:
        """The link, or None if the content is not one (no dossier id, a value of the wrong
        type, an unknown status, kind or audience)."""
        dossier_id = content.get("dossier_id")
        if not isinstance(dossier_id, str) or not dossier_id:
            return None
        strings = {
            key: content.get(key, default)
            for key, default in (
                ("status", "open"),
                ("kind", "main"),
                ("room_key", ""),
                ("audience", "circle"),
            )
        }
        flags = {
            key: content.get(key, False)
            for key in ("allow_patient", "allow_knock", "share_outside")
        }
        if not all(isinstance(v, str) for v in strings.values()):
            return None
        if not all(isinstance(v, bool) for v in flags.values()):
            return None
        if (
            strings["status"] not in DOSSIER_STATUSES
            or strings["kind"] not in ROOM_KINDS
            or strings["audience"] not in ROOM_AUDIENCES
        ):
            return None
        return cls(dossier_id=dossier_id, **strings, **flags)


DOSSIER_STATUSES = ("open", "closed", "archived")
ROOM_KINDS = ("main", "side")


@dataclass(frozen=True)
class SideRoomLink:
    """In a dossier's main room, one of its side rooms (state key = the side room's id), so
    clients can show it: how to reach it and its label."""

    room_id: str
    label: str
    via: tuple[str, ...] = ()

    def to_content(self) -> dict[str, Any]:
        return {"via": list(self.via), "label": self.label}

    @classmethod
    def from_content(cls, room_id: str, content: dict[str, Any]) -> SideRoomLink | None:
        via, label = content.get("via", []), content.get("label")
        if not room_id.startswith("!") or not isinstance(label, str):
            return None
        if not isinstance(via, list) or not all(isinstance(v, str) and v for v in via):
            return None
        return cls(room_id, label, tuple(via))


@dataclass(frozen=True)
class DirectoryEntry:
    """A professional's directory binding (RPPS or ADELI number, profession, structure)."""

    user_id: str
    profession: str
    rpps: str | None = None
    adeli: str | None = None
    structure: str | None = None
    mssante: str | None = None

    def to_content(self) -> dict[str, Any]:
        content = asdict(self)
        content.pop("user_id")
        return content

    @classmethod
    def from_content(cls, user_id: str, content: dict[str, Any]) -> DirectoryEntry | None:
        profession = content.get("profession")
        rpps, adeli = content.get("rpps"), content.get("adeli")
        if not isinstance(profession, str) or not (isinstance(rpps, str) or isinstance(adeli, str)):
            return None
        structure, mssante = content.get("structure"), content.get("mssante")
        return cls(
            user_id,
            profession,
            rpps if isinstance(rpps, str) else None,
            adeli if isinstance(adeli, str) else None,
            structure if isinstance(structure, str) else None,
            mssante if isinstance(mssante, str) else None,
        )


PATIENT_ROOM_VERSION = "12"  # the creator (Maillon's service user) has unlimited power


def patient_power_levels(coordinators: list[str], read_only: bool = False) -> dict[str, Any]:
    """Power levels of a patient room: coordinators invite and remove (members of other
    servers can therefore not invite anyone), only Maillon's service user (the room's
    creator) may touch encryption, join rule, history, the dossier link, the circle, or the
    room's name, topic and avatar (stored in clear). A read-only room (closed dossier) lets
    nobody but Maillon post, react, redact or invite."""
    users = {user: COORDINATOR_LEVEL for user in coordinators}
    everyone = SERVICE_LEVEL if read_only else 0
    coordinators_level = SERVICE_LEVEL if read_only else COORDINATOR_LEVEL
    events = {etype: SERVICE_LEVEL for etype in PROTECTED_STATE}
    events.update(
        {
            "m.room.pinned_events": coordinators_level,
            "m.reaction": everyone,
            "m.room.redaction": everyone,
        }
    )
    return {
        "users": users,
        "users_default": 0,
        "events_default": everyone,
        "state_default": SERVICE_LEVEL,
        "invite": coordinators_level,
        "kick": COORDINATOR_LEVEL,
        "ban": COORDINATOR_LEVEL,
        "redact": coordinators_level,
        "events": events,
        "notifications": {"room": COORDINATOR_LEVEL},
    }


def server_acl(own_server: str, peers: tuple[str, ...]) -> dict[str, Any]:
    """m.room.server_acl content admitting only our server and the configured peers.
    Each is listed with and without its port, as evaluators differ on comparing ports."""
    names = (own_server, *peers)
    hosts = sorted({*names, *(name.split(":")[0] for name in names)})
    return {"allow": hosts, "deny": [], "allow_ip_literals": False}
