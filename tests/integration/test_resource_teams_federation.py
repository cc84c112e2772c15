"""Resource teams across regions (two federated homeservers): a coordinator of region B
solicits a team whose members are on region A's server; the on-duty member of A is told
in their encrypted "Sollicitations" chat with B's bot (over federation), accepts there,
and joins the patient room on B (B's peer list allows A) — nobody of the team before."""

from __future__ import annotations

import pytest

from tests.harness.circle import MakeClient, membership, token_of, wait_for
from tests.harness.dossier import api, new_dossier
from tests.harness.stack import Stack
from tests.integration.test_resource_teams_stack import _cli, _solicitations_chat

pytestmark = pytest.mark.federation


async def test_a_team_of_another_region_is_solicited_and_its_accepter_joins(
    federation: tuple[Stack, Stack], make_client: MakeClient
) -> None:
    region_a, region_b = federation
    coord = make_client(region_b, "coord")
    expert, colleague = make_client(region_a, "expert"), make_client(region_a, "expert")
    for member in (expert, colleague):
        region_b.bind_directory(member.user_id, "médecin")
    slug = "crmr-" + expert.user_id[7:13]
    made = _cli(
        region_b, "add", "--dir", str(region_b.directory), slug,
        "--name", "Centre de référence maladies rares", "--level", "regionale",
        "--member", f"{expert.user_id}=neurologue", "--member", colleague.user_id,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = token_of(coord)
    dossier = new_dossier(region_b, token)
    path, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    api(region_b, token, "PATCH", path, {"consent_share_outside": True, "consent_note": "écrit"})
    body = {"team": slug, "kind": "avis", "reason": "myopathie ? avis du centre de référence"}
    sent = api(region_b, token, "POST", f"{path}/solicitations", body)
    assert sent["notified"] == sorted([expert.user_id, colleague.user_id])
    assert membership(region_b, token, room_id, expert.user_id) is None

    chat = await _solicitations_chat(expert)
    notice = await expert.wait_for_text(chat, lambda e: f"n° {sent['id']}" in e.body)
    assert notice.decrypted and body["reason"] in notice.body
    await expert.send_text(chat, f"!sollicitation accepter {sent['id']}")
    done = await expert.wait_for_text(chat, lambda e: "rôle ERS" in e.body, timeout=60)
    assert done.decrypted
    await expert.accept_invite(room_id, timeout=60)
    await coord.wait_for_member(room_id, expert.user_id, timeout=60)
    said = await coord.send_text(room_id, "Bonjour, voici le contexte : CPK élevées.")
    got = await expert.wait_for_text(room_id, lambda e: e.event_id == said, timeout=60)
    assert got.decrypted and got.body.startswith("Bonjour")
    await wait_for(
        lambda: membership(region_b, token, room_id, colleague.user_id) is None,
        "the colleague stays out",
    )
    circle = api(region_b, token, "GET", f"{path}/circle")["members"]
    assert [m["user_id"] for m in circle if m["role"] == "ERS"] == [expert.user_id]
