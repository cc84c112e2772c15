"""Read paths and input robustness of the dossier service (issue 19, findings 1, 6, 9 and
"deeply nested JSON / out-of-range dates"): one visibility rule for role-restricted notes on
every path (HTTP notes, FHIR, widget, the bot in an encrypted room); OpenID tokens open only
the widget of the holder's room; bad input is a French 400 and stored oddities never 500."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.orm import Session

import dossier_api.http.server  # noqa: F401  (registers every route)
from dossier_api.domain.models import Appointment, Note, Task
from dossier_api.http.registry import ROUTES
from maillon.shared.crypto import KeyRing
from maillon.shared.homeserver_client import HomeserverError, request_any
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.bot_chat import BotChat
from tests.harness.circle import MakeClient, bind_professional, cs, token_of, wait_for
from tests.harness.dossier import api, api_error, new_dossier, widget_headers
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

SECRET = "Suspicion de maltraitance par un proche"
CORRECTED = "Suspicion de maltraitance par un proche : signalement fait"
PUBLIC = "Visite à domicile : RAS"


def openid(stack: Stack, client: E2EClient) -> str:
    path = f"/user/{quote(client.user_id)}/openid/request_token"
    return str(cs(stack, token_of(client), "POST", path, {})["access_token"])


def widget(stack: Stack, dossier_id: str, room_id: str, token: str) -> str:
    base = stack.deployment.settings.dossier_api.url
    page: str = request_any(
        "GET",
        f"{base}/widget/dossiers/{dossier_id}?room={quote(room_id)}",
        headers=widget_headers(stack, token),
        raw=True,
    )
    return page


def widget_status(stack: Stack, dossier_id: str, room_id: str, token: str) -> int:
    try:
        widget(stack, dossier_id, room_id, token)
    except HomeserverError as exc:
        return exc.status
    return 200


def fhir_texts(stack: Stack, token: str, dossier_id: str) -> list[str]:
    bundle = api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/fhir")
    return [
        base64.b64decode(e["resource"]["content"][0]["attachment"]["data"]).decode()
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    ]


def note_texts(stack: Stack, token: str, dossier_id: str) -> list[str]:
    rows = api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/notes")["notes"]
    return [n["text"] for n in rows]


async def joined(stack: Stack, token: str, dossier_id: str, *users: str) -> None:
    """Wait until the dossier's room history (recorded by the appservice) shows the joins."""

    def done() -> bool:
        history = api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/activity")["history"]
        seen = {h["user_id"] for h in history if h["kind"] == "join"}
        return set(users) <= seen

    await wait_for(done, "joins recorded", timeout=30)


async def test_a_restricted_note_is_read_by_its_roles_only_on_every_path(
    stack: Stack, make_client: MakeClient
) -> None:
    coord = make_client(stack, "coordo")
    mt = make_client(stack, "medecin")
    aid = make_client(stack, "aidant")
    await bind_professional(stack, coord.user_id, "infirmière coordinatrice")
    await bind_professional(stack, mt.user_id, "médecin généraliste")
    t, t_mt, t_aid = token_of(coord), token_of(mt), token_of(aid)
    dossier = new_dossier(stack, t, pathway="pco-tnd")  # admits the family in the circle
    did, room = dossier["id"], dossier["room_id"]
    circle = f"/v1/dossiers/{did}/circle"
    api(stack, t, "POST", circle, {"user_id": mt.user_id, "role": "MT"})
    api(stack, t, "POST", circle, {"user_id": aid.user_id, "role": "AID"})
    for client in (coord, mt, aid):
        await client.accept_invite(room)
    bot = stack.deployment.settings.bot_user_id
    await coord.wait_for_member(room, bot)

    notes = f"/v1/dossiers/{did}/notes"
    api(stack, t_mt, "POST", notes, {"text": PUBLIC})
    secret = api(stack, t_mt, "POST", notes, {"text": SECRET, "visible_to_roles": ["MT", "COORD"]})
    # A correction of a restricted note is as restricted as the note.
    api(stack, t_mt, "POST", f"{notes}/{secret['id']}/corrections", {"text": CORRECTED})
    # HTTP: the cahier de liaison and the FHIR export apply the same rule.
    for token, reads in ((t_mt, True), (t, True), (t_aid, False)):
        for texts in (fhir_texts(stack, token, did), note_texts(stack, token, did)):
            assert PUBLIC in texts
            assert (SECRET in texts) is reads and (CORRECTED in texts) is reads, texts
    # The aidant cannot reply to (nor learn of) a note they may not read.
    refused = api_error(stack, t_aid, "POST", notes, {"text": "?", "reply_to": secret["id"]})
    assert refused.status == 404

    # The widget, opened with a real OpenID token from the homeserver.
    await joined(stack, t, did, mt.user_id, aid.user_id)
    assert SECRET in widget(stack, did, room, openid(stack, mt))
    page = widget(stack, did, room, openid(stack, aid))
    assert "Visite à domicile" in page and "maltraitance" not in page

    # The bot, in the encrypted patient room: everyone there reads its answers, so a
    # restricted note is never posted there, not even for the médecin traitant.
    aid_chat, mt_chat = BotChat(stack, aid), BotChat(stack, mt)
    _, answer = await aid_chat.command(room, "!notes")
    assert "Visite à domicile" in answer.body and "maltraitance" not in answer.body
    _, answer = await mt_chat.command(room, "!notes")
    assert "maltraitance" not in answer.body and "réservée" in answer.body
    # In the professionals' side room (no family), the médecin traitant reads it.
    side = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/rooms",
        {"label": "coordination interne", "audience": "professionals"},
    )
    await mt.accept_invite(side["room_id"])
    await mt.wait_for_member(side["room_id"], bot)
    _, answer = await mt_chat.command(side["room_id"], "!notes")
    assert CORRECTED in answer.body and "Visite à domicile" in answer.body


async def test_an_openid_token_opens_only_the_widget_of_its_room(
    stack: Stack, make_client: MakeClient
) -> None:
    holder = make_client(stack, "porteur")
    await bind_professional(stack, holder.user_id, "infirmier")
    t = token_of(holder)
    first, second = new_dossier(stack, t), new_dossier(stack, t)
    await holder.accept_invite(first["room_id"])  # the second room is never joined
    await joined(stack, t, first["id"], holder.user_id)
    token = openid(stack, holder)

    stack.bind_directory(holder.user_id, "infirmière", display_name="Claire Dubois")
    page = widget(stack, first["id"], first["room_id"], token)
    assert "MARTIN Jeanne Louise" in page and "Cercle de soins" in page
    # The circle shows people by their name and profession from the directory, not ids.
    assert "<li>Claire Dubois (infirmière) — " in page and f"<li>{holder.user_id}" not in page
    members = api(stack, t, "GET", f"/v1/dossiers/{first['id']}/circle")["members"]
    [member] = [m for m in members if m["user_id"] == holder.user_id]
    assert (member["display_name"], member["profession"]) == ("Claire Dubois", "infirmière")
    # The same holder's other dossier: neither through the first room's widget, nor
    # through the room the holder never joined.
    assert widget_status(stack, second["id"], first["room_id"], token) == 403
    assert widget_status(stack, second["id"], second["room_id"], token) == 403
    audit = api(stack, t, "GET", f"/v1/dossiers/{second['id']}/audit")["entries"]
    refusals = [e for e in audit if e["action"] == "widget.read" and not e["allowed"]]
    assert len(refusals) == 2 and refusals[0]["actor"] == holder.user_id

    # Every API route refuses the OpenID token, reading or writing.
    base = stack.deployment.settings.dossier_api.url
    values = {
        "dossier_id": first["id"],
        "user_id": quote(holder.user_id),
        "note_id": "x",
        "task_id": "x",
        "attachment_id": "x",
        "form_id": "x",
        "structure_id": "x",
        "delegation_id": "1",
        "slug": "x",
        "solicitation_id": "1",
        "invitation_id": "1",
        "pathway_id": "x",
        "version": "1",
        "what": "x",
        "action": "x",
        "group_id": "1",
        "who": "x",
    }
    checked = 0
    for r in ROUTES:
        if not r.auth:
            continue
        path = r.path.format(**values)
        body = None if r.method in ("GET", "DELETE") else {}
        with pytest.raises(HomeserverError) as refused:
            request_any(r.method, base + path, body, headers={"X-Matrix-OpenID": token})
        assert refused.value.status == 401, (r.method, r.path, refused.value)
        assert "widget" in str(refused.value)
        checked += 1
    assert checked > 20
    assert api(stack, t, "GET", f"/v1/dossiers/{first['id']}")["status"] == "open"


def post_raw(stack: Stack, token: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(  # noqa: S310 - the local API
        stack.deployment.settings.dossier_api.url + path, data=raw, method="POST"
    )
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_text_and_dates_are_refused_in_french(stack: Stack) -> None:
    coord = stack.register("saisie")
    t = coord.access_token
    did = new_dossier(stack, t)["id"]
    d = f"/v1/dossiers/{did}"
    surrogate = "Rendez-vous \ud800"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (f"{d}/notes", {"text": surrogate}, "text"),
        (f"{d}/tasks", {"title": surrogate, "assignee": coord.user_id}, "title"),
        (
            f"{d}/appointments",
            {"title": surrogate, "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"},
            "title",
        ),
        (
            f"{d}/appointments",
            {"title": "Bilan", "start": "9999-12-31T22:00:00Z", "end": "9999-12-31T23:59:00Z"},
            "start",
        ),
        (
            f"{d}/appointments",
            {"title": "Bilan", "start": "0001-01-01T00:00:00+01:00", "end": "2030-01-01T10:00Z"},
            "start",
        ),
        (f"{d}/tasks", {"title": "Bilan", "assignee": coord.user_id, "due": "9999-12-31"}, "due"),
    ]
    for path, body, field in cases:
        status, error = post_raw(stack, t, path, json.dumps(body).encode())
        assert status == 400, (path, body, error)
        assert f"« {field} »" in error["error"], error

    deep = b"[" * 100_000 + b"]" * 100_000
    status, error = post_raw(stack, t, f"{d}/notes", deep)
    assert status == 400 and "imbriqué" in error["error"], error
    nested: Any = "x"
    for _ in range(60):
        nested = [nested]
    status, error = post_raw(stack, t, f"{d}/notes", json.dumps({"text": nested}).encode())
    assert status == 400 and "imbrication" in error["error"] and "« text" in error["error"]
    # Nothing was written by the refused requests.
    assert api(stack, t, "GET", f"{d}/notes")["notes"] == []
    assert api(stack, t, "GET", f"{d}/appointments")["appointments"] == []


async def test_stored_oddities_never_break_the_pages(stack: Stack, make_client: MakeClient) -> None:
    """Rows written before the checks (a lone surrogate, an appointment in year 9999) are
    shown safely by every page, which all keep answering 200."""
    member = make_client(stack, "ancien")
    await bind_professional(stack, member.user_id)
    t = token_of(member)
    dossier = new_dossier(stack, t)
    did, room = dossier["id"], dossier["room_id"]
    await member.accept_invite(room)
    install_key_ring(KeyRing(stack.deployment.secrets.data_keys))
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    edge = dt.datetime(9999, 12, 31, 23, 30, tzinfo=dt.UTC)
    try:
        with Session(engine) as session, session.begin():
            session.add(Note(dossier_id=did, author=member.user_id, body={"text": "note \ud800"}))
            session.add(
                Task(
                    dossier_id=did,
                    title={"text": "tâche \udfff"},
                    assignee=member.user_id,
                    created_by=member.user_id,
                )
            )
            session.add(
                Appointment(
                    dossier_id=did,
                    start=edge,
                    end=edge + dt.timedelta(minutes=29),
                    details={"title": "rdv \ud83d", "place": "cabinet \udc00"},
                    participants=member.user_id,
                    created_by=member.user_id,
                )
            )
    finally:
        engine.dispose()
    await joined(stack, t, did, member.user_id)

    page = widget(stack, did, room, openid(stack, member))
    assert "note \ufffd" in page and "tâche \ufffd" in page and "rdv \ufffd" in page
    assert "9999" in page
    base = stack.deployment.settings.dossier_api.url
    ics = request_any("GET", f"{base}/v1/dossiers/{did}/agenda.ics", token=t, raw=True)
    assert "SUMMARY:rdv \ufffd" in ics and "DTSTART:99991231T233000Z" in ics
    mine = request_any("GET", f"{base}/v1/me/agenda.ics", token=t, raw=True)
    assert "rdv \ufffd" in mine
    fhir = request_any("GET", f"{base}/v1/dossiers/{did}/fhir", token=t, raw=True)
    bundle = json.loads(fhir)
    kinds = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert kinds["Task"]["description"] == "tâche \ufffd"
    assert kinds["Appointment"]["start"].startswith("9999-12-31")
    assert base64.b64decode(kinds["DocumentReference"]["content"][0]["attachment"]["data"]) == (
        "note \ufffd".encode()
    )
    for path in ("notes", "tasks", "appointments"):
        api(stack, t, "GET", f"/v1/dossiers/{did}/{path}")
