"""Rights, audit and who may enter a care circle, through the running dossier API (real
Synapse tokens): one audit row per action saying what happened, every refusal audited, the
directory and peer-server rules for circles, dossiers and delegations, logged-out tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.models import AuditEntry
from maillon.shared.homeserver_client import HomeserverError, request_any, request_json
from maillon.shared.store import make_engine
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.stack import Stack


def _audit(stack: Stack, token: str, dossier_id: str) -> list[dict[str, Any]]:
    return list(api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/audit")["entries"])


def _account_audit(stack: Stack, actor: str) -> list[AuditEntry]:
    """Audit rows of actions on an account, not on one dossier (delegations, my agenda):
    the API shows no such list, so they are read from the store."""
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.actor == actor, AuditEntry.dossier_id.is_(None))
                    .order_by(AuditEntry.id)
                )
            )
    finally:
        engine.dispose()


def _in(days: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()


def _circle(stack: Stack, token: str, dossier_id: str) -> set[str]:
    rows = api(stack, token, "GET", f"/v1/dossiers/{dossier_id}/circle")["members"]
    return {m["user_id"] for m in rows if m["active"]}


def test_a_write_leaves_exactly_one_audit_row(stack: Stack) -> None:
    coord, nurse = stack.register("coord"), stack.register("ide")
    token = coord.access_token
    did = new_dossier(stack, token)["id"]
    api(
        stack,
        token,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": nurse.user_id, "role": "IDE"},
    )
    note = api(
        stack, nurse.access_token, "POST", f"/v1/dossiers/{did}/notes", {"text": "Vu ce jour."}
    )

    entries = _audit(stack, token, did)
    adds = [e for e in entries if e["action"] == "circle.add"]
    writes = [e for e in entries if e["action"] == "notes.write"]
    assert len(adds) == 1 and adds[0]["allowed"] and adds[0]["detail"] == nurse.user_id, adds
    assert len(writes) == 1 and writes[0]["allowed"] and writes[0]["detail"] == note["id"], writes
    assert [e["action"] for e in entries].count("dossier.create") == 1


def test_a_write_refused_after_the_rights_check_leaves_one_refused_row(stack: Stack) -> None:
    coord = stack.register("coord")
    token = coord.access_token
    did = new_dossier(stack, token)["id"]
    path = f"/v1/dossiers/{did}"

    unknown_task = api_error(stack, token, "PATCH", f"{path}/tasks/inconnue", {"status": "done"})
    assert unknown_task.status == 404
    backwards = api_error(
        stack,
        token,
        "POST",
        f"{path}/appointments",
        {"title": "Visite", "start": _in(2), "end": _in(1)},
    )
    assert backwards.status == 400 and "fin du rendez-vous" in str(backwards)

    entries = _audit(stack, token, did)
    for action, status in (("tasks.update", "404"), ("agenda.write", "400")):
        rows = [e for e in entries if e["action"] == action]
        assert len(rows) == 1, rows
        assert rows[0]["allowed"] is False and rows[0]["detail"].startswith(status), rows
    assert api(stack, token, "GET", f"{path}/appointments")["appointments"] == []


def test_my_agenda_across_dossiers_leaves_one_audit_row(stack: Stack) -> None:
    coord, nurse = stack.register("coord"), stack.register("ide")
    token = coord.access_token
    dossiers = [new_dossier(stack, token)["id"] for _ in range(3)]
    for did in dossiers:
        api(
            stack,
            token,
            "POST",
            f"/v1/dossiers/{did}/circle",
            {"user_id": nurse.user_id, "role": "IDE"},
        )
        for day in (1, 2):
            api(
                stack,
                token,
                "POST",
                f"/v1/dossiers/{did}/appointments",
                {
                    "title": "Visite",
                    "start": _in(day),
                    "end": _in(day + 0.05),
                    "participants": [nurse.user_id],
                },
            )
    url = stack.deployment.settings.dossier_api.url + "/v1/me/agenda.ics"
    calendar = request_any("GET", url, token=nurse.access_token, raw=True)
    assert calendar.count("BEGIN:VEVENT") == 6

    for did in dossiers:
        assert not [e for e in _audit(stack, token, did) if e["actor"] == nurse.user_id]
    [row] = _account_audit(stack, nurse.user_id)
    assert row.action == "agenda.mine" and row.allowed
    assert row.detail is not None and all(did in row.detail for did in dossiers)


def test_only_directory_professionals_enter_a_circle(stack: Stack) -> None:
    coord = stack.register("coord")
    stranger = stack.register("inconnu", profession=None)  # an account outside the directory
    token = coord.access_token
    did = new_dossier(stack, token)["id"]
    refused = api_error(
        stack,
        token,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": stranger.user_id, "role": "IDE"},
    )
    assert refused.status == 400 and "annuaire" in str(refused) and "user_id" in str(refused)
    assert _circle(stack, token, did) == {coord.user_id}
    [row] = [e for e in _audit(stack, token, did) if e["action"] == "circle.add"]
    assert row["allowed"] is False and "annuaire" in row["detail"]


def test_the_pathway_admits_relatives_outside_the_directory_with_their_role(stack: Stack) -> None:
    coord = stack.register("coord")
    parent = stack.register("parent", profession=None)
    token = coord.access_token
    did = new_dossier(stack, token, pathway="pco-tnd")["id"]
    as_professional = api_error(
        stack,
        token,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": parent.user_id, "role": "MED"},
    )
    assert as_professional.status == 400 and "annuaire" in str(as_professional)
    api(
        stack,
        token,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": parent.user_id, "role": "RL"},
    )
    assert _circle(stack, token, did) == {coord.user_id, parent.user_id}


def test_only_directory_professionals_open_dossiers(stack: Stack) -> None:
    stranger = stack.register("inconnu", profession=None)
    refused = api_error(
        stack,
        stranger.access_token,
        "POST",
        "/v1/dossiers",
        {
            "pathway": "dac",
            "identity": {
                "birth_name": "Martin",
                "first_names": "Jeanne",
                "sex": "F",
                "birth_date": "1941-03-12",
            },
        },
    )
    assert refused.status == 403 and "annuaire" in str(refused)
    assert api(stack, stranger.access_token, "GET", "/v1/dossiers")["dossiers"] == []
    [row] = _account_audit(stack, stranger.user_id)
    assert row.action == "dossier.create" and not row.allowed
    # Administrators keep what they have today, directory or not.
    admin = stack.register("admin", admin=True, profession=None)
    assert new_dossier(stack, admin.access_token)["access"] == "coordinator"


@pytest.mark.parametrize(
    ("to", "until", "reason"),
    [
        ("stranger", 7, "annuaire"),
        ("@dr:ailleurs.example", 7, "serveur partenaire"),
        ("colleague", 91, "90 jours"),
        ("colleague", -1, "dans le futur"),
    ],
)
def test_delegation_only_to_a_directory_professional_bounded_and_every_refusal_audited(
    stack: Stack, to: str, until: float, reason: str
) -> None:
    coord = stack.register("coord")
    people = {
        "stranger": stack.register("inconnu", profession=None).user_id,
        "colleague": stack.register("collegue").user_id,
    }
    to_user = people.get(to, to)
    refused = api_error(
        stack,
        coord.access_token,
        "POST",
        "/v1/delegations",
        {"to_user": to_user, "until": _in(until)},
    )
    assert refused.status == 400 and reason in str(refused), str(refused)
    assert api(stack, coord.access_token, "GET", "/v1/delegations")["given"] == []
    [row] = _account_audit(stack, coord.user_id)
    assert row.action == "delegation.create" and not row.allowed and reason in (row.detail or "")


def test_a_delegation_is_audited_and_revocable(stack: Stack) -> None:
    coord, colleague = stack.register("coord"), stack.register("collegue")
    did = new_dossier(stack, coord.access_token)["id"]
    given = api(
        stack,
        coord.access_token,
        "POST",
        "/v1/delegations",
        {"to_user": colleague.user_id, "until": _in(7)},
    )
    assert api(stack, colleague.access_token, "GET", f"/v1/dossiers/{did}")["access"] == "delegate"
    outsider = stack.register("dehors")
    not_hers = api_error(stack, outsider.access_token, "DELETE", f"/v1/delegations/{given['id']}")
    assert not_hers.status == 404
    api(stack, coord.access_token, "DELETE", f"/v1/delegations/{given['id']}")
    assert api_error(stack, colleague.access_token, "GET", f"/v1/dossiers/{did}").status == 403
    assert api(stack, coord.access_token, "GET", "/v1/delegations")["given"] == []
    bad_id = api_error(stack, coord.access_token, "DELETE", "/v1/delegations/abc")
    assert bad_id.status == 400 and "delegation_id" in str(bad_id)

    actions = [(r.action, r.allowed) for r in _account_audit(stack, coord.user_id)]
    assert ("delegation.create", True) in actions and ("delegation.revoke", True) in actions
    assert [(r.action, r.allowed) for r in _account_audit(stack, outsider.user_id)] == [
        ("delegation.revoke", False)
    ]


def test_a_delegate_does_not_pass_the_delegators_rights_on(stack: Stack) -> None:
    coord, first, second = (stack.register(n) for n in ("coord", "premier", "second"))
    did = new_dossier(stack, coord.access_token)["id"]
    for giver, to in ((coord, first), (first, second)):
        api(
            stack,
            giver.access_token,
            "POST",
            "/v1/delegations",
            {"to_user": to.user_id, "until": _in(7)},
        )
    assert api(stack, first.access_token, "GET", f"/v1/dossiers/{did}")["access"] == "delegate"
    assert api_error(stack, second.access_token, "GET", f"/v1/dossiers/{did}").status == 403


def test_a_delegate_cannot_change_the_circle_by_default(stack: Stack) -> None:
    coord, delegate, nurse = (stack.register(n) for n in ("coord", "deleg", "ide"))
    did = new_dossier(stack, coord.access_token)["id"]
    api(
        stack,
        coord.access_token,
        "POST",
        "/v1/delegations",
        {"to_user": delegate.user_id, "until": _in(7)},
    )
    path = f"/v1/dossiers/{did}"
    api(stack, delegate.access_token, "POST", f"{path}/notes", {"text": "pour la coordinatrice"})
    refused = api_error(
        stack,
        delegate.access_token,
        "POST",
        f"{path}/circle",
        {"user_id": nurse.user_id, "role": "IDE"},
    )
    assert refused.status == 403 and "délégation" in str(refused)
    assert _circle(stack, coord.access_token, did) == {coord.user_id}
    [row] = [e for e in _audit(stack, coord.access_token, did) if e["action"] == "circle.add"]
    assert row["allowed"] is False and row["on_behalf_of"] == coord.user_id


def test_a_refused_openid_write_is_audited(stack: Stack) -> None:
    coord = stack.register("coord")
    did = new_dossier(stack, coord.access_token)["id"]
    openid = request_json(
        "POST",
        stack.url + f"/_matrix/client/v3/user/{quote(coord.user_id)}/openid/request_token",
        {},
        token=coord.access_token,
    )
    url = stack.deployment.settings.dossier_api.url + f"/v1/dossiers/{did}/notes"
    with pytest.raises(HomeserverError) as refused:
        request_any(
            "POST",
            url,
            {"text": "par le widget"},
            headers={"X-Matrix-OpenID": openid["access_token"]},
        )
    assert refused.value.status == 401  # OpenID tokens open the widget page only
    rows = [e for e in _audit(stack, coord.access_token, did) if not e["allowed"]]
    assert len(rows) == 1 and rows[0]["actor"] == coord.user_id, rows
    assert "/notes" in rows[0]["action"] and "OpenID" in rows[0]["detail"]


def test_a_logged_out_token_cannot_write(stack: Stack) -> None:
    coord = stack.register("coord")
    token = coord.access_token
    did = new_dossier(stack, token)["id"]
    api(stack, token, "GET", f"/v1/dossiers/{did}")  # the token is now in the API's cache
    request_json("POST", stack.url + "/_matrix/client/v3/logout", {}, token=token)
    refused = api_error(stack, token, "POST", f"/v1/dossiers/{did}/notes", {"text": "après"})
    assert refused.status == 401
