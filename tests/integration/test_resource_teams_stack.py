"""Resource teams on the real stack (Synapse, appservice, dossier API on PostgreSQL, nio
clients with end-to-end encryption): a team created with ``maillon team add``; before
accepting nobody of the team is in the patient room, its history or the dossier (an invite
of a member is refused by the care-circle module); two members accepting at once over HTTP
make one circle entry (role ERS); the accepter is invited, joins and reads the encrypted
exchange; the avis report is in the timeline; once closed, the accepter is kicked at the
exit date. A second solicitation nobody takes escalates then expires (appservice loop)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from maillon.shared.dates_fr import DAYS
from maillon.shared.homeserver_client import HomeserverError
from tests.harness.circle import cs, membership, refusal, room_path, token_of, wait_for
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack
from tests.integration.test_dossier_work import pdf_text, raw

MakeClient = Callable[[Stack, str], E2EClient]


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "maillon.wiring.cli", "team", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


async def _solicitations_chat(member: E2EClient) -> str:
    """The member's "Sollicitations" chat with the bot, joined."""

    def invited() -> str | None:
        rooms = {**member.client.invited_rooms, **member.client.rooms}
        return next((r for r, room in rooms.items() if room.name == "Sollicitations"), None)

    room_id: str = await member.wait_until(invited, "the Sollicitations chat")
    if room_id not in member.client.rooms:
        await member.accept_invite(room_id)
    return room_id


async def test_a_team_is_solicited_one_member_takes_it_and_leaves_at_the_exit_date(
    pg_stack: Stack, make_client: MakeClient
) -> None:
    stack = pg_stack
    coord = make_client(stack, "coord")
    first, second = make_client(stack, "emsp"), make_client(stack, "emsp")
    slug = "emsp-" + first.user_id[5:11]
    made = _cli(
        stack,
        "add",
        "--dir",
        str(stack.directory),
        slug,
        "--name",
        "EMSP Toulouse",
        "--level",
        "departementale",
        "--member",
        f"{first.user_id}=médecin",
        "--member",
        f"{second.user_id}=infirmière",
        "--response-time",
        "600",
        "--exit-delay",
        "2",
    )
    assert made.returncode == 0, made.stderr
    assert f"@equipe.{slug}:{stack.server_name}" in made.stdout
    bad = _cli(stack, "add", "--dir", str(stack.directory), "x", "--name", "X", "--level", "nat")
    assert bad.returncode == 2 and "choix invalide" in bad.stderr

    token = token_of(coord)
    dossier = new_dossier(stack, token)
    path, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    body = {"team": slug, "kind": "avis", "reason": "avis sur une sédation proportionnée"}
    refused = api_error(stack, token, "POST", f"{path}/solicitations", body)
    assert refused.status == 403 and "consentement" in str(refused)
    sent = api(stack, token, "POST", f"{path}/solicitations", {**body, "attested": True})
    assert sent["notified"] == sorted([first.user_id, second.user_id])

    # Nobody of the team in the room, its history or the dossier before accepting.
    invite = refusal(stack, token, "POST", room_path(room_id, "invite"), {"user_id": first.user_id})
    assert invite.status == 403
    for member in (first, second):
        outside = api_error(stack, token_of(member), "GET", path)
        assert outside.status == 403
        assert api_error(stack, token_of(member), "GET", f"{path}/timeline").status == 403
        assert membership(stack, token, room_id, member.user_id) is None
    mine = api(stack, token_of(first), "GET", "/v1/solicitations")["solicitations"]
    told = next(s for s in mine if s["id"] == sent["id"])
    assert told["reason"] == body["reason"] and "identity" not in told
    # Each member on duty is told in their encrypted "Sollicitations" chat with the bot.
    chats = {m.user_id: await _solicitations_chat(m) for m in (first, second)}
    for m in (first, second):
        notice = await m.wait_for_text(
            chats[m.user_id], lambda e: f"n° {sent['id']}" in e.body and "Motif" in e.body
        )
        assert m.client.rooms[chats[m.user_id]].encrypted and notice.decrypted
        assert body["reason"] in notice.body and "Demandeur : " in notice.body
        assert "infirmier" in notice.body and "Martin" not in notice.body  # no patient name

    sol = f"/v1/solicitations/{sent['id']}"
    bad = api_error(stack, token_of(first), "POST", "/v1/solicitations/abc/accept", {})
    assert bad.status == 400 and "numéro de sollicitation invalide" in str(bad)
    assert api_error(stack, token, "POST", f"{sol}/accept", {}).status == 403  # not told

    def accept(member: E2EClient) -> Any:
        try:
            return api(stack, token_of(member), "POST", f"{sol}/accept", {})
        except HomeserverError as exc:  # the loser's 409, kept to be asserted
            return exc

    results = await asyncio.gather(
        asyncio.to_thread(accept, first), asyncio.to_thread(accept, second)
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, HomeserverError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].status == 409 and "déjà prise en charge" in str(lost[0])
    winner = first if won[0]["accepted_by"]["user_id"] == first.user_id else second
    loser = second if winner is first else first
    circle = api(stack, token, "GET", f"{path}/circle")["members"]
    assert [m["user_id"] for m in circle if m["role"] == "ERS"] == [winner.user_id]
    told_taken = await loser.wait_for_text(
        chats[loser.user_id], lambda e: "prise en charge par" in e.body
    )
    assert f"n° {sent['id']}" in told_taken.body
    announced = await coord.wait_for_text(
        room_id, lambda e: f"n° {sent['id']} acceptée par" in e.body
    )
    assert announced.decrypted and body["reason"] not in announced.body

    await winner.accept_invite(room_id)
    await coord.wait_for_member(room_id, winner.user_id)
    said = await coord.send_text(room_id, "Merci de votre aide : douleurs mal contrôlées.")
    got = await winner.wait_for_text(room_id, lambda e: e.event_id == said)
    assert got.decrypted and got.body.startswith("Merci")
    assert membership(stack, token, room_id, loser.user_id) is None
    assert api_error(stack, token_of(loser), "GET", path).status == 403

    report = {"question": body["reason"], "elements": "EVA 8/10", "advice": "titration"}
    answered = api(stack, token_of(winner), "POST", f"{sol}/answer", report)
    assert answered["status"] == "repondue" and answered["report"]["advice"] == "titration"
    posted = await coord.wait_for_text(room_id, lambda e: "Compte rendu d'avis" in e.body)
    assert posted.decrypted and "Avis : titration" in posted.body
    pdf = raw(stack, token, "GET", f"{sol}/report.pdf")
    assert pdf.status == 200 and pdf.headers["Content-Type"].startswith("application/pdf")
    printed = pdf_text(pdf.body)
    assert "titration" in printed and "EMSP Toulouse" in printed and "EVA 8/10" in printed
    fhir = raw(stack, token, "GET", f"{path}/fhir").json()
    avis = [e["resource"] for e in fhir["entry"] if e["resource"]["id"] == f"avis-{sent['id']}"]
    assert avis and avis[0]["resourceType"] == "DocumentReference"
    data = base64.b64decode(avis[0]["content"][0]["attachment"]["data"]).decode()
    assert "Avis : titration" in data and "Question : avis sur une sédation" in data
    timeline = api(stack, token, "GET", f"{path}/timeline?kind=solicitation")["entries"]
    assert {e["action"] for e in timeline} >= {"envoyee", "acceptee", "repondue"}
    assert api(stack, token, "POST", f"{sol}/close", {})["status"] == "close"
    await wait_for(
        lambda: membership(stack, token, room_id, winner.user_id) == "leave",
        "the accepter kicked at the exit date",
        timeout=30,
    )
    assert api_error(stack, token_of(winner), "GET", path).status == 403


async def test_inviting_the_team_address_solicits_the_team_and_admits_nobody(
    pg_stack: Stack, make_client: MakeClient, tmp_path: Path
) -> None:
    """From any Matrix client: the coordinator invites @equipe.<slug>; the invite becomes a
    solicitation for the members on duty, the address declines it, Maillon says so in the
    room; with a response time of one second and no one answering, it escalates to the
    coordinator then expires, and the requester sees it expired."""
    stack = pg_stack
    coord = make_client(stack, "coord")
    member, chief = make_client(stack, "geriatre"), make_client(stack, "cadre")
    slug = "geria-" + member.user_id[5:11]
    made = _cli(
        stack, "add", "--dir", str(stack.directory), slug, "--name", "Équipe mobile de gériatrie",
        "--level", "regionale", "--member", member.user_id, "--coordinator", chief.user_id,
        "--response-time", "1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    rota = tmp_path / "rota.yaml"
    week = [{"day": day, "members": [member.user_id]} for day in DAYS]
    rota.write_text(yaml.safe_dump({"weekly": week}), encoding="utf-8")
    kept = _cli(stack, "rota", "--dir", str(stack.directory), slug, str(rota))
    assert kept.returncode == 0 and "Planning" in kept.stdout, kept.stderr
    rota.write_text(yaml.safe_dump({"weekly": [{"day": "lundi", "members": ["@x:ailleurs"]}]}))
    stranger = _cli(stack, "rota", "--dir", str(stack.directory), slug, str(rota))
    assert stranger.returncode == 2 and "ne sont pas membres de l'équipe" in stranger.stderr
    token = token_of(coord)
    dossier = new_dossier(stack, token)
    path, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    api(stack, token, "PATCH", path, {"consent_share_outside": True, "consent_note": "oral"})
    address = f"@equipe.{slug}:{stack.server_name}"
    invite = {"user_id": address, "reason": "chutes répétées, avis gériatrique"}
    cs_invite = cs(stack, token, "POST", room_path(room_id, "invite"), invite)
    assert cs_invite == {}

    def solicitations() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = api(stack, token, "GET", f"{path}/solicitations")[
            "solicitations"
        ]
        return rows

    await wait_for(lambda: bool(solicitations()), "the invite turned into a solicitation")
    sent = solicitations()[0]
    assert sent["requester"]["user_id"] == coord.user_id
    assert sent["reason"] == invite["reason"] and sent["team"] == slug
    await wait_for(
        lambda: membership(stack, token, room_id, address) == "leave", "the address declines"
    )
    notice = await coord.wait_for_text(room_id, lambda e: "Sollicitation n°" in e.body)
    assert "1 membre(s) de garde" in notice.body and invite["reason"] not in notice.body
    for person in (member, chief):
        assert membership(stack, token, room_id, person.user_id) is None
    await wait_for(
        lambda: solicitations()[0]["status"] == "expiree", "escalation then expiry", timeout=30
    )
    steps = [e["status"] for e in solicitations()[0]["events"]]
    assert steps == ["envoyee", "escalade", "expiree"]
    assert solicitations()[0]["notified"] == sorted([member.user_id, chief.user_id])
