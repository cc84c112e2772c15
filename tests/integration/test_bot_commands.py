"""The coordination bot on a real stack: professionals are E2EE nio clients, rooms are
encrypted, the resulting dossier state is read through the dossier API as each person."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from canonicaljson import encode_canonical_json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordination_bot.dates import PARIS
from maillon.shared.circle import DOSSIER_EVENT, DOSSIER_WIDGET_ID, WIDGET_EVENT
from maillon.shared.homeserver_client import request_json
from tests.harness.bot_chat import BotChat
from tests.harness.circle import cs, room_state
from tests.harness.dossier import api, api_error
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]
ROOM_ID = re.compile(r"![A-Za-z0-9_-]+(?::[A-Za-z0-9.:-]+)?")


async def dm_with_bot(stack: Stack, user: E2EClient) -> str:
    bot = stack.deployment.settings.bot_user_id
    room_id = await user.create_room(invite=[bot], is_direct=True)
    await user.wait_for_member(room_id, bot)
    return room_id


async def open_dossier_through_bot(
    stack: Stack, coordinator: E2EClient, chat: BotChat
) -> tuple[str, str]:
    """!dossier nouveau in a direct chat; the patient room follows, the référent joins."""
    dm = await dm_with_bot(stack, coordinator)
    # The shared stack holds other dossiers of this patient: confirmed as a duplicate.
    command = "!dossier nouveau Martin Jeanne 12/03/1941 F dac doublon jeu d'essai"
    sent, opened = await chat.command(dm, command)
    assert "Dossier ouvert pour MARTIN Jeanne (née le 12 mars 1941)" in opened.body
    # One reference for the dossier everywhere: the bot's answer, the room's name, the API.
    match = re.search(r"Référence : ([0-9A-F]{6})\b", opened.body)
    assert match, opened.body
    shown_reference = match.group(1)
    created = await chat.answer(dm, sent, "Salle du patient")
    found = ROOM_ID.search(created.body)
    assert found, created.body
    room_id = found.group(0)
    await coordinator.accept_invite(room_id)
    await coordinator.wait_for_member(room_id, chat.bot)
    assert coordinator.client.rooms[room_id].encrypted
    # The same room as a dossier opened through the API: template, link, widget.
    state = {
        (e["type"], e["state_key"]): e["content"]
        for e in room_state(stack, coordinator.account.access_token, room_id)
    }
    dossier_id = state[(DOSSIER_EVENT, "")]["dossier_id"]
    dossier = api(stack, coordinator.account.access_token, "GET", f"/v1/dossiers/{dossier_id}")
    assert dossier["reference"] == shown_reference
    assert state[("m.room.name", "")]["name"].endswith(f"· {shown_reference}")
    assert state[("m.room.encryption", "")]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert f"dossier={dossier_id}" in state[(WIDGET_EVENT, DOSSIER_WIDGET_ID)]["url"]
    return dossier_id, room_id


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _signed_by(obj: dict[str, Any], user_id: str, key: str) -> bool:
    signature = obj.get("signatures", {}).get(user_id, {}).get(f"ed25519:{key}")
    if signature is None:
        return False
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    Ed25519PublicKey.from_public_bytes(_unb64(key)).verify(
        _unb64(signature), encode_canonical_json(unsigned)
    )
    return True


async def test_every_command_family_end_to_end(stack: Stack, make_client: MakeClient) -> None:
    coord = make_client(stack, "coordinatrice")
    ide = make_client(stack, "ide")
    # People are shown by their names and professions from the directory, never their ids.
    stack.bind_directory(coord.user_id, "infirmière coordinatrice", "Aline Roux")
    stack.bind_directory(ide.user_id, "infirmier", "Inès Durand")
    coord_name, ide_name = "Aline Roux (infirmière coordinatrice)", "Inès Durand (infirmier)"
    chat = BotChat(stack, coord)
    ide_chat = BotChat(stack, ide)
    dossier_id, room = await open_dossier_through_bot(stack, coord, chat)
    token = coord.account.access_token
    path = f"/v1/dossiers/{dossier_id}"
    dossier = api(stack, token, "GET", path)
    assert dossier["referent"] == coord.user_id and dossier["identity"]["birth_name"] == "MARTIN"
    assert dossier["room_id"] == room

    _, summary = await chat.command(room, "!dossier")
    assert dossier["mail_address"] in summary.body and "MARTIN Jeanne" in summary.body
    assert f"Référent : {coord_name}" in summary.body
    assert "Identité provisoire — à vérifier" in summary.body
    assert "Parcours : DAC — situation complexe" in summary.body
    assert f"Référence : {dossier['reference']}" in summary.body and dossier_id not in summary.body
    assert coord.user_id not in summary.body
    # In English: the pathway's English name, dates and words in English.
    _, english = await chat.command(room, "!file")
    assert "Pathway: DAC — complex situation" in english.body
    assert "Provisional identity — to be checked" in english.body
    assert "Born 12 March 1941" in english.body
    assert re.search(r"Status: open since \w+day \d+ \w+ \d{4}, \d\d:\d\d", english.body)
    assert not any(w in english.body for w in ("janvier", "décembre", "ouvert", "née"))

    # Circle: the coordinator adds the nurse, who is invited into the room.
    await chat.command(room, f"!cercle ajouter {ide.user_id} IDE")
    members = api(stack, token, "GET", f"{path}/circle")["members"]
    assert any(m["user_id"] == ide.user_id and m["role"] == "IDE" for m in members)
    await ide.accept_invite(room)
    await ide.wait_for_member(room, chat.bot)
    _, listed_circle = await chat.command(room, "!cercle")
    assert f"{ide_name} — infirmier / infirmière" in listed_circle.body
    assert ide.user_id not in listed_circle.body
    _, english_circle = await chat.command(room, "!circle")
    assert f"{ide_name} — nurse" in english_circle.body
    assert f"{coord_name} — coordinator / referent, since " in english_circle.body

    # A non-coordinator cannot change the circle through the bot (nor through the API).
    outsider = make_client(stack, "curieux")
    await ide_chat.command(room, f"!cercle ajouter {outsider.user_id} IDE", ok=False)
    members = api(stack, token, "GET", f"{path}/circle")["members"]
    assert outsider.user_id not in {m["user_id"] for m in members}
    refused = api_error(
        stack,
        ide.account.access_token,
        "POST",
        f"{path}/circle",
        {"user_id": outsider.user_id, "role": "IDE"},
    )
    assert refused.status == 403

    # Cahier de liaison; a threaded reply to the note's confirmation answers the note.
    note_cmd, confirmation = await ide_chat.command(room, "!note urgent Chute ce matin")
    assert "URGENTE" in confirmation.body
    answered = await chat.send(room, "Je passe à 17h", note_cmd, str(confirmation.event_id))
    await chat.answer(room, answered, "Réponse ajoutée")
    notes = api(stack, token, "GET", f"{path}/notes")["notes"]
    assert [(n["author"], n["urgent"], n["text"]) for n in notes] == [
        (ide.user_id, True, "Chute ce matin"),
        (coord.user_id, False, "Je passe à 17h"),
    ]
    assert notes[1]["reply_to"] == notes[0]["id"]

    # Tasks.
    await chat.command(room, f'!tache ajouter {ide.user_id} "Passer la voir" demain')
    _, listed = await ide_chat.command(room, "!taches")
    assert f"1. Passer la voir — {ide_name}" in listed.body
    await ide_chat.command(room, "!tache fait 1")
    [task] = api(stack, token, "GET", f"{path}/tasks")["tasks"]
    tomorrow = dt.datetime.now(PARIS).date() + dt.timedelta(days=1)
    assert (task["title"], task["due"], task["status"], task["done_by"]) == (
        "Passer la voir",
        tomorrow.isoformat(),
        "done",
        ide.user_id,
    )

    # Agenda, in Paris time.
    await chat.command(room, f"!agenda ajouter demain 14h30 45min Visite à domicile {ide.user_id}")
    [meeting] = api(stack, token, "GET", f"{path}/appointments")["appointments"]
    start = dt.datetime.fromisoformat(meeting["start"]).astimezone(PARIS)
    assert (start.date(), start.hour, start.minute) == (tomorrow, 14, 30)
    assert meeting["participants"] == [ide.user_id]
    _, agenda = await ide_chat.command(room, "!agenda")
    assert f"(45 min) — Visite à domicile ({ide_name})" in agenda.body

    # A form, field by field, answers in the thread (one wrong answer on the way).
    form_cmd, first = await ide_chat.command(room, "!formulaire evaluation-autonomie")
    assert "GIR" in first.body
    for answer, expect in [
        ("7", "n'est pas l'un de"),
        ("3", "Vit seul"),
        ("non", "Aides en place"),
        ("SSIAD matin et soir", "Chutes"),
        ("-", "Date de l'évaluation"),
        ("aujourd'hui", "enregistré"),
    ]:
        sent = await ide_chat.send(room, answer, form_cmd)
        await ide_chat.answer(room, sent, expect)
    [form] = api(stack, token, "GET", f"{path}/forms")["forms"]
    assert form["answers"] == {
        "gir": "3",
        "vit_seul": False,
        "aides_en_place": "SSIAD matin et soir",
        "date_evaluation": dt.datetime.now(PARIS).date().isoformat(),
    }
    _, forms = await chat.command(room, "!formulaires")
    assert "rempli 1 fois" in forms.body

    # PPCS, alert, delegation.
    _, ppcs = await chat.command(room, "!ppcs")
    assert "Pas encore de PPCS" in ppcs.body
    _, alert = await chat.command(room, f"!alerte {ide.user_id} Rappeler la famille")
    assert alert.source["content"]["m.mentions"] == {"user_ids": [ide.user_id]}
    await chat.command(room, f"!delegation {ide.user_id} jusqu'au 31/12")
    [delegation] = api(stack, token, "GET", "/v1/delegations")["given"]
    assert delegation["to_user"] == ide.user_id

    # Errors: a usage line; a near-miss gets the closest command.
    _, typo = await chat.command(room, "!tach fait 1", ok=False)
    assert "Vouliez-vous dire !tache ?" in typo.body
    _, bad = await chat.command(room, "!tache fait 7", ok=False)
    assert "!tache fait N" in bad.body

    # Closing: coordinators only.
    await ide_chat.command(room, "!dossier fermer déménagement", ok=False)
    await chat.command(room, "!dossier fermer entrée en EHPAD")
    closed = api(stack, token, "GET", path)
    assert (closed["status"], closed["status_reason"]) == ("closed", "entrée en EHPAD")

    # All of it audited as the senders, by the bot component.
    entries = api(stack, token, "GET", f"{path}/audit")["entries"]
    by_bot = {(e["actor"], e["action"], e["allowed"]) for e in entries if e["component"] == "bot"}
    assert (ide.user_id, "circle.add", False) in by_bot
    assert (coord.user_id, "circle.add", True) in by_bot
    assert (ide.user_id, "notes.write", True) in by_bot
    # The bot acts for the senders, never in its own name (the room side records its joins).
    assert not any(e["actor"] == chat.bot for e in entries if e["component"] != "synapse")


async def test_a_non_member_gets_nothing_through_the_bot(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordinatrice")
    chat = BotChat(stack, coord)
    dossier_id, _ = await open_dossier_through_bot(stack, coord, chat)
    outsider = make_client(stack, "curieux")
    outsider_chat = BotChat(stack, outsider)
    dm = await dm_with_bot(stack, outsider)
    _, answer = await outsider_chat.command(dm, "!note je lis le dossier", ok=False)
    assert "aucun dossier" in answer.body
    error = api_error(stack, outsider.account.access_token, "GET", f"/v1/dossiers/{dossier_id}")
    assert error.status == 403


async def test_the_bot_applies_the_circle_and_delegation_rules(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordinatrice")
    chat = BotChat(stack, coord)
    dossier_id, room = await open_dossier_through_bot(stack, coord, chat)
    token = coord.account.access_token
    circle_path = f"/v1/dossiers/{dossier_id}/circle"
    before = api(stack, token, "GET", circle_path)["members"]

    # Not a peer server: refused with the reason and the usage line; the circle is unchanged.
    _, foreign = await chat.command(room, "!cercle ajouter @evil:evil.example IDE", ok=False)
    assert "serveur partenaire" in foreign.body and "!cercle ajouter" in foreign.body
    # Outside the directory: refused the same way.
    stranger = stack.register("inconnu", profession=None).user_id
    _, unknown = await chat.command(room, f"!cercle ajouter {stranger} IDE", ok=False)
    assert "annuaire" in unknown.body
    assert api(stack, token, "GET", circle_path)["members"] == before

    # Delegation: to a directory professional only; revocable from the chat.
    _, refused = await chat.command(room, f"!delegation {stranger} jusqu'au 31/12", ok=False)
    assert "annuaire" in refused.body
    colleague = stack.register("collegue").user_id
    await chat.command(room, f"!delegation {colleague} jusqu'au 31/12")
    [given] = api(stack, token, "GET", "/v1/delegations")["given"]
    assert given["to_user"] == colleague
    _, revoked = await chat.command(room, f"!delegation révoquer {colleague}")
    assert "révoquée" in revoked.body
    assert api(stack, token, "GET", "/v1/delegations")["given"] == []
    await chat.command(room, f"!delegation révoquer {colleague}", ok=False)


async def test_bot_device_is_cross_signed_by_its_owner(
    stack: Stack, make_client: MakeClient
) -> None:
    user = make_client(stack, "verif")
    bot = stack.deployment.settings.bot_user_id
    keys = cs(stack, user.account.access_token, "POST", "/keys/query", {"device_keys": {bot: []}})
    master = keys["master_keys"][bot]
    ssk = keys["self_signing_keys"][bot]
    [master_key] = master["keys"].values()
    [ssk_key] = ssk["keys"].values()
    assert master["usage"] == ["master"] and ssk["usage"] == ["self_signing"]
    assert _signed_by(ssk, bot, master_key), "self-signing key signed by the master key"
    devices = keys["device_keys"][bot]
    assert {"MAILLONBOT", "MAILLONCOURRIER"} <= set(devices), "the bot and the mail relay"
    for _attempt in range(100):  # the relay signs its device on its own, shortly after start
        unsigned = [d for d in devices.values() if not _signed_by(d, bot, ssk_key)]
        if not unsigned:
            break
        await asyncio.sleep(0.2)
        query = {"device_keys": {bot: []}}
        devices = cs(stack, user.account.access_token, "POST", "/keys/query", query)["device_keys"][
            bot
        ]
    assert not unsigned, "every Maillon device of the account is signed by its self-signing key"


def test_bot_answers_are_not_rate_limited(stack: Stack) -> None:
    """Tokens from m.login.application_service are rate-limited like anyone's: `maillon up`
    exempts the bot's account through Maillon's own admin account."""
    bot = stack.deployment.settings.bot_user_id
    admin = json.loads(stack.deployment.path("run", "service-admin.json").read_text())
    path = f"/_synapse/admin/v1/users/{quote(bot)}/override_ratelimit"
    override = request_json("GET", stack.url + path, token=admin["access_token"])
    assert override == {"messages_per_second": 0, "burst_count": 0}
    assert stack.deployment.path("run", "service-admin.json").stat().st_mode & 0o077 == 0
