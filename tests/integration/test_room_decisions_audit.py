"""The care-circle module's room-side decisions appear in the dossier's audit, beside the
dossier-side entries, for the coordinator (real stack: Synapse writes the decision log)."""

from __future__ import annotations

from tests.harness.circle import refusal
from tests.harness.dossier import api, new_dossier
from tests.harness.stack import Stack


def test_a_refused_join_is_in_the_dossier_audit(stack: Stack) -> None:
    coord, outsider = stack.register("coord"), stack.register("curieux")
    dossier = new_dossier(stack, coord.access_token)
    room_id = str(dossier["room_id"])
    join = refusal(stack, outsider.access_token, "POST", "/join/" + room_id, {})
    assert join.status == 403
    path = f"/v1/dossiers/{dossier['id']}/audit"
    entries = api(stack, coord.access_token, "GET", path)["entries"]
    room_side = [e for e in entries if e["component"] == "synapse"]
    refused = [e for e in room_side if e["actor"] == outsider.user_id]
    assert [(e["action"], e["allowed"], e["basis"]) for e in refused] == [
        ("room.join", False, "room")
    ]
    assert "join_not_in_circle" in str(refused[0]["detail"])
    assert any(e["action"] == "dossier.create" for e in entries), "beside the dossier side"
    # Read again: loaded once.
    again = api(stack, coord.access_token, "GET", path)["entries"]
    assert len([e for e in again if e["actor"] == outsider.user_id]) == 1
