"""Pathway versions in the store and the console's operations, on a real (SQLite) store:
the YAML seed, a version 2 published for new dossiers while older dossiers keep theirs, a
refused definition that writes nothing, a dry run then a migration, each change audited
with before and after, restore, YAML round trip keeping unknown sections, and the one
rule of who administers a structure."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain import pathway_store
from dossier_api.domain.access import Caller
from dossier_api.domain.administration import Administration, manages_structure
from dossier_api.domain.core import ApiError
from dossier_api.domain.models import AuditEntry, RoomSyncJob, Structure, StructureStaff
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.service import DossierService
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine
from tests.harness.bot import deployment, professionals

ADMIN = Caller("@admin:sante.test", True, "token")
REFERENT = Caller("@ref:sante.test", False, "token")
IDENTITY = {"birth_name": "Martin", "first_names": "Jeanne", "sex": "F", "birth_date": "1941-03-12"}


@pytest.fixture
def stores(tmp_path: Path) -> tuple[DossierService, Administration, Any]:
    install_key_ring(
        KeyRing(
            [DataKey("k1", base64.b64encode(bytes(range(32))).decode())],
            BlindIndex(bytes(range(32, 64))),
        )
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    pathway_store.bind(engine)
    professionals(engine, REFERENT.user_id)
    deploy = deployment(tmp_path / "deployment", "sante.test")
    return DossierService(engine, deploy), Administration(engine, deploy, component="admin"), engine


def _v2(admin: Administration) -> dict[str, Any]:
    definition = copy.deepcopy(admin.definition(ADMIN, "dac", None)["definition"])
    definition["room_template"]["topic"] = "Coordination — nouveau modèle"
    definition["roles_allowed"].append("AID")  # relatives: the room now admits them
    definition["room_template"]["allow_patient"] = True
    definition["forms"][0]["fields"].append(
        {"id": "aidant_principal", "label": "Aidant principal", "type": "text"}
    )
    definition["delegates_manage_circle"] = True  # a section the form builder does not edit
    return definition


def _audit(engine: Any, action: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_versions_dossiers_dry_run_and_migration(
    stores: tuple[DossierService, Administration, Any],
) -> None:
    service, admin, engine = stores
    [dac] = [p for p in admin.pathways(ADMIN) if p["id"] == "dac"]
    assert dac["published"] == 1 and dac["versions"][0]["author"] == "config/pathways"
    old = service.create_dossier(REFERENT, {"pathway": "dac", "identity": IDENTITY})
    assert old["pathway_version"] == 1

    with pytest.raises(ApiError) as refused:
        admin.create_version(ADMIN, {**_v2(admin), "colour": 1}, publish=True)
    assert refused.value.status == 400 and "champ « colour »" in refused.value.message

    created = admin.create_version(ADMIN, _v2(admin), publish=True)
    assert created["version"] == 2 and PATHWAYS["dac"].version == 2
    other = {**IDENTITY, "birth_name": "Durand", "birth_date": "1950-07-01"}
    new = service.create_dossier(REFERENT, {"pathway": "dac", "identity": other})
    assert new["pathway_version"] == 2
    assert service.get_dossier(REFERENT, old["id"])["pathway_version"] == 1
    assert "AID" in PATHWAYS.version("dac", 2).roles_allowed  # type: ignore[union-attr]
    assert "AID" not in PATHWAYS.version("dac", 1).roles_allowed  # type: ignore[union-attr]
    refused_row, row = _audit(engine, "admin.pathway.create")
    assert not refused_row.allowed and "colour" in (refused_row.detail or "")
    detail = json.loads(row.detail or "")
    assert detail["avant"]["version"] == 1 and detail["apres"]["version"] == 2
    assert "AID" in detail["apres"]["roles_allowed"]

    plan = admin.migration_plan(ADMIN, "dac", 2)
    [planned] = plan["dossiers"]
    assert planned["dossier_id"] == old["id"] and planned["from_version"] == 1
    assert (
        "formulaire evaluation-autonomie : champ ajouté « aidant_principal »"
        in (planned["changes"])
    )
    assert "rôle ajouté : AID" in planned["changes"]
    [room] = planned["rooms"]
    assert any(c.startswith("sujet : ") and "nouveau modèle" in c for c in room["changes"])
    assert "niveaux d'accès : patient et proches admis" in room["changes"]

    assert admin.migrate(ADMIN, "dac", 2) == [old["id"]]
    assert service.get_dossier(REFERENT, old["id"])["pathway_version"] == 2
    assert admin.migration_plan(ADMIN, "dac", 2)["dossiers"] == []
    [moved] = _audit(engine, "pathway.migrate")
    assert moved.dossier_id == old["id"]
    assert json.loads(moved.detail or "") == {"avant": {"version": 1}, "apres": {"version": 2}}
    with Session(engine) as session:
        jobs = session.scalars(select(RoomSyncJob).where(RoomSyncJob.dossier_id == old["id"]))
        assert any(j.subject == "rooms" and j.done_at is None for j in jobs)

    restored = admin.restore(ADMIN, "dac", 1)
    assert restored["version"] == 3 and "AID" not in PATHWAYS["dac"].roles_allowed
    exported = yaml.safe_load(admin.export_yaml(ADMIN, "dac", 2))
    assert exported["delegates_manage_circle"] is True and exported["name_en"]  # kept as written


def test_a_malformed_import_is_refused_naming_the_field_and_nothing_is_published(
    stores: tuple[DossierService, Administration, Any],
) -> None:
    _, admin, engine = stores
    good = yaml.safe_load(admin.export_yaml(ADMIN, "dac", None))
    cases = {
        "forms[0].fields[0].type": ("fields", 0, "type", "couleur"),
        "forms[0].fields[1].id": ("fields", 1, "id", "gir"),
    }
    for field, (_, index, key, value) in cases.items():
        bad = copy.deepcopy(good)
        bad["forms"][0]["fields"][index][key] = value
        with pytest.raises(ApiError) as exc:
            admin.import_yaml(ADMIN, yaml.safe_dump(bad, allow_unicode=True))
        assert exc.value.status == 400 and f"champ « {field} »" in exc.value.message
    bad = {**good, "roles_allowed": ["COORD", "SORCIER"]}
    with pytest.raises(ApiError) as exc:
        admin.import_yaml(ADMIN, yaml.safe_dump(bad))
    assert "champ « roles_allowed »" in exc.value.message and "SORCIER" in exc.value.message
    [dac] = [p for p in admin.pathways(ADMIN) if p["id"] == "dac"]
    assert [v["version"] for v in dac["versions"]] == [1], "nothing written"
    refusals = _audit(engine, "admin.pathway.create") + _audit(engine, "admin.pathway.import")
    assert len(refusals) == 3 and not any(r.allowed for r in refusals)


def test_only_administrators_and_the_structures_managers(
    stores: tuple[DossierService, Administration, Any],
) -> None:
    _, admin, engine = stores
    with Session(engine) as session, session.begin():
        session.add_all([Structure(id="s1", name="DAC Nord"), Structure(id="s2", name="CPTS")])
        session.add(StructureStaff(structure_id="s1", user_id="@m:sante.test", role="manager"))
        session.add(StructureStaff(structure_id="s2", user_id="@m:sante.test", role="member"))
    with Session(engine) as session:
        manager = Caller("@m:sante.test", False, "token")
        assert manages_structure(session, manager, "s1")
        assert not manages_structure(session, manager, "s2")
        assert manages_structure(session, ADMIN, "s2")
        assert not manages_structure(session, REFERENT, "s1")
    with pytest.raises(ApiError) as exc:
        admin.pathways(REFERENT)
    assert exc.value.status == 403
    [refused] = _audit(engine, "admin.pathways.read")
    assert refused.allowed is False and refused.actor == REFERENT.user_id
