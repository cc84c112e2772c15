"""The administration console in a real browser (Debian's Chromium driven by Playwright)
against a real stack (Synapse, dossier service, appservice) on PostgreSQL: an administrator
builds version 2 of a pathway (a new form field, a new role, a new room topic) after a
malformed one was refused naming the field; a coordinator opens a dossier on it and its
room follows the new template (read back through Synapse's client API); a dossier opened on
version 1 is migrated after a dry run listing the change; the audit holds both actions with
before and after; a plain professional gets 403 on every console page (audited); axe-core
finds no serious or critical violation."""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from playwright.async_api import Browser, Page, expect

from maillon.shared.circle import COORDINATOR_LEVEL, DOSSIER_EVENT
from maillon.shared.homeserver_client import register_user, request_json
from tests.clients.test_workspace import axe_scan, base, join, login, new_page
from tests.harness.annuaire import write_activite
from tests.harness.circle import wait_for
from tests.harness.dossier import IDENTITY, api, audit_rows, dossier_body
from tests.harness.hydrogen import Person, register_person
from tests.harness.stack import Stack, postgres_stack

pytestmark = pytest.mark.postgres

NEW_TOPIC = "Coordination de proximité — secret partagé, cercle de soins uniquement."
ADMIN_PAGES = [
    ("GET", "/admin/"),
    ("GET", "/admin/parcours"),
    ("GET", "/admin/parcours/dac/nouvelle-version"),
    ("GET", "/admin/parcours/dac/versions/1.yaml"),
    ("GET", "/admin/parcours/dac/migration?version=1"),
    ("POST", "/admin/parcours/dac/versions"),
    ("POST", "/admin/parcours/dac/versions/1/publier"),
    ("POST", "/admin/parcours/dac/migration?version=1"),
    ("POST", "/admin/parcours/import"),
    ("GET", "/admin/journal"),
    ("GET", "/admin/journal.csv"),
    ("GET", "/admin/structures"),
    ("GET", "/admin/annuaire"),
    ("POST", "/admin/annuaire"),
    ("POST", "/admin/structures"),
    ("GET", "/admin/federation"),
    ("POST", "/admin/federation"),
    ("GET", "/admin/equipes"),
    ("GET", "/admin/equipes/nulle-part"),
    ("POST", "/admin/equipes"),
    ("POST", "/admin/equipes/nulle-part"),
]


@pytest.fixture(scope="module")
def admin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with postgres_stack(tmp_path_factory.mktemp("stack-admin")) as stack:
        yield stack


def administrator(stack: Stack) -> Person:
    password = secrets.token_urlsafe(12)
    account = register_user(
        stack.url,
        stack.deployment.secrets.registration_shared_secret,
        f"admin{secrets.token_hex(3)}",
        password,
        admin=True,
        displayname="Adèle Administratrice",
    )
    stack.bind_directory(account.user_id, "cadre de santé", "Adèle Administratrice")
    return Person(account.user_id, password, account.access_token, account.device_id)


def room_state(stack: Stack, person: Person, room_id: str, event_type: str) -> dict[str, Any]:
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{quote(event_type)}/"
    return dict(request_json("GET", stack.url + path, token=person.access_token))


async def versions_of(page: Page, stack: Stack, pathway: str) -> list[str]:
    """The versions the console lists, read in another tab (the page keeps its state)."""
    tab = await page.context.new_page()
    try:
        await tab.goto(base(stack) + "/admin/parcours")
        section = tab.locator(f"section[aria-labelledby='p-{pathway}']")
        return [t.strip() for t in await section.locator("tbody th").all_inner_texts()]
    finally:
        await tab.close()


async def test_pathway_version_new_dossier_dry_run_migration_and_audit(
    admin_stack: Stack, browser: Browser
) -> None:
    stack = admin_stack
    admin = administrator(stack)
    coord = register_person(stack, "coord", "Aline Coordinatrice", "infirmière coordinatrice")
    relative = register_person(stack, "aidant", "Paul Aidant", profession=None)
    old = api(stack, coord.access_token, "POST", "/v1/dossiers", dossier_body())
    assert old["pathway_version"] == 1 and old["room_id"]
    join(stack, coord, old["room_id"])

    _, page = await new_page(browser)
    await login(page, stack, admin)
    assert await versions_of(page, stack, "dac") == ["v1"]
    await axe_scan(page, "parcours")

    # A malformed import (unknown field type, role outside the vocabulary): refused, named.
    text = await page.evaluate(
        "async () => (await fetch('/admin/parcours/dac/versions/1.yaml')).text()"
    )
    definition = yaml.safe_load(text)
    assert definition["id"] == "dac" and definition["version"] == 1
    for change, named in (
        (lambda d: d["forms"][0]["fields"][0].update(type="couleur"), "forms[0].fields[0].type"),
        (lambda d: d["roles_allowed"].append("SORCIER"), "roles_allowed"),
    ):
        bad = yaml.safe_load(text)
        change(bad)
        await page.goto(base(stack) + "/admin/parcours")
        await page.get_by_label("ou texte YAML").fill(yaml.safe_dump(bad, allow_unicode=True))
        await page.get_by_role("button", name="Importer comme brouillon").click()
        await expect(page.locator("#errors")).to_contain_text(f"champ « {named} »")
    assert await versions_of(page, stack, "dac") == ["v1"], "nothing written"

    # The form builder: a duplicate field id first (refused, named), then version 2.
    await page.goto(base(stack) + "/admin/parcours/dac/nouvelle-version")
    await axe_scan(page, "constructeur")
    await page.locator("#form0_field5_id").fill("gir")  # the blank field after the 5 of v1
    await page.locator("#form0_field5_label").fill("Aidant principal")
    await page.get_by_label("Sujet").fill(NEW_TOPIC)
    await page.get_by_label("Patient et proches admis").check()
    await page.get_by_label("aidant (AID)").check()
    await page.get_by_role("button", name="Enregistrer et publier").click()
    await expect(page.locator("#errors")).to_contain_text("champ « forms[0].fields[5].id »")
    await expect(page.locator("#errors")).to_contain_text("« gir » en double")
    assert await versions_of(page, stack, "dac") == ["v1"], "nothing published"

    # The refused definition is shown again as typed: only the id is to correct.
    await page.locator("#form0_field5_id").fill("aidant_principal")
    await page.locator("#form0_field5_help").fill("Nom et lien avec la personne")
    await page.get_by_role("button", name="Aperçu").click()
    await expect(page.locator("#preview")).to_contain_text(NEW_TOPIC)
    await axe_scan(page, "aperçu")
    await page.get_by_role("button", name="Enregistrer et publier").click()
    await expect(page.get_by_role("status")).to_contain_text("dac-2")
    assert await versions_of(page, stack, "dac") == ["v2", "v1"]

    # A dossier opened now follows version 2: its room has the new topic, relatives enter.
    other = {**IDENTITY, "birth_name": "Durand", "birth_date": "1950-07-01"}
    new = api(stack, coord.access_token, "POST", "/v1/dossiers", dossier_body(identity=other))
    assert new["pathway_version"] == 2
    join(stack, coord, new["room_id"])
    assert room_state(stack, coord, new["room_id"], "m.room.topic")["topic"] == NEW_TOPIC
    name = room_state(stack, coord, new["room_id"], "m.room.name")["name"]
    assert name.endswith(new["id"][:6].upper())
    assert room_state(stack, coord, new["room_id"], DOSSIER_EVENT)["allow_patient"] is True
    levels = room_state(stack, coord, new["room_id"], "m.room.power_levels")
    assert levels["users"].get(coord.user_id) == COORDINATOR_LEVEL
    form = api(stack, coord.access_token, "GET", "/v1/pathways")
    [dac] = [p for p in form["pathways"] if p["id"] == "dac"]
    assert "aidant_principal" in [f["id"] for f in dac["forms"][0]["fields"]]
    member = {"user_id": relative.user_id, "role": "AID"}
    api(stack, coord.access_token, "POST", f"/v1/dossiers/{new['id']}/circle", member)
    assert room_state(stack, coord, old["room_id"], "m.room.topic")["topic"] != NEW_TOPIC

    # The dossier on version 1: dry run listing the change, then the migration.
    await page.goto(base(stack) + "/admin/parcours")
    dac_section = page.locator("section[aria-labelledby='p-dac']")
    await dac_section.get_by_role("link", name="Migrer les dossiers").click()
    dry_run = page.locator("#dry-run")
    row = dry_run.locator("tr", has_text=old["id"][:6].upper())
    await expect(row).to_contain_text("sujet : « ")
    await expect(row).to_contain_text(f"→ « {NEW_TOPIC} »")
    await expect(row).to_contain_text("champ ajouté « aidant_principal »")
    await expect(row).to_contain_text("rôle ajouté : AID")
    await expect(dry_run.locator("tr", has_text=new["id"][:6].upper())).to_have_count(0)
    await axe_scan(page, "migration")
    await page.get_by_role("button", name="Appliquer la migration").click()
    await expect(page.locator("#migrated")).to_contain_text("1")

    def migrated() -> bool:
        topic = room_state(stack, coord, old["room_id"], "m.room.topic")
        return bool(topic.get("topic") == NEW_TOPIC)

    await wait_for(migrated, "the old dossier's room follows version 2", timeout=30)
    assert (
        api(stack, coord.access_token, "GET", f"/v1/dossiers/{old['id']}")["pathway_version"] == 2
    )

    # Both actions audited with before and after.
    [created] = [r for r in audit_rows(stack, "admin.pathway.create") if r.allowed]
    detail = json.loads(created.detail or "")
    assert created.actor == admin.user_id
    assert detail["avant"]["version"] == 1 and detail["apres"]["version"] == 2
    assert detail["avant"]["room_template"]["topic"] != NEW_TOPIC
    assert detail["apres"]["room_template"]["topic"] == NEW_TOPIC
    trail = api(stack, coord.access_token, "GET", f"/v1/dossiers/{old['id']}/audit")["entries"]
    [moved] = [e for e in trail if e["action"] == "pathway.migrate"]
    assert json.loads(moved["detail"]) == {"avant": {"version": 1}, "apres": {"version": 2}}
    assert moved["actor"] == admin.user_id

    # The audit browser shows both, with before and after; its CSV says the same.
    await page.goto(base(stack) + f"/admin/journal?dossier={old['id']}")
    journal = page.locator("#journal")
    await expect(journal.locator("tr", has_text="pathway.migrate")).to_contain_text(
        "Adèle Administratrice"
    )
    await axe_scan(page, "journal")
    await page.goto(base(stack) + "/admin/journal?composant=admin")
    made = journal.locator("tr", has_text="admin.pathway.create").filter(has_text="autorisé")
    await made.locator("summary").click()
    await expect(made.locator("pre")).to_contain_text('"avant"')
    await expect(made.locator("pre")).to_contain_text(NEW_TOPIC)
    exported = await page.evaluate(
        "async () => (await fetch('/admin/journal.csv?dossier=" + old["id"] + "')).text()"
    )
    rows = list(csv.DictReader(io.StringIO(exported)))
    [csv_moved] = [r for r in rows if r["action"] == "pathway.migrate"]
    assert json.loads(csv_moved["détail"])["apres"] == {"version": 2}
    assert {r["dossier"] for r in rows} == {old["id"]}


async def test_a_plain_professional_gets_403_on_every_console_page(
    admin_stack: Stack, browser: Browser
) -> None:
    stack = admin_stack
    pro = register_person(stack, "pro", "Pierre Professionnel", "kinésithérapeute")
    _, page = await new_page(browser)
    await login(page, stack, pro)
    token = await page.locator("form[action='/logout'] input[name=csrf]").get_attribute("value")
    assert token
    before = len(audit_rows(stack, "admin.home"))
    for method, path in ADMIN_PAGES:
        if method == "GET":
            response = await page.goto(base(stack) + path)
            assert response is not None and response.status == 403, path
            await expect(page.get_by_role("alert")).to_contain_text("réservée aux administrateurs")
        else:
            status = await page.evaluate(
                """async ([path, token]) => (await fetch(path, {method: "POST",
                    headers: {"X-CSRF-Token": token}})).status""",
                [path, token],
            )
            assert status == 403, path
    await page.goto(base(stack) + "/admin/")
    await axe_scan(page, "refus")
    refused = audit_rows(stack, "admin.home")
    assert len(refused) > before and all(not r.allowed for r in refused)
    assert {r.actor for r in refused[before:]} == {pro.user_id}
    for action in ("admin.pathways.read", "admin.pathway.create", "admin.migration.apply"):
        assert any(r.actor == pro.user_id and not r.allowed for r in audit_rows(stack, action))


async def test_structures_and_a_managers_audit_of_their_structure_only(
    admin_stack: Stack, browser: Browser
) -> None:
    stack = admin_stack
    admin = administrator(stack)
    manager = register_person(stack, "manager", "Marc Manager", "cadre de santé")
    token = admin.access_token
    name = f"DAC Nord {secrets.token_hex(2)}"
    theirs = api(stack, token, "POST", "/v1/structures", {"name": f"CPTS {secrets.token_hex(2)}"})

    # The administrator creates the structure, its account and address, its manager.
    _, page = await new_page(browser)
    await login(page, stack, admin)
    await page.goto(base(stack) + "/admin/structures")
    await page.get_by_label("Nom", exact=True).fill(name)
    await page.get_by_label("Type", exact=True).select_option("dac")
    await page.get_by_role("button", name="Créer la structure").click()
    heading = page.get_by_role("heading", name=name, level=2)
    await expect(heading).to_be_visible()
    mine_id = str(await heading.get_attribute("id"))[2:]
    section = page.locator(f"section[aria-labelledby='s-{mine_id}']")
    await section.get_by_label("Adresse MSSanté").fill(
        "dac@nord"
    )  # the browser takes it, the server does not
    await section.get_by_role("button", name="Enregistrer compte et adresse").click()
    await expect(page.locator("#errors")).to_contain_text("adresse MSSanté invalide")
    section = page.locator(f"section[aria-labelledby='s-{mine_id}']")
    await section.get_by_label("Adresse MSSanté").fill("dac-nord@dac.mssante.fr")
    await section.get_by_label("Compte de la structure").fill("@dac.nord:localhost")
    await section.get_by_role("button", name="Enregistrer compte et adresse").click()
    await expect(section.get_by_label("Adresse MSSanté")).to_have_value("dac-nord@dac.mssante.fr")
    await section.get_by_label("Ajouter (identifiant Matrix)").fill(manager.user_id)
    await section.get_by_label("Rôle", exact=True).last.select_option("manager")
    await section.get_by_role("button", name="Ajouter au personnel").click()
    await expect(section.get_by_role("row", name="Marc Manager")).to_be_visible()
    await axe_scan(page, "structures")
    [contact] = [r for r in audit_rows(stack, "admin.structure.contact") if r.allowed]
    change = json.loads(contact.detail or "")
    assert change["avant"] == {"account": None, "mssante": None}
    assert change["apres"] == {
        "account": "@dac.nord:localhost",
        "mssante": "dac-nord@dac.mssante.fr",
    }
    [staffed] = [r for r in audit_rows(stack, "admin.structure.staff") if r.allowed]
    assert json.loads(staffed.detail or "")["apres"] == {
        "user_id": manager.user_id,
        "role": "manager",
    }

    ours = api(stack, token, "POST", "/v1/dossiers", dossier_body(structure_id=mine_id))
    other = {**IDENTITY, "birth_name": "Autre", "birth_date": "1960-02-02"}
    body = dossier_body(structure_id=theirs["id"], identity=other)
    not_ours = api(stack, token, "POST", "/v1/dossiers", body)

    # The manager: their structure only, its dossiers' audit only.
    _, page = await new_page(browser)
    await login(page, stack, manager)
    await page.goto(base(stack) + "/admin/structures")
    await expect(page.get_by_role("heading", level=2)).to_have_text([f"{name} (dac)"])
    await page.goto(base(stack) + "/admin/journal")
    journal = page.locator("#journal")
    await expect(journal).to_contain_text(ours["id"][:6].upper())
    await expect(journal).not_to_contain_text(not_ours["id"][:6].upper())
    await axe_scan(page, "journal (manager)")
    response = await page.goto(base(stack) + f"/admin/journal?structure={theirs['id']}")
    assert response is not None and response.status == 403
    response = await page.goto(base(stack) + "/admin/parcours")
    assert response is not None and response.status == 403
    refused = [r for r in audit_rows(stack, "admin.audit.read") if r.actor == manager.user_id]
    assert [r.allowed for r in refused] == [True, False]
    await page.goto(base(stack) + "/admin/structures")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    status = await page.evaluate(
        """async ([path, token]) => (await fetch(path, {method: "POST",
            headers: {"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"},
            body: "what=staff&role=manager&user_id=%40x%3Alocalhost"})).status""",
        [f"/admin/structures/{theirs['id']}", csrf],
    )
    assert status == 403
    [denied] = [r for r in audit_rows(stack, "admin.structure.staff") if r.actor == manager.user_id]
    assert denied.allowed is False


async def test_a_directory_import_started_from_the_console_and_its_report(
    admin_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    stack = admin_stack
    admin = administrator(stack)
    made = write_activite(tmp_path / "PS_LibreAcces_Personne_activite.txt", 300)
    bad = tmp_path / "pas-un-extrait.txt"
    bad.write_text("nom|prénom\nDurand|Paul\n", encoding="utf-8")
    _, page = await new_page(browser)
    await login(page, stack, admin)
    await page.goto(base(stack) + "/admin/annuaire")
    await page.get_by_label("Fichier d'extrait").set_input_files(str(bad))
    await page.get_by_role("button", name="Lancer l'import").click()
    await expect(page.locator("#errors")).to_contain_text("fichier refusé")
    await page.get_by_label("Fichier d'extrait").set_input_files(str(made.path))
    await page.get_by_role("button", name="Lancer l'import").click()
    report = page.locator("section.import").first
    for _ in range(60):  # the import runs in the background: its report, once finished
        await page.goto(base(stack) + "/admin/annuaire")
        if await report.count() and "pas terminé" not in await report.inner_text():
            break
        await page.wait_for_timeout(500)
    await expect(report).to_contain_text(made.path.name)
    await expect(report.locator("dd.added")).to_have_text(str(len(set(made.people))))
    await axe_scan(page, "annuaire")
    [started] = [r for r in audit_rows(stack, "admin.directory.import") if r.allowed]
    assert started.actor == admin.user_id and started.detail == made.path.name
