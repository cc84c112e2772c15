"""The console's resource teams in a real browser (Debian's Chromium driven by Playwright)
against a real stack on PostgreSQL: an administrator creates a team (its coordinator as
first member), adds a second member found in the national directory, and gives it a rota
with two escalation levels; a malformed rota (end before start, unknown day) is refused
naming the field, nothing saved; the team's coordinator adds an exception day (and may not
edit the team itself: 403); a plain professional gets 403 (audited). The team read back
through the API: its members by name and role, its rota, and who is on duty at given
instants by the rota computation (``teams.on_duty``); the page's "on duty now" follows it;
every change is audited with its before and after; axe-core finds no serious or critical
violation."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from dossier_api.domain.directory import upsert_professional
from dossier_api.domain.teams import on_duty, parse_rota
from maillon.shared.circle import DirectoryEntry
from maillon.shared.dates_fr import PARIS
from maillon.shared.store import make_engine
from maillon.wiring.cli import main as cli_main
from tests.clients.test_admin_console import admin_stack, administrator, audit_rows
from tests.clients.test_workspace import axe_scan, base, login, new_page
from tests.harness.annuaire import person as annuaire_person
from tests.harness.annuaire import write_activite
from tests.harness.dossier import api
from tests.harness.hydrogen import Person, register_person
from tests.harness.stack import Stack

pytestmark = pytest.mark.postgres
__all__ = ["admin_stack"]  # the module's stack (a fixture of the console's tests)

MONDAY = dt.date(2027, 1, 4)  # the coordinator's exception day (a Monday)


def listed_nurse(stack: Stack, tmp: Path) -> tuple[Person, str, str]:
    """A nurse of a small national directory imported into the stack, with an account
    bound to her entry (by RPPS); her account, her name as listed, her last name."""
    made = write_activite(tmp / "PS_LibreAcces_Personne_activite_202612010000.txt", 40)
    command = ["directory", "import", "--dir", str(stack.directory), "--quiet", str(made.path)]
    assert cli_main(command) == 0
    listed = next(
        p
        for p in (annuaire_person(i) for i in range(40))
        if p.profession == "Infirmier" and p.id_type == "8"
    )
    name = f"{listed.first_name.title()} {listed.last_name.title()}"
    nurse = register_person(stack, "ide", name, None)
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        upsert_professional(
            engine, DirectoryEntry(nurse.user_id, "Infirmier", rpps=listed.identifier), name
        )
    finally:
        engine.dispose()
    return nurse, name, listed.last_name


def the_team(stack: Stack, token: str, slug: str) -> dict[str, Any]:
    return next(t for t in api(stack, token, "GET", "/v1/teams")["teams"] if t["slug"] == slug)


def paris(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


async def new_team(
    page: Page, slug: str, chief: Person, minutes: str, pathway: str | None = None
) -> None:
    """The new team's form filled (its coordinator as first member, by Matrix id), sent."""
    new = page.locator("section[aria-labelledby=team-new]")
    await new.get_by_label("Identifiant court").fill(slug)
    await new.get_by_label("Nom de l'équipe").fill("Équipe mobile de soins palliatifs")
    await new.get_by_label("Niveau").select_option("departementale")
    await new.get_by_label("Expertise").fill("soins palliatifs")
    await new.get_by_label("Territoire").fill("Haute-Garonne")
    await new.get_by_label("Délai de réponse avant escalade (minutes)").fill(minutes)
    await new.get_by_label("ou identifiant Matrix").fill(chief.user_id)
    await new.get_by_label("Rôle dans l'équipe").fill("cadre de santé")
    await new.get_by_label("Coordinateur de l'équipe").check()
    if pathway is not None:
        await new.get_by_label(pathway).check()
    await new.get_by_role("button", name="Créer l'équipe").click()


async def rota_line(
    page: Page, prefix: str, i: int, when: str, start: str, end: str, who: list[str], level: str
) -> None:
    if prefix == "w":
        await page.locator(f"#w{i}-day").select_option(when)
    else:
        await page.locator(f"#x{i}-date").fill(when)
    await page.locator(f"#{prefix}{i}-start").fill(start)
    await page.locator(f"#{prefix}{i}-end").fill(end)
    row = page.locator(f"#rota-{prefix} tbody tr").nth(i)
    for name in who:
        await row.get_by_label(name, exact=True).check()
    await page.locator(f"#{prefix}{i}-level").fill(level)


async def on_duty_shown(page: Page, stack: Stack, token: str, slug: str) -> None:
    """The page's "on duty now" is the rota computation's at the page's instant."""
    at = dt.datetime.fromisoformat(str(await page.locator("#duty-at").get_attribute("data-at")))
    team = the_team(stack, token, slug)
    names = {m["user_id"]: m["display_name"] for m in team["members"]}
    rota = parse_rota(team["rota"]) if team["rota"] is not None else None
    duty = on_duty(rota, list(names), at)
    section = page.locator("#duty ul.on-duty li")
    if not duty:
        await expect(page.locator("#duty")).to_contain_text("Personne n'est de garde")
        return
    expected = [
        f"niveau {level} : " + ", ".join(f"{names[u]} (" for u in who)
        for level, who in duty.items()
    ]
    got = await section.all_inner_texts()
    assert len(got) == len(expected), (got, expected)
    for shown, wanted in zip(got, expected, strict=True):
        for part in wanted.split(", "):
            assert part.split(" (")[0] in shown, (shown, wanted)


async def test_teams_created_staffed_and_their_rota_kept_in_the_console(
    admin_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    stack = admin_stack
    admin = administrator(stack)
    chief = register_person(stack, "cadre", "Bérénice Cadre", "cadre de santé")
    outsider = register_person(stack, "pro", "Octave Extérieur", "kinésithérapeute")
    nurse, nurse_name, nurse_last = listed_nurse(stack, tmp_path)
    slug = "emsp-" + secrets.token_hex(3)

    # 1. The administrator creates the team, its coordinator as first member.
    context, page = await new_page(browser)
    await login(page, stack, admin)
    await page.goto(base(stack) + "/admin/equipes")
    await expect(page.get_by_role("heading", name="Équipes ressources", level=1)).to_be_visible()
    await expect(page.locator("nav.admin-nav a[aria-current=page]")).to_have_text(
        "Équipes ressources"
    )
    await new_team(page, slug, chief, "soixante")
    await expect(page.locator("#errors")).to_contain_text("champ « délai de réponse »")
    assert slug not in [
        t["slug"] for t in api(stack, admin.access_token, "GET", "/v1/teams")["teams"]
    ]
    await axe_scan(page, "équipes-erreur")
    await new_team(page, slug, chief, "30", pathway="DAC — situation complexe")
    await expect(
        page.get_by_role("heading", name="Équipe mobile de soins palliatifs")
    ).to_be_visible()
    await expect(page.locator("#members")).to_contain_text("Bérénice Cadre (cadre de santé)")

    # 2. A second member, found in the national directory.
    await page.get_by_label("Chercher dans l'annuaire").fill(nurse_last)
    await page.get_by_role("button", name="Rechercher").click()
    choice = page.locator("#directory-results label", has_text="Infirmier").filter(
        has_text=nurse_last
    )
    await choice.first.click()
    await page.get_by_label("Rôle dans l'équipe").fill("infirmière")
    await page.get_by_role("button", name="Ajouter à l'équipe").click()
    await expect(page.locator("#members")).to_contain_text(nurse_name)
    await axe_scan(page, "équipe")

    # 3. The rota: Mondays 08:00–18:00, the nurse at level 1, the coordinator at level 2.
    await page.get_by_label("Sans planning : tous les membres sont de garde").uncheck()
    await rota_line(page, "w", 0, "lundi", "08:00", "18:00", [nurse_name], "1")
    await rota_line(page, "w", 1, "lundi", "08:00", "18:00", ["Bérénice Cadre"], "2")
    await page.get_by_role("button", name="Enregistrer le planning et l'escalade").click()
    await expect(page.locator("#rota-w tbody tr")).to_have_count(4)  # two lines, two blank
    saved = the_team(stack, admin.access_token, slug)
    assert saved["rota"]["weekly"][0] == {
        "day": "lundi", "start": "08:00", "end": "18:00", "members": [nurse.user_id], "level": 1,
    }  # fmt: skip
    await on_duty_shown(page, stack, admin.access_token, slug)

    # 4. Malformed rotas: refused naming the field, nothing saved (the lines as typed).
    await page.locator("#w0-end").fill("07:00")
    await page.get_by_role("button", name="Enregistrer le planning et l'escalade").click()
    await expect(page.locator("#errors")).to_contain_text("« fin » (semaine, ligne 1")
    await expect(page.locator("#errors")).to_contain_text("doit suivre le début")
    await expect(page.locator("#w0-end")).to_have_value("07:00")
    await axe_scan(page, "planning-erreur")
    await page.locator("#w0-end").fill("18:00")
    await page.evaluate(
        "() => { const o = document.querySelector('#w1-day option:checked'); o.value = 'funday'; }"
    )
    await page.get_by_role("button", name="Enregistrer le planning et l'escalade").click()
    await expect(page.locator("#errors")).to_contain_text("« jour » (semaine, ligne 2")
    await expect(page.locator("#errors")).to_contain_text("jour inconnu « funday »")
    assert the_team(stack, admin.access_token, slug)["rota"] == saved["rota"], "nothing saved"
    await context.close()

    # 5. The coordinator adds an exception day; the team itself is not theirs to edit.
    context, page = await new_page(browser)
    await login(page, stack, chief)
    await page.goto(base(stack) + "/admin/equipes")
    await expect(page.locator("#teams tbody tr")).to_have_count(1)
    await page.get_by_role("link", name="Équipe mobile de soins palliatifs").click()
    await expect(page.get_by_role("heading", name="L'équipe")).to_have_count(0)
    await expect(page.get_by_role("button", name="Ajouter à l'équipe")).to_have_count(0)
    await rota_line(page, "x", 0, MONDAY.isoformat(), "09:00", "17:00", ["Bérénice Cadre"], "1")
    await page.get_by_role("button", name="Enregistrer le planning et l'escalade").click()
    await expect(page.locator("#rota-x tbody tr")).to_have_count(3)
    await expect(page.locator("#x0-date")).to_have_value(MONDAY.isoformat())
    await on_duty_shown(page, stack, chief.access_token, slug)
    await axe_scan(page, "planning-coordinateur")
    refused = await page.evaluate(
        """async (slug) => {
            const csrf = document.querySelector("input[name=csrf]").value;
            const body = new URLSearchParams({csrf, what: "team", name: "Autre nom",
                level: "regionale", response_minutes: "5", exit_days: "1"});
            return (await fetch("/admin/equipes/" + slug, {method: "POST", body})).status;
        }""",
        slug,
    )
    assert refused == 403
    await context.close()

    # 6. A plain professional: 403 on the pages, audited.
    context, page = await new_page(browser)
    await login(page, stack, outsider)
    for path in ("/admin/equipes", f"/admin/equipes/{slug}"):
        response = await page.goto(base(stack) + path)
        assert response is not None and response.status == 403, path
    await context.close()
    assert any(
        r.actor == outsider.user_id and not r.allowed for r in audit_rows(stack, "admin.teams.read")
    )
    assert any(
        r.actor == outsider.user_id and not r.allowed for r in audit_rows(stack, "admin.team.read")
    )
    assert any(r.actor == chief.user_id and not r.allowed for r in audit_rows(stack, "team.update"))

    # 7. Read back through the API: members, rota, and who is on duty by the rota.
    team = the_team(stack, admin.access_token, slug)
    assert team["name"] == "Équipe mobile de soins palliatifs" and team["pathways"] == ["dac"]
    assert team["response_seconds"] == 1800 and team["territory"] == "Haute-Garonne"
    members = {
        m["user_id"]: (m["display_name"], m["role"], m["coordinator"]) for m in team["members"]
    }
    assert members == {
        chief.user_id: ("Bérénice Cadre", "cadre de santé", True),
        nurse.user_id: (nurse_name, "infirmière", False),
    }
    rota = parse_rota(team["rota"])
    people = list(members)
    next_monday = MONDAY + dt.timedelta(days=7)
    assert on_duty(rota, people, paris(next_monday, 10)) == {1: [nurse.user_id], 2: [chief.user_id]}
    assert on_duty(rota, people, paris(next_monday, 19)) == {}
    assert on_duty(rota, people, paris(MONDAY, 10)) == {1: [chief.user_id]}  # the exception
    assert on_duty(rota, people, paris(MONDAY, 8, 30)) == {}  # it replaces the whole day
    assert on_duty(rota, people, paris(MONDAY + dt.timedelta(days=1), 10)) == {}

    # 8. The audit: each change with its before and after.
    def change(action: str, actor: str) -> dict[str, Any]:
        rows = [r for r in audit_rows(stack, action) if r.actor == actor and r.allowed]
        assert rows, action
        return dict(json.loads(rows[-1].detail or "{}"))

    created = change("team.add", admin.user_id)
    assert created["avant"] is None and created["apres"]["slug"] == slug
    added = change("team.member", admin.user_id)
    assert [m["user_id"] for m in added["avant"]["members"]] == [chief.user_id]
    assert {m["user_id"] for m in added["apres"]["members"]} == {chief.user_id, nurse.user_id}
    kept = change("team.rota", chief.user_id)
    assert kept["avant"]["rota"]["exceptions"] == []
    assert kept["apres"]["rota"]["exceptions"] == [
        {"date": MONDAY.isoformat(), "start": "09:00", "end": "17:00",
         "members": [chief.user_id], "level": 1},
    ]  # fmt: skip
    refusals = [r for r in audit_rows(stack, "team.rota") if not r.allowed]
    assert any("« fin »" in (r.detail or "") for r in refusals)
