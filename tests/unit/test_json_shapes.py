"""Answers written once: the JSON schemas of the API are derived from the domain's
TypedDicts (``maillon.shared.json_shapes``), which the serializers return."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import jsonschema
import pytest

from dossier_api.domain import administration, care, consent, vigilance
from dossier_api.domain.models import CarePlan, ConsentEvent, Dossier, IdentityEvent, Structure
from dossier_api.domain.service import DossierService
from dossier_api.domain.shapes import DossierOut, TaskOut
from dossier_api.http import schemas as S
from maillon.shared.json_shapes import DateTime, Schema, schema_of


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
        identity={"birth_name": "MARTIN"},
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
