"""A patient room admits only its care circle, enforced inside Synapse (one homeserver)."""

from __future__ import annotations

import datetime as dt

import pytest

from appservice.matrix_api import MatrixError
from appservice.patient_rooms import circle_entry, remove_circle_member, set_circle_member
from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    PATIENT_ROOM_MARKER,
    user_state_key,
)
from maillon.shared.homeserver_client import HomeserverError, request_json
from synapse_modules.audit import read_audit
from tests.harness.circle import (
    MakeClient,
    appservice,
    bind_professional,
    coordinated_room,
    cs,
    eventually_entry,
    member_exchange,
    membership,
    open_dossier,
    professional,
    refusal,
    room_path,
    room_state,
    token_of,
    wait_for,
)
from tests.harness.stack import Stack


async def test_member_added_by_coordinator_joins_and_exchanges_encrypted_messages(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator, _, _, entry = await member_exchange(stack, make_client)
    assert entry.added_by == coordinator.user_id and entry.role == "PRO"


async def test_outsider_is_refused_invite_join_and_knock_with_reasons(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    member = await professional(stack, make_client, "kine")
    async with appservice(stack) as api:
        await set_circle_member(api, room_id, member.user_id, "KINE", coordinator.user_id)
        await api.invite(room_id, member.user_id)
    await member.accept_invite(room_id)
    outsider = await professional(stack, make_client, "curieux")
    unknown = make_client(stack, "anonyme")  # an account bound to no directory entry

    by_member = refusal(
        stack, token_of(member), "POST", room_path(room_id, "invite"), {"user_id": outsider.user_id}
    )
    assert by_member.status == 403 and by_member.errcode == "M_FORBIDDEN"
    assert "ne fait pas partie du cercle de soins" in str(by_member)

    join = refusal(stack, token_of(outsider), "POST", "/join/" + room_id, {})
    assert join.status == 403 and "réservé à son cercle" in str(join)

    knock = refusal(stack, token_of(outsider), "POST", "/knock/" + room_id, {})
    assert knock.status == 403 and "demandes d'accès (knock)" in str(knock)

    not_pro = refusal(
        stack,
        token_of(coordinator),
        "POST",
        room_path(room_id, "invite"),
        {"user_id": unknown.user_id},
    )
    assert not_pro.status == 403 and "pas un professionnel connu" in str(not_pro)

    assert membership(stack, token_of(coordinator), room_id, outsider.user_id) is None
    decisions = [r for r in read_audit(stack.directory / "audit", room_id) if not r.allowed]
    codes = {(r.actor, r.action, r.code) for r in decisions}
    assert (member.user_id, "invite", "not_in_circle") in codes
    assert (outsider.user_id, "join", "join_not_in_circle") in codes
    assert (outsider.user_id, "knock", "knock_refused") in codes
    assert (coordinator.user_id, "invite", "not_a_known_professional") in codes


async def test_removed_member_is_out_within_two_seconds_and_cannot_rejoin(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    nurse = await professional(stack, make_client, "ide")
    await coordinator.sync()
    await coordinator.client.room_invite(room_id, nurse.user_id)
    await nurse.accept_invite(room_id)
    colleague = await professional(stack, make_client, "collegue")
    async with appservice(stack) as api:
        await set_circle_member(api, room_id, colleague.user_id, "MED", coordinator.user_id)
        await api.invite(room_id, colleague.user_id)
    await colleague.accept_invite(room_id)

    async with appservice(stack) as api:
        ended = await remove_circle_member(api, room_id, nurse.user_id, coordinator.user_id)
    assert ended is not None and not ended.active and ended.removed_by == coordinator.user_id
    took = await wait_for(
        lambda: membership(stack, token_of(coordinator), room_id, nurse.user_id) == "leave",
        "the removed member to be kicked",
        timeout=2.0,
    )
    assert took < 2.0
    rejoin = refusal(stack, token_of(nurse), "POST", "/join/" + room_id, {})
    assert rejoin.status == 403
    reinvite = refusal(
        stack, token_of(colleague), "POST", room_path(room_id, "invite"), {"user_id": nurse.user_id}
    )
    assert reinvite.status == 403

    # Only a new circle entry brings them back.
    async with appservice(stack) as api:
        await set_circle_member(api, room_id, nurse.user_id, "IDE", coordinator.user_id)
    cs(
        stack,
        token_of(coordinator),
        "POST",
        room_path(room_id, "invite"),
        {"user_id": nurse.user_id},
    )
    cs(stack, token_of(nurse), "POST", "/join/" + room_id, {})
    assert membership(stack, token_of(coordinator), room_id, nurse.user_id) == "join"


async def test_kick_by_coordinator_ends_circle_membership(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    helper = await professional(stack, make_client, "aide")
    cs(
        stack,
        token_of(coordinator),
        "POST",
        room_path(room_id, "invite"),
        {"user_id": helper.user_id},
    )
    cs(stack, token_of(helper), "POST", "/join/" + room_id, {})
    cs(
        stack,
        token_of(coordinator),
        "POST",
        room_path(room_id, "kick"),
        {"user_id": helper.user_id, "reason": "fin d'intervention"},
    )

    entry = await eventually_entry(stack, room_id, helper.user_id, active=False)
    assert entry.removed_by == coordinator.user_id
    assert refusal(stack, token_of(helper), "POST", "/join/" + room_id, {}).status == 403


async def test_exit_date_passed_removes_the_member(stack: Stack, make_client: MakeClient) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    temp = await professional(stack, make_client, "remplacant")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    async with appservice(stack) as api:
        await set_circle_member(api, room_id, temp.user_id, "MED", coordinator.user_id, until=until)
        await api.invite(room_id, temp.user_id)
    cs(stack, token_of(temp), "POST", "/join/" + room_id, {})
    assert membership(stack, token_of(coordinator), room_id, temp.user_id) == "join"
    await wait_for(
        lambda: membership(stack, token_of(coordinator), room_id, temp.user_id) == "leave",
        "the member whose exit date passed to be removed",
        timeout=8.0,
    )
    async with appservice(stack) as api:
        entry = await circle_entry(api, room_id, temp.user_id)
    assert entry is not None and not entry.active


LOOSENING = [
    ("m.room.join_rules", {"join_rule": "public"}),
    ("m.room.join_rules", {"join_rule": "knock"}),
    ("m.room.history_visibility", {"history_visibility": "shared"}),
    ("m.room.history_visibility", {"history_visibility": "world_readable"}),
    ("m.room.guest_access", {"guest_access": "can_join"}),
    ("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 1}),
    ("m.room.encryption", {}),
    (DOSSIER_EVENT, {"dossier_id": "AUTRE-DOSSIER"}),
    ("m.room.power_levels", {"users": {}, "state_default": 0}),
    ("m.room.server_acl", {"allow": ["*"], "deny": []}),
]


@pytest.mark.parametrize("actor", ["coordinator", "server_admin_in_circle"])
async def test_no_loosening_for_anyone(stack: Stack, make_client: MakeClient, actor: str) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    if actor == "coordinator":
        token = token_of(coordinator)
        user_id = coordinator.user_id
    else:
        admin = stack.register("admin", admin=True)
        async with appservice(stack) as api:
            await set_circle_member(
                api, room_id, admin.user_id, "COORD", coordinator.user_id, coordinator=True
            )
            await api.invite(room_id, admin.user_id)
        cs(stack, admin.access_token, "POST", "/join/" + room_id, {})
        token, user_id = admin.access_token, admin.user_id
    before = room_state(stack, token, room_id)
    for etype, content in LOOSENING:
        refused = refusal(stack, token, "PUT", room_path(room_id, "state", etype, ""), content)
        assert refused.status == 403, (etype, content)
        assert "protégée" in str(refused) or "Seul Maillon" in str(refused), str(refused)
    circle = refusal(
        stack,
        token,
        "PUT",
        room_path(room_id, "state", CIRCLE_EVENT, user_state_key(user_id)),
        {"role": "MT", "active": True},
    )
    assert circle.status == 403 and "Seul Maillon" in str(circle)
    publish = refusal(
        stack, token, "PUT", "/directory/list/room/" + room_id, {"visibility": "public"}
    )
    assert publish.status == 403
    plaintext = refusal(
        stack,
        token,
        "PUT",
        room_path(room_id, "send", "m.room.message", "t1"),
        {"msgtype": "m.text", "body": "en clair"},
    )
    assert plaintext.status == 403 and "chiffrés" in str(plaintext)
    after = room_state(stack, token, room_id)
    assert {e["event_id"] for e in after} == {e["event_id"] for e in before}  # nothing changed
    public_rooms = cs(stack, token, "GET", "/publicRooms")
    assert room_id not in {r["room_id"] for r in public_rooms.get("chunk", [])}
    denied = {
        (r.actor, r.action) for r in read_audit(stack.directory / "audit", room_id) if not r.allowed
    }
    assert (user_id, "state:m.room.join_rules") in denied
    assert (user_id, "state:m.room.encryption") in denied


async def test_only_encrypted_events_reactions_and_redactions_in_clear(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    nurse = await professional(stack, make_client, "ide")
    await coordinator.sync()
    await coordinator.client.room_invite(room_id, nurse.user_id)
    await nurse.accept_invite(room_id)
    token = token_of(nurse)
    clear = [
        ("m.sticker", {"body": "autocollant", "url": "mxc://localhost/x", "info": {}}),
        ("m.poll.start", {"m.poll": {"question": {"m.text": [{"body": "Quel traitement ?"}]}}}),
        ("org.matrix.msc3381.poll.start", {"org.matrix.msc3381.poll.start": {"question": {}}}),
        ("com.example.note", {"note": "tension 18/10, en clair"}),
        ("m.room.message", {"msgtype": "m.notice", "body": "en clair"}),
    ]
    for n, (etype, content) in enumerate(clear):
        refused = refusal(stack, token, "PUT", room_path(room_id, "send", etype, f"c{n}"), content)
        assert refused.status == 403 and "chiffrés" in str(refused), (etype, str(refused))

    sent = await nurse.send_text(room_id, "Pansement refait, cicatrisation correcte.")
    got = await coordinator.wait_for_text(room_id, lambda e: e.event_id == sent)
    assert got.decrypted and got.body == "Pansement refait, cicatrisation correcte."
    reaction = cs(
        stack,
        token_of(coordinator),
        "PUT",
        room_path(room_id, "send", "m.reaction", "r1"),
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": sent, "key": "👍"}},
    )
    assert reaction["event_id"].startswith("$")
    redaction = cs(stack, token, "PUT", room_path(room_id, "redact", sent, "red1"), {})
    assert redaction["event_id"].startswith("$")
    refused_codes = {
        r.action
        for r in read_audit(stack.directory / "audit", room_id)
        if not r.allowed and r.code == "plaintext_refused"
    }
    assert {"m.sticker", "m.poll.start", "com.example.note"} <= refused_codes


async def test_patient_room_creation_policy(stack: Stack, make_client: MakeClient) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    token = token_of(coordinator)

    def state(etype: str) -> dict[str, object]:
        return cs(stack, token, "GET", room_path(room_id, "state", etype, ""))

    assert state("m.room.create")[PATIENT_ROOM_MARKER] is True
    assert state("m.room.join_rules") == {"join_rule": "invite"}
    assert state("m.room.history_visibility") == {"history_visibility": "invited"}
    assert state("m.room.guest_access") == {"guest_access": "forbidden"}
    assert state("m.room.encryption")["algorithm"] == "m.megolm.v1.aes-sha2"
    levels = state("m.room.power_levels")
    assert levels["users"][coordinator.user_id] == 50
    assert levels["invite"] == 50 and levels["kick"] == 50 and levels["state_default"] == 100
    assert levels["events"]["m.room.encryption"] == 100
    assert levels["events"][CIRCLE_EVENT] == 100
    assert "localhost" in state("m.room.server_acl")["allow"]

    # Nobody but Maillon creates a patient room, even with the right state.
    handmade = refusal(
        stack,
        token,
        "POST",
        "/createRoom",
        {
            "creation_content": {PATIENT_ROOM_MARKER: True},
            "preset": "public_chat",
        },
    )
    assert handmade.status == 403 and "créées par Maillon" in str(handmade)
    disguised = refusal(
        stack,
        token,
        "POST",
        "/createRoom",
        {
            "initial_state": [
                {"type": DOSSIER_EVENT, "state_key": "", "content": {"dossier_id": "X"}}
            ],
        },
    )
    assert disguised.status == 403


async def test_patient_and_aidant_only_where_the_pathway_allows(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator = make_client(stack, "coordinateur")
    await bind_professional(stack, coordinator.user_id)
    aidant = make_client(stack, "aidant")  # no directory entry: not a professional
    closed = await open_dossier(stack, coordinator.user_id)
    with pytest.raises(MatrixError) as refused:
        async with appservice(stack) as api:
            await set_circle_member(api, closed, aidant.user_id, "AID", coordinator.user_id)
    assert refused.value.status == 403 and "n'admet pas le patient" in refused.value.message

    family = await open_dossier(stack, coordinator.user_id, allow_patient=True)
    cs(stack, token_of(coordinator), "POST", "/join/" + family, {})
    before = refusal(
        stack,
        token_of(coordinator),
        "POST",
        room_path(family, "invite"),
        {"user_id": aidant.user_id},
    )
    assert "pas un professionnel connu" in str(before)  # first the circle, with the role
    async with appservice(stack) as api:
        await set_circle_member(api, family, aidant.user_id, "AID", coordinator.user_id)
    cs(
        stack,
        token_of(coordinator),
        "POST",
        room_path(family, "invite"),
        {"user_id": aidant.user_id},
    )
    cs(stack, token_of(aidant), "POST", "/join/" + family, {})
    assert membership(stack, token_of(coordinator), family, aidant.user_id) == "join"
    # The aidant keeps a restricted role: no power level to remove anyone or change the room.
    levels = cs(
        stack, token_of(aidant), "GET", room_path(family, "state", "m.room.power_levels", "")
    )
    assert aidant.user_id not in levels["users"]


async def test_no_backdoor_through_admin_api_redaction_or_third_party_invites(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator, room_id = await coordinated_room(stack, make_client)
    token = token_of(coordinator)
    admin = stack.register("admin", admin=True)
    with pytest.raises(HomeserverError) as raised:
        request_json(
            "POST",
            f"{stack.url}/_synapse/admin/v1/rooms/{room_id}/make_room_admin",
            {"user_id": admin.user_id},
            token=admin.access_token,
        )
    assert raised.value.status == 403
    levels = cs(stack, token, "GET", room_path(room_id, "state", "m.room.power_levels", ""))
    assert admin.user_id not in levels["users"]

    state = room_state(stack, token, room_id)
    encryption = next(e for e in state if e["type"] == "m.room.encryption")
    redact = refusal(
        stack, token, "PUT", room_path(room_id, "redact", encryption["event_id"], "t-redact"), {}
    )
    assert redact.status == 403 and "ne peut pas être supprimé" in str(redact)

    third = refusal(
        stack,
        token,
        "POST",
        room_path(room_id, "invite"),
        {
            "id_server": "id.example",
            "id_access_token": "x",
            "medium": "email",
            "address": "x@example.org",
        },
    )
    assert third.status == 403

    odd = refusal(
        stack,
        token,
        "PUT",
        room_path(room_id, "state", "m.room.join_rules", ""),
        {"join_rule": ["public"]},
    )
    assert odd.status == 403  # a refusal, never a server error
