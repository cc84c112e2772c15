"""Merging two dossiers of one person (issue 17, identity vigilance): the older dossier
stays and receives the other's circle, notes, tasks, agenda, forms and PPCS; the other is
closed, read-only, its room pointing to the one that stays (state event and notice); one
active room remains; the merge is audited. Real Synapse, appservice and dossier API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from maillon.shared.homeserver_client import request_any
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.stack import Stack

MERGED_EVENT = "fr.maillon.merged_into"


def _state(stack: Stack, admin: str, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    url = stack.url + f"/_synapse/admin/v1/rooms/{quote(room_id)}/state"
    events = request_any("GET", url, token=admin)["state"]
    return {(e["type"], e["state_key"]): e["content"] for e in events}


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_merge_moves_everything_and_leaves_one_active_room(stack: Stack) -> None:
    coordinator, nurse = stack.register("coordo"), stack.register("ide")
    admin = stack.register("admin", admin=True)
    t, a = coordinator.access_token, admin.access_token
    older = new_dossier(stack, t)
    api(stack, t, "POST", f"/v1/dossiers/{older['id']}/notes", {"text": "Note du premier"})
    newer = new_dossier(stack, t)  # the same person, opened again
    nid = newer["id"]
    api(stack, t, "POST", f"/v1/dossiers/{nid}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    api(stack, t, "POST", f"/v1/dossiers/{nid}/notes", {"text": "Note du second"})
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{nid}/tasks",
        {"title": "Tâche du second", "assignee": nurse.user_id},
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{nid}/appointments",
        {"title": "Visite", "start": "2026-12-10T09:00:00Z", "end": "2026-12-10T10:00:00Z"},
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{nid}/forms/evaluation-autonomie",
        {"answers": {"gir": "4", "vit_seul": True, "date_evaluation": "2026-11-20"}},
    )
    plan = {
        "problems": [{"problem": "Chutes", "goals": ["Sécuriser"]}],
        "actions": [],
        "unmet_goals": [],
    }
    api(stack, t, "PUT", f"/v1/dossiers/{nid}/ppcs", plan)

    body = {"other_dossier_id": older["id"], "reason": "même personne (INS identique)"}
    refused = api_error(stack, t, "POST", f"/v1/dossiers/{nid}/merge", body)
    assert refused.status == 403 and "identitovigilance" in str(refused)
    merged = api(stack, a, "POST", f"/v1/dossiers/{nid}/merge", body)
    kept = older["id"]
    assert merged["kept"] == kept and merged["merged"] == nid, "the older dossier stays"

    notes = [n["text"] for n in api(stack, t, "GET", f"/v1/dossiers/{kept}/notes")["notes"]]
    assert {"Note du premier", "Note du second"} <= set(notes)
    tasks = [x["title"] for x in api(stack, t, "GET", f"/v1/dossiers/{kept}/tasks")["tasks"]]
    assert "Tâche du second" in tasks
    agenda = api(stack, t, "GET", f"/v1/dossiers/{kept}/appointments")["appointments"]
    assert [x["title"] for x in agenda] == ["Visite"]
    assert len(api(stack, t, "GET", f"/v1/dossiers/{kept}/forms")["forms"]) == 1
    assert api(stack, t, "GET", f"/v1/dossiers/{kept}/ppcs")["problems"][0]["problem"] == "Chutes"
    circle = api(stack, t, "GET", f"/v1/dossiers/{kept}/circle")["members"]
    assert nurse.user_id in {m["user_id"] for m in circle if m["active"]}
    for path in ("notes", "tasks", "appointments", "forms"):
        left = api(stack, t, "GET", f"/v1/dossiers/{nid}/{path}")
        assert not next(iter(left.values())), f"{path} left in the merged dossier"
    gone = api(stack, t, "GET", f"/v1/dossiers/{nid}")
    assert gone["status"] == "closed" and kept[:6].upper() in gone["status_reason"]

    # Rooms: the merged one is read-only and points to the one that stays, which invites
    # the newcomers of its circle; one active room remains.
    def pointed() -> bool:
        state = _state(stack, a, newer["room_id"])
        return (MERGED_EVENT, "") in state and state[("fr.maillon.dossier", "")][
            "status"
        ] == "closed"

    _eventually(pointed, "the merged room points to the kept one")
    pointer = _state(stack, a, newer["room_id"])[(MERGED_EVENT, "")]
    assert pointer == {"dossier_id": kept, "room_id": older["room_id"]}

    def invited() -> bool:
        member = _state(stack, a, older["room_id"]).get(("m.room.member", nurse.user_id))
        return bool(member) and member["membership"] in ("invite", "join")

    _eventually(invited, "the nurse is invited into the room that stays")
    statuses = {
        room: _state(stack, a, room)[("fr.maillon.dossier", "")]["status"]
        for room in (older["room_id"], newer["room_id"])
    }
    assert sorted(statuses.values()) == ["closed", "open"], "one active room remains"

    audit = api(stack, t, "GET", f"/v1/dossiers/{kept}/audit")["entries"]
    assert any(e["action"] == "dossier.merge" and e["allowed"] for e in audit)
