"""The console's federation peers in a real browser (Debian's Chromium driven by
Playwright) against two real federating stacks (A, whose console is used, and C, a region
that already lists A as its peer): a malformed server name is refused naming the field; an
administrator adds C with a reason, and within the stated delay a user of C is added to a
circle, invited and joins the patient room, whose m.room.server_acl followed the list;
removing C makes the module refuse the next invite of one of C's users, the dossier service
refuse to add one, and a pending invitee of C who joins is put out; each change is audited
with before and after; a plain professional gets 403 on the page (audited); axe-core finds
no serious or critical violation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, expect

from maillon.shared.homeserver_client import HomeserverError, request_json
from synapse_modules.audit import read_audit
from tests.clients.test_admin_console import administrator
from tests.clients.test_workspace import axe_scan, base, join, login, new_page
from tests.harness.circle import MakeClient, membership, refusal, room_path, wait_for
from tests.harness.dossier import api, audit_rows, dossier_body
from tests.harness.hydrogen import register_person
from tests.harness.stack import Stack

pytestmark = pytest.mark.federation

# The delay the page states (``peers_refresh_seconds``), and the dossier side's settling
# second; the test allows the appservice and federation a few seconds more.
REFRESH = 5.0
WITHIN = REFRESH + 1.0 + 8.0


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Stack]]:
    """A (no peer yet) and C (which lists A): C's admission is A's console's to decide."""
    region_a = Stack.create(tmp_path_factory.mktemp("region-a"), federation=True)
    region_c = Stack.create(
        tmp_path_factory.mktemp("region-c"), federation=True, peer_servers=(region_a.server_name,)
    )
    region_a.start()
    try:
        region_c.start()
        try:
            yield region_a, region_c
        finally:
            region_c.stop()
    finally:
        region_a.stop()


def server_acl(stack: Stack, token: str, room_id: str) -> dict[str, Any]:
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.server_acl/"
    return dict(request_json("GET", stack.url + path, token=token))


def add_to_circle(stack: Stack, token: str, dossier_id: str, user_id: str, role: str) -> bool:
    """Whether the dossier service admits ``user_id`` into the circle (False: refused as
    not a partner server; any other refusal fails the test)."""
    try:
        api(
            stack,
            token,
            "POST",
            f"/v1/dossiers/{dossier_id}/circle",
            {"user_id": user_id, "role": role},
        )
    except HomeserverError as exc:
        assert exc.status == 400 and "n'est pas un serveur partenaire" in str(exc), exc
        return False
    return True


async def test_an_administrator_admits_then_removes_a_peer_region(
    regions: tuple[Stack, Stack], browser: Browser, make_client: MakeClient, tmp_path: Path
) -> None:
    region_a, region_c = regions
    peer = region_c.server_name
    admin = administrator(region_a)
    coordinator = register_person(region_a, "coord", "Camille Coordinatrice", "infirmière")
    dossier = api(region_a, coordinator.access_token, "POST", "/v1/dossiers", dossier_body())
    dossier_id, room_id = dossier["id"], dossier["room_id"]
    join(region_a, coordinator, room_id)
    doctor = make_client(region_c, "medecin")
    nurse = make_client(region_c, "infirmiere")
    for person, profession in ((doctor, "médecin généraliste"), (nurse, "infirmier")):
        region_a.bind_directory(person.user_id, profession)
    assert not add_to_circle(region_a, coordinator.access_token, dossier_id, doctor.user_id, "MT")
    assert peer not in server_acl(region_a, coordinator.access_token, room_id)["allow"]

    _, page = await new_page(browser)
    await login(page, region_a, admin)
    await page.goto(base(region_a) + "/admin/federation")
    await expect(
        page.get_by_role("heading", name="Serveurs partenaires (fédération)")
    ).to_be_visible()
    await expect(page.locator("main")).to_contain_text("au plus tard 5 secondes")
    await expect(page.locator("#peers")).to_contain_text("Aucun serveur partenaire")
    await axe_scan(page, "federation-vide")

    # A malformed name: refused naming the field, in French; nothing changes.
    await page.get_by_label("Serveur", exact=True).fill("pas un serveur!")
    await page.get_by_label("Motif", exact=True).fill("Convention interrégionale")
    await page.get_by_role("button", name="Ajouter", exact=True).click()
    errors = page.locator("#errors")
    await expect(errors).to_contain_text("champ « serveur » : nom de serveur invalide")
    await expect(page.locator("#peers")).to_contain_text("Aucun serveur partenaire")
    await axe_scan(page, "federation-refus")

    # C admitted, with its reason.
    await page.get_by_label("Serveur", exact=True).fill(peer)
    await page.get_by_label("Motif", exact=True).fill("Convention interrégionale de gériatrie")
    await page.get_by_role("button", name="Ajouter", exact=True).click()
    row = page.locator("#peers tbody tr", has_text=peer)
    await expect(row).to_contain_text("Convention interrégionale de gériatrie")
    await expect(row).to_contain_text("Adèle Administratrice")
    await axe_scan(page, "federation-liste")
    added_at = time.monotonic()
    [added] = [r for r in audit_rows(region_a, "admin.federation.add") if r.allowed]
    assert added.actor == admin.user_id
    assert json.loads(str(added.detail)) == {
        "objet": "serveurs partenaires",
        "avant": [],
        "apres": [peer],
    }

    # Within the stated delay: a user of C joins the circle and the room.
    admitted = await wait_for(
        lambda: add_to_circle(region_a, coordinator.access_token, dossier_id, doctor.user_id, "MT"),
        "the dossier service admitting C",
        timeout=WITHIN,
    )
    await doctor.accept_invite(room_id, timeout=WITHIN)
    assert time.monotonic() - added_at < WITHIN + 30
    print(f"\nC admitted by the dossier service {admitted:.1f} s after the click")
    await wait_for(
        lambda: membership(region_a, coordinator.access_token, room_id, doctor.user_id) == "join",
        "the doctor of C in the room",
        timeout=30,
    )
    acl = server_acl(region_a, coordinator.access_token, room_id)
    assert peer in acl["allow"] and region_a.server_name in acl["allow"]
    # A second user of C is invited, but has not joined yet when C is removed.
    assert add_to_circle(region_a, coordinator.access_token, dossier_id, nurse.user_id, "IDE")
    await wait_for(
        lambda: membership(region_a, coordinator.access_token, room_id, nurse.user_id) == "invite",
        "the nurse of C invited",
        timeout=30,
    )

    # C removed: the next invite or join of C's people is refused.
    await page.get_by_role("button", name=f"Retirer le serveur {peer}").click()
    await expect(page.locator("#peers")).to_contain_text("Aucun serveur partenaire")
    [removed] = [r for r in audit_rows(region_a, "admin.federation.remove") if r.allowed]
    assert json.loads(str(removed.detail))["avant"] == [peer]
    assert json.loads(str(removed.detail))["apres"] == []
    late = make_client(region_c, "tardif")
    region_a.bind_directory(late.user_id, "kinésithérapeute")

    def invite_refused() -> bool:
        # A coordinator's own invite of a remote person is refused either way (only the
        # dossier puts someone from another server in the circle): the reason changes.
        refused = refusal(
            region_a,
            coordinator.access_token,
            "POST",
            room_path(room_id, "invite"),
            {"user_id": late.user_id},
        )
        assert refused.status == 403
        return "n'est pas autorisé" in str(refused)

    refused_after = await wait_for(invite_refused, "the module refusing C", timeout=REFRESH + 5)
    print(f"C refused by the module {refused_after:.1f} s after the removal")
    decisions = [
        r
        for r in read_audit(region_a.directory / "audit", room_id)
        if r.target == late.user_id and not r.allowed
    ]
    assert decisions and decisions[-1].code == "server_not_allowed"

    def service_refuses() -> bool:
        """Until the dossier service re-reads the list it still admits C: each trial that
        got in is taken back, so the next one asks the same question."""
        if not add_to_circle(region_a, coordinator.access_token, dossier_id, late.user_id, "KINE"):
            return True
        path = f"/v1/dossiers/{dossier_id}/circle/{quote(late.user_id)}"
        api(region_a, coordinator.access_token, "DELETE", path)
        return False

    await wait_for(service_refuses, "the dossier service refusing C", timeout=REFRESH + 5)
    await wait_for(
        lambda: peer not in server_acl(region_a, coordinator.access_token, room_id)["allow"],
        "the room's server ACL without C",
        timeout=30,
    )
    # The pending invitee of C joins (a remote join runs no module hook): put out at once.
    await nurse.client.join(room_id)
    await wait_for(
        lambda: (
            membership(region_a, coordinator.access_token, room_id, nurse.user_id)
            in ("leave", "ban")
        ),
        "the nurse of C put out",
        timeout=30,
    )

    def kick_audited() -> list[str]:
        # The keeper writes its audit row once Synapse has answered the kick: the nurse may
        # be seen out of the room a moment before the row is there.
        return [
            r.code
            for r in read_audit(region_a.directory / "audit", room_id)
            if r.target == nurse.user_id and r.action == "kick"
        ]

    await wait_for(lambda: bool(kick_audited()), "the keeper's audit of the kick", timeout=30)
    assert kick_audited()[-1] == "intruder_join"


async def test_a_plain_professional_gets_403_on_the_federation_page(
    regions: tuple[Stack, Stack], browser: Browser
) -> None:
    region_a, _ = regions
    pro = register_person(region_a, "pro", "Pierre Professionnel", "kinésithérapeute")
    _, page = await new_page(browser)
    await login(page, region_a, pro)
    before = len(audit_rows(region_a, "admin.federation.read"))
    response = await page.goto(base(region_a) + "/admin/federation")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("réservée aux administrateurs")
    await axe_scan(page, "federation-403")
    token = await page.locator("form[action='/logout'] input[name=csrf]").get_attribute("value")
    status = await page.evaluate(
        """async ([token]) => (await fetch("/admin/federation", {method: "POST",
            headers: {"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"},
            body: "what=add&server=evil.test&reason=x"})).status""",
        [token],
    )
    assert status == 403
    refused = audit_rows(region_a, "admin.federation.read")[before:]
    assert refused and all(r.actor == pro.user_id and not r.allowed for r in refused)
    changes = [r for r in audit_rows(region_a, "admin.federation.change") if r.actor == pro.user_id]
    assert changes and not changes[-1].allowed
