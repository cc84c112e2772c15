"""The Synapse module glue in process, with a mocked module API: what it registers, how it
reads its config, and the decision each callback takes from the room state it is handed
(fast; the real-homeserver tests in ``tests/integration/test_care_circle*.py`` cover the
same rules end to end)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from synapse.api.room_versions import RoomVersions
from synapse.events import EventBase, make_event_from_dict
from synapse.module_api import NOT_SPAM
from synapse.module_api.errors import Codes, ConfigError, SynapseError

from maillon.shared.circle import (
    CIRCLE_EVENT,
    DIRECTORY_EVENT,
    DIRECTORY_ROOM_MARKER,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    SIDE_ROOM_EVENT,
    CircleEntry,
    DirectoryEntry,
    DossierLink,
    patient_power_levels,
    user_state_key,
)
from maillon.shared.federation_peers import PEERS_FILE, Peer, write_peers
from synapse_modules import care_circle, policy
from synapse_modules.audit import read_audit
from synapse_modules.care_circle import CareCircleModule

SERVER = "sante.test"
SERVICE = "@maillon:sante.test"
BOT = "@coordination:sante.test"
COORD = "@coord:sante.test"
NURSE = "@ide:sante.test"
KNOWN = "@kine:sante.test"
OUTSIDER = "@curieux:sante.test"
ROOM = "!patient:sante.test"
PLAIN_ROOM = "!ordinaire:sante.test"
DIRECTORY = "!annuaire:sante.test"

StateMap = dict[tuple[str, str], EventBase]
_counter = iter(range(1, 10**6))


def event(
    etype: str,
    sender: str,
    content: dict[str, Any],
    state_key: str | None = None,
    room_id: str = ROOM,
    device: str | None = "DEVICE1",
    **extra: Any,
) -> EventBase:
    raw: dict[str, Any] = {
        "type": etype,
        "sender": sender,
        "content": content,
        "room_id": room_id,
        "origin_server_ts": next(_counter),  # distinct events, distinct ids
        "auth_events": [],
        "prev_events": [],
        "depth": 1,
        "hashes": {"sha256": "x"},
        "signatures": {},
        **extra,
    }
    if state_key is not None:
        raw["state_key"] = state_key
    metadata = {"device_id": device} if device else {}
    return make_event_from_dict(raw, RoomVersions.V10, internal_metadata_dict=metadata)


def state_map(*events: EventBase) -> StateMap:
    return {(e.type, e.state_key): e for e in events if e.state_key is not None}


def patient_state(**link: Any) -> StateMap:
    return state_map(
        event("m.room.create", SERVICE, {PATIENT_ROOM_MARKER: True}, ""),
        event(DOSSIER_EVENT, SERVICE, DossierLink("D1", **link).to_content(), ""),
        event("m.room.encryption", SERVICE, {"algorithm": "m.megolm.v1.aes-sha2"}, ""),
        event("m.room.power_levels", SERVICE, patient_power_levels([COORD]), ""),
        event(
            CIRCLE_EVENT,
            SERVICE,
            CircleEntry(COORD, "COORD", coordinator=True).to_content(),
            user_state_key(COORD),
        ),
        event(CIRCLE_EVENT, SERVICE, CircleEntry(NURSE, "IDE").to_content(), user_state_key(NURSE)),
        event("m.room.member", COORD, {"membership": "join"}, COORD),
        event("m.room.member", NURSE, {"membership": "join"}, NURSE),
    )


def plain_state() -> StateMap:
    return state_map(event("m.room.create", OUTSIDER, {}, "", room_id=PLAIN_ROOM))


def directory_state() -> StateMap:
    entry = DirectoryEntry(KNOWN, "masseur-kinésithérapeute", rpps="10000000001")
    return state_map(
        event("m.room.create", SERVICE, {DIRECTORY_ROOM_MARKER: True}, "", room_id=DIRECTORY),
        event(
            DIRECTORY_EVENT,
            SERVICE,
            entry.to_content(),
            user_state_key(KNOWN),
            room_id=DIRECTORY,
        ),
    )


class FakeModuleApi:
    """The part of ``synapse.module_api.ModuleApi`` the module uses, over fixed room states."""

    server_name = SERVER
    worker_name = None

    def __init__(self) -> None:
        self.rooms: dict[str, StateMap] = {
            ROOM: patient_state(),
            PLAIN_ROOM: plain_state(),
            DIRECTORY: directory_state(),
        }
        self.spam_callbacks: dict[str, Any] = {}
        self.rules_callbacks: dict[str, Any] = {}
        self.reads: list[frozenset[tuple[str, str | None]] | None] = []  # None: whole state

    def register_spam_checker_callbacks(self, **callbacks: Any) -> None:
        self.spam_callbacks.update(callbacks)

    def register_third_party_rules_callbacks(self, **callbacks: Any) -> None:
        self.rules_callbacks.update(callbacks)

    def is_mine(self, user_id: str) -> bool:
        return user_id.endswith(":" + SERVER)

    async def lookup_room_alias(self, alias: str) -> tuple[str, list[str]]:
        return DIRECTORY, [SERVER]

    async def get_room_state(
        self, room_id: str, event_filter: Iterable[tuple[str, str | None]] | None = None
    ) -> StateMap:
        state = self.rooms[room_id]
        wanted = None if event_filter is None else frozenset(event_filter)
        self.reads.append(wanted)
        if wanted is None:
            return dict(state)
        return {key: ev for key, ev in state.items() if key in wanted or (key[0], None) in wanted}


@pytest.fixture
def api() -> FakeModuleApi:
    return FakeModuleApi()


@pytest.fixture
def module(api: FakeModuleApi, tmp_path: Path) -> CareCircleModule:
    config = CareCircleModule.parse_config(
        {
            "appservice_user": SERVICE,
            "bot_user": BOT,
            "peer_servers": ["autre.test"],
            "audit_dir": str(tmp_path / "audit"),
        }
    )
    return CareCircleModule(config, api)  # type: ignore[arg-type]


def test_registers_every_callback_wrapped(module: CareCircleModule, api: FakeModuleApi) -> None:
    assert set(api.spam_callbacks) == {
        "user_may_send_3pid_invite",
        "federated_user_may_invite",
        "user_may_join_room",
    }
    assert set(api.rules_callbacks) == {
        "check_event_allowed",
        "on_create_room",
        "check_visibility_can_be_modified",
    }
    for callback in [*api.spam_callbacks.values(), *api.rules_callbacks.values()]:
        assert callback.__self__ is module
        assert hasattr(callback, "__wrapped__"), f"{callback.__name__} is not fail-closed"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"bot_user": BOT}, "appservice_user"),
        ({"appservice_user": "maillon", "bot_user": BOT}, "appservice_user"),
        ({"appservice_user": SERVICE, "bot_user": BOT, "peer_servers": "x.test"}, "peer_servers"),
        (
            {"appservice_user": SERVICE, "bot_user": BOT, "peer_servers": ["pas un serveur"]},
            "peer_servers",
        ),
        ({"appservice_user": SERVICE, "bot_user": BOT, "peer_servrs": []}, "peer_servrs"),
    ],
)
def test_parse_config_rejects_bad_values_naming_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        CareCircleModule.parse_config(raw)
    assert f"'{key}'" in str(refused.value)


async def allowed(module: CareCircleModule, ev: EventBase, state: StateMap) -> bool:
    """The module's verdict on an event: True if allowed, False if refused (with a 403)."""
    try:
        result, _ = await module.check_event_allowed(ev, state)
    except SynapseError as exc:
        assert exc.code == 403 and exc.msg
        return False
    return result


@pytest.mark.parametrize(
    ("etype", "sender", "content", "ok"),
    [
        ("m.room.encrypted", NURSE, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"}, True),
        ("m.reaction", NURSE, {"m.relates_to": {"rel_type": "m.annotation", "key": "👍"}}, True),
        ("m.room.message", NURSE, {"msgtype": "m.text", "body": "en clair"}, False),
        ("m.sticker", NURSE, {"body": "autocollant", "url": "mxc://x/y"}, False),
        ("m.poll.start", NURSE, {"question": {"body": "Quel traitement ?"}}, False),
        ("org.matrix.msc3381.poll.start", NURSE, {"body": "Quel traitement ?"}, False),
        ("com.example.custom", COORD, {"note": "en clair"}, False),
        ("m.room.message", SERVICE, {"msgtype": "m.notice", "body": "Dossier clos."}, True),
        ("m.room.message", SERVICE, {"msgtype": "m.text", "body": "en clair"}, False),
        ("m.sticker", SERVICE, {"body": "autocollant"}, False),
    ],
)
async def test_non_state_events_in_a_patient_room(
    module: CareCircleModule, api: FakeModuleApi, etype: str, sender: str, content: Any, ok: bool
) -> None:
    assert await allowed(module, event(etype, sender, content), api.rooms[ROOM]) is ok


async def test_an_ordinary_room_is_left_alone(module: CareCircleModule, api: FakeModuleApi) -> None:
    sticker = event("m.sticker", OUTSIDER, {"body": "x"}, room_id=PLAIN_ROOM)
    assert await allowed(module, sticker, api.rooms[PLAIN_ROOM])
    name = event("m.room.name", OUTSIDER, {"name": "Apéro"}, "", room_id=PLAIN_ROOM)
    assert await allowed(module, name, api.rooms[PLAIN_ROOM])


@pytest.mark.parametrize(
    ("etype", "content"),
    [
        ("m.room.name", {"name": "Mme Martin — soins palliatifs"}),
        ("m.room.topic", {"topic": "Suspicion de maltraitance"}),
        ("m.room.avatar", {"url": "mxc://x/photo"}),
    ],
)
async def test_room_name_topic_avatar_pinned_to_the_service_user(
    module: CareCircleModule, api: FakeModuleApi, etype: str, content: dict[str, Any]
) -> None:
    state = api.rooms[ROOM]
    assert not await allowed(module, event(etype, COORD, content, ""), state)
    assert not await allowed(module, event(etype, NURSE, content, ""), state)
    assert await allowed(module, event(etype, SERVICE, content, ""), state)


async def test_membership_decisions_from_the_state(
    module: CareCircleModule, api: FakeModuleApi
) -> None:
    state = api.rooms[ROOM]
    invite = {"membership": "invite"}
    assert await allowed(module, event("m.room.member", COORD, invite, KNOWN), state)
    assert not await allowed(module, event("m.room.member", NURSE, invite, KNOWN), state)
    assert not await allowed(module, event("m.room.member", COORD, invite, OUTSIDER), state)
    join = {"membership": "join"}
    assert not await allowed(module, event("m.room.member", OUTSIDER, join, OUTSIDER), state)
    assert await allowed(module, event("m.room.member", NURSE, join, NURSE), state)
    ban = {"membership": "ban"}
    assert await allowed(module, event("m.room.member", COORD, ban, NURSE), state)

    assert (await module.user_may_join_room(OUTSIDER, ROOM, False))[0] == Codes.FORBIDDEN
    assert await module.user_may_join_room(NURSE, ROOM, True) == NOT_SPAM
    assert (await module.user_may_send_3pid_invite(COORD, "email", "a@b.fr", ROOM)) != NOT_SPAM
    assert await module.check_visibility_can_be_modified(ROOM, state, "public") is False
    assert await module.check_visibility_can_be_modified(ROOM, state, "private") is True


async def test_the_early_join_check_reads_a_few_state_events_in_one_read(
    module: CareCircleModule, api: FakeModuleApi
) -> None:
    """The early check of a join reads the create event, the dossier link, the person's
    member event and circle entries in one read, never the whole state of the room: the
    person's own entry if nobody invited them, the circle's entries if someone did (whether
    the inviter coordinates the dossier), and someone a coordinator invited is admitted."""
    api.rooms[ROOM][("m.room.member", KNOWN)] = event(
        "m.room.member", COORD, {"membership": "invite"}, KNOWN
    )
    api.reads.clear()
    assert await module.user_may_join_room(KNOWN, ROOM, True) == NOT_SPAM
    assert (await module.user_may_join_room(OUTSIDER, ROOM, False))[0] == Codes.FORBIDDEN
    room_reads = [r for r in api.reads if r is None or (DOSSIER_EVENT, "") in r]
    assert None not in api.reads, "no whole-state read"
    assert room_reads == [
        {
            ("m.room.create", ""),
            (DOSSIER_EVENT, ""),
            ("m.room.member", KNOWN),
            (CIRCLE_EVENT, None),
        },
        {
            ("m.room.create", ""),
            (DOSSIER_EVENT, ""),
            ("m.room.member", OUTSIDER),
            (CIRCLE_EVENT, user_state_key(OUTSIDER)),
        },
    ]


async def test_an_invite_is_decided_once_from_the_state_synapse_hands_over(
    module: CareCircleModule, api: FakeModuleApi
) -> None:
    """Every invite is an event this server creates, so ``check_event_allowed`` decides it,
    from the state Synapse hands it: no early invite check reads the room again. A refusal
    answers as an early one did (403, the French reason, the decision's code)."""
    assert "user_may_invite" not in api.spam_callbacks
    state = api.rooms[ROOM]
    invite = {"membership": "invite"}
    api.reads.clear()
    assert await allowed(module, event("m.room.member", COORD, invite, KNOWN), state)
    assert all(r is not None and (DOSSIER_EVENT, "") not in r for r in api.reads), "no room read"
    with pytest.raises(SynapseError) as refused:
        await module.check_event_allowed(event("m.room.member", NURSE, invite, OUTSIDER), state)
    assert refused.value.code == 403 and refused.value.errcode == Codes.FORBIDDEN
    assert "cercle de soins" in refused.value.msg
    assert refused.value.error_dict(None)["fr.maillon.reason"] == "not_in_circle"
    [record] = [r for r in read_audit(module._config.audit_dir) if r.target == OUTSIDER]
    assert (record.action, record.allowed, record.code) == ("invite", False, "not_in_circle")


async def test_an_invite_from_another_server_is_checked_against_the_state_held_here(
    module: CareCircleModule, api: FakeModuleApi
) -> None:
    """``check_event_allowed`` never sees an invite another server made: a peer server's
    invite into a patient room this server holds is checked on arrival against its state,
    as a local one is (a peer's user who does not coordinate the dossier may not invite
    someone outside the circle; anyone in the circle may be invited)."""
    stripped = [{"type": "m.room.create", "content": {PATIENT_ROOM_MARKER: True}}]

    def federated(invitee: str) -> EventBase:
        return event(
            "m.room.member",
            "@mt:autre.test",
            {"membership": "invite"},
            invitee,
            unsigned={"invite_room_state": stripped},
        )

    refused = await module.federated_user_may_invite(federated(KNOWN))
    assert refused != NOT_SPAM and refused[1]["fr.maillon.reason"] == "not_in_circle"
    assert await module.federated_user_may_invite(federated(NURSE)) == NOT_SPAM
    record = [r for r in read_audit(module._config.audit_dir) if r.action == "invite"]
    assert [(r.target, r.allowed, r.code) for r in record] == [(KNOWN, False, "not_in_circle")]
    unknown_room = event(
        "m.room.member", "@mt:autre.test", {"membership": "invite"}, KNOWN, room_id="!x:autre.test"
    )
    api.rooms["!x:autre.test"] = {}
    assert await module.federated_user_may_invite(unknown_room) == NOT_SPAM


async def test_protected_state_and_loosening_refused(
    module: CareCircleModule, api: FakeModuleApi
) -> None:
    state = api.rooms[ROOM]
    rules = event("m.room.join_rules", COORD, {"join_rule": "public"}, "")
    assert not await allowed(module, rules, state)
    link = event(DOSSIER_EVENT, COORD, {"dossier_id": "D1"}, "")
    assert not await allowed(module, link, state)
    side = event(SIDE_ROOM_EVENT, SERVICE, {"via": "sante.test", "label": 3}, "!side:sante.test")
    assert not await allowed(module, side, state)
    good_side = {"via": [SERVER], "label": "coordination interne"}
    assert await allowed(module, event(SIDE_ROOM_EVENT, SERVICE, good_side, "!side:x"), state)
    directory = api.rooms[DIRECTORY]
    bad = {"profession": "infirmier"}  # neither RPPS nor ADELI
    binding = event(DIRECTORY_EVENT, SERVICE, bad, user_state_key(NURSE), room_id=DIRECTORY)
    assert not await allowed(module, binding, directory)
    good = DirectoryEntry(NURSE, "infirmier", adeli="123456789").to_content()
    binding = event(DIRECTORY_EVENT, SERVICE, good, user_state_key(NURSE), room_id=DIRECTORY)
    assert await allowed(module, binding, directory)
    redact_link = event("m.room.redaction", COORD, {}, redacts=state[(DOSSIER_EVENT, "")].event_id)
    assert not await allowed(module, redact_link, state)


async def test_a_patient_room_is_created_with_its_power_levels_complete(
    module: CareCircleModule,
) -> None:
    """``on_create_room`` puts in the initial state the power levels the keeper keeps (the
    template, the initial circle's active coordinators raised, read-only for a closed
    dossier): no later write. ``createRoom`` writes them before the circle and the link, so
    at that point Maillon's may raise users to the coordinator level, nothing more."""
    requester = SimpleNamespace(user=SimpleNamespace(to_string=lambda: SERVICE))

    def entry(user: str, coordinator: bool) -> dict[str, Any]:
        content = CircleEntry(user, "COORD" if coordinator else "IDE", coordinator=coordinator)
        return {
            "type": CIRCLE_EVENT,
            "state_key": user_state_key(user),
            "content": content.to_content(),
        }

    for status, read_only in (("open", False), ("closed", True)):
        link = DossierLink("D1", status=status).to_content()
        request: dict[str, Any] = {
            "creation_content": {PATIENT_ROOM_MARKER: True},
            "initial_state": [
                {"type": DOSSIER_EVENT, "state_key": "", "content": link},
                entry(COORD, True),
                entry(NURSE, False),
                {"type": "m.room.power_levels", "state_key": "", "content": {"users": {}}},
            ],
            "power_level_content_override": {"users": {OUTSIDER: 100}},
        }
        await module.on_create_room(requester, request, False)
        assert "power_level_content_override" not in request
        [levels] = [s for s in request["initial_state"] if s["type"] == "m.room.power_levels"]
        assert levels["content"] == patient_power_levels([COORD], read_only=read_only)

    # At creation (no link, no circle yet), Maillon's power levels may raise a coordinator.
    creating = state_map(
        event("m.room.create", SERVICE, {PATIENT_ROOM_MARKER: True}, ""),
        event("m.room.member", SERVICE, {"membership": "join"}, SERVICE),
    )
    for read_only in (False, True):
        levels = patient_power_levels([COORD], read_only=read_only)
        pl = event("m.room.power_levels", SERVICE, levels, "")
        assert await allowed(module, pl, creating)
    loose = {**patient_power_levels([COORD]), "events_default": 100, "invite": 0}
    too_high = {**patient_power_levels([]), "users": {COORD: 100}}
    for content in (loose, too_high):
        assert not await allowed(
            module, event("m.room.power_levels", SERVICE, content, ""), creating
        )
    # Once the room has its link, only the circle's active coordinators, Maillon's included.
    raised = event("m.room.power_levels", SERVICE, patient_power_levels([COORD, NURSE]), "")
    assert not await allowed(module, raised, patient_state())
    kept = event("m.room.power_levels", SERVICE, patient_power_levels([COORD]), "")
    assert await allowed(module, kept, patient_state())


async def test_events_sent_without_a_device_are_recorded(
    module: CareCircleModule, api: FakeModuleApi, tmp_path: Path
) -> None:
    """A local user's event with no device: an administrator's "login as" token (or the
    server itself), recorded as such; the event is still decided by the usual rules."""
    state = api.rooms[ROOM]
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}
    assert await allowed(module, event("m.reaction", NURSE, reaction), state)
    assert await allowed(module, event("m.reaction", NURSE, reaction, device=None), state)
    kick = {"membership": "leave"}
    assert await allowed(module, event("m.room.member", COORD, kick, NURSE, device=None), state)
    assert await allowed(module, event("m.reaction", SERVICE, reaction, device=None), state)
    remote = event("m.reaction", "@mt:autre.test", reaction, device=None)
    assert await allowed(module, remote, state)
    flagged = [
        (r.actor, r.action, r.target)
        for r in read_audit(tmp_path / "audit", ROOM)
        if r.code == "admin_login_as_or_server_action"
    ]
    assert flagged == [
        (NURSE, "without_device:m.reaction", None),
        (COORD, "without_device:m.room.member", NURSE),
    ]


class Boom(RuntimeError):
    pass


def _boom(*args: object, **kwargs: object) -> None:
    raise Boom("contenu qui ne doit pas apparaître dans les journaux")


async def test_a_failing_policy_fails_closed_with_a_log_line(
    module: CareCircleModule,
    api: FakeModuleApi,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=care_circle.__name__)
    for name in ("check_message", "check_invite", "check_join", "check_state_event"):
        monkeypatch.setattr(policy, name, _boom)
    state = api.rooms[ROOM]
    encrypted = event("m.room.encrypted", NURSE, {"algorithm": "m.megolm.v1.aes-sha2"})
    pinned = event("m.room.pinned_events", COORD, {"pinned": []}, "")
    invite = event("m.room.member", COORD, {"membership": "invite"}, KNOWN)
    for failing in (encrypted, pinned, invite):
        with pytest.raises(SynapseError) as refused:  # the early checks' French answer
            await module.check_event_allowed(failing, state)
        assert refused.value.code == 403 and "par précaution" in refused.value.msg
        assert refused.value.error_dict(None)["fr.maillon.reason"] == "module_error"
    join = await module.user_may_join_room(NURSE, ROOM, True)
    assert join[0] == Codes.FORBIDDEN and join[1]["fr.maillon.reason"] == "module_error"

    monkeypatch.setattr(policy, "is_patient_create", _boom)
    assert await module.check_visibility_can_be_modified(ROOM, state, "private") is False
    with pytest.raises(SynapseError) as refused:
        # A requester Synapse never hands us: the callback fails, the creation is refused.
        await module.on_create_room(
            object(), {"creation_content": {PATIENT_ROOM_MARKER: True}}, False
        )
    assert refused.value.code == 403
    monkeypatch.setattr(policy.PolicyContext, "server_allowed", _boom)
    stripped = [{"type": "m.room.create", "content": {PATIENT_ROOM_MARKER: True}}]
    invite_event = event(
        "m.room.member",
        "@mt:autre.test",
        {"membership": "invite"},
        NURSE,
        unsigned={"invite_room_state": stripped},
    )
    federated = await module.federated_user_may_invite(invite_event)
    assert federated[0] == Codes.FORBIDDEN

    lines = [r for r in caplog.records if r.name == care_circle.__name__]
    failed = {r.getMessage().split(" failed")[0].rsplit(" ", 1)[-1] for r in lines}
    assert {
        "check_event_allowed",
        "user_may_join_room",
        "check_visibility_can_be_modified",
        "on_create_room",
        "federated_user_may_invite",
    } <= failed
    assert sum("Boom at test_care_circle_module.py" in r.getMessage() for r in lines) >= 5
    assert not any("journaux" in r.getMessage() for r in lines), "no exception text in logs"


async def test_a_failing_state_read_fails_closed(
    module: CareCircleModule, api: FakeModuleApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*args: object, **kwargs: object) -> StateMap:
        raise SynapseError(500, "base indisponible")

    monkeypatch.setattr(api, "get_room_state", unavailable)
    join = await module.user_may_join_room(KNOWN, ROOM, True)
    assert join[0] == Codes.FORBIDDEN


async def test_the_allow_list_follows_the_consoles_file_within_its_delay(
    api: FakeModuleApi, tmp_path: Path
) -> None:
    """``peers_file``: the console's allow list replaces ``peer_servers`` and each decision
    takes it from memory, the file looked at again within ``peers_refresh_seconds``."""
    peers_file = tmp_path / PEERS_FILE
    write_peers(peers_file, [])
    config = CareCircleModule.parse_config(
        {
            "appservice_user": SERVICE,
            "bot_user": BOT,
            "peer_servers": ["autre.test"],
            "peers_file": str(peers_file),
            "peers_refresh_seconds": 0.2,
            "audit_dir": str(tmp_path / "audit"),
        }
    )
    module = CareCircleModule(config, api)  # type: ignore[arg-type]
    stripped = [{"type": "m.room.create", "content": {PATIENT_ROOM_MARKER: True}}]

    async def federated_allowed() -> bool:
        invite = event(
            "m.room.member",
            "@mt:region-c.test",
            {"membership": "invite"},
            NURSE,
            unsigned={"invite_room_state": stripped},
        )
        return await module.federated_user_may_invite(invite) == NOT_SPAM

    async def until(wanted: bool) -> None:
        deadline = time.monotonic() + 5
        while await federated_allowed() is not wanted:
            assert time.monotonic() < deadline, f"decision never became {wanted}"
            await asyncio.sleep(0.05)

    assert not await federated_allowed()  # the file, not ``peer_servers``, decides
    write_peers(peers_file, [Peer("region-c.test", "convention")])
    await until(True)
    requester = SimpleNamespace(user=SimpleNamespace(to_string=lambda: SERVICE))
    request: dict[str, Any] = {"creation_content": {PATIENT_ROOM_MARKER: True}}
    await module.on_create_room(requester, request, False)
    [acl] = [s for s in request["initial_state"] if s["type"] == "m.room.server_acl"]
    assert (
        "region-c.test" in acl["content"]["allow"] and "autre.test" not in acl["content"]["allow"]
    )
    write_peers(peers_file, [])
    await until(False)
    with pytest.raises(ConfigError, match="peers_refresh_seconds"):
        CareCircleModule.parse_config(
            {"appservice_user": SERVICE, "bot_user": BOT, "peers_refresh_seconds": 0}
        )
