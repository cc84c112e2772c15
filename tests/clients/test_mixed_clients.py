"""Three Matrix clients in one encrypted patient room — matrix-nio (what Maillon's bot is
built on), Hydrogen in a browser, and Element's SDK (matrix-js-sdk with its Rust crypto, on
Node) — each reads the two others.

All three devices exist before the first encrypted message of the room: Hydrogen does not
send room keys to devices created after its encryption session started
(element-hq/hydrogen-web#1115)."""

from __future__ import annotations

from pathlib import Path

from tests.clients.conftest import Browsers
from tests.harness.circle import MakeClient, bind_professional
from tests.harness.dossier import api, new_dossier
from tests.harness.hydrogen import register_person
from tests.harness.jsclient import JsClient
from tests.harness.stack import Stack


async def test_nio_hydrogen_and_matrix_js_sdk_read_each_other(
    stack: Stack, make_client: MakeClient, browsers: Browsers, js_logs: Path
) -> None:
    coordinator = make_client(stack, "coordinatrice")  # nio
    nurse = register_person(stack, "ide", "Inès Moreau")  # Hydrogen
    physio = stack.register("kine")  # matrix-js-sdk
    for user_id in (coordinator.user_id, nurse.user_id, physio.user_id):
        await bind_professional(stack, user_id)

    # Every device logged in (its keys uploaded) before the room's first encrypted message.
    await coordinator.sync()
    hydrogen = await browsers.open("hydrogen")
    await hydrogen.login(nurse)
    element_sdk = await JsClient.start(stack.url, physio, js_logs / "matrix-js-sdk.log")
    try:
        token = coordinator.account.access_token
        dossier = new_dossier(stack, token)
        dossier_id, room_id = dossier["id"], dossier["room_id"]
        await coordinator.accept_invite(room_id)
        for member, role in ((nurse.user_id, "IDE"), (physio.user_id, "KINE")):
            api(
                stack,
                token,
                "POST",
                f"/v1/dossiers/{dossier_id}/circle",
                {"user_id": member, "role": role},
            )
        await hydrogen.accept_invite(room_id)
        await element_sdk.join(room_id)
        await coordinator.wait_for_member(room_id, nurse.user_id)
        await coordinator.wait_for_member(room_id, physio.user_id)

        from_nio = "Depuis nio : point sur le traitement"
        from_hydrogen = "Depuis Hydrogen : pansement refait"
        from_js = "Depuis matrix-js-sdk : séance de kiné faite"
        await coordinator.send_text(room_id, from_nio)
        await hydrogen.send(from_hydrogen)
        await element_sdk.send(room_id, from_js)

        # nio reads Hydrogen and matrix-js-sdk, decrypted.
        for sender, text in ((nurse.user_id, from_hydrogen), (physio.user_id, from_js)):
            read = await coordinator.wait_for_text(
                room_id, lambda e, s=sender, t=text: e.sender == s and e.body == t, timeout=60
            )
            assert read.decrypted
        # Hydrogen reads nio and matrix-js-sdk (a decrypted tile shows the body).
        await hydrogen.expect_message(from_nio)
        await hydrogen.expect_message(from_js)
        # matrix-js-sdk reads nio and Hydrogen (it records only decrypted messages).
        await element_sdk.wait_for_text(room_id, coordinator.user_id, from_nio)
        await element_sdk.wait_for_text(room_id, nurse.user_id, from_hydrogen)
    finally:
        await element_sdk.close()
