"""Answers written once: the JSON schemas of the API are derived from the domain's
TypedDicts (``maillon.shared.json_shapes``), which the serializers return."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import jsonschema
import pytest
from sqlalchemy.orm import Session

from dossier_api.domain import administration, care, consent, pathway_store, vigilance
from dossier_api.domain.access import Caller
from dossier_api.domain.directory_import import import_extract
from dossier_api.domain.models import (
    CarePlan,
    ConsentEvent,
    Dossier,
    IdentityEvent,
    RoomActivity,
    Structure,
)
from dossier_api.domain.service import DossierService
from dossier_api.domain.shapes import DossierOut, TaskOut
from dossier_api.http import schemas as S
from dossier_api.http.enrolment import INVITATION, INVITATIONS
from maillon.shared.json_shapes import DateTime, Schema, schema_of
from tests.harness.annuaire import person, write_activite, write_mssante
from tests.harness.bot import deployment, professionals, store


class Inner(TypedDict):
    n: int


class Sample(TypedDict):
    name: Annotated[str, Schema(description="un nom", max_length=10)]
    when: DateTime | None
    kind: Literal["a", "b"]
    tags: list[str]
    extra: dict[str, Any]
    counts: dict[str, int]
    inner: Inner
    maybe: NotRequired[bool]


def test_a_typed_dict_becomes_its_json_schema() -> None:
    assert schema_of(Sample) == {
        "type": "object",
        "required": ["name", "when", "kind", "tags", "extra", "counts", "inner"],
        "properties": {
            "name": {"type": "string", "description": "un nom", "maxLength": 10},
            "when": {"type": "string", "format": "date-time", "nullable": True},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object", "additionalProperties": True},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "inner": {
                "type": "object",
                "required": ["n"],
                "properties": {"n": {"type": "integer"}},
                "additionalProperties": False,
            },
            "maybe": {"type": "boolean"},
        },
        "additionalProperties": False,
    }


def test_what_has_no_json_shape_is_refused() -> None:
    with pytest.raises(TypeError, match=r"X \| None"):
        schema_of(int | str)
    with pytest.raises(TypeError, match="no JSON shape"):
        schema_of(set[int])


def test_the_api_schemas_are_the_domain_shapes() -> None:
    assert S.DOSSIER == schema_of(DossierOut)
    assert S.TASK == schema_of(TaskOut)
    assert set(S.DOSSIER["required"]) == set(DossierOut.__annotations__)


def _draft7(schema: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` as JSON Schema draft 7 says it (for jsonschema)."""
    if isinstance(schema, dict):
        out = {k: _draft7(v) for k, v in schema.items() if k != "nullable"}
        if schema.get("nullable"):
            out["type"] = [schema["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(schema, list):
        return [_draft7(v) for v in schema]
    return schema


def test_a_serialized_dossier_matches_its_schema() -> None:
    """What the serializer writes from a stored dossier is what the schema says."""
    dossier = Dossier(
        id="0123456789abcdef0123456789abcdef",
        pathway="dac",
        pathway_version=1,
        structure_id=None,
        status="open",
        status_reason=None,
        referent="@aline:exemple.fr",
        opened_at=dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
        closed_at=None,
        identity={
            "birth_name": "MARTIN",
            "first_names": "Jeanne",
            "sex": "F",
            "birth_date": "1941-03-12",
        },
        identity_status="PROV",
        consent_informed=True,
        consent_share_outside=False,
        opposition=False,
        mail_localpart="dossier-0123",
        room_id=None,
    )
    service = DossierService.__new__(DossierService)
    service._mail_domain = "mail.exemple.fr"

    class Access:
        basis = "coordinator"

    out = service.to_json(dossier, Access())  # type: ignore[arg-type]
    jsonschema.validate(out, _draft7(S.DOSSIER))
    assert out["reference"] == "012345"
    broken = {**out, "status": "perdu"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _draft7(S.DOSSIER))
    with pytest.raises(jsonschema.ValidationError):  # the identity's keys are its own
        jsonschema.validate(
            {**out, "identity": {**out["identity"], "nom": "x"}}, _draft7(S.DOSSIER)
        )


def test_serialized_histories_plans_and_structures_match_their_schemas() -> None:
    """Each serializer's answer, from stored rows, validates against the schema the OpenAPI
    document publishes (the structure's had keys the hand-written schema refused)."""
    at = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    identity = vigilance.event_json(
        IdentityEvent(
            kind="status",
            at=at,
            actor="@aline:exemple.fr",
            from_status="PROV",
            to_status="VALI",
            document_kind="passeport",
            checked_by="@aline:exemple.fr",
            checked_at=at,
            ins_source=None,
            candidates=None,
            reason=None,
        )
    )
    jsonschema.validate(
        {"identity_status": "VALI", "history": [identity]}, _draft7(S.IDENTITY_HISTORY)
    )
    consent_event = consent.event_json(
        ConsentEvent(at=at, actor="@aline:exemple.fr", field="opposition", value=True, note=None)
    )
    history = {
        "consent": {"informed": True, "share_outside": False, "opposition": True},
        "history": [consent_event],
    }
    jsonschema.validate(history, _draft7(S.CONSENT_HISTORY))
    attestation = consent.event_json(
        ConsentEvent(at=at, actor="@aline:exemple.fr", field="attestation", value=True, note="x")
    )
    jsonschema.validate({**history, "history": [attestation]}, _draft7(S.CONSENT_HISTORY))
    plan = CarePlan(
        dossier_id="d",
        version=2,
        author="@aline:exemple.fr",
        created_at=at,
        plan={
            "problems": [{"problem": "chutes", "goals": ["marcher"]}],
            "actions": [{"action": "kiné", "who": "@kine:exemple.fr", "when": "2026-12-10"}],
            "unmet_goals": [],
        },
    )
    people = {"@kine:exemple.fr": {"display_name": "Karim Kiné", "profession": "kinésithérapeute"}}
    ppcs = care._ppcs_json(plan, people)
    jsonschema.validate(ppcs, _draft7(S.PPCS))
    assert "expectations" not in ppcs
    structure = administration._structure_json(
        Structure(
            id="s1",
            name="DAC Tarn",
            kind="dac",
            slug="dac-tarn",
            account=None,
            mssante="dac@tarn.mssante.fr",
        ),
        "sante.exemple.fr",
    )
    assert structure["address"] == "@structure.dac-tarn:sante.exemple.fr"
    jsonschema.validate(structure, _draft7(S.STRUCTURE))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**structure, "kind": "club"}, _draft7(S.STRUCTURE))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**consent_event, "field": "humeur"},
            _draft7(S.CONSENT_HISTORY["properties"]["history"]["items"]),
        )


def test_the_shipped_pathways_match_their_schema() -> None:
    listed = care.pathways_json()
    assert {p["id"] for p in listed} >= {"dac", "cpts", "pco-tnd"}
    jsonschema.validate({"pathways": listed}, _draft7(S.PATHWAYS))
    field = next(p for p in listed if p["forms"])["forms"][0]["fields"][0]
    broken = {**field, "required": "oui"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            broken,
            _draft7(
                S.PATHWAYS["properties"]["pathways"]["items"]["properties"]["forms"]["items"][
                    "properties"
                ]["fields"]["items"]
            ),
        )


# -- answers built by the service on a real (SQLite) store ---------------------------------

SERVER = "sante.test"
ADMIN = Caller(f"@admin:{SERVER}", True, "token")
COORD = Caller(f"@coord:{SERVER}", False, "token")
NURSE, CHIEF = f"@ide:{SERVER}", f"@cheffe:{SERVER}"
NURSE_CALLER = Caller(NURSE, False, "token")
STRANGER = f"@inconnu:{SERVER}"  # an account the directory does not know
EXTRACT = 12


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> DossierService:
    root = tmp_path_factory.mktemp("shapes")
    engine = store(f"sqlite:///{root / 'store.db'}")
    pathway_store.bind(engine)
    professionals(engine, COORD.user_id, NURSE, CHIEF)
    activite = write_activite(root / "PS_LibreAcces_Personne_activite_202612010000.txt", EXTRACT)
    mss = root / "Extraction_Correspondance_MSSante_202612010000.txt"
    write_mssante(mss, EXTRACT, every=1)
    for path in (activite.path, mss):
        import_extract(engine, path)
    return DossierService(engine, deployment(root / "deployment", SERVER))


def _dossier(service: DossierService, birth_name: str) -> str:
    identity = {"birth_name": birth_name, "first_names": "Jeanne", "sex": "F"}
    body = {"pathway": "dac", "identity": {**identity, "birth_date": "1941-03-12"}}
    return str(service.create_dossier(COORD, body)["id"])


def _valid(answer: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(answer, _draft7(schema))


def _refused(answer: Any, schema: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, _draft7(schema))


def test_a_team_and_its_solicitation_match_their_schemas(service: DossierService) -> None:
    """A team with its rota, then a solicitation sent, accepted and answered: each answer of
    the service validates against the published schema (both were open objects)."""
    rota = {
        "weekly": [{"day": "mardi", "start": "08:00", "end": "18:00", "members": [NURSE]}],
        "exceptions": [{"date": "2026-12-08", "members": [NURSE], "level": 2}],
    }
    team = service.add_team(
        ADMIN,
        {
            "slug": "usp-shapes",
            "name": "Équipe mobile de soins palliatifs",
            "level": "departementale",
            "members": [
                {"user_id": NURSE, "role": "infirmière"},
                {"user_id": CHIEF, "role": "cadre", "coordinator": True},
                {"user_id": STRANGER, "role": "médecin"},
            ],
            "rota": rota,
        },
    )
    _valid(team, S.TEAM)
    _valid({"teams": service.teams(COORD)}, S.TEAMS)
    assert team["rota"] == rota
    unknown = next(m for m in team["members"] if m["user_id"] == STRANGER)
    assert unknown["display_name"] is None  # the key is there, empty: not left out
    _refused({**team, "level": "nationale"}, S.TEAM)
    _refused({**team, "rota": {"weekly": [{"day": "lundi"}]}}, S.TEAM)  # no members
    _refused({k: v for k, v in team.items() if k != "address"}, S.TEAM)

    sent = service.solicit(
        COORD,
        _dossier(service, "Martin"),
        {"team": "usp-shapes", "reason": "douleur", "attested": True},
    )
    _valid(sent, S.SOLICITATION)
    assert sent["accepted_by"] is None and sent["report"] is None
    told = sent["notified"][0]
    accepted = service.accept_solicitation(Caller(told, False, "token"), sent["id"])
    _valid(accepted, S.SOLICITATION)
    report = {"question": "douleur ?", "elements": "EVA 7", "advice": "rotation d'opioïde"}
    answered = service.answer_solicitation(Caller(told, False, "token"), sent["id"], report)
    _valid(answered, S.SOLICITATION)
    _valid(
        {"solicitations": service.my_solicitations(Caller(told, False, "token"))}, S.SOLICITATIONS
    )
    assert answered["report"] is not None and answered["report"]["author"] == told
    assert [e["status"] for e in answered["events"]] == ["envoyee", "acceptee", "repondue"]
    _refused({**answered, "status": "perdue"}, S.SOLICITATION)
    _refused({**answered, "report": {**answered["report"], "avis": "x"}}, S.SOLICITATION)
    _refused({**answered, "requester": {"user_id": COORD.user_id}}, S.SOLICITATION)


def test_directory_results_match_their_schema(service: DossierService) -> None:
    listed = person(0)
    page = service.search_directory(COORD, q=listed.last_name)
    assert listed.identifier in [r["rpps"] for r in page["results"]]
    _valid(page, S.DIRECTORY_PAGE)
    found = page["results"][0]
    assert found["activities"] and found["mssante"]
    _refused({**found, "activities": [{"ville": "Albi"}]}, S.DIRECTORY_RESULT)
    _refused({**page, "results": [{**found, "nom": "x"}]}, S.DIRECTORY_PAGE)


def test_favourites_and_invitations_match_their_schemas(service: DossierService) -> None:
    """A favourites group (an account, an RPPS without one), invited into a dossier; the
    invitation it sends and the list of the dossier's invitations."""
    without_account = next(p for p in (person(i) for i in range(EXTRACT)) if p.id_type == "8")
    group = service.create_favourites(
        COORD,
        {
            "name": "Équipe de ville",
            "members": [
                {"user_id": NURSE, "role": "IDE"},
                {"rpps": without_account.identifier, "role": "KINE"},
            ],
        },
    )
    _valid(group, S.FAVOURITES)
    _valid({"groups": service.favourites(COORD)}, S.FAVOURITES_LIST)
    _refused({**group, "members": [{**group["members"][0], "role": "ROI"}]}, S.FAVOURITES)
    dossier_id = _dossier(service, "Bernard")
    invited = service.invite_favourites(COORD, dossier_id, group["id"], {})
    _valid(invited, S.FAVOURITES_INVITED)
    assert invited["counts"] == {"added": 1, "invited": 1, "already": 0, "refused": 0}
    _refused(
        {**invited, "results": [{**invited["results"][0], "outcome": "perdu"}]},
        S.FAVOURITES_INVITED,
    )
    invitations = service.invitations(COORD, dossier_id)
    assert [i["rpps"] for i in invitations] == [without_account.identifier]
    _valid({"invitations": invitations}, INVITATIONS)
    cancelled = service.cancel_invitation(COORD, dossier_id, invitations[0]["id"])
    _valid(cancelled, INVITATION)
    assert cancelled["status"] == "cancelled"
    _refused({**cancelled, "status": "oubliée"}, INVITATION)
    _valid(service.delete_favourites(COORD, group["id"]), S.FAVOURITES_DELETED)


def test_lists_worklist_activity_and_admin_answers_match_their_schemas(
    service: DossierService,
) -> None:
    """The lists and answers the handlers wrap (a dossier's work, my worklist, room
    activity, delegations, legal hold, retention, a merge) validate against the schemas."""
    dossier_id = _dossier(service, "Durand")
    soon = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    task = service.add_task(
        COORD, dossier_id, {"title": "Pansement", "assignee": COORD.user_id, "due": soon}
    )
    _valid(
        {"members": [service.add_member(COORD, dossier_id, {"user_id": NURSE, "role": "IDE"})]},
        S.CIRCLE,
    )
    service.add_alert(NURSE_CALLER, dossier_id, {"text": "chute", "to": [COORD.user_id]})
    with Session(service._engine) as session, session.begin():
        session.add(
            RoomActivity(
                event_id="$join",
                dossier_id=dossier_id,
                room_id="!salle:sante.test",
                kind="join",
                sender=NURSE,
                subject=NURSE,
                at=dt.datetime.now(dt.UTC),
            )
        )
    attachment = {"name": "ordonnance.pdf", "media_type": "application/pdf", "size": 1200}
    service.add_note(COORD, dossier_id, {"text": "Pansement fait", "attachments": [attachment]})
    notes = service.notes(COORD, dossier_id)
    assert notes[0]["attachments"] == [attachment]
    _valid({"notes": notes}, S.NOTES)
    _refused({"notes": [{**notes[0], "attachments": [{"name": "x"}]}]}, S.NOTES)
    _valid(service.get_dossier(COORD, dossier_id), S.DOSSIER)
    _valid({"tasks": [task]}, S.TASKS)
    _valid(service.my_dossiers_page(COORD, 50, 0), S.DOSSIER_LIST)
    worklist = service.worklist(COORD)
    assert worklist["counts"]["tasks"] >= 1 and worklist["counts"]["alerts"] >= 1
    _valid(worklist, S.WORKLIST)
    _refused({**worklist, "counts": {**worklist["counts"], "notes": 1}}, S.WORKLIST)
    _refused({**worklist, "tasks": [{**worklist["tasks"][0], "overdue": "non"}]}, S.WORKLIST)
    activity = service.activity(COORD, dossier_id)
    assert [h["kind"] for h in activity["history"]] == ["join"]
    _valid(activity, S.ACTIVITY)
    _refused({**activity, "history": [{**activity["history"][0], "kind": "wave"}]}, S.ACTIVITY)
    _valid(service.timeline(COORD, dossier_id), S.TIMELINE)
    _valid(service.search(COORD, dossier_id, "pansement"), S.SEARCH)
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    service.delegate(COORD, {"to_user": NURSE, "until": until})
    delegations = service.delegations(COORD)
    assert delegations["given"] and not delegations["received"]
    _valid(delegations, S.DELEGATIONS)
    _valid(service.set_legal_hold(ADMIN, dossier_id, True), S.LEGAL_HOLD)
    _valid(service.set_legal_hold(ADMIN, dossier_id, False), S.LEGAL_HOLD)
    _valid(service.run_retention(ADMIN, dry_run=True), S.RETENTION)
    identity = {"birth_name": "Durand", "first_names": "Jeanne", "sex": "F"}
    twin = {
        "pathway": "dac",
        "identity": {**identity, "birth_date": "1941-03-12"},
        "duplicate_override": {"reason": "même personne, ouverte deux fois"},
    }
    other = str(service.create_dossier(COORD, twin)["id"])
    merged = service.merge_dossiers(ADMIN, dossier_id, other, "même personne")
    assert merged["kept"] == dossier_id
    _valid(merged, S.MERGE)
    _refused({**merged, "moved": {"notes": "deux"}}, S.MERGE)
