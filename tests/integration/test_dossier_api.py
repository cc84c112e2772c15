"""The dossier service against real Synapse tokens, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from maillon.shared.homeserver_client import HomeserverError
from tests.harness.dossier import IDENTITY, api, api_error, audit_rows, new_dossier
from tests.harness.stack import Stack

STACKS = ["stack", "pg_stack"]


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest) -> Stack:
    stack: Stack = request.getfixturevalue(request.param)
    return stack


def _audit(stack: Stack, token: str, dossier_id: str) -> list[dict[str, object]]:
    return list(api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/audit")["entries"])


def test_dossier_lifecycle(any_stack: Stack) -> None:
    stack = any_stack
    coord = stack.register("coord")
    nurse = stack.register("ide")
    t = coord.access_token
    dossier = new_dossier(stack, t)
    did = dossier["id"]
    assert dossier["referent"] == coord.user_id and dossier["status"] == "open"
    assert dossier["identity"]["birth_name"] == "Martin" and dossier["identity_status"] == "QUAL"
    assert dossier["mail_address"].startswith("d-") and dossier["access"] == "coordinator"
    assert did in {d["id"] for d in api(stack, t, "GET", "/v1/dossiers")["dossiers"]}

    member = api(
        stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"}
    )
    assert member["active"] and member["added_by"] == coord.user_id
    twice = api_error(
        stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"}
    )
    assert twice.status == 409
    aidant = api_error(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": "@aidant:localhost", "role": "AID"},
    )
    assert aidant.status == 400 and "n'est pas prévu par le parcours" in str(aidant)
    not_in_pathway = api_error(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": "@parent:localhost", "role": "RL"},
    )
    assert not_in_pathway.status == 400 and "n'est pas prévu par le parcours" in str(not_in_pathway)
    assert api(stack, nurse.access_token, "GET", f"/v1/dossiers/{did}")["access"] == "member"

    note = api(
        stack,
        nurse.access_token,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Plaie propre, pansement refait.", "urgent": True},
    )
    reply = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Merci, RDV chirurgien lundi.", "reply_to": note["id"]},
    )
    fixed = api(
        stack,
        nurse.access_token,
        "POST",
        f"/v1/dossiers/{did}/notes/{note['id']}/corrections",
        {"text": "Plaie propre, pansement refait à 9h."},
    )
    notes = api(stack, t, "GET", f"/v1/dossiers/{did}/notes")["notes"]
    by_id = {n["id"]: n for n in notes}
    assert by_id[note["id"]]["corrected_by"] == fixed["id"]  # the original stays
    assert by_id[note["id"]]["urgent"] and by_id[reply["id"]]["reply_to"] == note["id"]
    not_author = api_error(
        stack, t, "POST", f"/v1/dossiers/{did}/notes/{note['id']}/corrections", {"text": "x"}
    )
    assert not_author.status == 403

    task = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Commander le lit médicalisé", "assignee": nurse.user_id, "due": "2026-12-01"},
    )
    done = api(
        stack,
        nurse.access_token,
        "PATCH",
        f"/v1/dossiers/{did}/tasks/{task['id']}",
        {"status": "done"},
    )
    assert done["done_by"] == nurse.user_id and done["done_at"]

    refused = api_error(stack, t, "PATCH", f"/v1/dossiers/{did}", {"status": "closed"})
    assert refused.status == 400 and "motif" in str(refused)
    closed = api(
        stack,
        t,
        "PATCH",
        f"/v1/dossiers/{did}",
        {"status": "closed", "status_reason": "Entrée en EHPAD"},
    )
    assert closed["status"] == "closed" and closed["closed_at"]
    readonly = api_error(
        stack, nurse.access_token, "POST", f"/v1/dossiers/{did}/notes", {"text": "après clôture"}
    )
    assert readonly.status == 409
    reopened = api(stack, t, "PATCH", f"/v1/dossiers/{did}", {"status": "open"})
    assert reopened["status"] == "open" and reopened["closed_at"] is None

    removed = api(stack, t, "DELETE", f"/v1/dossiers/{did}/circle/{nurse.user_id}")
    assert not removed["active"] and removed["removed_by"] == coord.user_id
    history = api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
    assert [m["user_id"] for m in history].count(nurse.user_id) == 1  # history kept
    actions = {e["action"] for e in _audit(stack, t, did)}
    assert {
        "dossier.create",
        "dossier.read",
        "dossier.list",
        "circle.add",
        "notes.write",
        "notes.read",
        "notes.correct",
        "tasks.write",
        "tasks.update",
        "dossier.update",
        "circle.remove",
        "circle.read",
    } <= actions


def test_authorization_rules_each_audited(any_stack: Stack) -> None:
    stack = any_stack
    coord, member, outsider, removed, staff, delegate, expired, admin = (
        stack.register(n)
        for n in ("coord", "membre", "dehors", "parti", "struct", "deleg", "expire", "adm")
    )
    admin = stack.register("admin", admin=True)
    structure = api(
        stack,
        admin.access_token,
        "POST",
        "/v1/structures",
        {"name": f"DAC {time.monotonic_ns()}", "kind": "dac"},
    )
    api(
        stack,
        admin.access_token,
        "POST",
        f"/v1/structures/{structure['id']}/staff",
        {"user_id": staff.user_id},
    )
    # Created through the API as in the console: the whole structure answered, the change
    # audited once, with its before and after.
    assert (structure["kind"], structure["account"], structure["mssante"]) == ("dac", None, None)
    [created] = [
        r
        for r in audit_rows(stack, "admin.structure.create")
        if r.allowed and json.loads(str(r.detail))["apres"]["id"] == structure["id"]
    ]
    assert created.actor == admin.user_id and created.allowed
    assert json.loads(str(created.detail))["avant"] is None
    # A staff member's role in the structure: member by default, changed by the administrator.
    assert api(stack, staff.access_token, "GET", "/v1/me")["structures"] == [
        {"id": structure["id"], "name": structure["name"], "role": "member"}
    ]
    api(
        stack,
        admin.access_token,
        "POST",
        f"/v1/structures/{structure['id']}/staff",
        {"user_id": staff.user_id, "role": "manager"},
    )
    assert [s["role"] for s in api(stack, staff.access_token, "GET", "/v1/me")["structures"]] == [
        "manager"
    ]
    bad_role = api_error(
        stack,
        admin.access_token,
        "POST",
        f"/v1/structures/{structure['id']}/staff",
        {"user_id": staff.user_id, "role": "chef"},
    )
    assert bad_role.status == 400
    not_admin = api_error(stack, coord.access_token, "POST", "/v1/structures", {"name": "X"})
    assert not_admin.status == 403

    did = new_dossier(stack, coord.access_token, structure_id=structure["id"])["id"]
    for user, role in ((member, "IDE"), (removed, "KINE")):
        api(
            stack,
            coord.access_token,
            "POST",
            f"/v1/dossiers/{did}/circle",
            {"user_id": user.user_id, "role": role},
        )
    api(stack, coord.access_token, "DELETE", f"/v1/dossiers/{did}/circle/{removed.user_id}")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)).isoformat()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()
    api(
        stack,
        member.access_token,
        "POST",
        "/v1/delegations",
        {"to_user": delegate.user_id, "until": later},
    )
    api(
        stack,
        member.access_token,
        "POST",
        "/v1/delegations",
        {"to_user": expired.user_id, "until": soon},
    )
    path = f"/v1/dossiers/{did}"
    # A delegation opens the dossier until its end, and not after (waited for, with a deadline).
    assert api(stack, expired.access_token, "GET", path)["access"] == "delegate"

    def still_delegated() -> bool:
        try:
            api(stack, expired.access_token, "GET", path)
        except HomeserverError as exc:
            assert exc.status == 403, exc
            return False
        return True

    deadline = time.monotonic() + 30
    while still_delegated():
        assert time.monotonic() < deadline, "the delegation never ended"
        time.sleep(0.2)

    # who can read
    for user, basis in (
        (coord, "coordinator"),
        (member, "member"),
        (staff, "structure"),
        (delegate, "delegate"),
        (admin, "admin"),
    ):
        assert api(stack, user.access_token, "GET", path)["access"] == basis, basis
    for user in (outsider, removed, expired):
        denied = api_error(stack, user.access_token, "GET", path)
        assert denied.status == 403 and "cercle de soins" in str(denied)
    # who can write a note
    api(stack, delegate.access_token, "POST", path + "/notes", {"text": "pour le Dr absent"})
    for user in (staff, admin, outsider):
        assert (
            api_error(stack, user.access_token, "POST", path + "/notes", {"text": "x"}).status
            == 403
        )
    # who can manage the circle
    for user in (member, delegate, staff, admin):
        assert (
            api_error(
                stack,
                user.access_token,
                "POST",
                path + "/circle",
                {"user_id": outsider.user_id, "role": "MED"},
            ).status
            == 403
        )
    # who can read the audit
    assert api_error(stack, member.access_token, "GET", path + "/audit").status == 403
    entries = _audit(stack, admin.access_token, did)
    seen = {
        (e["actor"], e["basis"], e["allowed"]) for e in entries if e["action"] == "dossier.read"
    }
    assert {
        (coord.user_id, "coordinator", True),
        (member.user_id, "member", True),
        (staff.user_id, "structure", True),
        (delegate.user_id, "delegate", True),
        (admin.user_id, "admin", True),
        (outsider.user_id, "none", False),
        (removed.user_id, "none", False),
        (expired.user_id, "none", False),
    } <= seen
    delegated = [
        e for e in entries if e["actor"] == delegate.user_id and e["action"] == "notes.write"
    ]
    assert delegated and delegated[0]["on_behalf_of"] == member.user_id
    # my dossiers: in circle, by delegation, by structure; not for the others
    for user in (coord, member, delegate, staff):
        assert did in {
            d["id"] for d in api(stack, user.access_token, "GET", "/v1/dossiers")["dossiers"]
        }
    for user in (outsider, removed, expired):
        assert did not in {
            d["id"] for d in api(stack, user.access_token, "GET", "/v1/dossiers")["dossiers"]
        }


def test_bad_input_gets_clear_4xx(stack: Stack) -> None:
    coord = stack.register("coord")
    t = coord.access_token
    assert api_error(stack, None, "GET", "/v1/dossiers").status == 401
    assert api_error(stack, "pas-un-jeton", "GET", "/v1/dossiers").status == 401
    missing = api_error(stack, t, "POST", "/v1/dossiers", {"pathway": "dac"})
    assert missing.status == 400 and "champ obligatoire manquant : « identity »" in str(missing)
    bad_sex = api_error(
        stack, t, "POST", "/v1/dossiers", {"pathway": "dac", "identity": {**IDENTITY, "sex": "X"}}
    )
    assert bad_sex.status == 400 and "identity.sex" in str(bad_sex)
    unknown = api_error(
        stack, t, "POST", "/v1/dossiers", {"pathway": "dac", "identity": IDENTITY, "pirate": 1}
    )
    assert unknown.status == 400 and "pirate" in str(unknown)
    assert api_error(stack, t, "GET", "/v1/dossiers/inconnu").status == 404
    assert api_error(stack, t, "GET", "/v1/dossiers?limit=0").status == 400
    assert api_error(stack, t, "GET", "/v1/nulle-part").status == 404
    assert api_error(stack, t, "DELETE", "/v1/dossiers").status == 405


def test_health_data_never_in_clear_in_the_databases(any_stack: Stack) -> None:
    import subprocess

    stack = any_stack
    coord = stack.register("coord")
    marker = f"Zorglub{time.monotonic_ns()}"
    did = new_dossier(stack, coord.access_token, identity={**IDENTITY, "birth_name": marker})["id"]
    api(
        stack,
        coord.access_token,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": f"Note confidentielle {marker}"},
    )
    got = api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}/notes")["notes"]
    assert marker in got[0]["text"]  # readable through the API…
    if stack.database_url is None:
        data = b""
        for path in (stack.directory / "data").glob("maillon.db*"):
            data += path.read_bytes()
        assert data
    else:
        data = subprocess.run(
            ["pg_dump", "--no-owner", stack.database_url], capture_output=True, check=True
        ).stdout
        assert did.encode() in data
    assert marker.encode() not in data  # …never in the database files or dumps
    logs = b"".join(p.read_bytes() for p in (stack.directory / "logs").glob("*"))
    assert marker.encode() not in logs


def test_closing_reason_is_sealed_at_rest(stack: Stack) -> None:
    import sqlite3

    coord = stack.register("coord")
    did = new_dossier(stack, coord.access_token)["id"]
    reason = f"décès {time.monotonic_ns()}"
    closed = api(
        stack,
        coord.access_token,
        "PATCH",
        f"/v1/dossiers/{did}",
        {"status": "closed", "status_reason": reason},
    )
    assert closed["status_reason"] == reason
    assert api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}")["status_reason"] == reason
    db = sqlite3.connect(stack.directory / "data" / "maillon.db")
    try:
        (raw,) = db.execute("SELECT status_reason FROM dossiers WHERE id = ?", (did,)).fetchone()
    finally:
        db.close()
    stored = raw if isinstance(raw, bytes) else str(raw).encode()
    assert stored and reason.split()[1].encode() not in stored and "décès".encode() not in stored
    assert b"d\\u00e9c\\u00e8s" not in stored


def test_the_api_refuses_matrix_openid_tokens(stack: Stack) -> None:
    """OpenID tokens are handed to widgets and integration managers: only the widget page
    of a room accepts one (tests/integration/test_read_paths.py), never the API."""
    from maillon.shared.homeserver_client import HomeserverError, request_any, request_json

    coord = stack.register("coord")
    did = new_dossier(stack, coord.access_token)["id"]
    openid = request_json(
        "POST",
        f"{stack.url}/_matrix/client/v3/user/{coord.user_id}/openid/request_token",
        {},
        token=coord.access_token,
    )["access_token"]
    for token in (openid, "faux"):
        with pytest.raises(HomeserverError) as refused:
            request_any(
                "GET",
                f"{stack.deployment.settings.dossier_api.url}/v1/dossiers/{did}",
                headers={"X-Matrix-OpenID": token},
            )
        assert refused.value.status == 401 and "widget" in str(refused.value)


def test_key_rotation_reencrypts_everything(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    stack = Stack.create(tmp_path / "deploy")
    stack.start()
    try:
        coord = stack.register("coord")
        did = new_dossier(stack, coord.access_token)["id"]
        api(stack, coord.access_token, "POST", f"/v1/dossiers/{did}/notes", {"text": "avant"})
        running = subprocess.run(
            [
                sys.executable,
                "-m",
                "maillon.wiring.cli",
                "keys",
                "rotate",
                "--dir",
                str(stack.directory),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert running.returncode == 1 and "arrêtez d'abord Maillon" in running.stderr
    finally:
        assert stack.stop() == 0
    old_ids = [
        k["id"] for k in yaml.safe_load((stack.directory / "secrets.yaml").read_text())["data_keys"]
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "maillon.wiring.cli",
            "keys",
            "rotate",
            "--dir",
            str(stack.directory),
            "--drop-old",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    keys = yaml.safe_load((stack.directory / "secrets.yaml").read_text())["data_keys"]
    assert len(keys) == 1 and keys[0]["id"] not in old_ids
    stack.start()  # only the new key is known now: everything must still open
    try:
        assert (
            api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}")["identity"]["birth_name"]
            == "Martin"
        )
        notes = api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}/notes")["notes"]
        assert notes[0]["text"] == "avant"
    finally:
        stack.stop()
