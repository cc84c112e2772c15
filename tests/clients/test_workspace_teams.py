"""The dossier page's "Équipes ressources" and "Délégations" in a real browser (Debian's
Chromium driven by Playwright) against the PostgreSQL stack: what the bot does with
``!equipe``, ``!equipe solliciter`` and ``!delegation``, the page does with forms, each
write through the same service call as the API (checked through the API), CSRF-checked,
names and professions shown (never a Matrix id), refusals said in French."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from dossier_api.domain.directory import upsert_professional
from maillon.shared.circle import DirectoryEntry
from maillon.shared.dates_fr import PARIS, format_moment
from maillon.shared.store import make_engine
from tests.clients.test_workspace import (
    _directory_nurse,
    axe_scan,
    base,
    login,
    new_page,
    no_matrix_id_shown,
    open_dossier,
    screenshots,
)
from tests.harness.dossier import api
from tests.harness.hydrogen import register_person
from tests.harness.stack import Stack, postgres_stack
from tests.integration.test_resource_teams_stack import _cli

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def teams_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own on PostgreSQL (a national directory is imported into it)."""
    with postgres_stack(tmp_path_factory.mktemp("stack-ws-teams")) as stack:
        yield stack


def add_team(stack: Stack, slug: str, name: str, *options: str) -> None:
    made = _cli(stack, "add", "--dir", str(stack.directory), slug, "--name", name, *options)
    assert made.returncode == 0, made.stderr


async def posted(page: Page, button: str) -> int:
    """Click a form's button; the status of the write it posts."""
    async with page.expect_response(lambda r: r.request.method == "POST") as response:
        await page.get_by_role("button", name=button).click()
    return (await response.value).status


async def test_solicit_a_team_and_delegate_from_the_dossier_page(
    teams_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    stack = teams_stack
    coord = register_person(stack, "solcoord", "Odile Sollicitante", "infirmière coordinatrice")
    nurse = register_person(stack, "solide", "Inès Soignante", "infirmière")
    member = register_person(stack, "solemg", "Paul Gériatre", "médecin gériatre")
    tag = member.localpart[-6:]
    listed = _directory_nurse(stack, tmp_path)  # a colleague of the national directory
    stand_in_name = f"{listed.first_name.title()} {listed.last_name.title()}"
    stand_in = register_person(stack, "remplace", stand_in_name, None)
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:  # her account bound to her directory entry (by RPPS), as `!annuaire lier` does
        entry = DirectoryEntry(stand_in.user_id, "Infirmier", rpps=listed.identifier)
        upsert_professional(engine, entry, stand_in_name)
    finally:
        engine.dispose()
    t = coord.access_token
    served = f"Équipe mobile de gériatrie {tag}"
    other = f"Équipe TND enfants {tag}"
    add_team(
        stack, f"emg-{tag}", served, "--level", "departementale", "--member", member.user_id,
        "--pathway", "dac", "--expertise", "gériatrie", "--response-time", str(2 * 3600),
    )  # fmt: skip
    add_team(
        stack, f"tnd-{tag}", other, "--level", "regionale", "--member", member.user_id,
        "--pathway", "pco-tnd",
    )  # fmt: skip
    did = open_dossier(stack, t, birth_name="Équipier", first_names="Marcel", sex="M")["id"]
    path = f"/v1/dossiers/{did}"
    api(stack, t, "POST", f"{path}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    assert api(stack, t, "GET", path)["consent"]["share_outside"] is False

    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + f"/dossiers/{did}")

    # The teams serving the dossier's pathway (dac), in words; not the TND team.
    teams = page.locator("#teams")
    served_item = teams.locator("li").filter(has_text=served)
    await expect(served_item).to_contain_text("départementale")
    await expect(served_item).to_contain_text("gériatrie")
    await expect(served_item).to_contain_text("réponse attendue sous 2 h")
    await expect(teams).not_to_contain_text(other)

    # Without consent to sharing outside the care team and without the attestation: refused
    # in French, nothing sent.
    await page.get_by_text("Solliciter une équipe").click()
    await page.get_by_label("Équipe", exact=True).select_option(label=served)
    await page.get_by_label("prise en charge").check()
    await page.get_by_label("Motif de la sollicitation").fill(
        "Chutes à répétition, avis gériatrique"
    )
    assert await posted(page, "Envoyer la sollicitation") == 403
    error = page.locator("#teams-error")
    await expect(error).to_contain_text("hors de l'équipe de soins")
    await expect(error).to_contain_text(served)
    assert api(stack, t, "GET", f"{path}/solicitations")["solicitations"] == []
    consent = api(stack, t, "GET", f"{path}/consent/history")["history"]
    assert [e for e in consent if e["field"] == "attestation"] == []

    # With the attestation: sent, listed with its status, and the attestation recorded.
    await expect(page.get_by_label("Motif de la sollicitation")).to_have_value(
        "Chutes à répétition, avis gériatrique"
    )
    await page.get_by_label("Le patient a été informé et ne s'y est pas opposé").check()
    assert await posted(page, "Envoyer la sollicitation") == 303
    [sent] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
    assert (sent["team"], sent["kind"], sent["status"]) == (
        f"emg-{tag}",
        "prise_en_charge",
        "envoyee",
    )
    assert sent["reason"] == "Chutes à répétition, avis gériatrique" and sent["attested"] is True
    assert sent["requester"]["user_id"] == coord.user_id
    assert sent["notified"] == [member.user_id]
    consent = api(stack, t, "GET", f"{path}/consent/history")["history"]
    [attestation] = [e for e in consent if e["field"] == "attestation"]
    assert attestation["actor"] == coord.user_id and served in attestation["note"]
    item = page.locator(f"#solicitation-{sent['id']}")
    await expect(item).to_contain_text(served)
    await expect(item).to_contain_text("prise en charge : Chutes à répétition")
    await expect(item).to_contain_text("demandée par Odile Sollicitante (infirmière coordinatrice)")
    await expect(item.locator(".solicitation-status")).to_have_text("État : envoyée")
    sent_at = dt.datetime.fromisoformat(sent["created_at"]).astimezone(PARIS)
    await expect(item.locator(".steps")).to_have_text(f"{format_moment(sent_at, 'fr')} · envoyée")

    # The member on duty accepts (as from the worklist or the bot: the API): the page says
    # who took it, by name and profession.
    api(stack, member.access_token, "POST", f"/v1/solicitations/{sent['id']}/accept", {})
    await page.reload()
    await expect(item.locator(".solicitation-status")).to_have_text(
        "État : acceptée par Paul Gériatre (médecin gériatre)"
    )
    await expect(item.locator(".steps")).to_contain_text("envoyée")
    await expect(item.locator(".steps")).to_contain_text("acceptée par Paul Gériatre")
    [taken] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
    assert taken["status"] == "acceptee" and taken["accepted_by"]["user_id"] == member.user_id

    # A delegation to a circle member, until a day: listed in words, checked in the API.
    day = dt.datetime.now(PARIS).date() + dt.timedelta(days=10)
    await page.get_by_text("Nouvelle délégation").click()
    section = page.locator("#delegations-section")
    await section.get_by_label("Déléguer à").select_option(label="Inès Soignante (infirmière)")
    await section.get_by_label("Jusqu'au (inclus)").fill(day.isoformat())
    assert await posted(page, "Déléguer") == 303
    [given] = api(stack, t, "GET", "/v1/delegations")["given"]
    assert (given["from_user"], given["to_user"]) == (coord.user_id, nurse.user_id)
    until = dt.datetime.fromisoformat(given["until"]).astimezone(PARIS)
    assert (until.date(), until.time()) == (day, dt.time(23, 59, 59))
    row = page.locator("#delegations-given li")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(
        "Odile Sollicitante (infirmière coordinatrice) → Inès Soignante (infirmière) · jusqu'au"
    )
    await expect(row).to_contain_text(str(day.year))
    received = api(stack, nurse.access_token, "GET", "/v1/delegations")["received"]
    assert [d["id"] for d in received] == [given["id"]]

    # A second one to a directory colleague outside the circle, found by name.
    await page.get_by_text("Nouvelle délégation").click()
    await page.get_by_label("Chercher un confrère dans l'annuaire").fill(
        f"{listed.last_name} {listed.first_name}"
    )
    await section.get_by_role("button", name="Rechercher").click()
    choice = section.get_by_label("Déléguer à")
    found = choice.locator("optgroup[label^='Trouvés'] option")
    await expect(found).to_have_count(1)  # the one of them with a Maillon account
    await expect(found).to_contain_text(re.compile(listed.last_name, re.IGNORECASE))
    await choice.select_option(label=await found.inner_text())
    await section.get_by_label("Jusqu'au (inclus)").fill(day.isoformat())
    assert await posted(page, "Déléguer") == 303
    given_now = api(stack, t, "GET", "/v1/delegations")["given"]
    assert sorted(d["to_user"] for d in given_now) == sorted([nurse.user_id, stand_in.user_id])
    await expect(page.locator("#delegations-given li")).to_have_count(2)
    await no_matrix_id_shown(page)
    await axe_scan(page, "dossier : équipes ressources et délégations")
    await screenshots(page, "dossier-teams-delegations")

    # At 360 px the forms are usable: the delegation ended from there.
    await page.set_viewport_size({"width": 360, "height": 800})
    end = page.get_by_role("button", name="Mettre fin : Inès Soignante (infirmière)")
    await end.scroll_into_view_if_needed()
    box = await end.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    await end.click()
    await expect(page.locator("#delegations-given")).not_to_contain_text("Inès Soignante")
    await expect(page.locator("#delegations-given")).to_contain_text(stand_in_name)
    given_now = api(stack, t, "GET", "/v1/delegations")["given"]
    assert [d["to_user"] for d in given_now] == [stand_in.user_id]
    assert api(stack, nurse.access_token, "GET", "/v1/delegations")["received"] == []
    await axe_scan(page, "dossier à 360 px")

    # English: the same sections in English words.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(base(stack) + f"/dossiers/{did}?lang=en")
    await expect(page.locator("#h-teams")).to_have_text("Resource teams")
    await expect(served_item).to_contain_text("departmental")
    await expect(item.locator(".solicitation-status")).to_have_text(
        "Status : accepted by Paul Gériatre (médecin gériatre)"
    )
    await page.goto(base(stack) + f"/dossiers/{did}?lang=fr")

    # The nurse (not a coordinator) may solicit but is offered no delegation form, and her
    # forged posts are refused (403), nothing written.
    nurse_context, nurse_page = await new_page(browser)
    try:
        await login(nurse_page, stack, nurse)
        await nurse_page.goto(base(stack) + f"/dossiers/{did}")
        await expect(nurse_page.locator("#solicitations")).to_contain_text(served)
        await expect(nurse_page.get_by_text("Solliciter une équipe")).to_be_visible()
        assert await nurse_page.locator("#delegations-section").count() == 0
        assert await nurse_page.get_by_text("Nouvelle délégation").count() == 0
        csrf = await nurse_page.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf
        refused = await nurse_context.request.post(
            base(stack) + f"/dossiers/{did}/delegations",
            form={"csrf": csrf, "to_user": member.user_id, "until": day.isoformat()},
            max_redirects=0,
        )
        assert refused.status == 403
        assert "ne permet pas cette action" in await refused.text()
        ended = await nurse_context.request.post(
            base(stack) + f"/dossiers/{did}/delegation-end",
            form={"csrf": csrf, "delegation_id": str(given_now[0]["id"])},
            max_redirects=0,
        )
        assert ended.status == 403
        assert api(stack, nurse.access_token, "GET", "/v1/delegations")["given"] == []
        assert [d["to_user"] for d in api(stack, t, "GET", "/v1/delegations")["given"]] == [
            stand_in.user_id
        ]
        await no_matrix_id_shown(nurse_page)
        await axe_scan(nurse_page, "dossier (membre du cercle)")
    finally:
        await nurse_context.close()

    # The member's worklist in English: the solicitation's status and pathway in English.
    member_context, member_page = await new_page(browser)
    try:
        await login(member_page, stack, member)
        await member_page.goto(base(stack) + "/?lang=en")
        mine = member_page.locator("#todo-solicitations li").filter(has_text=served)
        await expect(mine).to_contain_text("accepted · DAC — complex situation")
        await expect(mine).not_to_contain_text("acceptée")
    finally:
        await member_context.close()

    # Without the CSRF token, the coordinator's own write is refused too.
    forged = await context.request.post(
        base(stack) + f"/dossiers/{did}/solicitations",
        form={"team": f"emg-{tag}", "reason": "x", "attested": "on"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert len(api(stack, t, "GET", f"{path}/solicitations")["solicitations"]) == 1
    audit = api(stack, t, "GET", f"{path}/audit")["entries"]
    refusals = [e for e in audit if e["action"] == "solicitation.create" and not e["allowed"]]
    assert len(refusals) == 1 and refusals[0]["component"] == "workspace"
    await context.close()


async def test_an_opposition_refuses_every_solicitation_in_french(
    teams_stack: Stack, browser: Browser
) -> None:
    stack = teams_stack
    coord = register_person(stack, "oppcoord", "Rémi Opposé", "médecin coordonnateur")
    member = register_person(stack, "oppusp", "Lina Palliative", "médecin")
    tag = member.localpart[-6:]
    name = f"Équipe de soins palliatifs {tag}"
    add_team(stack, f"usp-{tag}", name, "--level", "regionale", "--member", member.user_id)
    did = open_dossier(stack, coord.access_token, birth_name="Refus", first_names="Anne")["id"]
    path = f"/v1/dossiers/{did}"
    api(stack, coord.access_token, "PATCH", path, {"opposition": True, "consent_note": "oral"})
    context, page = await new_page(browser)
    try:
        await login(page, stack, coord)
        await page.goto(base(stack) + f"/dossiers/{did}")
        await page.get_by_text("Solliciter une équipe").click()
        await expect(page.locator("#team-opposed")).to_contain_text("s'est opposée au partage")
        await page.get_by_label("Équipe", exact=True).select_option(label=name)
        await page.get_by_label("Motif de la sollicitation").fill("Douleurs rebelles")
        await page.get_by_label("Le patient a été informé et ne s'y est pas opposé").check()
        assert await posted(page, "Envoyer la sollicitation") == 403
        await expect(page.locator("#teams-error")).to_contain_text(
            re.compile(r"la personne s'est opposée au partage de son dossier")
        )
        assert api(stack, coord.access_token, "GET", f"{path}/solicitations")["solicitations"] == []
        history = api(stack, coord.access_token, "GET", f"{path}/consent/history")["history"]
        assert [e for e in history if e["field"] == "attestation"] == []
        await axe_scan(page, "sollicitation refusée (opposition)")
    finally:
        await context.close()
