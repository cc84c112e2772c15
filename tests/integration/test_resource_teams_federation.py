"""Resource teams across regions (two federated homeservers): a coordinator of region B
solicits a team whose members are on region A's server; the on-duty member of A is told
in their encrypted "Sollicitations" chat with B's bot (over federation), accepts there,
and joins the patient room on B (B's peer list allows A) — nobody of the team before.
And a team registered on A, invited from B's patient room by its address
``@equipe.<slug>:A``: B's module lets the invite out only with the person's consent to
sharing outside the care team; A's appservice turns it into an incoming solicitation for
A's members on duty (the address never joins); the accepter's name comes back in the
address's leave event, B writes the ERS entry and invites exactly the accepter."""

from __future__ import annotations

import pytest

from tests.harness.circle import (
    MakeClient,
    cs,
    membership,
    refusal,
    room_path,
    token_of,
    wait_for,
)
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


async def test_a_team_address_of_another_region_is_invited_from_the_patient_room(
    federation: tuple[Stack, Stack], make_client: MakeClient
) -> None:
    region_a, region_b = federation
    coord = make_client(region_b, "coord")
    expert, colleague = make_client(region_a, "expert"), make_client(region_a, "expert")
    region_b.bind_directory(expert.user_id, "médecin")
    slug = "emsp-" + expert.user_id[7:13]
    made = _cli(
        region_a, "add", "--dir", str(region_a.directory), slug,
        "--name", "Équipe mobile de soins palliatifs", "--level", "regionale",
        "--member", f"{expert.user_id}=médecin", "--member", colleague.user_id,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    address = f"@equipe.{slug}:{region_a.server_name}"
    token = token_of(coord)
    dossier = new_dossier(region_b, token)
    path, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    invite = room_path(room_id, "invite")
    reason = "douleurs rebelles : avis de l'équipe de soins palliatifs"

    # Without the person's consent to sharing outside the care team, the invite stays here.
    refused = refusal(region_b, token, "POST", invite, {"user_id": address, "reason": reason})
    assert refused.status == 403 and "consentement" in str(refused)
    api(region_b, token, "PATCH", path, {"consent_share_outside": True, "consent_note": "oral"})

    def link_allows() -> bool:
        link = cs(region_b, token, "GET", room_path(room_id, "state", "fr.maillon.dossier"))
        return link.get("share_outside") is True

    await wait_for(link_allows, "the room's link to say that sharing is allowed", timeout=30)
    cs(region_b, token, "POST", invite, {"user_id": address, "reason": reason})
    sent = await coord.wait_for_text(room_id, lambda e: "envoyée à l'équipe ressource de" in e.body)
    outgoing = api(region_b, token, "GET", f"{path}/solicitations")["solicitations"]
    assert [(s["remote_team"], s["reason"]) for s in outgoing] == [(address, reason)]
    assert f"n° {outgoing[0]['id']}" in sent.body

    # A's members on duty are told in their Sollicitations chat with A's bot; nobody of A
    # is in the room, and the team's address only holds the invite.
    chat = await _solicitations_chat(expert)
    told = await expert.wait_for_text(chat, lambda e: reason in e.body, timeout=60)
    assert told.decrypted and "Demandeur" in told.body
    incoming = api(region_a, token_of(expert), "GET", "/v1/solicitations")["solicitations"]
    mine = next(s for s in incoming if s["room_id"] == room_id)
    assert mine["dossier_id"] is None and mine["notified"] == sorted(
        [expert.user_id, colleague.user_id]
    )
    for member in (expert, colleague):
        assert membership(region_b, token, room_id, member.user_id) is None
    assert membership(region_b, token, room_id, address) == "invite"
    assert [m for m in api(region_b, token, "GET", f"{path}/circle")["members"]
            if m["role"] == "ERS"] == []  # fmt: skip

    await expert.send_text(chat, f"!sollicitation accepter {mine['id']}")
    await expert.wait_for_text(chat, lambda e: "la région qui l'a envoyée" in e.body, timeout=60)
    # B sends a remote invite before persisting it: join once B's room state shows it.
    await wait_for(
        lambda: membership(region_b, token, room_id, expert.user_id) == "invite",
        "B's invite of the accepter",
        timeout=60,
    )
    await expert.accept_invite(room_id, timeout=90)
    await coord.wait_for_member(room_id, expert.user_id, timeout=60)
    said = await coord.send_text(room_id, "Bonjour, voici le contexte : EVA 8/10.")
    got = await expert.wait_for_text(room_id, lambda e: e.event_id == said, timeout=60)
    assert got.decrypted and got.body.startswith("Bonjour")
    circle = api(region_b, token, "GET", f"{path}/circle")["members"]
    assert [m["user_id"] for m in circle if m["role"] == "ERS"] == [expert.user_id]
    # The address declined (it never joined: no history, no keys); the colleague stays out.
    assert membership(region_b, token, room_id, address) == "leave"
    await wait_for(
        lambda: membership(region_b, token, room_id, colleague.user_id) is None,
        "the colleague stays out",
    )
    outcome = api(region_b, token, "GET", f"{path}/solicitations")["solicitations"]
    assert [(s["status"], s["accepted_by"]["user_id"]) for s in outcome] == [
        ("acceptee", expert.user_id)
    ]
