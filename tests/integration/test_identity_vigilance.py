"""Identity vigilance on the real stack: a possible duplicate is refused on every creation
path (API, bot in an encrypted room) with what the caller may see, or the structure to
contact; confirmed with a reason, audited; identity status transitions through the API."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.harness.bot_chat import BotChat
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

MakeClient = Callable[[Stack, str], E2EClient]


def _patient() -> dict[str, Any]:
    """An identity no other test of the shared stack uses."""
    return {
        "birth_name": f"Vigil{secrets.token_hex(3)}",
        "first_names": "Hélène Marie",
        "sex": "F",
        "birth_date": "1938-07-14",
    }


def _refusal(stack: Stack, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /v1/dossiers expected to fail: its status and JSON answer."""
    url = stack.deployment.settings.dossier_api.url + "/v1/dossiers"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
            raise AssertionError(f"created: {resp.read()!r}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_refuses_a_duplicate_and_accepts_a_confirmed_one(stack: Stack) -> None:
    admin = stack.register("admin", admin=True)
    coord, other = stack.register("coord"), stack.register("autre")
    structure = api(stack, admin.access_token, "POST", "/v1/structures", {"name": "DAC Tarn"})
    identity = _patient()
    first = new_dossier(
        stack,
        coord.access_token,
        identity=identity,
        structure_id=structure["id"],
        duplicate_override=None,
    )
    written_otherwise = {
        **identity,
        "birth_name": identity["birth_name"].upper(),
        "first_names": "helene",
    }
    body = {"pathway": "dac", "identity": written_otherwise}

    status, seen = _refusal(stack, coord.access_token, body)
    assert status == 409 and seen["errcode"] == "MAILLON_POSSIBLE_DUPLICATE"
    assert [c["id"] for c in seen["candidates"]] == [first["id"]]
    assert seen["candidates"][0]["display_name"].startswith(identity["birth_name"].upper())

    status, hidden = _refusal(stack, other.access_token, body)
    assert status == 409 and hidden["candidates"] == []
    assert hidden["elsewhere"] == [
        "un dossier existe déjà pour cette identité dans la structure « DAC Tarn » : "
        "contactez son référent"
    ]
    assert first["id"] not in json.dumps(hidden), "the hidden dossier is not revealed"

    confirmed = api(
        stack,
        other.access_token,
        "POST",
        "/v1/dossiers",
        {**body, "duplicate_override": {"reason": "homonyme, autre commune de naissance"}},
    )
    history = api(
        stack, other.access_token, "GET", f"/v1/dossiers/{confirmed['id']}/identity/history"
    )["history"]
    assert [(h["kind"], h["candidates"]) for h in history] == [
        ("duplicate_override", [first["id"]])
    ]
    audit = api(stack, other.access_token, "GET", f"/v1/dossiers/{confirmed['id']}/audit")
    creation = [a for a in audit["entries"] if a["action"] == "dossier.create"]
    assert creation and "doublon possible confirmé" in str(creation[0]["detail"])


def test_identity_status_transitions_through_the_api(stack: Stack) -> None:
    coord = stack.register("coord")
    identity = {**_patient(), "ins_matricule": "238077511200145"}
    did = new_dossier(stack, coord.access_token, identity=identity)["id"]
    path = f"/v1/dossiers/{did}/identity/status"
    refused = api_error(stack, coord.access_token, "POST", path, {"status": "VALI"})
    assert refused.status == 400 and "pièce d'identité" in str(refused)
    document = {"kind": "passeport", "checked_at": "2026-11-02T09:30:00Z"}
    api(
        stack,
        coord.access_token,
        "POST",
        path,
        {"status": "VALI", "identity_evidence": {"document": document}},
    )
    api(
        stack,
        coord.access_token,
        "POST",
        path,
        {"status": "QUAL", "identity_evidence": {"ins_source": "IHE_XDM"}},
    )
    assert api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}")["identity_status"] == "QUAL"
    downgrade = api_error(stack, coord.access_token, "POST", path, {"status": "VALI"})
    assert downgrade.status == 400 and "motif" in str(downgrade)
    done = api(
        stack,
        coord.access_token,
        "POST",
        path,
        {"status": "VALI", "identity_evidence": {"reason": "INS d'un homonyme"}},
    )
    assert [h["to_status"] for h in done["history"]] == ["VALI", "QUAL", "VALI"]
    assert done["history"][0]["document"]["checked_by"] == coord.user_id
    audit = api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}/audit")["entries"]
    assert any("rétrogradation" in str(a["detail"]) for a in audit)


async def test_the_bot_refuses_a_duplicate_in_an_encrypted_room(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordinatrice")
    token = coord.account.access_token
    identity = {**_patient(), "first_names": "Hélène"}
    first = new_dossier(stack, token, identity=identity, duplicate_override=None)
    bot = stack.deployment.settings.bot_user_id
    dm = await coord.create_room(invite=[bot], is_direct=True)
    await coord.wait_for_member(dm, bot)
    assert coord.client.rooms[dm].encrypted
    chat = BotChat(stack, coord)
    name = identity["birth_name"]
    command = f"!dossier nouveau {name} helene 14/07/1938 F"
    _, refused = await chat.command(dm, command, ok=False, contains="Doublon possible")
    assert first["reference"] in refused.body and name.upper() not in refused.body
    assert "(DAC — situation complexe, ouvert le " in refused.body  # said once, no "ouvert, ouvert"
    mine = api(stack, token, "GET", "/v1/dossiers")["dossiers"]
    assert [d["id"] for d in mine] == [first["id"]], "nothing opened"

    await chat.command(dm, f"{command} doublon homonyme confirmé", contains="Dossier ouvert")
    mine = api(stack, token, "GET", "/v1/dossiers")["dossiers"]
    assert len(mine) == 2
    second = next(d["id"] for d in mine if d["id"] != first["id"])
    history = api(stack, token, "GET", f"/v1/dossiers/{second}/identity/history")["history"]
    assert history[0]["kind"] == "duplicate_override"
    assert history[0]["reason"] == "homonyme confirmé"
