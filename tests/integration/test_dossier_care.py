"""Forms, PPCS, shared agenda (iCalendar), alerts and FHIR export of a dossier."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.harness.dossier import IDENTITY, api, api_error, new_dossier
from tests.harness.stack import Stack


@pytest.fixture(params=["stack", "pg_stack"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    stack: Stack = request.getfixturevalue(request.param)
    return stack


def _get_text(stack: Stack, token: str, path: str) -> tuple[str, str]:
    req = urllib.request.Request(stack.deployment.settings.dossier_api.url + path)  # noqa: S310
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return resp.headers["Content-Type"], resp.read().decode()


def test_pathway_forms_are_validated_and_kept(any_stack: Stack) -> None:
    stack = any_stack
    coord = stack.register("coord")
    t = coord.access_token
    pathways = {p["id"]: p for p in api(stack, t, "GET", "/v1/pathways")["pathways"]}
    assert {"dac", "pco-tnd", "cpts", "messagerie"} <= set(pathways)
    assert pathways["pco-tnd"]["forms"][0]["id"] == "reperage-tnd"
    did = new_dossier(stack, t)["id"]
    bad = api_error(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/forms/evaluation-autonomie",
        {"answers": {"gir": "9", "vit_seul": "oui", "inconnu": 1}},
    )
    assert bad.status == 400
    for expected in (
        "« GIR (AGGIR) » : l'un de",
        "« Vit seul(e) » : oui/non",
        "champ inconnu : « inconnu »",
        "« Date de l'évaluation » est obligatoire",
    ):
        assert expected in str(bad)
    assert (
        api_error(
            stack, t, "POST", f"/v1/dossiers/{did}/forms/reperage-tnd", {"answers": {}}
        ).status
        == 404
    )  # not a form of the DAC pathway
    filled = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/forms/evaluation-autonomie",
        {
            "answers": {
                "gir": "4",
                "vit_seul": True,
                "chutes_6_mois": 2,
                "date_evaluation": "2026-11-20",
            }
        },
    )
    assert filled["form_version"] == 1
    kept = api(stack, t, "GET", f"/v1/dossiers/{did}/forms")["forms"]
    assert kept[0]["answers"]["gir"] == "4"


def test_ppcs_versions(any_stack: Stack) -> None:
    stack = any_stack
    t = stack.register("coord").access_token
    did = new_dossier(stack, t)["id"]
    assert api_error(stack, t, "GET", f"/v1/dossiers/{did}/ppcs").status == 404
    plan = {
        "problems": [{"problem": "Chutes à domicile", "goals": ["Sécuriser le logement"]}],
        "actions": [{"action": "Visite ergothérapeute", "who": "SSIAD", "when": "2026-12-03"}],
        "unmet_goals": [],
    }
    assert api(stack, t, "PUT", f"/v1/dossiers/{did}/ppcs", plan)["version"] == 1
    plan["unmet_goals"] = ["Téléassistance refusée"]
    second = api(stack, t, "PUT", f"/v1/dossiers/{did}/ppcs", plan)
    assert second["version"] == 2
    assert api(stack, t, "GET", f"/v1/dossiers/{did}/ppcs")["unmet_goals"] == [
        "Téléassistance refusée"
    ]


def test_agenda_and_icalendar_exports(any_stack: Stack) -> None:
    stack = any_stack
    coord, nurse, outsider = (stack.register(n) for n in ("coord", "ide", "dehors"))
    t = coord.access_token
    did = new_dossier(stack, t)["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    backwards = api_error(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {"title": "x", "start": "2026-12-01T10:00:00+01:00", "end": "2026-12-01T09:00:00+01:00"},
    )
    assert backwards.status == 400
    rdv = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {
            "title": "Visite à domicile; pansement",
            "start": "2026-12-01T09:30:00+01:00",
            "end": "2026-12-01T10:00:00+01:00",
            "place": "12 rue des Lilas, Albi",
            "participants": [nurse.user_id],
        },
    )
    ctype, ics = _get_text(stack, t, f"/v1/dossiers/{did}/agenda.ics")
    assert ctype.startswith("text/calendar")
    assert ics.startswith("BEGIN:VCALENDAR\r\n") and ics.endswith("END:VCALENDAR\r\n")
    assert f"UID:{rdv['id']}@" in ics and "DTSTART:20261201T083000Z" in ics
    assert "SUMMARY:Visite à domicile\\; pansement" in ics
    _, mine = _get_text(stack, nurse.access_token, "/v1/me/agenda.ics")
    assert f"UID:{rdv['id']}@" in mine
    _, theirs = _get_text(stack, outsider.access_token, "/v1/me/agenda.ics")
    assert "BEGIN:VEVENT" not in theirs
    assert (
        api_error(stack, outsider.access_token, "GET", f"/v1/dossiers/{did}/appointments").status
        == 403
    )


def test_alerts_only_to_the_circle(any_stack: Stack) -> None:
    stack = any_stack
    coord, nurse, outsider = (stack.register(n) for n in ("coord", "ide", "dehors"))
    t = coord.access_token
    did = new_dossier(stack, t)["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    alert = api(stack, t, "POST", f"/v1/dossiers/{did}/alerts", {"text": "Hospitalisation ce jour"})
    assert alert["recipients"] == [nurse.user_id]
    refused = api_error(
        stack, t, "POST", f"/v1/dossiers/{did}/alerts", {"text": "x", "to": [outsider.user_id]}
    )
    assert refused.status == 400 and "hors du cercle" in str(refused)


@pytest.mark.parametrize(("status", "with_ins"), [("QUAL", True), ("PROV", False)])
def test_fhir_export_is_a_valid_bundle_with_ins_only_when_qualified(
    any_stack: Stack, status: str, with_ins: bool
) -> None:
    stack = any_stack
    coord, nurse = stack.register("coord"), stack.register("ide")
    t = coord.access_token
    did = new_dossier(stack, t, identity={**IDENTITY, "identity_status": status})["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    note = api(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": "Note initiale"})
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/notes/{note['id']}/corrections",
        {"text": "Note corrigée"},
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Appeler la pharmacie", "assignee": nurse.user_id, "due": "2026-12-02"},
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {
            "title": "Consultation",
            "start": "2026-12-05T14:00:00Z",
            "end": "2026-12-05T14:30:00Z",
            "participants": [nurse.user_id],
        },
    )
    api(
        stack,
        t,
        "PUT",
        f"/v1/dossiers/{did}/ppcs",
        {
            "problems": [{"problem": "Dénutrition", "goals": ["Reprise de poids"]}],
            "actions": [{"action": "Portage de repas", "who": "CCAS"}],
        },
    )
    ctype, raw = _get_text(stack, t, f"/v1/dossiers/{did}/fhir")
    assert ctype.startswith("application/fhir+json")
    bundle = Bundle.model_validate_json(raw)  # validated against FHIR (R4B models)
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds.count("Patient") == 1 and "CareTeam" in kinds and "CarePlan" in kinds
    assert kinds.count("DocumentReference") == 2 and "Task" in kinds and "Appointment" in kinds
    patient = next(e.resource for e in bundle.entry if e.resource.get_resource_type() == "Patient")
    identifiers = patient.identifier or []
    assert bool(identifiers) is with_ins
    if with_ins:
        assert identifiers[0].system == "urn:oid:1.2.250.1.213.1.4.8"
        assert identifiers[0].value == IDENTITY["ins_matricule"]
    docs = [
        e.resource for e in bundle.entry if e.resource.get_resource_type() == "DocumentReference"
    ]
    statuses = sorted(d.status for d in docs)
    assert statuses == ["current", "superseded"]
    corrected = next(d for d in docs if d.status == "current")
    assert corrected.relatesTo[0].code == "replaces"
    assert corrected.content[0].attachment.data == "Note corrigée".encode()  # decoded by the model
    raw_doc = next(
        e
        for e in json.loads(raw)["entry"]
        if e["resource"]["id"] == f"note-{corrected.id.removeprefix('note-')}"
    )
    data = raw_doc["resource"]["content"][0]["attachment"]["data"]
    assert base64.b64decode(data).decode() == "Note corrigée"
