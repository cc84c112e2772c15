"""Pure decisions of the care-circle policy: no Synapse import, no I/O, unit-testable.

A decision is taken from the room's state as plain data (``RoomView``); the module glue
builds the view from Synapse's state, records the decision and raises the refusal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maillon.shared.circle import (
    CIRCLE_EVENT,
    COORDINATOR_LEVEL,
    DOSSIER_EVENT,
    MEGOLM,
    PATIENT_ROOM_MARKER,
    PROTECTED_STATE,
    RESTRICTED_ROLES,
    SIDE_ROOM_EVENT,
    CircleEntry,
    DirectoryEntry,
    DossierLink,
    SideRoomLink,
    patient_power_levels,
    routed_address,
    server_of,
    user_from_state_key,
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str  # stable reason code for the audit
    reason: str = ""  # human reason in French, shown to the user on refusal

    @property
    def denied(self) -> bool:
        return not self.allowed


def allow(code: str) -> Decision:
    return Decision(True, code)


def deny(code: str, reason: str) -> Decision:
    return Decision(False, code, reason)


@dataclass(frozen=True)
class PolicyContext:
    server_name: str
    service_user: str  # the appservice sender: Maillon's coordinator path
    bot_user: str
    peer_servers: tuple[str, ...] = ()
    exempt_users: tuple[str, ...] = ()

    def server_allowed(self, user_id: str) -> bool:
        server = server_of(user_id)
        return server == self.server_name or server in self.peer_servers

    def is_service(self, user_id: str) -> bool:
        return user_id in (self.service_user, self.bot_user)


@dataclass(frozen=True)
class RoomView:
    """What the policy needs to know of a patient room, before the event."""

    dossier: DossierLink | None
    circle: Mapping[str, CircleEntry] = field(default_factory=dict)
    memberships: Mapping[str, str] = field(default_factory=dict)
    inviters: Mapping[str, str] = field(default_factory=dict)  # invitee -> who invited
    has_encryption: bool = False

    def active_member(self, user_id: str, now: dt.datetime) -> CircleEntry | None:
        entry = self.circle.get(user_id)
        return entry if entry is not None and entry.is_active(now) else None

    def is_coordinator(self, user_id: str, now: dt.datetime) -> bool:
        entry = self.active_member(user_id, now)
        return entry is not None and entry.coordinator


NOT_IN_CIRCLE = (
    "{who} ne fait pas partie du cercle de soins de ce patient : seuls les membres du "
    "cercle peuvent être invités dans la salle (secret partagé, art. L1110-4 CSP)."
)


REMOTE_TEAM_WITHOUT_CONSENT = (
    "Une équipe ressource d'une autre région est hors de l'équipe de soins : elle ne peut "
    "être sollicitée que si le consentement de la personne au partage hors de l'équipe de "
    "soins est enregistré dans le dossier, sans opposition (art. L1110-4 CSP)."
)


REMOTE_STRUCTURE = (
    "L'adresse d'une structure d'une autre région ne peut pas être invitée dans une salle "
    "patient : seules les adresses des structures de cette région (et les équipes "
    "ressources des régions partenaires) sont routées."
)


def _peer_refusal(user_id: str) -> Decision:
    return deny(
        "server_not_allowed",
        f"Le serveur de {user_id} ({server_of(user_id)}) n'est pas autorisé à participer "
        "aux salles patient de cette région.",
    )


def check_invite(
    ctx: PolicyContext,
    view: RoomView,
    inviter: str,
    invitee: str,
    now: dt.datetime,
    invitee_is_known_professional: bool,
) -> Decision:
    if not ctx.server_allowed(invitee):
        return _peer_refusal(invitee)
    if ctx.is_service(invitee):
        return allow("service_user")
    if view.active_member(invitee, now) is not None:
        return allow("in_circle")
    routed = routed_address(invitee)
    if routed is not None and view.active_member(inviter, now) is not None:
        # A routed address (a resource team's, a structure's): the appservice turns the
        # invite into a solicitation and declines it; nobody logs in as it, and it never
        # has a circle entry to join.
        if server_of(invitee) == ctx.server_name:
            return allow(f"{routed.kind}_solicitation")
        if routed.kind != "team":
            return deny("remote_structure_address", REMOTE_STRUCTURE)
        # A peer region's team: the invite leaves this server (its reason, the motif, with
        # it), so the person's consent must already allow sharing outside the care team.
        if view.dossier is not None and view.dossier.share_outside:
            return allow("remote_team_solicitation")
        return deny("remote_team_without_consent", REMOTE_TEAM_WITHOUT_CONSENT)
    if ctx.is_service(inviter):
        return deny("not_in_circle", NOT_IN_CIRCLE.format(who=invitee))
    if view.is_coordinator(inviter, now):
        local = server_of(invitee) == ctx.server_name
        if local and invitee_is_known_professional:
            return allow("coordinator_adds_professional")
        if not invitee_is_known_professional:
            return deny(
                "not_a_known_professional",
                f"{invitee} n'est pas un professionnel connu de l'annuaire : ajoutez d'abord "
                "la personne au cercle de soins avec son rôle (patient, aidant…) si le "
                "parcours le permet.",
            )
        return deny("not_in_circle", NOT_IN_CIRCLE.format(who=invitee))
    return deny("not_in_circle", NOT_IN_CIRCLE.format(who=invitee))


def check_join(
    ctx: PolicyContext,
    view: RoomView,
    user_id: str,
    now: dt.datetime,
    user_is_known_professional: bool,
) -> Decision:
    if ctx.is_service(user_id):
        return allow("service_user")
    if not ctx.server_allowed(user_id):
        return _peer_refusal(user_id)
    if view.active_member(user_id, now) is not None:
        return allow("in_circle")
    inviter = view.inviters.get(user_id)
    if (
        view.memberships.get(user_id) == "invite"
        and inviter is not None
        and view.is_coordinator(inviter, now)
        and user_is_known_professional
        and server_of(user_id) == ctx.server_name
    ):
        return allow("invited_by_coordinator")
    return deny(
        "join_not_in_circle",
        "Vous ne faites pas partie du cercle de soins de ce patient : l'accès à cette salle "
        "est réservé à son cercle. Demandez au coordinateur du dossier de vous y ajouter.",
    )


def check_knock(view: RoomView) -> Decision:
    if view.dossier is not None and view.dossier.allow_knock:
        return allow("knock_allowed_by_pathway")
    return deny(
        "knock_refused",
        "Les demandes d'accès (knock) ne sont pas permises dans les salles patient de ce "
        "parcours : adressez-vous au coordinateur du dossier.",
    )


# Room state shown in clear to every server of the room: only Maillon's template sets it.
CLEAR_TEXT_STATE = ("m.room.name", "m.room.topic", "m.room.avatar")

LOOSENING = "Cette salle patient est protégée : {what} ne peut pas être modifié(e)."


def room_power_levels(view: RoomView, now: dt.datetime) -> dict[str, Any]:
    """The power levels a patient room holds: the template (read-only while its dossier is
    closed) with the circle's active coordinators raised. The module sets them so in
    ``createRoom``, the circle keeper keeps them so."""
    coordinators = sorted(u for u, e in view.circle.items() if e.coordinator and e.is_active(now))
    return patient_power_levels(
        coordinators, read_only=view.dossier is not None and view.dossier.read_only
    )


def _content_rules(
    etype: str, content: Mapping[str, Any], view: RoomView, at_creation: bool = False
) -> Decision | None:
    """Rules on the content of protected state events, for every sender; ``at_creation``:
    Maillon's own event in a patient room that has no dossier link yet (``createRoom``,
    before its initial state)."""
    if etype == "m.room.join_rules":
        rule = content.get("join_rule")
        allowed = ("invite", "knock") if view.dossier and view.dossier.allow_knock else ("invite",)
        if not isinstance(rule, str) or rule not in allowed:
            return deny(
                "join_rule_loosening", LOOSENING.format(what="la règle d'accès (sur invitation)")
            )
    elif etype == "m.room.history_visibility":
        if content.get("history_visibility") not in ("invited", "joined"):
            return deny(
                "history_loosening",
                LOOSENING.format(what="la visibilité de l'historique (membres invités seulement)"),
            )
    elif etype == "m.room.guest_access":
        if content.get("guest_access") != "forbidden":
            return deny(
                "guest_access", LOOSENING.format(what="l'interdiction des invités anonymes")
            )
    elif etype == "m.room.encryption":
        if view.has_encryption or content.get("algorithm") != MEGOLM:
            return deny(
                "encryption_change", LOOSENING.format(what="le chiffrement de bout en bout")
            )
    elif etype == "m.room.power_levels":
        return _power_levels_rules(content, view, at_creation)
    return None


def _power_levels_rules(
    content: Mapping[str, Any], view: RoomView, at_creation: bool = False
) -> Decision | None:
    """Power levels are exactly the patient-room template, with the circle's active
    coordinators at the coordinator level and nobody else raised. The room's first power
    levels come before its circle and its dossier link (``createRoom`` writes them first):
    Maillon's, then, raise the coordinators of the initial state it is creating the room
    with (``room_power_levels`` of that state, see the module's ``on_create_room``)."""
    now = dt.datetime.now(dt.UTC)
    users = content.get("users") or {}
    if not isinstance(users, Mapping):
        return deny("power_levels_invalid", "Niveaux de pouvoir illisibles.")
    for user, level in users.items():
        if level != COORDINATOR_LEVEL or not (at_creation or view.is_coordinator(str(user), now)):
            return deny(
                "power_levels_loosening",
                LOOSENING.format(what="la répartition des pouvoirs (coordinateurs du cercle)"),
            )
    # A room created for a closed dossier starts read-only: at creation, either template.
    read_only = view.dossier is not None and view.dossier.read_only
    wrong: list[str] = []
    for ro in (False, True) if at_creation else (read_only,):
        template = patient_power_levels([], read_only=ro)
        wrong = [k for k, v in template.items() if k != "users" and content.get(k) != v]
        if not wrong:
            return None
    return deny("power_levels_loosening", LOOSENING.format(what=f"le niveau « {wrong[0]} »"))


def check_state_event(
    ctx: PolicyContext,
    view: RoomView,
    sender: str,
    etype: str,
    state_key: str,
    content: Mapping[str, Any],
    now: dt.datetime,
) -> Decision:
    exempt = sender in ctx.exempt_users
    at_creation = sender == ctx.service_user and view.dossier is None and not view.circle
    content_decision = _content_rules(etype, content, view, at_creation)
    if content_decision is not None and not exempt:
        return content_decision
    if etype in CLEAR_TEXT_STATE and sender != ctx.service_user and not exempt:
        return deny(
            "room_text_pinned",
            "Le nom, le sujet et l'image d'une salle patient ne sont pas chiffrés : Maillon "
            "les fixe d'après le parcours (initiales, année de naissance, référence), ils ne "
            "peuvent pas être modifiés.",
        )
    if etype in PROTECTED_STATE and sender != ctx.service_user and not exempt:
        return deny(
            "protected_state",
            f"Seul Maillon peut modifier « {etype} » dans une salle patient : passez par le "
            "dossier de coordination (coordinateur, bot ou API).",
        )
    if etype == DOSSIER_EVENT:
        link = DossierLink.from_content(dict(content))
        if link is None:
            return deny("dossier_link_invalid", "Lien de dossier illisible.")
        if view.dossier is not None and view.dossier.dossier_id != link.dossier_id:
            return deny("dossier_link_change", LOOSENING.format(what="le lien vers le dossier"))
    if etype == SIDE_ROOM_EVENT and SideRoomLink.from_content(state_key, dict(content)) is None:
        return deny("side_room_link_invalid", "Lien vers une salle annexe illisible.")
    if etype == CIRCLE_EVENT:
        member = user_from_state_key(state_key)
        entry = CircleEntry.from_content(member, dict(content)) if member else None
        if entry is None:
            return deny(
                "circle_entry_invalid", "Entrée du cercle de soins illisible (rôle inconnu ?)."
            )
        if entry.active and not ctx.server_allowed(entry.user_id):
            return _peer_refusal(entry.user_id)
        restricted_refused = entry.role in RESTRICTED_ROLES and not (
            view.dossier is not None and view.dossier.allow_patient
        )
        if restricted_refused and entry.active:
            return deny(
                "restricted_role_refused",
                "Le parcours de ce dossier n'admet pas le patient ni ses proches dans la salle.",
            )
    if exempt and (content_decision is not None or etype in PROTECTED_STATE):
        return allow("exemption_used")
    return allow("state_ok")


def check_directory_entry(state_key: str, content: Mapping[str, Any]) -> Decision:
    """A directory binding Maillon writes: a readable entry, or empty (unbound)."""
    user_id = user_from_state_key(state_key)
    if user_id is None:
        return deny("directory_entry_invalid", "Entrée d'annuaire sans identifiant Matrix.")
    if content and DirectoryEntry.from_content(user_id, dict(content)) is None:
        return deny("directory_entry_invalid", "Entrée d'annuaire illisible.")
    return allow("directory_entry")


def check_redaction(redacts: object, state_event_ids: set[str]) -> Decision:
    """Redacting a current state event would strip it (encryption, circle entry, dossier
    link, ACL…): refused."""
    if isinstance(redacts, str) and redacts in state_event_ids:
        return deny(
            "state_redaction_refused",
            "Un élément de configuration de la salle patient ne peut pas être supprimé.",
        )
    return allow("redaction")


# Non-state events a patient room accepts besides end-to-end encrypted ones. Reactions
# (an emoji on an event id) and redactions (checked apart) carry no health data; anything
# else in clear (m.room.message, m.sticker, m.poll.start, calls, custom types) would be
# stored and federated readable.
CLEAR_EVENTS_ALLOWED = ("m.reaction", "m.room.redaction")


def check_message(ctx: PolicyContext, sender: str, etype: str, msgtype: object = None) -> Decision:
    """A non-state event in a patient room: encrypted, a reaction or a redaction; Maillon's
    service user may also post its own fixed notices (room opened, closed, reopened) in
    clear, as ``m.notice`` messages: they carry no health data (see
    ``appservice/dossier_rooms.py``)."""
    if etype == "m.room.encrypted" or etype in CLEAR_EVENTS_ALLOWED:
        return allow("message")
    if sender == ctx.service_user and etype == "m.room.message" and msgtype == "m.notice":
        return allow("service_notice")
    return deny(
        "plaintext_refused",
        "Les messages d'une salle patient doivent être chiffrés de bout en bout "
        f"(événement « {etype} » refusé en clair).",
    )


def is_patient_create(content: Mapping[str, Any]) -> bool:
    return content.get(PATIENT_ROOM_MARKER) is True


@dataclass(frozen=True)
class StateItem:
    """One current-state event, whatever it comes from (Synapse's EventBase or JSON)."""

    type: str
    state_key: str
    sender: str
    content: Mapping[str, Any]


def build_view(items: Iterable[StateItem]) -> RoomView:
    """The policy's view of a room from its current state events."""
    dossier: DossierLink | None = None
    circle: dict[str, CircleEntry] = {}
    memberships: dict[str, str] = {}
    inviters: dict[str, str] = {}
    has_encryption = False
    for item in items:
        if item.type == DOSSIER_EVENT and item.state_key == "":
            dossier = DossierLink.from_content(dict(item.content))
        elif item.type == CIRCLE_EVENT:
            user_id = user_from_state_key(item.state_key)
            entry = CircleEntry.from_content(user_id, dict(item.content)) if user_id else None
            if entry is not None:
                circle[entry.user_id] = entry
        elif item.type == "m.room.member":
            membership = str(item.content.get("membership"))
            memberships[item.state_key] = membership
            if membership == "invite":
                inviters[item.state_key] = item.sender
        elif item.type == "m.room.encryption" and item.state_key == "":
            has_encryption = True
    return RoomView(dossier, circle, memberships, inviters, has_encryption)
