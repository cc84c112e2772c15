"""Care circles across federated homeservers (regions): peers take part, others cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from appservice.matrix_api import MatrixError
from appservice.patient_rooms import set_circle_member
from synapse_modules.audit import read_audit
from tests.harness.circle import (
    MakeClient,
    appservice,
    coordinated_room,
    professional,
    refusal,
    room_path,
    token_of,
)
from tests.harness.stack import Stack

pytestmark = pytest.mark.federation


async def test_remote_circle_member_takes_part(
    federation: tuple[Stack, Stack], make_client: MakeClient
) -> None:
    region_a, region_b = federation
    coordinator, room_id = await coordinated_room(region_a, make_client)
    doctor = make_client(region_b, "medecin.traitant")
    async with appservice(region_a) as api:
        await set_circle_member(api, room_id, doctor.user_id, "MT", coordinator.user_id)
    await coordinator.sync()
    invited = await coordinator.client.room_invite(room_id, doctor.user_id)
    assert not hasattr(invited, "message"), getattr(invited, "message", "")
    await doctor.accept_invite(room_id)
    await coordinator.wait_for_member(room_id, doctor.user_id)
    await doctor.wait_for_member(room_id, coordinator.user_id)

    sent = await coordinator.send_text(room_id, "Bilan gériatrique reçu, RDV à fixer.")
    got = await doctor.wait_for_text(room_id, lambda e: e.event_id == sent)
    assert got.decrypted and got.body == "Bilan gériatrique reçu, RDV à fixer."
    answer = await doctor.send_text(room_id, "Je le vois mardi au cabinet.")
    back = await coordinator.wait_for_text(room_id, lambda e: e.event_id == answer)
    assert back.decrypted and back.body == "Je le vois mardi au cabinet."
    # The invitee's server accepted the invite as coming from a peer, and said so.
    accepted = [
        r
        for r in read_audit(region_b.directory / "audit", room_id)
        if r.action == "federated_invite" and r.target == doctor.user_id
    ]
    assert accepted and accepted[-1].allowed


async def test_remote_outsider_is_refused(
    federation: tuple[Stack, Stack], make_client: MakeClient
) -> None:
    region_a, region_b = federation
    coordinator, room_id = await coordinated_room(region_a, make_client)
    member = await professional(region_a, make_client, "ide")
    async with appservice(region_a) as api:
        await set_circle_member(api, room_id, member.user_id, "IDE", coordinator.user_id)
        await api.invite(room_id, member.user_id)
    await member.accept_invite(room_id)
    outsider = make_client(region_b, "curieux")

    by_coordinator = refusal(
        region_a,
        token_of(coordinator),
        "POST",
        room_path(room_id, "invite"),
        {"user_id": outsider.user_id},
    )
    assert by_coordinator.status == 403 and "professionnel connu" in str(by_coordinator)
    by_member = refusal(
        region_a,
        token_of(member),
        "POST",
        room_path(room_id, "invite"),
        {"user_id": outsider.user_id},
    )
    assert by_member.status == 403 and "cercle de soins" in str(by_member)
    join = refusal(
        region_b,
        token_of(outsider),
        "POST",
        f"/join/{room_id}?server_name={region_a.server_name}",
        {},
    )
    assert join.status == 403


async def test_server_not_on_allow_list_is_refused(
    federation: tuple[Stack, Stack], make_client: MakeClient, tmp_path: Path
) -> None:
    region_a, region_b = federation
    # A third region that lists B as its peer, while neither A nor B list it.
    region_c = Stack.create(
        tmp_path / "region-c", federation=True, peer_servers=(region_b.server_name,)
    )
    region_c.start()
    try:
        coordinator, room_id = await coordinated_room(region_a, make_client)
        stranger = make_client(region_c, "etranger")
        async with appservice(region_a) as api:
            with pytest.raises(MatrixError) as entry_refused:
                await set_circle_member(api, room_id, stranger.user_id, "MT", coordinator.user_id)
        assert entry_refused.value.status == 403
        assert "n'est pas autorisé" in entry_refused.value.message
        invite = refusal(
            region_a,
            token_of(coordinator),
            "POST",
            room_path(room_id, "invite"),
            {"user_id": stranger.user_id},
        )
        assert invite.status == 403 and "n'est pas autorisé" in str(invite)
        join = refusal(
            region_c,
            token_of(stranger),
            "POST",
            f"/join/{room_id}?server_name={region_a.server_name}",
            {},
        )
        assert join.status == 403

        # B refuses an invite from C into one of C's patient rooms: C is not B's peer.
        c_coordinator, c_room = await coordinated_room(region_c, make_client)
        b_user = make_client(region_b, "sollicite")
        async with appservice(region_c) as api:
            await set_circle_member(api, c_room, b_user.user_id, "MED", c_coordinator.user_id)
        refused = refusal(
            region_c,
            token_of(c_coordinator),
            "POST",
            room_path(c_room, "invite"),
            {"user_id": b_user.user_id},
        )
        assert refused.status == 403
        kept_out = [
            r
            for r in read_audit(region_b.directory / "audit", c_room)
            if r.action == "federated_invite" and not r.allowed
        ]
        assert kept_out and kept_out[-1].code == "server_not_allowed"
    finally:
        region_c.stop()
