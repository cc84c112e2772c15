"""Two professionals exchange end-to-end encrypted messages, locally and across federation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]


async def _exchange(alice: E2EClient, bob: E2EClient) -> None:
    room_id = await alice.create_room(invite=[bob.user_id], name="Coordination test")
    await bob.accept_invite(room_id)
    await alice.wait_for_member(room_id, bob.user_id)
    await bob.wait_for_member(room_id, alice.user_id)

    assert alice.client.rooms[room_id].encrypted
    sent = await alice.send_text(room_id, "Bonjour, point sur la sortie d'hospitalisation ?")
    got = await bob.wait_for_text(room_id, lambda e: e.event_id == sent)
    assert got.body == "Bonjour, point sur la sortie d'hospitalisation ?"
    assert got.decrypted, "bob must have received the message encrypted"
    assert got.sender == alice.user_id

    answer = await bob.send_text(room_id, "Passage infirmier prévu demain à 9h.")
    back = await alice.wait_for_text(room_id, lambda e: e.event_id == answer)
    assert back.body == "Passage infirmier prévu demain à 9h."
    assert back.decrypted
    assert not alice.undecryptable and not bob.undecryptable


@pytest.mark.parametrize("stack_fixture", ["stack", "pg_stack"])
async def test_two_professionals_exchange_encrypted_messages(
    stack_fixture: str, request: pytest.FixtureRequest, make_client: MakeClient
) -> None:
    stack: Stack = request.getfixturevalue(stack_fixture)
    await _exchange(make_client(stack, "medecin"), make_client(stack, "infirmier"))


@pytest.mark.federation
async def test_encrypted_exchange_across_two_federated_homeservers(
    federation: tuple[Stack, Stack], make_client: MakeClient
) -> None:
    region_a, region_b = federation
    alice = make_client(region_a, "medecin")
    bob = make_client(region_b, "assistante")
    assert alice.user_id.endswith(":" + region_a.server_name)
    assert bob.user_id.endswith(":" + region_b.server_name)
    await _exchange(alice, bob)
