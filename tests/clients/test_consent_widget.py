"""Consent on the widget path, in a real browser (issue 17): the dossier widget hosted by the
real matrix-widget-api (a real OpenID token traded for a session), its circle form and its
consent form. A coordinator adding a role outside the pathway's care team (DAC: AD, aide à
domicile) is refused in French without consent, let through with the attestation she
records on the form (kept in the consent history), and refused after an opposition even
with the attestation; each refusal is audited as the widget's."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, FrameLocator, expect

from dossier_api.domain.directory import upsert_professional
from maillon.shared.circle import DirectoryEntry
from maillon.shared.store import make_engine
from maillon.wiring.cli import main as cli_main
from tests.clients.test_workspace import UI_MS, join, joined, open_dossier, widget_state
from tests.harness.annuaire import person as annuaire_person
from tests.harness.annuaire import write_activite
from tests.harness.dossier import api
from tests.harness.hydrogen import Person, register_person
from tests.harness.stack import Stack, postgres_stack
from tests.harness.widget_host import WidgetHost

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def consent_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with postgres_stack(tmp_path_factory.mktemp("stack-consent")) as stack:
        yield stack


def _listed_accounts(stack: Stack, tmp: Path, count: int) -> list[tuple[Person, str]]:
    """A small national directory imported into the stack; accounts bound to ``count`` of
    its professionals (by RPPS, as ``!annuaire lier`` does), with the name the page shows."""
    made = write_activite(tmp / "PS_LibreAcces_Personne_activite_202612010000.txt", 60)
    command = ["directory", "import", "--dir", str(stack.directory), "--quiet", str(made.path)]
    assert cli_main(command) == 0
    listed: list[Any] = [
        p
        for p in map(annuaire_person, range(60))
        if p.id_type == "8" and p.national_id in made.people
    ]
    accounts = []
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        for entry in listed[-count:]:
            name = f"{entry.first_name.title()} {entry.last_name.title()}"
            account = register_person(stack, "waide", name, None)
            upsert_professional(
                engine,
                DirectoryEntry(account.user_id, entry.profession, rpps=entry.identifier),
                name,
            )
            accounts.append((account, f"{entry.last_name} {entry.first_name}"))
    finally:
        engine.dispose()
    return accounts


async def _add(w: FrameLocator, name: str, role: str, attested: bool) -> None:
    """The circle form of the widget: the directory search, the person, the role."""
    await w.get_by_label("Chercher dans l'annuaire").fill(name)
    await w.locator("#circle-section").get_by_role("button", name="Rechercher").click()
    last = name.split()[0]
    await w.locator("#directory-results label", has_text=re.compile(last, re.I)).first.click()
    await w.get_by_label("Rôle", exact=True).select_option(role)
    if attested:
        await w.get_by_label("J'atteste que la personne a été informée").check()
    await w.locator("#directory-results").get_by_role("button", name="Ajouter").click()


async def test_widget_circle_form_needs_consent_or_attestation_and_yields_to_opposition(
    consent_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    stack = consent_stack
    mark = secrets.token_hex(3)
    coord = register_person(stack, "wcons", "Corinne Consent", "infirmière coordinatrice")
    (first, first_q), (second, second_q) = _listed_accounts(stack, tmp_path, 2)
    first_last = first_q.split()[0].title()
    t = coord.access_token
    dossier = open_dossier(stack, t, birth_name=f"Consentnom{mark}", first_names="Rose")
    did, room = dossier["id"], dossier["room_id"]
    join(stack, coord, room)
    await joined(stack, coord, did)
    state = widget_state(stack, coord, room)

    def members() -> dict[str, str]:
        circle = api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
        return {m["user_id"]: m["role"] for m in circle if m["active"]}

    host = WidgetHost()
    try:
        context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
        page = await context.new_page()
        page.set_default_timeout(UI_MS)
        await page.goto(host.page_url(state, room, coord.user_id, t, stack.url))
        w = page.frame_locator("#widget")
        await expect(w.locator("#patient-name")).to_have_text(f"CONSENTNOM{mark.upper()} Rose")

        # 1. No consent recorded, no attestation: refused, in French, nothing written.
        await _add(w, first_q, "AD", attested=False)
        error = w.locator("#circle-error")
        await expect(error).to_contain_text("hors de l'équipe de soins")
        await expect(error).to_contain_text("consentement")
        assert first.user_id not in members()

        # 2. With the coordinator's attestation: she enters, the attestation is recorded.
        await _add(w, first_q, "AD", attested=True)
        await expect(w.locator("#circle")).to_contain_text(first_last)
        assert members()[first.user_id] == "AD"
        history = api(stack, t, "GET", f"/v1/dossiers/{did}/consent/history")
        assert [(h["field"], h["value"], h["actor"]) for h in history["history"]] == [
            ("attestation", True, coord.user_id)
        ]
        assert history["consent"]["share_outside"] is False, "an attestation, not a consent"

        # 3. The person objects (the widget's consent form): refused even with the attestation.
        await w.get_by_text("Enregistrer un changement du consentement").click()
        await w.locator("#c-opp").check()
        await w.get_by_label("Comment il a été recueilli").fill("opposition écrite")
        await w.locator("#consent-section").get_by_role("button", name="Enregistrer").click()
        history_list = w.locator("#consent-history")
        await expect(history_list).to_contain_text("opposition → oui (opposition écrite)")
        await expect(history_list).to_contain_text("attestation (personne informée")
        await _add(w, second_q, "AD", attested=True)
        await expect(w.locator("#circle-error")).to_contain_text("opposée")
        assert second.user_id not in members()
        consent = api(stack, t, "GET", f"/v1/dossiers/{did}/consent/history")
        assert consent["consent"]["opposition"] is True
        assert [h["field"] for h in consent["history"]] == ["attestation", "opposition"]
        await context.close()
    finally:
        host.close()

    entries = api(stack, t, "GET", f"/v1/dossiers/{did}/audit")["entries"]
    adds = [e for e in entries if e["action"] == "circle.add" and e["actor"] == coord.user_id]
    assert [e["allowed"] for e in adds].count(False) == 2, "both refusals audited"
    assert {e["component"] for e in adds} == {"widget"}
    assert any("attestation" in str(e["detail"]) for e in adds if e["allowed"])
