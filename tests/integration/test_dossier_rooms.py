"""Every dossier has its encrypted room, and room and care circle stay in step (issue 5):
real Synapse, the real appservice and dossier API, on SQLite and on PostgreSQL, with
matrix-nio clients as the professionals."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote

import pytest

from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    DOSSIER_WIDGET_ID,
    PATIENT_ROOM_MARKER,
    SIDE_ROOM_EVENT,
    WIDGET_EVENT,
    patient_power_levels,
    user_state_key,
)
from maillon.shared.homeserver_client import HomeserverError, request_any, request_json
from synapse_modules.audit import read_audit
from tests.harness.circle import (
    MakeClient,
    appservice,
    bind_professional,
    cs,
    membership,
    refusal,
    room_path,
    room_state,
    token_of,
    wait_for,
)
from tests.harness.dossier import api, api_error, new_dossier, widget_headers, widget_session
from tests.harness.stack import Stack

STACKS = ["stack", "pg_stack"]


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest) -> Stack:
    stack: Stack = request.getfixturevalue(request.param)
    return stack


def state_of(stack: Stack, token: str, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in room_state(stack, token, room_id)}


def active_circle(stack: Stack, token: str, dossier_id: str) -> dict[str, dict[str, Any]]:
    members = api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/circle")["members"]
    return {m["user_id"]: m for m in members if m["active"]}


def history(stack: Stack, token: str, dossier_id: str) -> list[tuple[str, str]]:
    rows = api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/activity")["history"]
    return [(h["kind"], h["user_id"]) for h in rows]


async def test_dossier_room_and_circle_in_step(any_stack: Stack, make_client: MakeClient) -> None:
    stack = any_stack
    coordinator = make_client(stack, "referente")
    nurse = make_client(stack, "ide")
    physio = make_client(stack, "kine")
    for pro in (coordinator, nurse, physio):
        await bind_professional(stack, pro.user_id)
    t = token_of(coordinator)

    # A dossier opened through the API comes with its room: template, encryption, link,
    # widget, the référent invited, the bot invited, the welcome notice.
    dossier = new_dossier(stack, t)
    did, room_id = dossier["id"], dossier["room_id"]
    assert room_id, "the API answers once the room exists"
    await coordinator.accept_invite(room_id)
    state = state_of(stack, t, room_id)
    create = state[("m.room.create", "")]["content"]
    assert create[PATIENT_ROOM_MARKER] is True and create["room_version"] == "12"
    assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert state[("m.room.join_rules", "")]["content"]["join_rule"] == "invite"
    link = state[(DOSSIER_EVENT, "")]["content"]
    assert link["dossier_id"] == did and link["status"] == "open"
    assert "pathway" not in link, "the pathway is health information: not in clear state"
    name = state[("m.room.name", "")]["content"]["name"]
    assert name == f"J. M. (1941) · {did[:6].upper()}"
    assert "Martin" not in name, "the patient's name stays out of unencrypted room state"
    assert "Secret partagé" in state[("m.room.topic", "")]["content"]["topic"]
    widget = state[(WIDGET_EVENT, DOSSIER_WIDGET_ID)]["content"]
    assert widget["url"].startswith(stack.deployment.settings.dossier_api.external_url + "/widget?")
    assert f"dossier={did}" in widget["url"] and "$matrix_room_id" in widget["url"]
    referent = state[(CIRCLE_EVENT, user_state_key(coordinator.user_id))]["content"]
    assert referent["role"] == "COORD" and referent["coordinator"] is True
    levels = state[("m.room.power_levels", "")]["content"]
    assert levels["users"].get(coordinator.user_id) == 50
    bot = stack.deployment.settings.bot_user_id
    assert state[("m.room.member", bot)]["content"]["membership"] in ("invite", "join")
    await coordinator.wait_for_text(room_id, lambda e: "Salle de coordination ouverte" in e.body)
    rooms = api(stack, t, "GET", f"/v1/dossiers/{did}/rooms")["rooms"]
    assert [(r["kind"], r["room_id"]) for r in rooms] == [("main", room_id)]

    # Only our server and its peers can sit in a patient room: a clear 400, nothing queued.
    foreign = api_error(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": "@x:ailleurs.example", "role": "MT"},
    )
    assert foreign.status == 400 and "serveur partenaire" in str(foreign)

    # Dossier → room: a member added through the API is invited, with their circle entry.
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    await nurse.accept_invite(room_id)
    entry = state_of(stack, t, room_id)[(CIRCLE_EVENT, user_state_key(nurse.user_id))]
    assert entry["content"]["role"] == "IDE" and entry["content"]["active"] is True
    await wait_for(
        lambda: ("join", nurse.user_id) in history(stack, t, did), "the join in the history"
    )

    # Room → dossier: the référent invites a known professional in the room; the dossier
    # gets them as a circle member (added by the référent), once.
    cs(stack, t, "POST", room_path(room_id, "invite"), {"user_id": physio.user_id})
    await wait_for(
        lambda: physio.user_id in active_circle(stack, t, did), "the room invite in the dossier"
    )
    added = active_circle(stack, t, did)[physio.user_id]
    assert added["added_by"] == coordinator.user_id and added["role"] == "PRO"
    await physio.accept_invite(room_id)

    # Room → dossier: a kick by the référent ends the membership in the dossier.
    cs(stack, t, "POST", room_path(room_id, "kick"), {"user_id": physio.user_id})
    await wait_for(
        lambda: physio.user_id not in active_circle(stack, t, did), "the kick in the dossier"
    )
    members = api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
    physio_rows = [m for m in members if m["user_id"] == physio.user_id]
    assert len(physio_rows) == 1, "one entry, ended: no double entry from the round trip"
    assert physio_rows[0]["removed_by"] == coordinator.user_id

    # Room → dossier: a member who leaves the patient room leaves the circle.
    cs(stack, token_of(nurse), "POST", room_path(room_id, "leave"), {})
    await wait_for(
        lambda: nurse.user_id not in active_circle(stack, t, did), "the departure in the dossier"
    )
    assert ("leave", nurse.user_id) in history(stack, t, did)

    # Dossier → room: re-added through the API, then removed through the API: kicked.
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    await nurse.accept_invite(room_id)
    api(stack, t, "DELETE", f"/v1/dossiers/{did}/circle/{quote(nurse.user_id)}")
    await wait_for(lambda: membership(stack, t, room_id, nurse.user_id) == "leave", "the kick")
    entry = state_of(stack, t, room_id)[(CIRCLE_EVENT, user_state_key(nurse.user_id))]
    assert entry["content"]["active"] is False
    nurse_rows = [
        m
        for m in api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
        if m["user_id"] == nurse.user_id
    ]
    assert [m["active"] for m in nurse_rows] == [False, False], "history kept, no extra entry"


async def test_a_new_rooms_power_levels_are_complete_from_its_creation(any_stack: Stack) -> None:
    """``createRoom`` writes the room's power levels with its coordinator already raised
    (the module derives them from the initial state): the référent can invite as soon as
    the dossier answers, and no power-levels event follows, not even by the time of the
    welcome notice (the last thing the appservice does for a new room)."""
    stack = any_stack
    coordinator = stack.register("referente")
    service = stack.deployment.secrets.as_token  # Maillon's service user sits in the room
    room_id = new_dossier(stack, coordinator.access_token)["room_id"]
    levels = state_of(stack, service, room_id)[("m.room.power_levels", "")]
    assert levels["content"] == patient_power_levels([coordinator.user_id])

    def welcomed() -> bool:
        page = cs(stack, service, "GET", room_path(room_id, "messages") + "?dir=b&limit=50")
        return any(
            "Salle de coordination ouverte" in str(e["content"].get("body"))
            for e in page["chunk"]
            if e["type"] == "m.room.message"
        )

    await wait_for(welcomed, "the welcome notice")
    levels = state_of(stack, service, room_id)[("m.room.power_levels", "")]
    assert "replaces_state" not in levels.get("unsigned", {}), "power levels written again"
    assert levels["content"] == patient_power_levels([coordinator.user_id])


async def test_a_ban_ends_the_circle_entry_and_the_dossier_access(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator = make_client(stack, "referente")
    nurse = make_client(stack, "ide")
    for pro in (coordinator, nurse):
        await bind_professional(stack, pro.user_id)
    t = token_of(coordinator)
    dossier = new_dossier(stack, t)
    did, room_id = dossier["id"], dossier["room_id"]
    await coordinator.accept_invite(room_id)
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    await nurse.accept_invite(room_id)
    assert api(stack, token_of(nurse), "GET", f"/v1/dossiers/{did}")["id"] == did

    cs(
        stack,
        t,
        "POST",
        room_path(room_id, "ban"),
        {"user_id": nurse.user_id, "reason": "fin d'intervention"},
    )
    await wait_for(
        lambda: nurse.user_id not in active_circle(stack, t, did), "the ban in the dossier"
    )
    rows = [
        m
        for m in api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
        if m["user_id"] == nurse.user_id
    ]
    assert len(rows) == 1 and rows[0]["removed_by"] == coordinator.user_id
    entry = state_of(stack, t, room_id)[(CIRCLE_EVENT, user_state_key(nurse.user_id))]
    assert entry["content"]["active"] is False
    denied = api_error(stack, token_of(nurse), "GET", f"/v1/dossiers/{did}")
    assert denied.status == 403
    await wait_for(lambda: ("ban", nurse.user_id) in history(stack, t, did), "the ban recorded")

    # Added again through the dossier: the ban is lifted and the invite reaches them.
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    await nurse.accept_invite(room_id)
    assert api(stack, token_of(nurse), "GET", f"/v1/dossiers/{did}")["id"] == did


async def test_an_administrators_login_as_token_is_refused_and_recorded(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator = make_client(stack, "referente")
    await bind_professional(stack, coordinator.user_id)
    t = token_of(coordinator)
    dossier = new_dossier(stack, t)
    did, room_id = dossier["id"], dossier["room_id"]
    await coordinator.accept_invite(room_id)
    admin = stack.register("admin", admin=True)
    puppet = request_json(
        "POST",
        f"{stack.url}/_synapse/admin/v1/users/{quote(coordinator.user_id)}/login",
        {},
        token=admin.access_token,
    )["access_token"]
    assert cs(stack, puppet, "GET", "/account/whoami")["user_id"] == coordinator.user_id

    # The dossier API refuses it (the coordinator's own token still works) and says so in
    # the dossier's audit, as a refused access that was not the coordinator's own.
    refused = api_error(stack, puppet, "GET", f"/v1/dossiers/{did}")
    assert refused.status == 403 and "administrateur" in str(refused)
    assert api(stack, t, "GET", f"/v1/dossiers/{did}")["id"] == did
    entries = api(stack, t, "GET", f"/v1/dossiers/{did}/audit")["entries"]
    recorded = [e for e in entries if e["action"] == "impersonation"]
    assert len(recorded) == 1 and recorded[0]["allowed"] is False
    assert recorded[0]["actor"] == coordinator.user_id
    assert recorded[0]["basis"] == "admin_login_as"

    # In the patient room, what the token sends is recorded by the module as sent without a
    # device; the coordinator's own events are not.
    anchor = await coordinator.send_text(room_id, "Point de situation demain.")
    cs(
        stack,
        puppet,
        "PUT",
        room_path(room_id, "send", "m.reaction", "puppet-1"),
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": anchor, "key": "👍"}},
    )
    flagged = [
        r
        for r in read_audit(stack.directory / "audit", room_id)
        if r.code == "admin_login_as_or_server_action"
    ]
    assert [(r.actor, r.action) for r in flagged] == [
        (coordinator.user_id, "without_device:m.reaction")
    ]
    # The operator finds such requests in Synapse's log: "{@admin|@user}".
    log = stack.directory / "logs" / "homeserver.log"
    await wait_for(
        lambda: f"{{{admin.user_id}|{coordinator.user_id}}}" in log.read_text(errors="replace"),
        "the impersonation in Synapse's access log",
    )


async def test_room_texts_say_nothing_of_the_pathway_and_are_pinned(
    stack: Stack, make_client: MakeClient
) -> None:
    coordinator = make_client(stack, "coordo")
    await bind_professional(stack, coordinator.user_id)
    t = token_of(coordinator)
    dossier = new_dossier(stack, t, pathway="pco-tnd")  # a child's neurodevelopmental pathway
    did, room_id = dossier["id"], dossier["room_id"]
    await coordinator.accept_invite(room_id)
    state = state_of(stack, t, room_id)
    name = state[("m.room.name", "")]["content"]["name"]
    topic = state[("m.room.topic", "")]["content"]["topic"]
    assert name == f"J. M. (1941) · {did[:6].upper()}"
    for text in (name, topic):
        for word in ("pco", "tnd", "parcours", "neuro", "enfant"):
            assert word not in text.lower(), (word, text)
    welcome = await coordinator.wait_for_text(room_id, lambda e: "Salle" in e.body)
    assert "pco" not in welcome.body.lower() and "tnd" not in welcome.body.lower()

    # The room's coordinator cannot rename it nor change its topic: both are stored in clear.
    for etype, content in [
        ("m.room.name", {"name": "Martin Jeanne — bilan TND"}),
        ("m.room.topic", {"topic": "Suspicion de trouble du spectre autistique"}),
        ("m.room.avatar", {"url": "mxc://localhost/photo"}),
    ]:
        refused = refusal(stack, t, "PUT", room_path(room_id, "state", etype, ""), content)
        assert refused.status == 403 and "pas chiffrés" in str(refused), (etype, str(refused))
    after = state_of(stack, t, room_id)
    assert after[("m.room.name", "")]["content"]["name"] == name
    assert after[("m.room.topic", "")]["content"]["topic"] == topic

    # A room named by an older template (pathway in clear) is renamed at its next sync.
    async with appservice(stack) as service:
        await service.put_state(room_id, "m.room.name", "", {"name": f"{name} — parcours PCO-TND"})
        await service.put_state(room_id, "m.room.topic", "", {"topic": "Parcours PCO-TND."})
    api(stack, t, "PATCH", f"/v1/dossiers/{did}", {"status": "closed", "status_reason": "fin"})
    await wait_for(
        lambda: state_of(stack, t, room_id)[("m.room.name", "")]["content"]["name"] == name,
        "the room renamed to the template",
    )
    assert state_of(stack, t, room_id)[("m.room.topic", "")]["content"]["topic"] == topic


async def test_closing_makes_the_room_read_only(any_stack: Stack, make_client: MakeClient) -> None:
    stack = any_stack
    coordinator = make_client(stack, "referent")
    await bind_professional(stack, coordinator.user_id)
    t = token_of(coordinator)
    dossier = new_dossier(stack, t, pathway="cpts")
    did, room_id = dossier["id"], dossier["room_id"]
    await coordinator.accept_invite(room_id)
    await coordinator.send_text(room_id, "Avant la clôture")

    closed = api(
        stack, t, "PATCH", f"/v1/dossiers/{did}", {"status": "closed", "status_reason": "fin"}
    )
    assert closed["status"] == "closed"
    state = state_of(stack, t, room_id)
    assert state[(DOSSIER_EVENT, "")]["content"]["status"] == "closed"
    await wait_for(
        lambda: (
            state_of(stack, t, room_id)[("m.room.power_levels", "")]["content"]["events_default"]
            == 100
        ),
        "read-only power levels",
    )
    refused = refusal(
        stack, t, "PUT", room_path(room_id, "send", "m.room.encrypted", "after-close"), {}
    )
    assert refused.status == 403
    await coordinator.wait_for_text(room_id, lambda e: "lecture seule" in e.body)

    api(stack, t, "PATCH", f"/v1/dossiers/{did}", {"status": "open"})
    await wait_for(
        lambda: (
            state_of(stack, t, room_id)[("m.room.power_levels", "")]["content"]["events_default"]
            == 0
        ),
        "writable power levels",
    )
    reopened_at = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the API gives seconds
    await coordinator.send_text(room_id, "Après la réouverture")
    await coordinator.wait_for_text(room_id, lambda e: "rouvert" in e.body)

    def last_message_recorded() -> bool:
        last = api(stack, t, "GET", f"/v1/dossiers/{did}/activity")["last_message_at"]
        return last is not None and dt.datetime.fromisoformat(last) >= reopened_at

    await wait_for(last_message_recorded, "the message after reopening, on the dossier side")
    activity = api(stack, t, "GET", f"/v1/dossiers/{did}/activity")
    assert activity["messages"] >= 2, "both messages of the coordinator are counted"


async def test_side_room_without_the_family(stack: Stack, make_client: MakeClient) -> None:
    coordinator = make_client(stack, "coordo")
    nurse = make_client(stack, "infirmier")
    parent = make_client(stack, "parent")
    await bind_professional(stack, coordinator.user_id)
    await bind_professional(stack, nurse.user_id)
    t = token_of(coordinator)
    dossier = new_dossier(stack, t, pathway="pco-tnd")  # admits the family in the circle
    did, main_room = dossier["id"], dossier["room_id"]
    await coordinator.accept_invite(main_room)
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "KINE"})
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": parent.user_id, "role": "RL"})
    await parent.accept_invite(main_room)

    side = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/rooms",
        {"label": "coordination interne", "audience": "professionals"},
    )
    side_room = side["room_id"]
    assert side["kind"] == "side" and side_room and side_room != main_room
    await nurse.accept_invite(side_room)
    await coordinator.accept_invite(side_room)
    state = state_of(stack, t, side_room)
    link = state[(DOSSIER_EVENT, "")]["content"]
    assert link["dossier_id"] == did and link["kind"] == "side"
    assert link["audience"] == "professionals"
    assert "coordination interne" in state[("m.room.name", "")]["content"]["name"]
    assert (CIRCLE_EVENT, user_state_key(parent.user_id)) not in state
    assert membership(stack, t, side_room, parent.user_id) is None, "the family is not invited"
    main_state = state_of(stack, t, main_room)
    assert main_state[(SIDE_ROOM_EVENT, side_room)]["content"]["label"] == "coordination interne"
    # The parent cannot get in, even invited by the référent in the room.
    refused = refusal(stack, t, "POST", room_path(side_room, "invite"), {"user_id": parent.user_id})
    assert refused.status == 403

    # Removing a professional from the dossier removes them from the side room too.
    api(stack, t, "DELETE", f"/v1/dossiers/{did}/circle/{quote(nurse.user_id)}")
    await wait_for(
        lambda: membership(stack, t, side_room, nurse.user_id) == "leave", "kicked from side room"
    )
    rooms = api(stack, t, "GET", f"/v1/dossiers/{did}/rooms")["rooms"]
    assert {(r["kind"], r["room_id"]) for r in rooms} == {("main", main_room), ("side", side_room)}


async def test_dossier_widget_with_openid(stack: Stack, make_client: MakeClient) -> None:
    coordinator = make_client(stack, "widget")
    outsider = make_client(stack, "curieux")
    t = token_of(coordinator)
    dossier = new_dossier(stack, t)
    did, room = dossier["id"], dossier["room_id"]
    await coordinator.accept_invite(room)
    api(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": "Visite du jour : RAS <b>ok</b>"})
    base = stack.deployment.settings.dossier_api.url
    await wait_for(
        lambda: ("join", coordinator.user_id) in history(stack, t, did), "join recorded", 30
    )

    shell = request_any("GET", f"{base}/widget?dossier={did}&lang=fr", raw=True)
    assert '<html lang="fr">' in shell and 'src="widget/widget.js"' in shell
    script = request_any("GET", f"{base}/widget/widget.js", raw=True)
    assert "get_openid" in script and "session/openid" in script

    def openid(token: str, user_id: str) -> str:
        body = cs(stack, token, "POST", f"/user/{quote(user_id)}/openid/request_token", {})
        return str(body["access_token"])

    page = request_any(
        "GET",
        f"{base}/widget/dossiers/{did}?room={quote(room)}",
        headers=widget_headers(stack, openid(t, coordinator.user_id)),
        raw=True,
    )
    assert "MARTIN Jeanne Louise" in page and "Cercle de soins" in page
    assert "Visite du jour : RAS &lt;b&gt;ok&lt;/b&gt;" in page, "escaped, not injected"
    # People, not Matrix ids; a birth date without its weekday, "née" for a woman.
    shown = re.sub(r"<[^>]+>", " ", page)  # the text (forms carry ids in their values)
    assert coordinator.user_id not in shown and "infirmier — coordinateur / référent" in page
    assert "Née le 12 mars 1941" in page and "mercredi 12 mars" not in page
    assert "Identité qualifiée — INS utilisable" in page and "ouvert · ouvert" not in page

    # A forged OpenID token gets no session; the OpenID token itself opens no page.
    with pytest.raises(HomeserverError) as forged:
        widget_session(stack, "faux-jeton")
    assert forged.value.status == 401
    for headers, status in (
        (widget_headers(stack, openid(token_of(outsider), outsider.user_id)), 403),
        ({"X-Matrix-OpenID": openid(t, coordinator.user_id)}, 401),
        ({"Cookie": "maillon_session=faux"}, 401),
        ({}, 401),
    ):
        with pytest.raises(HomeserverError) as refused:
            request_any(
                "GET", f"{base}/widget/dossiers/{did}?room={quote(room)}", headers=headers, raw=True
            )
        assert refused.value.status == status
    # OpenID tokens are handed to widgets and integrations: the API refuses them.
    with pytest.raises(HomeserverError) as write:
        request_any(
            "PATCH",
            f"{base}/v1/dossiers/{did}",
            {"status": "closed", "status_reason": "par le widget"},
            headers={"X-Matrix-OpenID": openid(t, coordinator.user_id)},
        )
    assert write.value.status == 401 and "widget" in str(write.value)
    assert api(stack, t, "GET", f"/v1/dossiers/{did}")["status"] == "open"
    # A dossier without INS (as the bot opens them) renders too.
    plain = new_dossier(
        stack,
        t,
        identity={
            "birth_name": "Durand",
            "first_names": "Paul",
            "sex": "M",
            "birth_date": "1950-01-01",
        },
    )
    await coordinator.accept_invite(plain["room_id"])
    await wait_for(
        lambda: ("join", coordinator.user_id) in history(stack, t, plain["id"]), "join", 30
    )
    page = request_any(
        "GET",
        f"{base}/widget/dossiers/{plain['id']}?room={quote(plain['room_id'])}&lang=en",
        headers=widget_headers(stack, openid(t, coordinator.user_id)),
        raw=True,
    )
    # No INS for this identity: no INS line (the identity-status choices name INS, though).
    assert "DURAND Paul" in page and "Care team" in page and "INS number" not in page
    audit = api(stack, t, "GET", f"/v1/dossiers/{did}/audit")["entries"]
    assert any(e["actor"] == outsider.user_id and e["allowed"] is False for e in audit), (
        "the outsider's attempt through the widget is audited"
    )
