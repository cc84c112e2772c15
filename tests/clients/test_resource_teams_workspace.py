"""A resource team's solicitation in the workspace's "À faire", in a real browser
(Debian's Chromium driven by Playwright) against the PostgreSQL stack: the member on duty
sees the team, the reason, the pathway and the requester by name and profession (no Matrix
id), accepts with the page's form (CSRF-protected) and finds the dossier in "Mes dossiers"."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.clients.test_workspace import (
    base,
    login,
    new_page,
    no_matrix_id_shown,
    open_dossier,
    raw,
)
from tests.harness.dossier import api
from tests.harness.hydrogen import register_person
from tests.harness.stack import Stack
from tests.integration.test_resource_teams_stack import _cli

pytestmark = pytest.mark.postgres


async def test_the_on_duty_member_accepts_from_the_worklist(
    pg_stack: Stack,
    browser: Browser,
) -> None:
    stack = pg_stack
    coord = register_person(stack, "coord", "Anne Morel", "infirmière coordinatrice")
    member = register_person(stack, "gerontologue", "Paul Lenoir", "médecin gériatre")
    slug = "emg-" + member.localpart[-6:]
    made = _cli(
        stack, "add", "--dir", str(stack.directory), slug, "--name", "Équipe mobile de gériatrie",
        "--level", "departementale", "--member", member.user_id,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    dossier = open_dossier(stack, coord.access_token)
    path = f"/v1/dossiers/{dossier['id']}"
    consent = {"consent_share_outside": True, "consent_note": "oral"}
    api(stack, coord.access_token, "PATCH", path, consent)
    body = {"team": slug, "kind": "prise_en_charge", "reason": "chutes à répétition"}
    sent = api(stack, coord.access_token, "POST", f"{path}/solicitations", body)

    # A forged form (no CSRF token) is refused.
    status, _, _ = raw("POST", base(stack) + f"/sollicitations/{sent['id']}/accepter", b"")
    assert status in (401, 403)

    context, page = await new_page(browser)
    try:
        await login(page, stack, member)
        item = page.locator("#todo-solicitations li").filter(has_text="chutes à répétition")
        await expect(item).to_contain_text("Équipe mobile de gériatrie")
        await expect(item).to_contain_text("Anne Morel (infirmière coordinatrice)")
        await no_matrix_id_shown(page)
        await item.get_by_role("button", name="Accepter").click()
        await expect(page.get_by_role("heading", name="Mes dossiers", level=1)).to_be_visible()
        taken = page.locator("#todo-solicitations li").filter(has_text="chutes à répétition")
        await expect(taken).to_contain_text("acceptée")
        await expect(taken.get_by_role("link", name="ouvrir le dossier")).to_be_visible()
    finally:
        await context.close()
    circle = api(stack, coord.access_token, "GET", f"{path}/circle")["members"]
    assert [m["user_id"] for m in circle if m["role"] == "ERS"] == [member.user_id]
