"""Consent that is checked, on the real stack: a role the pathway does not count as care
team (DAC: AD, aide à domicile) enters the circle only with the person's recorded consent,
never after an opposition — through the API, the bot in the encrypted patient room, and a
direct room invite (refused by the care-circle module); consent changes dated and
attributed in the dossier's history."""

from __future__ import annotations

from collections.abc import Callable

from tests.harness.bot_chat import BotChat
from tests.harness.circle import refusal, room_path
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]


async def test_sharing_outside_the_care_team_needs_consent_and_yields_to_opposition(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordinatrice")
    token = coord.account.access_token
    dossier = new_dossier(stack, token)
    path, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    chat = BotChat(stack, coord)
    await coord.wait_for_member(room_id, chat.bot)
    helper, other = stack.register("aide"), stack.register("aide2")

    refused = api_error(
        stack, token, "POST", f"{path}/circle", {"user_id": helper.user_id, "role": "AD"}
    )
    assert refused.status == 403 and "consentement" in str(refused)
    _, said = await chat.command(
        room_id, f"!cercle ajouter {helper.user_id} AD", ok=False, contains="consentement"
    )
    assert "hors de l'équipe de soins" in said.body
    invite = refusal(
        stack, token, "POST", room_path(room_id, "invite"), {"user_id": helper.user_id}
    )
    assert invite.status == 403 and "cercle" in str(invite), "no invite around the circle"
    # A role of the care team needs nothing more.
    api(stack, token, "POST", f"{path}/circle", {"user_id": other.user_id, "role": "IDE"})

    note = "consentement oral recueilli au domicile, en présence de sa fille"
    api(stack, token, "PATCH", path, {"consent_share_outside": True, "consent_note": note})
    added = api(stack, token, "POST", f"{path}/circle", {"user_id": helper.user_id, "role": "AD"})
    assert added["active"] and added["role"] == "AD"

    api(stack, token, "PATCH", path, {"opposition": True, "consent_note": "opposition écrite"})
    late = stack.register("aide3")
    opposed = api_error(
        stack, token, "POST", f"{path}/circle", {"user_id": late.user_id, "role": "AD"}
    )
    assert opposed.status == 403 and "opposée" in str(opposed)
    await chat.command(room_id, f"!cercle ajouter {late.user_id} AD", ok=False, contains="opposée")

    history = api(stack, token, "GET", f"{path}/consent/history")
    assert history["consent"] == {"informed": False, "share_outside": True, "opposition": True}
    assert [(h["field"], h["value"], h["actor"], h["note"]) for h in history["history"]] == [
        ("share_outside", True, coord.user_id, note),
        ("opposition", True, coord.user_id, "opposition écrite"),
    ]
    assert all(h["at"] for h in history["history"])
    audit = api(stack, token, "GET", f"{path}/audit")["entries"]
    assert any("consentement : opposition → oui" in str(a["detail"]) for a in audit)
