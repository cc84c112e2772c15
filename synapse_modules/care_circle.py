"""Care-circle module: a patient room admits only its care circle, inside Synapse.

Decisions come from room state (dossier link, circle entries written by Maillon's
appservice) and the directory room, never from a network call; see ``policy`` for the
rules. The module only decides and records: it has no side effect, so it runs unchanged on
every worker. On the one instance that sends appservice transactions it also starts the
``appservice_watchdog`` (a gated background check, no decision). Keeping room and circle
in step (kicks, circle entries, power levels, exit dates) is the appservice's job
(``appservice/circle_keeper.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, ParamSpec, TypeVar

from synapse.module_api import NOT_SPAM, EventBase, ModuleApi
from synapse.module_api.errors import Codes, ConfigError, SynapseError

from maillon.shared.circle import (
    CIRCLE_EVENT,
    DIRECTORY_ALIAS_LOCALPART,
    DIRECTORY_EVENT,
    DIRECTORY_ROOM_MARKER,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    PATIENT_ROOM_VERSION,
    DirectoryEntry,
    server_acl,
    user_state_key,
)
from maillon.shared.clock import utcnow
from synapse_modules import policy
from synapse_modules.appservice_watchdog import AppserviceWatchdog
from synapse_modules.audit import AuditLog
from synapse_modules.config import CareCircleConfig, parse_module_config, peer_list

log = logging.getLogger(__name__)

StateMap = Mapping[tuple[str, str], EventBase]
SpamResult = Literal["NOT_SPAM"] | tuple[Codes, dict[str, Any]]
KICK_REASON = "Retiré(e) du cercle de soins du patient"
INTRUDER_REASON = "Hors du cercle de soins : accès retiré automatiquement"


P = ParamSpec("P")
R = TypeVar("R")


# What ``createRoom`` of a patient room always writes, whatever the request says.
CREATION_FORCED: dict[str, dict[str, Any]] = {
    "m.room.join_rules": {"join_rule": "invite"},
    "m.room.history_visibility": {"history_visibility": "invited"},
    "m.room.guest_access": {"guest_access": "forbidden"},
    "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class Refusal(SynapseError):
    """A deliberate refusal (403 with a French reason, and the decision's code when there
    is one): passed on to Synapse as is."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        fields = {"fr.maillon.reason": code} if code else None
        super().__init__(403, reason, Codes.FORBIDDEN, additional_fields=fields)


MODULE_ERROR = policy.deny("module_error", "Décision impossible : accès refusé par précaution.")


def _spam_denial() -> SpamResult:
    return _refusal(MODULE_ERROR)


def _event_denial() -> tuple[bool, dict[str, Any] | None]:
    """An event the check failed on is refused with the same French answer as an early
    check's (Synapse's own answer to a ``False`` is in English)."""
    raise Refusal(MODULE_ERROR.reason, MODULE_ERROR.code)


def _create_denial() -> None:
    raise Refusal("Création de salle refusée par précaution : le contrôle n'a pas pu aboutir.")


def _visibility_denial() -> bool:
    return False


def fail_closed(
    forbidden: Callable[[], R],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Wrap a module callback so that an error inside it is logged and the decision is the
    callback's refusal (fail closed), never an exception reaching Synapse: several of
    Synapse's callers log and *allow* on an exception (``check_visibility_can_be_modified``)
    or turn it into a 500. Deliberate refusals (``Refusal``) pass through. The log line names
    the callback and where it failed, never an exception message (it could quote content)."""

    def wrap(callback: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(callback)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await callback(*args, **kwargs)
            except Refusal:
                raise
            except Exception as exc:
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                log.error(
                    "Maillon care-circle: %s failed (%s at %s:%s): refused by precaution",
                    callback.__name__,
                    type(exc).__name__,
                    frame.filename.rsplit("/", 1)[-1],
                    frame.lineno,
                )
                return forbidden()

        return guarded

    return wrap


def _refusal(decision: policy.Decision) -> SpamResult:
    return Codes.FORBIDDEN, {"error": decision.reason, "fr.maillon.reason": decision.code}


def view_from_state(state: StateMap) -> policy.RoomView:
    return policy.build_view(
        policy.StateItem(etype, key, event.sender, event.content)
        for (etype, key), event in state.items()
    )


def _create_content(state: StateMap) -> Mapping[str, Any]:
    create = state.get(("m.room.create", ""))
    return create.content if create is not None else {}


class CareCircleModule:
    def __init__(self, config: CareCircleConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api
        # The allow list (``federation_peers``): from memory for each decision, its file
        # looked at again at most every ``peers_refresh_seconds`` (no network hop).
        self._peers = peer_list(config)
        self._context = policy.PolicyContext(
            server_name=api.server_name,
            service_user=config.appservice_user,
            bot_user=config.bot_user,
            peer_servers=self._peers.servers(),
            exempt_users=config.exempt_users,
        )
        self._audit = AuditLog(config.audit_dir, api.worker_name or "main")
        self._directory_room: str | None = None
        api.register_spam_checker_callbacks(
            # No ``user_may_invite``: an invite made here is an event this server creates,
            # whoever the invitee, so ``check_event_allowed`` decides it from the state
            # Synapse hands it (an early check would read the room again for the same
            # decision); one made on another server, ``federated_user_may_invite``.
            user_may_send_3pid_invite=self.user_may_send_3pid_invite,
            federated_user_may_invite=self.federated_user_may_invite,
            user_may_join_room=self.user_may_join_room,
        )
        api.register_third_party_rules_callbacks(
            check_event_allowed=self.check_event_allowed,
            on_create_room=self.on_create_room,
            check_visibility_can_be_modified=self.check_visibility_can_be_modified,
        )
        try:
            self._watchdog = AppserviceWatchdog.start(api, config.appservice_user)
        except Exception as exc:  # not a decision: the module's checks work without it
            self._watchdog = None
            log.error("Maillon appservice watchdog not started (%s)", type(exc).__name__)
        log.info(
            "Maillon care-circle module loaded (%d peer servers%s)",
            len(self._context.peer_servers),
            ", from the console's file" if config.peers_file else "",
        )

    @property
    def _ctx(self) -> policy.PolicyContext:
        """The decisions' context, with the allow list as it stands now."""
        servers = self._peers.servers()
        if servers != self._context.peer_servers:
            self._context = dataclasses.replace(self._context, peer_servers=servers)
        return self._context

    @staticmethod
    def parse_config(config: dict[str, Any]) -> CareCircleConfig:
        return parse_module_config(config, ConfigError)

    # -- helpers -------------------------------------------------------------------------

    def _record(
        self, room_id: str, actor: str, action: str, target: str | None, decision: policy.Decision
    ) -> None:
        self._audit.record(room_id, actor, action, target, decision.allowed, decision.code)

    async def _patient_view(
        self,
        room_id: str,
        users: tuple[str, ...],
        memberships: bool = False,
        whole_circle: bool = False,
    ) -> policy.RoomView | None:
        """What an early check reads of a room, in one read of a few state events (not the
        whole state): its create event, the dossier link, these users' circle entries (or,
        ``whole_circle``, every entry) and (``memberships``) their member events. None: not
        a patient room. Member events of local users only: the read never waits for a
        partially joined room's full state (a create event and Maillon's own events never
        do)."""
        keys: list[tuple[str, str | None]] = [("m.room.create", ""), (DOSSIER_EVENT, "")]
        if whole_circle:
            keys.append((CIRCLE_EVENT, None))
        else:
            keys += [(CIRCLE_EVENT, user_state_key(u)) for u in users]
        if memberships:
            keys += [("m.room.member", u) for u in users if self._api.is_mine(u)]
        state = await self._api.get_room_state(room_id, keys)
        if not policy.is_patient_create(_create_content(state)):
            return None
        return view_from_state(state)

    async def _directory_entry(self, user_id: str) -> DirectoryEntry | None:
        if not self._api.is_mine(user_id):
            return None
        if self._directory_room is None:
            alias = f"#{DIRECTORY_ALIAS_LOCALPART}:{self._api.server_name}"
            try:
                room_id, _ = await self._api.lookup_room_alias(alias)
            except SynapseError:
                return None
            create = (await self._api.get_room_state(room_id, [("m.room.create", "")])).get(
                ("m.room.create", "")
            )
            trusted = (
                create is not None
                and create.sender == self._ctx.service_user
                and create.content.get(DIRECTORY_ROOM_MARKER) is True
            )
            if not trusted:
                log.error("the directory alias points to a room Maillon did not create")
                return None
            self._directory_room = room_id
        key = (DIRECTORY_EVENT, user_state_key(user_id))
        state = await self._api.get_room_state(self._directory_room, [key])
        event = state.get(key)
        return DirectoryEntry.from_content(user_id, dict(event.content)) if event else None

    async def _known(self, user_id: str) -> bool:
        return await self._directory_entry(user_id) is not None

    async def _invite_decision(
        self, view: policy.RoomView, inviter: str, invitee: str
    ) -> policy.Decision:
        now = utcnow()
        needs_directory = view.active_member(invitee, now) is None and view.is_coordinator(
            inviter, now
        )
        known = await self._known(invitee) if needs_directory else False
        return policy.check_invite(self._ctx, view, inviter, invitee, now, known)

    async def _join_decision(self, view: policy.RoomView, user_id: str) -> policy.Decision:
        now = utcnow()
        needs_directory = view.active_member(user_id, now) is None and user_id in view.inviters
        known = await self._known(user_id) if needs_directory else False
        return policy.check_join(self._ctx, view, user_id, now, known)

    # -- spam-checker callbacks (early, friendly refusals) --------------------------------

    @fail_closed(_spam_denial)
    async def user_may_send_3pid_invite(
        self, inviter: str, medium: str, address: str, room_id: str
    ) -> SpamResult:
        """Invites by e-mail or phone would bypass the circle: none in patient rooms."""
        if await self._patient_view(room_id, ()) is None:
            return NOT_SPAM
        decision = policy.deny(
            "third_party_invite_refused",
            "Pas d'invitation par courriel ou téléphone dans une salle patient.",
        )
        self._record(room_id, inviter, "3pid_invite", None, decision)
        return _refusal(decision)

    @fail_closed(_spam_denial)
    async def user_may_join_room(self, user: str, room_id: str, is_invited: bool) -> SpamResult:
        """The join of one of our users, checked here too because it may be made through
        another server (``check_event_allowed`` only sees the joins this server creates).
        Someone invited may be joining on a coordinator's invite: the whole circle is read
        at once (whether the inviter coordinates the dossier), in the same read."""
        view = await self._patient_view(room_id, (user,), memberships=True, whole_circle=is_invited)
        if view is None:
            return NOT_SPAM
        inviter = view.inviters.get(user)
        if inviter is not None and not is_invited and view.active_member(user, utcnow()) is None:
            # Synapse saw no invite, the room shows one: read the inviter's entry as well.
            view = await self._patient_view(room_id, (user, inviter), memberships=True)
            if view is None:
                return NOT_SPAM
        decision = await self._join_decision(view, user)
        if decision.denied:
            self._record(room_id, user, "join", user, decision)
            return _refusal(decision)
        return NOT_SPAM

    @fail_closed(_spam_denial)
    async def federated_user_may_invite(self, event: EventBase) -> SpamResult:
        """An invite from another server for one of our users: into a patient room, only
        from a configured peer server; and into a patient room whose state this server
        holds, only as the circle allows it (``check_event_allowed`` never sees an invite
        another server made)."""
        stripped = event.unsigned.get("invite_room_state") or []
        is_patient = any(
            isinstance(item, dict)
            and item.get("type") == "m.room.create"
            and isinstance(item.get("content"), dict)
            and item["content"].get(PATIENT_ROOM_MARKER) is True
            for item in stripped
        ) or any(isinstance(item, dict) and item.get("type") == DOSSIER_EVENT for item in stripped)
        if is_patient:
            if self._ctx.server_allowed(event.sender):
                decision = policy.allow("federated_invite_from_peer")
            else:
                decision = policy.deny(
                    "server_not_allowed",
                    f"Le serveur {event.sender.split(':', 1)[-1]} n'est pas un serveur "
                    "partenaire : invitation dans une salle patient refusée.",
                )
            self._record(event.room_id, event.sender, "federated_invite", event.state_key, decision)
            if decision.denied:
                return _refusal(decision)
        inviter, invitee = event.sender, str(event.state_key)
        view = await self._patient_view(event.room_id, (inviter, invitee))
        if view is None:
            return NOT_SPAM
        decision = await self._invite_decision(view, inviter, invitee)
        if decision.denied:
            self._record(event.room_id, inviter, "invite", invitee, decision)
            return _refusal(decision)
        return NOT_SPAM

    # -- third-party rules: the authoritative check on every local event -----------------

    @fail_closed(_event_denial)
    async def check_event_allowed(
        self, event: EventBase, state_events: StateMap
    ) -> tuple[bool, dict[str, Any] | None]:
        if event.type == "m.room.create":
            return await self._check_create(event), None
        create = _create_content(state_events)
        if create.get(DIRECTORY_ROOM_MARKER) is True:
            if event.sender != self._ctx.service_user:
                raise Refusal("L'annuaire n'est modifiable que par Maillon.")
            if event.type == DIRECTORY_EVENT and event.state_key is not None:
                decision = policy.check_directory_entry(event.state_key, event.content)
                if decision.denied:
                    raise Refusal(decision.reason, decision.code)
            return True, None
        if not policy.is_patient_create(create):
            return True, None
        self._record_without_device(event)
        if event.type == "m.room.redaction":
            state_ids = {ev.event_id for ev in state_events.values()}
            decision = policy.check_redaction(event.redacts, state_ids)
            self._record(event.room_id, event.sender, "redaction", None, decision)
            if decision.denied:
                raise Refusal(decision.reason, decision.code)
            return True, None
        if not event.is_state():  # the hot path: a message, no state to read
            decision = policy.check_message(
                self._ctx, event.sender, event.type, event.content.get("msgtype")
            )
            if decision.denied:
                self._record(event.room_id, event.sender, event.type, None, decision)
                raise Refusal(decision.reason, decision.code)
            return True, None
        view = view_from_state(state_events)
        now = utcnow()
        if event.type == "m.room.member":
            action = event.content.get("membership")
            target = event.state_key
            if action == "invite":
                decision = await self._invite_decision(view, event.sender, target)
            elif action == "join":
                decision = await self._join_decision(view, target)
            elif action == "knock":
                decision = policy.check_knock(view)
            else:
                decision = policy.allow("leave_or_ban" if event.sender == target else "removal")
            self._record(event.room_id, event.sender, str(action), target, decision)
        else:
            decision = policy.check_state_event(
                self._ctx,
                view,
                event.sender,
                event.type,
                event.state_key,
                event.content,
                now,
            )
            self._record(
                event.room_id,
                event.sender,
                f"state:{event.type}",
                event.state_key or None,
                decision,
            )
        if decision.denied:
            raise Refusal(decision.reason, decision.code)
        return True, None

    def _record_without_device(self, event: EventBase) -> None:
        """A local user's event sent with no device: a token a server administrator got
        through the admin API's "login as user" (every real login has a device), or an action
        of the server itself (deactivation, room shutdown). Recorded, so that it is not read
        as the user's own doing. (Synapse keeps the sending device in the event's internal
        metadata; the module API has no other sign of it.)"""
        if self._ctx.is_service(event.sender) or not self._api.is_mine(event.sender):
            return
        device = getattr(getattr(event, "internal_metadata", None), "device_id", None)
        if device is None:
            target = event.get_state_key() or None
            self._audit.record(
                event.room_id,
                event.sender,
                f"without_device:{event.type}",
                target,
                True,
                "admin_login_as_or_server_action",
            )

    async def _check_create(self, event: EventBase) -> bool:
        marked = event.content.get(PATIENT_ROOM_MARKER) is True or (
            event.content.get(DIRECTORY_ROOM_MARKER) is True
        )
        if marked and event.sender != self._ctx.service_user:
            raise Refusal("Seul Maillon crée les salles patient et l'annuaire.")
        predecessor = event.content.get("predecessor")
        old_room = predecessor.get("room_id") if isinstance(predecessor, dict) else None
        if isinstance(old_room, str) and not marked:
            old = await self._api.get_room_state(old_room, [("m.room.create", "")])
            if policy.is_patient_create(_create_content(old)):
                raise Refusal(
                    "Une salle patient ne peut pas être remplacée par une salle ordinaire."
                )
        return True

    @fail_closed(_create_denial)
    async def on_create_room(
        self, requester: Any, request: dict[str, Any], is_requester_admin: bool
    ) -> None:
        """Force the creation policy on patient rooms (and refuse them to anyone but Maillon)."""
        creation = request.get("creation_content") or {}
        initial = request.get("initial_state") or []
        patient = creation.get(PATIENT_ROOM_MARKER) is True or any(
            isinstance(s, dict) and s.get("type") in (DOSSIER_EVENT, CIRCLE_EVENT) for s in initial
        )
        if not patient:
            return
        user = requester.user.to_string()
        if user != self._ctx.service_user:
            self._audit.record(
                "(création)", user, "create_patient_room", None, False, "create_refused"
            )
            raise Refusal(
                "Les salles patient sont créées par Maillon à l'ouverture d'un dossier "
                "(bot de coordination ou API), pas à la main."
            )
        creation[PATIENT_ROOM_MARKER] = True
        request["creation_content"] = creation
        request["preset"] = "private_chat"
        request["visibility"] = "private"
        request.pop("room_alias_name", None)
        forced_types = (*CREATION_FORCED, "m.room.power_levels", "m.room.server_acl")
        kept = [s for s in initial if not (isinstance(s, dict) and s.get("type") in forced_types)]
        # The power levels as the keeper keeps them, from the initial state itself (the
        # dossier link, the circle's coordinators): complete from the start, no later write.
        # They go in the initial state, which Synapse writes as is (no defaults merged in).
        initial_view = policy.build_view(
            policy.StateItem(str(s["type"]), str(s.get("state_key", "")), user, s["content"])
            for s in kept
            if isinstance(s, dict) and isinstance(s.get("content"), dict)
        )
        forced = {
            **CREATION_FORCED,
            "m.room.power_levels": policy.room_power_levels(initial_view, utcnow()),
            # The allow list as its file says now (a room is created rarely).
            "m.room.server_acl": server_acl(self._api.server_name, self._peers.servers(fresh=True)),
        }
        request["initial_state"] = kept + [
            {"type": etype, "state_key": "", "content": content}
            for etype, content in forced.items()
        ]
        request["room_version"] = PATIENT_ROOM_VERSION
        request.pop("power_level_content_override", None)

    @fail_closed(_visibility_denial)
    async def check_visibility_can_be_modified(
        self, room_id: str, state_events: StateMap, new_visibility: str
    ) -> bool:
        if not policy.is_patient_create(_create_content(state_events)):
            return True
        allowed = new_visibility != "public"
        self._audit.record(
            room_id,
            "(annuaire des salles)",
            f"visibility:{new_visibility}",
            None,
            allowed,
            "directory_publish_refused" if not allowed else "ok",
        )
        return allowed
