"""A structure's Matrix address (``@structure.<slug>:<server>``, « contacter le compte du
service ») on the real stack (Synapse with the care-circle module, appservice, bot, dossier
API on PostgreSQL, nio clients with end-to-end encryption): any circle member invites it
from a Matrix client; as for a team's address, nobody is admitted: the invite becomes a
solicitation routed to the structure's référents (the same consent rule: refused without
it), the address declines, Maillon says so in the room; the référent who accepts becomes a
circle member (role ERS) and joins, as a team's accepter does."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from tests.harness.circle import cs, membership, room_path, token_of, wait_for
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack
from tests.integration.test_resource_teams_stack import _solicitations_chat

MakeClient = Callable[[Stack, str], E2EClient]


async def test_inviting_a_structure_address_solicits_its_referent_and_admits_nobody(
    pg_stack: Stack, make_client: MakeClient
) -> None:
    stack = pg_stack
    admin = stack.register("admin", admin=True)
    name = f"CH Purpan Gériatrie {secrets.token_hex(2)}"
    structure = api(stack, admin.access_token, "POST", "/v1/structures", {"name": name})
    address = structure["address"]
    assert address == f"@structure.{structure['slug']}:{stack.server_name}"
    assert structure["slug"].startswith("ch-purpan-geriatrie-")
    coord = make_client(stack, "coord")
    referent, manager = make_client(stack, "referent"), make_client(stack, "manager")
    stack.bind_directory(referent.user_id, "médecin gériatre", "Dr Hélène Vidal")
    staff = f"/v1/structures/{structure['id']}/staff"
    api(stack, admin.access_token, "POST", staff, {"user_id": referent.user_id, "role": "referent"})
    api(stack, admin.access_token, "POST", staff, {"user_id": manager.user_id, "role": "manager"})

    token = token_of(coord)
    dossier = new_dossier(stack, token)
    path, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    invite = {"user_id": address, "reason": "avis gériatrique avant retour à domicile"}

    def solicitations() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = api(stack, token, "GET", f"{path}/solicitations")[
            "solicitations"
        ]
        return rows

    # Without the person's consent to sharing outside the care team: refused, told.
    assert cs(stack, token, "POST", room_path(room_id, "invite"), invite) == {}
    refused = await coord.wait_for_text(
        room_id, lambda e: "Sollicitation de la structure" in e.body
    )
    assert "refusée" in refused.body and "hors de l'équipe de soins" in refused.body
    await wait_for(lambda: membership(stack, token, room_id, address) == "leave", "declined")
    assert solicitations() == []
    # An unknown structure's address: refused in words.
    unknown = {"user_id": f"@structure.inconnue-{secrets.token_hex(2)}:{stack.server_name}"}
    cs(stack, token, "POST", room_path(room_id, "invite"), unknown)
    said = await coord.wait_for_text(room_id, lambda e: "structure inconnue" in e.body)
    assert "Sollicitation de la structure refusée" in said.body

    api(stack, token, "PATCH", path, {"consent_share_outside": True, "consent_note": "oral"})
    assert cs(stack, token, "POST", room_path(room_id, "invite"), invite) == {}
    await wait_for(lambda: bool(solicitations()), "the invite turned into a solicitation")
    sent = solicitations()[0]
    assert sent["structure_id"] == structure["id"] and sent["team_name"] == name
    assert sent["requester"]["user_id"] == coord.user_id and sent["reason"] == invite["reason"]
    assert sent["notified"] == [referent.user_id]  # the référents first, then the managers
    await wait_for(
        lambda: membership(stack, token, room_id, address) == "leave", "the address declines"
    )
    notice = await coord.wait_for_text(
        room_id, lambda e: f"Sollicitation n° {sent['id']} envoyée à la structure" in e.body
    )
    assert "1 référent(s) ou manager(s) prévenu(s)" in notice.body
    assert invite["reason"] not in notice.body

    # Nobody of the structure in the room, its history or the dossier before accepting.
    for person in (referent, manager):
        assert membership(stack, token, room_id, person.user_id) is None
        assert api_error(stack, token_of(person), "GET", path).status == 403
    chat = await _solicitations_chat(referent)
    told = await referent.wait_for_text(chat, lambda e: f"n° {sent['id']}" in e.body)
    assert told.decrypted and f"structure « {name} »" in told.body
    assert invite["reason"] in told.body
    sol = f"/v1/solicitations/{sent['id']}"
    assert api_error(stack, token_of(manager), "POST", f"{sol}/accept", {}).status == 403

    # The référent accepts: a circle member (role ERS), invited, joins, reads the room.
    accepted = api(stack, token_of(referent), "POST", f"{sol}/accept", {})
    assert accepted["status"] == "acceptee"
    assert accepted["accepted_by"]["display_name"] == "Dr Hélène Vidal"
    circle = api(stack, token, "GET", f"{path}/circle")["members"]
    assert [m["user_id"] for m in circle if m["role"] == "ERS"] == [referent.user_id]
    await referent.accept_invite(room_id)
    await coord.wait_for_member(room_id, referent.user_id)
    said_id = await coord.send_text(room_id, "Merci : chutes répétées depuis un mois.")
    got = await referent.wait_for_text(room_id, lambda e: e.event_id == said_id)
    assert got.decrypted and got.body.startswith("Merci")
    assert api(stack, token_of(referent), "GET", path)["id"] == dossier["id"]
    assert membership(stack, token, room_id, manager.user_id) is None
    timeline = api(stack, token, "GET", f"{path}/timeline?kind=solicitation")["entries"]
    assert {e["action"] for e in timeline} >= {"envoyee", "acceptee"}
