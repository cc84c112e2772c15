"""Maillon from a real Matrix web client: Hydrogen (by Element) in headless Chromium, on a
real stack (Synapse, the appservice, the bot, the dossier API).

Hydrogen does not send room keys to devices created after its encryption session started
(element-hq/hydrogen-web#1115, an open client bug): every test logs all its devices in before
the first encrypted message of a room, as a real team would have to.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from playwright.async_api import expect

from maillon.shared.homeserver_client import request_json
from tests.clients.conftest import Browsers
from tests.harness.circle import bind_professional, refusal, room_path
from tests.harness.dossier import api, new_dossier
from tests.harness.hydrogen import (
    KICKED,
    UI_TIMEOUT_MS,
    HydrogenClient,
    Person,
    create_direct_chat,
    register_person,
)
from tests.harness.stack import Stack


async def logged_in(browsers: Browsers, person: Person) -> HydrogenClient:
    client = await browsers.open(person.localpart)
    await client.login(person)
    return client


async def test_a_professional_asks_the_bot_for_help_from_hydrogen(
    stack: Stack, browsers: Browsers
) -> None:
    pro = register_person(stack, "medecin", "Dr Claire Fabre")
    hydrogen = await logged_in(browsers, pro)
    bot = stack.deployment.settings.bot_user_id
    room_id = create_direct_chat(stack, pro, bot)

    await hydrogen.open_room(room_id)
    # The bot joins the direct chat on its own: Hydrogen shows it, by its display name.
    await expect(hydrogen.p.locator(".Timeline .AnnouncementView").last).to_contain_text(
        "joined the room", timeout=UI_TIMEOUT_MS
    )
    asked = await hydrogen.send("!aide")

    answer = hydrogen.message("commandes disponibles")
    await expect(answer).to_be_visible(timeout=UI_TIMEOUT_MS)
    # Decrypted (an undecryptable tile shows a status message instead of the body), French,
    # from the bot, in reply to the command.
    body = answer.locator(":scope > .Timeline_messageBody")
    await expect(body).to_contain_text("cahier de liaison")
    await expect(body).to_contain_text("!note")
    await expect(answer.locator(".Timeline_messageSender")).to_have_attribute("title", bot)
    await expect(answer.locator(f'.ReplyPreviewView li[data-event-id="{asked}"]')).to_be_visible()
    # Sent encrypted: the room is encrypted and Hydrogen says so in the composer.
    await expect(hydrogen.composer).to_have_attribute("placeholder", "Send an encrypted message…")


async def patient_room_with_nurse(
    stack: Stack, browsers: Browsers
) -> tuple[HydrogenClient, HydrogenClient, Person, Person, str, str]:
    """A coordinator opens a dossier, writes first, then adds a nurse who joins: both in
    Hydrogen. Both are logged in before the first encrypted message (hydrogen-web#1115)."""
    coordinator = register_person(stack, "coordinatrice", "Sophie Laurent")
    nurse = register_person(stack, "ide", "Inès Moreau")
    await bind_professional(stack, coordinator.user_id, "infirmière coordinatrice")
    await bind_professional(stack, nurse.user_id)
    coord_ui = await logged_in(browsers, coordinator)
    nurse_ui = await logged_in(browsers, nurse)  # workaround for hydrogen-web#1115

    dossier = new_dossier(stack, coordinator.access_token)
    dossier_id, room_id = dossier["id"], dossier["room_id"]
    await coord_ui.accept_invite(room_id)
    await coord_ui.send("Premier point avant l'arrivée de l'infirmière")

    api(
        stack,
        coordinator.access_token,
        "POST",
        f"/v1/dossiers/{dossier_id}/circle",
        {"user_id": nurse.user_id, "role": "IDE"},
    )
    await nurse_ui.accept_invite(room_id)
    await expect(
        coord_ui.p.locator(".Timeline .AnnouncementView", has_text="Inès Moreau").last
    ).to_contain_text("joined the room", timeout=UI_TIMEOUT_MS)
    return coord_ui, nurse_ui, coordinator, nurse, dossier_id, room_id


async def test_coordinator_and_nurse_read_each_other_in_hydrogen_also_after_restarts(
    stack: Stack, browsers: Browsers
) -> None:
    coord_ui, nurse_ui, _, _, _, room_id = await patient_room_with_nurse(stack, browsers)

    # Every message sent after her join is decrypted by the other, both ways.
    await coord_ui.send("Passage prévu demain 9h")
    await nurse_ui.expect_message("Passage prévu demain 9h")
    await nurse_ui.send("Bien noté, pansement à refaire")
    await coord_ui.expect_message("Bien noté, pansement à refaire")

    # The nurse's client restarts (a reload): what she read is still readable, and so is
    # what comes next, both ways.
    await nurse_ui.restart(reload=True)
    await nurse_ui.open_room(room_id)
    await nurse_ui.expect_message("Passage prévu demain 9h")
    await coord_ui.send("Après le rechargement de l'infirmière")
    await nurse_ui.expect_message("Après le rechargement de l'infirmière")
    await nurse_ui.send("Reçu après mon rechargement")
    await coord_ui.expect_message("Reçu après mon rechargement")

    # The coordinator's client restarts (a new page on the same storage).
    await coord_ui.restart(reload=False)
    await coord_ui.open_room(room_id)
    await coord_ui.expect_message("Bien noté, pansement à refaire")
    await nurse_ui.send("Message après le redémarrage de la coordinatrice")
    await coord_ui.expect_message("Message après le redémarrage de la coordinatrice")
    await coord_ui.send("Réponse après mon redémarrage")
    await nurse_ui.expect_message("Réponse après mon redémarrage")


async def test_a_nurse_removed_from_the_circle_loses_the_room_in_hydrogen(
    stack: Stack, browsers: Browsers
) -> None:
    coord_ui, nurse_ui, coordinator, nurse, dossier_id, room_id = await patient_room_with_nurse(
        stack, browsers
    )
    before = await coord_ui.send("Compte rendu de la visite")
    await nurse_ui.expect_message("Compte rendu de la visite")

    # Removed through the dossier API: Maillon kicks her from the room; her client says so.
    api(
        stack,
        coordinator.access_token,
        "DELETE",
        f"/v1/dossiers/{dossier_id}/circle/{quote(nurse.user_id)}",
    )
    await expect(nurse_ui.p.locator(".RoomView")).to_contain_text(KICKED, timeout=UI_TIMEOUT_MS)
    await expect(nurse_ui.composer).to_have_count(0)
    await expect(
        # (a kick's member event carries no display name: Hydrogen shows her id)
        coord_ui.p.locator(".Timeline .AnnouncementView", has_text=nurse.user_id).last
    ).to_contain_text("was kicked from the room", timeout=UI_TIMEOUT_MS)

    # A new message: sent with a new room key that her device never receives.
    after = await coord_ui.send("Nouvelle consigne après son départ")
    base = stack.url + "/_matrix/client/v3"

    def session_of(event_id: str) -> str:
        event = request_json(
            "GET", base + room_path(room_id, "event", event_id), token=coordinator.access_token
        )
        assert event["type"] == "m.room.encrypted"
        return str(event["content"]["session_id"])

    old_session, new_session = session_of(before), session_of(after)
    assert new_session != old_session, "the room key changes when a member leaves"
    # The positive signal that her device has synced past the new message: an invitation
    # sent after it shows in her room list (to-device messages, room keys included, are
    # delivered in order with the sync).
    marker = request_json(
        "POST",
        base + "/createRoom",
        {
            "preset": "private_chat",
            "invite": [nurse.user_id],
            "name": f"Repère {secrets.token_hex(2)}",
        },
        token=coordinator.access_token,
    )["room_id"]
    await expect(nurse_ui.room_link(marker)).to_be_visible(timeout=UI_TIMEOUT_MS)
    held = {s["sessionId"] for s in await nurse_ui.inbound_megolm_sessions() if s["hasKey"]}
    assert old_session in held, "her device holds the key of what she could read"
    assert new_session not in held, "her device never got the key of the new message"
    # Nor does the homeserver give her the event.
    refused = refusal(stack, nurse.access_token, "GET", room_path(room_id, "event", after))
    assert refused.status in (403, 404)

    # She cannot rejoin: Hydrogen's "Rejoin room" is refused by the homeserver.
    await nurse_ui.p.locator(".RoomHeader button.button-utility.room-options").click()
    rejoin = nurse_ui.p.locator(".menu button.menu-item", has_text="Rejoin room")
    async with nurse_ui.p.expect_response(
        lambda r: r.request.method == "POST" and "/join" in r.url, timeout=UI_TIMEOUT_MS
    ) as response_info:
        await rejoin.click()
    response = await response_info.value
    assert response.status == 403, await response.text()
    await expect(nurse_ui.p.locator(".RoomView")).to_contain_text(KICKED)
    assert refusal(stack, nurse.access_token, "POST", room_path(room_id, "join"), {}).status == 403
