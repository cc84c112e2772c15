"""The last forms of the workspace in a real browser (Debian's Chromium driven by
Playwright) against a stack of their own on PostgreSQL: a resource team's accepter answers
an ``avis`` from the dossier page (what the bot's ``!sollicitation repondre`` does), the
favourites groups page ``/favoris`` (what ``/v1/me/favourites`` does) and inviting a group
into a dossier's circle from its page (``POST /v1/dossiers/{id}/favourites/{n}``). Each
write is checked through the API too; refusals are said in French and write nothing; a
write without the CSRF token is refused; XSS payloads render inert; axe-core scans and
screenshots at 1280 and 360 px."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import BrowserContext, Page, expect

from dossier_api.domain.directory import upsert_professional
from maillon.shared.circle import DirectoryEntry
from maillon.shared.dates_fr import PARIS, format_moment
from maillon.shared.homeserver_client import HomeserverError
from maillon.shared.store import make_engine
from maillon.wiring.cli import main as cli_main
from tests.clients.test_workspace import (
    SHOTS,
    XSS,
    _download,
    axe_scan,
    base,
    join,
    joined,
    login,
    new_page,
    no_matrix_id_shown,
    open_dossier,
    room_member,
    screenshots,
    widget_state,
)
from tests.clients.test_workspace_teams import add_team, posted
from tests.harness.annuaire import Person as Listed
from tests.harness.annuaire import person as annuaire_person
from tests.harness.annuaire import write_extracts
from tests.harness.dossier import api, api_error
from tests.harness.hydrogen import Person, register_person
from tests.harness.stack import Stack, postgres_stack
from tests.harness.widget_host import WidgetHost
from tests.integration.test_dossier_work import pdf_text

pytestmark = pytest.mark.postgres

EXTRACT = 60  # professionals in the national directory imported into the stack


@pytest.fixture(scope="module")
def forms_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own on PostgreSQL, a national directory (with MSSanté mailboxes for
    one professional in three) imported into it."""
    extracts = write_extracts(tmp_path_factory.mktemp("annuaire-forms"), EXTRACT)

    def imported(stack: Stack) -> None:
        for path in extracts:
            command = ["directory", "import", "--dir", str(stack.directory), "--quiet", str(path)]
            assert cli_main(command) == 0

    with postgres_stack(tmp_path_factory.mktemp("stack-ws-forms"), imported) as stack:
        yield stack


# -- helpers ----------------------------------------------------------------------------


def listed(mailbox: bool, skip: int = 0) -> Listed:
    """A professional of the extract with an RPPS, with (or without) an MSSanté mailbox."""
    found = [
        p
        for p in (annuaire_person(i) for i in range(EXTRACT))
        if p.id_type == "8" and (p.index % 3 == 0) == mailbox
    ]
    return found[skip]


def bound(stack: Stack, prefix: str, who: Listed) -> Person:
    """An account bound to this directory entry by its RPPS, as `!annuaire lier` does."""
    name = f"{who.first_name.title()} {who.last_name.title()}"
    account = register_person(stack, prefix, name, None)
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        upsert_professional(
            engine, DirectoryEntry(account.user_id, who.profession, rpps=who.identifier), name
        )
    finally:
        engine.dispose()
    return account


async def csrf_of(page: Page) -> str:
    token = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert token
    return token


async def post_form(
    context: BrowserContext, stack: Stack, path: str, form: dict[str, str]
) -> tuple[int, str]:
    """A form posted as a forger (or a stale page) would: status and page text (its
    entities read)."""
    response = await context.request.post(base(stack) + path, form=form, max_redirects=0)
    return response.status, html.unescape(await response.text())


async def inert(page: Page, what: str) -> None:
    """Nothing of the payloads became markup: no script ran, no element or handler made."""
    injected = await page.evaluate(
        """() => ({
            xss: window.__xss === 1,
            elements: document.querySelectorAll(
                "main script, main img, main svg, main iframe, main textarea:not([name])"
            ).length,
            handlers: [...document.querySelectorAll("*")].filter(
                e => [...e.attributes].some(a => a.name.startsWith("on"))).length,
        })"""
    )
    assert injected == {"xss": False, "elements": 0, "handlers": 0}, (what, injected)


# -- the avis -----------------------------------------------------------------------------


async def test_the_accepter_answers_an_avis_from_the_dossier_page(
    forms_stack: Stack, browser: Any
) -> None:
    stack = forms_stack
    coord = register_person(stack, "aviscoord", "Odile Demandeuse", "infirmière coordinatrice")
    member = register_person(stack, "avisemg", "Paul Gériatre", "médecin gériatre")
    other = register_person(stack, "avisautre", "Léa Collègue", "médecin gériatre")
    tag = member.localpart[-6:]
    team = f"Équipe mobile de gériatrie {tag}"
    add_team(
        stack,
        f"emg-{tag}",
        team,
        "--level",
        "departementale",
        "--member",
        member.user_id,
        "--member",
        other.user_id,
        "--pathway",
        "dac",
    )
    t = coord.access_token
    did = open_dossier(stack, t, birth_name="Avisé", first_names="Henri", sex="M")["id"]
    path = f"/v1/dossiers/{did}"

    # The coordinator solicits the team from the page (an avis: the default kind).
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + f"/dossiers/{did}")
    await page.get_by_text("Solliciter une équipe").click()
    await page.get_by_label("Équipe", exact=True).select_option(label=team)
    await expect(page.get_by_label("avis (télé-expertise)")).to_be_checked()
    await page.get_by_label("Motif de la sollicitation").fill("Chutes répétées : avis ?")
    await page.get_by_label("Le patient a été informé et ne s'y est pas opposé").check()
    assert await posted(page, "Envoyer la sollicitation") == 303
    [sent] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
    assert (sent["kind"], sent["status"]) == ("avis", "envoyee")
    number = sent["id"]
    item = page.locator(f"#solicitation-{number}")
    await expect(item).to_contain_text(team)

    # A team member accepts (as from the worklist or the bot: the API).
    api(stack, member.access_token, "POST", f"/v1/solicitations/{number}/accept", {})
    await page.reload()
    await expect(item.locator(".solicitation-status")).to_have_text(
        "État : acceptée par Paul Gériatre (médecin gériatre)"
    )
    # Nobody but the accepter is offered the form; the coordinator's forged answer is
    # refused in French, nothing written.
    assert await item.get_by_text("Rédiger l'avis").count() == 0
    report = {"solicitation_id": str(number), "question": "q", "elements": "e", "advice": "a"}
    status, text = await post_form(
        context, stack, f"/dossiers/{did}/avis", {**report, "csrf": await csrf_of(page)}
    )
    assert status == 403 and "seul le membre qui l'a prise en charge y répond" in text

    # The accepter, on the dossier page: "Rédiger l'avis", the question taken from the
    # reason.
    member_context, member_page = await new_page(browser)
    await login(member_page, stack, member)
    await member_page.goto(base(stack) + f"/dossiers/{did}")
    mine = member_page.locator(f"#solicitation-{number}")
    await mine.get_by_text("Rédiger l'avis").click()
    question = mine.get_by_label("Question posée")
    await expect(question).to_have_value("Chutes répétées : avis ?")
    await expect(mine.get_by_label("Avis", exact=True)).to_have_attribute("required", "")
    await axe_scan(member_page, "dossier : rédiger l'avis")
    await screenshots(member_page, "dossier-avis-form")
    csrf = await csrf_of(member_page)

    # An empty part, a solicitation of another dossier, no CSRF token: refused, nothing
    # written.
    refusals = [
        ({**report, "elements": " ", "csrf": csrf}, 400, "« éléments pris en compte » : un texte"),
        ({**report, "solicitation_id": "x", "csrf": csrf}, 400, "un numéro de sollicitation"),
        ({**report}, 403, "CSRF"),
        ({**report, "csrf": "faux"}, 403, "CSRF"),
    ]
    for form, expected_status, said in refusals:
        status, text = await post_form(member_context, stack, f"/dossiers/{did}/avis", form)
        assert status == expected_status and said in text, (form, status)
    elsewhere = open_dossier(stack, t, birth_name="Ailleurs", first_names="Rose")["id"]
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{elsewhere}/circle",
        {"user_id": member.user_id, "role": "MED"},
    )
    status, text = await post_form(
        member_context, stack, f"/dossiers/{elsewhere}/avis", {**report, "csrf": csrf}
    )
    assert status == 404 and "sollicitation inconnue dans ce dossier" in text
    [still] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
    assert still["status"] == "acceptee" and still["report"] is None

    # The answer (an XSS payload in it): saved, listed with its date, author and PDF.
    advice = "Bilan de chute en HDJ. " + " ".join(XSS)
    await mine.get_by_label("Éléments pris en compte").fill("Trois chutes en un mois ; TUG 25 s")
    await mine.get_by_label("Avis", exact=True).fill(advice)
    assert await posted(member_page, "Enregistrer l'avis") == 303
    [answered] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
    assert answered["status"] == "repondue"
    assert answered["report"]["question"] == "Chutes répétées : avis ?"
    assert answered["report"]["elements"] == "Trois chutes en un mois ; TUG 25 s"
    assert answered["report"]["advice"] == advice
    assert answered["report"]["author"] == member.user_id
    listed_report = mine.locator(f"#report-{number}")
    at = dt.datetime.fromisoformat(answered["report"]["date"]).astimezone(PARIS)
    await expect(listed_report.locator(".report-meta")).to_contain_text(
        f"{format_moment(at, 'fr')} · Paul Gériatre (médecin gériatre) · Compte rendu (PDF)"
    )
    await expect(mine.get_by_text("Rédiger l'avis")).to_have_count(0)
    await inert(member_page, "avis")
    shown = await listed_report.inner_text()
    assert all(part in shown for part in XSS), shown  # every payload shown, as text

    # A second answer: refused in French (409), the first kept.
    status, text = await post_form(
        member_context, stack, f"/dossiers/{did}/avis", {**report, "csrf": csrf}
    )
    assert status == 409 and "cette sollicitation a déjà sa réponse" in text
    refused = api_error(
        stack,
        member.access_token,
        "POST",
        f"/v1/solicitations/{number}/answer",
        {"question": "q", "elements": "e", "advice": "autre"},
    )
    assert refused.status == 409
    [kept] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
    assert kept["report"]["advice"] == advice

    # The coordinator sees the answer and downloads its PDF (the API's PDF says the same).
    await page.reload()
    coordinator_report = page.locator(f"#report-{number}")
    await expect(coordinator_report).to_contain_text("Paul Gériatre (médecin gériatre)")
    await expect(coordinator_report).to_contain_text("Trois chutes en un mois")
    async with page.expect_download() as download:
        await coordinator_report.get_by_role("link", name="Compte rendu (PDF)").click()
    saved = await (await download.value).path()
    content = await asyncio.to_thread(Path(saved).read_bytes)
    assert content.startswith(b"%PDF")
    printed = pdf_text(content)
    assert "Bilan de chute en HDJ" in printed and "TUG 25 s" in printed
    assert "Bilan de chute en HDJ" in pdf_text(
        _download(stack, t, f"/v1/solicitations/{number}/report.pdf")
    )
    # Another dossier's page gives none of this report.
    wrong = await context.request.get(
        base(stack) + f"/dossiers/{elsewhere}/files/avis-{number}.pdf"
    )
    assert wrong.status == 404
    assert "sollicitation inconnue dans ce dossier" in html.unescape(await wrong.text())
    await inert(page, "avis (coordinateur)")
    await no_matrix_id_shown(page)
    await axe_scan(page, "dossier : avis rendu")
    await screenshots(page, "dossier-avis-answered")

    # In English: the report's words in English.
    await page.goto(base(stack) + f"/dossiers/{did}?lang=en")
    await expect(coordinator_report.locator("h4")).to_have_text("Advice report")
    await page.goto(base(stack) + f"/dossiers/{did}?lang=fr")

    # Audited as the workspace's (allowed once), each refused answer too; in the timeline.
    audit = api(stack, t, "GET", f"{path}/audit")["entries"]
    answers = [e for e in audit if e["action"] == "solicitation.answer"]
    assert [(e["actor"], e["component"]) for e in answers if e["allowed"]] == [
        (member.user_id, "workspace")
    ]
    assert {(e["actor"], e["component"]) for e in answers if not e["allowed"]} == {
        (coord.user_id, "workspace"),  # the forged answer
        (member.user_id, "workspace"),  # an empty part, the second answer
        (member.user_id, "api"),  # the second answer through the API
    }
    timeline = api(stack, t, "GET", f"{path}/timeline?kind=solicitation")["entries"]
    assert "repondue" in {e["action"] for e in timeline}
    await member_context.close()
    await context.close()


# -- favourites -----------------------------------------------------------------------------


async def test_favourites_page_and_inviting_a_group_from_the_dossier_page(
    forms_stack: Stack, browser: Any
) -> None:
    stack = forms_stack
    owner = register_person(stack, "favowner", "Claire Favorite", "infirmière coordinatrice")
    outsider = register_person(stack, "favother", "Yves Autre", "médecin")
    nurse_entry = listed(mailbox=False, skip=1)
    nurse = bound(stack, "favide", nurse_entry)  # has an account
    invited_entry = listed(mailbox=True, skip=1)  # no account, an MSSanté mailbox
    unreachable = listed(mailbox=False, skip=2)  # no account, no mailbox
    t = owner.access_token
    group_name = f"Quartier {XSS[1]}"[:80]

    context, page = await new_page(browser)
    await login(page, stack, owner)
    await page.get_by_role("link", name="Mes favoris").click()
    await expect(
        page.get_by_role("heading", name="Mes groupes de favoris", level=1)
    ).to_be_visible()
    await expect(page.locator("#no-groups")).to_be_visible()
    await page.get_by_label("Nom du groupe").fill(group_name)
    await page.get_by_role("button", name="Créer le groupe").click()
    await expect(page.locator("#group-name")).to_have_text(group_name)
    [group] = api(stack, t, "GET", "/v1/me/favourites")["groups"]
    assert group["name"] == group_name and group["members"] == []
    n = group["id"]
    assert page.url.endswith(f"/favoris/{n}")

    # Two professionals found in the directory (by their RPPS): one with an account (with
    # a role), one without.
    async def add(who: Listed, role: str | None) -> None:
        await page.get_by_label("Chercher dans l'annuaire").fill(who.identifier)
        await page.get_by_role("button", name="Rechercher").click()
        choice = page.locator("#directory-results input[type=radio]")
        await expect(choice).to_have_count(1)
        await choice.check()
        if role:
            await page.get_by_label("Rôle qu'il ou elle prendra").select_option(label=role)
        await page.get_by_role("button", name="Ajouter au groupe").click()
        await expect(page.locator(f"#members-{n}")).to_contain_text(
            re.compile(re.escape(who.last_name), re.IGNORECASE)
        )

    await add(nurse_entry, "infirmier / infirmière")
    await add(invited_entry, None)
    kept = api(stack, t, "GET", f"/v1/me/favourites/{n}")["members"]
    assert [(m["user_id"], m["rpps"], m["role"]) for m in kept] == [
        (nurse.user_id, None, "IDE"),
        (None, invited_entry.identifier, None),
    ]
    assert all(m["structures"] for m in kept), kept  # from the directory's activities
    members = page.locator(f"#members-{n} li")
    await expect(members).to_have_count(2)
    for m, line in zip(kept, await members.all(), strict=True):
        await expect(line).to_contain_text(f"{m['display_name']} — {m['profession']}")
        await expect(line).to_contain_text(m["structures"][0])
    await expect(members.nth(0)).to_contain_text("infirmier / infirmière")
    await expect(members.nth(1)).to_contain_text("sans compte Maillon")
    # The same person twice: refused in French, by name.
    await page.get_by_label("Chercher dans l'annuaire").fill(nurse_entry.identifier)
    await page.get_by_role("button", name="Rechercher").click()
    await page.locator("#directory-results input[type=radio]").check()
    async with page.expect_response(lambda r: r.request.method == "POST") as response:
        await page.get_by_role("button", name="Ajouter au groupe").click()
    assert (await response.value).status == 409
    await expect(page.locator("#favourites-error")).to_contain_text(
        f"{kept[0]['display_name']} est déjà dans le groupe"
    )
    await no_matrix_id_shown(page)
    await inert(page, "groupe")
    await page.goto(base(stack) + f"/favoris/{n}?annuaire={quote(invited_entry.last_name)}")
    await axe_scan(page, "/favoris/n : recherche dans l'annuaire")
    # A third one through the API (no account, no mailbox: its invitation cannot be sent).
    api(
        stack,
        t,
        "POST",
        f"/v1/me/favourites/{n}/members",
        {"members": [{"rpps": unreachable.identifier}]},
    )

    # Renamed from the page (a payload again), checked through the API.
    group_name = f"Ville {XSS[2]}"
    await page.get_by_label("Nouveau nom").fill(group_name)
    await page.get_by_role("button", name="Renommer").click()
    await expect(page.locator("#group-name")).to_have_text(group_name)
    assert api(stack, t, "GET", f"/v1/me/favourites/{n}")["name"] == group_name
    await inert(page, "groupe renommé")
    await page.goto(base(stack) + "/favoris")
    await expect(page.locator(f"#group-{n}")).to_contain_text(group_name)
    await expect(page.locator(f"#members-{n} li")).to_have_count(3)
    await inert(page, "/favoris")
    await no_matrix_id_shown(page)
    await axe_scan(page, "/favoris")
    await screenshots(page, "favoris")

    # Another user sees nothing of it and changes nothing: 404 in the page and the API.
    other_context, other_page = await new_page(browser)
    await login(other_page, stack, outsider)
    await other_page.goto(base(stack) + "/favoris")
    await expect(other_page.locator("#no-groups")).to_be_visible()
    assert group_name not in await other_page.locator("main").inner_text()
    response = await other_page.goto(base(stack) + f"/favoris/{n}")
    assert response is not None and response.status == 404
    await expect(other_page.locator("main")).to_contain_text("groupe de favoris inconnu")
    other_csrf = await csrf_of(other_page)
    for action, form in (
        ("membres", {"person": f"rpps:{unreachable.identifier}"}),
        ("retrait", {"who": nurse.user_id}),
        ("nom", {"name": "Volé"}),
        ("suppression", {}),
    ):
        status, text = await post_form(
            other_context, stack, f"/favoris/{n}/{action}", {**form, "csrf": other_csrf}
        )
        assert status == 404 and "groupe de favoris inconnu" in text, (action, status)
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "Volé"}),
        ("DELETE", "", None),
        ("POST", "/members", {"members": [{"user_id": outsider.user_id}]}),
        ("DELETE", f"/members/{nurse_entry.identifier}", None),
    ):
        refused = api_error(
            stack, outsider.access_token, method, f"/v1/me/favourites/{n}{suffix}", body
        )
        assert refused.status == 404, (method, suffix)
    assert api(stack, outsider.access_token, "GET", "/v1/me/favourites")["groups"] == []
    await other_context.close()
    assert [len(g["members"]) for g in api(stack, t, "GET", "/v1/me/favourites")["groups"]] == [3]

    # Without the CSRF token, no write of the page is taken.
    for path, form in (
        ("/favoris", {"name": "Sans jeton"}),
        (f"/favoris/{n}/membres", {"person": f"user:{outsider.user_id}"}),
        (f"/favoris/{n}/retrait", {"who": nurse.user_id}),
        (f"/favoris/{n}/nom", {"name": "Sans jeton"}),
        (f"/favoris/{n}/suppression", {}),
    ):
        status, text = await post_form(context, stack, path, form)
        assert status == 403 and "CSRF" in text, path
    [unchanged] = api(stack, t, "GET", "/v1/me/favourites")["groups"]
    assert unchanged["name"] == group_name and len(unchanged["members"]) == 3

    # Invited into a dossier from its page: the outcome for each person, in words.
    did = open_dossier(stack, t, birth_name="Favori", first_names="Jules", sex="M")["id"]
    path = f"/v1/dossiers/{did}"
    await page.goto(base(stack) + f"/dossiers/{did}")
    circle = page.locator("#circle-section")
    await circle.get_by_label("Groupe", exact=True).select_option(
        label=f"{group_name} (3 personne(s))"
    )
    await expect(circle.get_by_label("Rôle", exact=True).last).to_have_value("PRO")
    status = await posted(page, "Inviter le groupe")
    assert status == 200
    outcomes = page.locator("#favourites-outcomes")
    await expect(outcomes).to_contain_text(f"Groupe « {group_name} » invité")
    lines = outcomes.locator("li")
    await expect(lines).to_have_count(3)
    await expect(lines.nth(0)).to_contain_text(f"{kept[0]['display_name']} (")
    await expect(lines.nth(0)).to_contain_text("infirmier / infirmière : ajouté·e")
    await expect(lines.nth(1)).to_contain_text(
        "professionnel : invitation envoyée (pas encore de compte)"
    )
    await expect(lines.nth(2)).to_contain_text("refusé : l'annuaire ne connaît aucune adresse")
    await expect(page.locator("#circle")).to_contain_text(kept[0]["display_name"])
    members_now = api(stack, t, "GET", f"{path}/circle")["members"]
    assert {(m["user_id"], m["role"]) for m in members_now if m["active"]} == {
        (owner.user_id, "COORD"),
        (nurse.user_id, "IDE"),
    }
    invitations = api(stack, t, "GET", f"{path}/invitations")["invitations"]
    assert [(i["rpps"], i["role"]) for i in invitations] == [(invited_entry.identifier, "PRO")]
    await inert(page, "dossier : groupe invité")
    await no_matrix_id_shown(page)
    await axe_scan(page, "dossier : groupe de favoris invité")
    await screenshots(page, "dossier-favoris")

    # Again: each one already there.
    await circle.get_by_label("Groupe", exact=True).select_option(
        label=f"{group_name} (3 personne(s))"
    )
    assert await posted(page, "Inviter le groupe") == 200
    await expect(lines.nth(0)).to_contain_text("déjà membre")
    await expect(lines.nth(1)).to_contain_text("déjà membre")

    # Without the CSRF token: refused; a group of another's, or a member not coordinator:
    # refused in French.
    status, text = await post_form(
        context, stack, f"/dossiers/{did}/favourites", {"group_id": str(n)}
    )
    assert status == 403 and "CSRF" in text
    nurse_context, nurse_page = await new_page(browser)
    await login(nurse_page, stack, nurse)
    await nurse_page.goto(base(stack) + f"/dossiers/{did}")
    assert await nurse_page.get_by_role("button", name="Inviter le groupe").count() == 0
    status, text = await post_form(
        nurse_context,
        stack,
        f"/dossiers/{did}/favourites",
        {"group_id": str(n), "csrf": await csrf_of(nurse_page)},
    )
    assert status == 404 and "groupe de favoris inconnu" in text  # not her group
    mine = api(
        stack,
        nurse.access_token,
        "POST",
        "/v1/me/favourites",
        {"name": "Les miens", "members": [{"user_id": outsider.user_id}]},
    )
    status, text = await post_form(
        nurse_context,
        stack,
        f"/dossiers/{did}/favourites",
        {"group_id": str(mine["id"]), "csrf": await csrf_of(nurse_page)},
    )
    assert status == 403 and "seul un coordinateur du dossier" in text
    assert "Claire Favorite" in text  # the coordinator to ask, by name
    await nurse_context.close()
    members_after = api(stack, t, "GET", f"{path}/circle")["members"]
    assert outsider.user_id not in {m["user_id"] for m in members_after}

    # Deleted from its page: gone from the page and the API.
    await page.goto(base(stack) + f"/favoris/{n}")
    await page.get_by_role("button", name="Supprimer le groupe").click()
    await expect(page.locator("#no-groups")).to_be_visible()
    with pytest.raises(HomeserverError) as gone:
        api(stack, t, "GET", f"/v1/me/favourites/{n}")
    assert gone.value.status == 404
    await page.goto(base(stack) + f"/dossiers/{did}")
    await expect(page.locator("#no-favourites")).to_contain_text("aucun groupe de favoris")
    await context.close()


# -- the same forms in the widget ------------------------------------------------------------


async def test_the_avis_and_a_favourites_group_in_the_widget(
    forms_stack: Stack, browser: Any
) -> None:
    """In the widget of the patient room (matrix-widget-api host, real OpenID token, 360 px):
    the accepter writes the avis, the coordinator invites a group; the same calls."""
    stack = forms_stack
    coord = register_person(stack, "wcoord", "Wanda Coordo", "infirmière coordinatrice")
    member = register_person(stack, "wemsp", "Marc Palliatif", "médecin")
    kine = register_person(stack, "wkine", "Kim Kiné", "masseur-kinésithérapeute")
    tag = member.localpart[-6:]
    add_team(
        stack, f"emsp-{tag}", f"EMSP {tag}", "--level", "regionale", "--member", member.user_id
    )
    t = coord.access_token
    made = open_dossier(stack, t, birth_name="Widgetavis", first_names="Rose", sex="F")
    did, room = made["id"], made["room_id"]
    path = f"/v1/dossiers/{did}"
    api(stack, t, "PATCH", path, {"consent_share_outside": True, "consent_note": "oral"})
    sent = api(
        stack, t, "POST", f"{path}/solicitations", {"team": f"emsp-{tag}", "reason": "Douleurs"}
    )
    api(stack, member.access_token, "POST", f"/v1/solicitations/{sent['id']}/accept", {})
    group = api(
        stack,
        t,
        "POST",
        "/v1/me/favourites",
        {"name": "Kinés du secteur", "members": [{"user_id": kine.user_id, "role": "KINE"}]},
    )
    join(stack, coord, room)
    await joined(stack, coord, did)
    await room_member(stack, member, did, room)
    state = widget_state(stack, coord, room)
    host = WidgetHost()
    try:
        context, page = await new_page(browser, width=360)
        await page.goto(host.page_url(state, room, member.user_id, member.access_token, stack.url))
        w = page.frame_locator("#widget")
        mine = w.locator(f"#solicitation-{sent['id']}")
        await mine.get_by_text("Rédiger l'avis").click()
        await mine.get_by_label("Éléments pris en compte").fill("EVA 7/10")
        await mine.get_by_label("Avis", exact=True).fill("Rotation des opioïdes")
        await mine.get_by_role("button", name="Enregistrer l'avis").click()
        await expect(w.locator(f"#report-{sent['id']}")).to_contain_text("Marc Palliatif (médecin)")
        [answered] = api(stack, t, "GET", f"{path}/solicitations")["solicitations"]
        assert answered["status"] == "repondue"
        assert answered["report"]["advice"] == "Rotation des opioïdes"
        widget_frame = next(f for f in page.frames if "/widget" in f.url)
        await axe_scan(widget_frame, "widget : avis rendu")
        await context.close()

        context, page = await new_page(browser, width=360)
        await page.goto(host.page_url(state, room, coord.user_id, coord.access_token, stack.url))
        w = page.frame_locator("#widget")
        await expect(w.locator(f"#report-{sent['id']}")).to_contain_text("Rotation des opioïdes")
        circle = w.locator("#circle-section")
        await circle.get_by_label("Groupe", exact=True).select_option(
            label="Kinés du secteur (1 personne(s))"
        )
        await circle.get_by_role("button", name="Inviter le groupe").click()
        await expect(w.locator("#favourites-outcomes li")).to_have_text(
            "Kim Kiné (masseur-kinésithérapeute) — masseur-kinésithérapeute : ajouté·e"
        )
        members = api(stack, t, "GET", f"{path}/circle")["members"]
        assert (kine.user_id, "KINE") in {(m["user_id"], m["role"]) for m in members}
        assert group["id"] in {g["id"] for g in api(stack, t, "GET", "/v1/me/favourites")["groups"]}
        audit = api(stack, t, "GET", f"{path}/audit")["entries"]
        assert {"solicitation.answer", "circle.favourites"} <= {
            e["action"] for e in audit if e["component"] == "widget" and e["allowed"]
        }
        widget_frame = next(f for f in page.frames if "/widget" in f.url)
        await axe_scan(widget_frame, "widget : groupe de favoris invité")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "widget-favoris-360.png"), full_page=True)
        await context.close()
    finally:
        host.close()
