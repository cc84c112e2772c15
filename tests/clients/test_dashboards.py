"""The dashboards under /tableaux-de-bord/ in a real browser (Debian's Chromium driven by
Playwright) against a real stack on PostgreSQL with a real SMTP server as the MSSanté
operator: the figures equal counts made here from the data this test created (dossiers,
tasks, notes, mails through the relay's SMTP listener, a join in the room); the CSV and XLSX
extractions read back match them and hold no identity unless allowed; the monthly report's
PDF (pdftotext) holds the same figures, reaches the référent by SMTP and is downloadable; a
manager of another structure gets 403 (audited); axe-core finds nothing serious."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import email
import email.policy
import io
import math
import re
import secrets
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from openpyxl import load_workbook
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select, update

from dossier_api.domain.indicators import next_month
from dossier_api.domain.mail.outbox import relay_marker
from dossier_api.domain.models import (
    AuditEntry,
    Dossier,
    MonthlyReport,
    Professional,
    Solicitation,
    SolicitationEvent,
)
from dossier_api.domain.monthly_report import MonthlyReports
from maillon.shared.clock import utcnow
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.clients.test_workspace import axe_scan, join, joined
from tests.harness.circle import wait_for
from tests.harness.dossier import IDENTITY, api, dossier_body
from tests.harness.hydrogen import Person, register_person
from tests.harness.mail import SENDER, SinkHandler, build_mail
from tests.harness.stack import Stack, postgres_stack_with_smtp

pytestmark = pytest.mark.postgres

UI_MS = 30_000
PATIENTS = [
    {
        "birth_name": "Lefebvre",
        "first_names": "Odette",
        "birth_date": "1938-07-21",
        "ins_matricule": "238077505600123",
    },
    {
        "birth_name": "Garnier",
        "first_names": "Marcel",
        "birth_date": "1944-02-09",
        "ins_matricule": "144027505600145",
    },
    {
        "birth_name": "Rousseau",
        "first_names": "Yvette",
        "birth_date": "1950-11-30",
        "ins_matricule": "250117505600167",
    },
]


@dataclass
class World:
    stack: Stack
    sink: SinkHandler
    admin: Person
    manager: Person
    other_manager: Person
    referent_mail: str
    structure: str
    other: str
    dossiers: list[dict[str, Any]]
    expected: dict[str, int]


@pytest.fixture(scope="module")
def dash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, SinkHandler]]:
    with postgres_stack_with_smtp(tmp_path_factory.mktemp("stack-dash")) as made:
        yield made


async def _send_mail(stack: Stack, address: str, subject: str) -> None:
    _, raw = build_mail(address, subject, "Compte rendu.")
    port = stack.deployment.settings.mail.inbound.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as smtp:
        refused, _ = await smtp.sendmail(SENDER, [address], raw)
    assert refused == {}


@pytest.fixture(scope="module")
def world(dash_stack: tuple[Stack, SinkHandler]) -> World:
    return asyncio.run(_make_world(*dash_stack))


async def _make_world(stack: Stack, sink: SinkHandler) -> World:
    admin = register_person(stack, "admin", "Alice Admin", None, admin=True)
    manager = register_person(stack, "mgr", "Marc Manager", "cadre de santé")
    other_manager = register_person(stack, "omgr", "Olga Autre", "cadre de santé")
    referent = register_person(stack, "ref", "Rémi Référent", "médecin")
    coordinator = register_person(stack, "coord", "Claire Coordinatrice", "infirmière")
    token = admin.access_token
    structure = api(stack, token, "POST", "/v1/structures", {"name": "DAC Garonne", "kind": "dac"})
    other = api(stack, token, "POST", "/v1/structures", {"name": "DAC Ariège", "kind": "dac"})
    for who, where, role in (
        (manager, structure, "manager"),
        (referent, structure, "referent"),
        (coordinator, structure, "member"),
        (other_manager, other, "manager"),
    ):
        path = f"/v1/structures/{where['id']}/staff"
        api(stack, token, "POST", path, {"user_id": who.user_id, "role": role})
    referent_mail = f"remi.referent.{secrets.token_hex(2)}@garonne.mssante.fr"
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    with engine.begin() as conn:
        conn.execute(
            update(Professional)
            .where(Professional.user_id == referent.user_id)
            .values(mssante=referent_mail)
        )
    engine.dispose()

    ctoken = coordinator.access_token
    dossiers = []
    for patient in PATIENTS:
        identity = {**IDENTITY, **patient}
        body = dossier_body(identity=identity, structure_id=structure["id"])
        dossiers.append(api(stack, ctoken, "POST", "/v1/dossiers", body))
    # One dossier of the other structure: never counted in the first one's figures.
    elsewhere = api(stack, ctoken, "POST", "/v1/dossiers", dossier_body(structure_id=other["id"]))

    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    first, second, third = (d["id"] for d in dossiers)
    tasks = [
        (first, yesterday, "done"),
        (first, yesterday, None),
        (second, yesterday, None),
        (second, tomorrow, None),
        (third, None, "done"),
    ]
    for dossier_id, due, status in tasks:
        body = {"title": "Appeler l'IDE", "assignee": coordinator.user_id}
        if due:
            body["due"] = due
        task = api(stack, ctoken, "POST", f"/v1/dossiers/{dossier_id}/tasks", body)
        if status:
            path = f"/v1/dossiers/{dossier_id}/tasks/{task['id']}"
            api(stack, ctoken, "PATCH", path, {"status": status})
    notes = [(first, True), (first, False), (second, True), (third, False)]
    for dossier_id, urgent in notes:
        body = {"text": "Chute ce matin", "urgent": urgent}
        api(stack, ctoken, "POST", f"/v1/dossiers/{dossier_id}/notes", body)

    def have_rooms() -> bool:
        return all(
            api(stack, ctoken, "GET", f"/v1/dossiers/{d['id']}")["room_id"] for d in dossiers
        )

    await wait_for(have_rooms, "rooms of the dossiers", timeout=60)
    mails = [dossiers[0], dossiers[0], dossiers[2]]
    for n, dossier in enumerate(mails):
        await _send_mail(stack, str(dossier["mail_address"]), f"Compte rendu {n}")
    solicited = await _solicit_teams(stack, token, ctoken, first, second, str(elsewhere["id"]))
    api(
        stack,
        ctoken,
        "PATCH",
        f"/v1/dossiers/{third}",
        {"status": "closed", "status_reason": "fin de prise en charge"},
    )
    # The coordinator joins the first dossier's room: the first circle member's arrival.
    room_id = api(stack, ctoken, "GET", f"/v1/dossiers/{first}")["room_id"]
    join(stack, coordinator, room_id)
    await joined(stack, coordinator, first)

    # The expected figures, counted here from what was created above.
    expected = {
        "opened": len(dossiers),
        "active": len(dossiers),  # the closed one was active this month
        "closed": 1,
        "tasks_done": sum(1 for _, _, s in tasks if s == "done"),
        "tasks_overdue": sum(1 for _, due, s in tasks if due == yesterday and s is None),
        "urgent_notes": sum(1 for _, urgent in notes if urgent),
        "mails": len(mails),
        "notes": len(notes),
        **solicited,
        # At the month's end (the monthly report), every task due before it and not done.
        "tasks_overdue_at_month_end": sum(
            1
            for _, due, s in tasks
            if due and due < next_month(dt.date.today()).isoformat() and s is None
        ),
    }
    return World(
        stack,
        sink,
        admin,
        manager,
        other_manager,
        referent_mail,
        structure["id"],
        other["id"],
        dossiers,
        expected,
    )


async def _solicit_teams(
    stack: Stack, admin_token: str, ctoken: str, first: str, second: str, elsewhere: str
) -> dict[str, int]:
    """Resource-team solicitations through the API: two accepted (the second one later),
    one declined by everyone told, one expired (a team answering within a second, the
    appservice's escalation loop), and one of the other structure left open. Returns their
    counts in the structure."""
    teammate = register_person(stack, "ers", "Édith Équipe", "médecin")
    for slug, seconds in (("emsp-garonne", 3600), ("emg-garonne", 1)):
        team = {
            "slug": slug,
            "name": f"Équipe {slug}",
            "level": "departementale",
            "members": [{"user_id": teammate.user_id, "role": "médecin"}],
            "response_seconds": seconds,
        }
        api(stack, admin_token, "POST", "/v1/teams", team)

    def solicit(dossier_id: str, team: str) -> int:
        body = {"team": team, "kind": "avis", "reason": "Avis douleur", "attested": True}
        path = f"/v1/dossiers/{dossier_id}/solicitations"
        return int(api(stack, ctoken, "POST", path, body)["id"])

    quick, slow, declined = (solicit(d, "emsp-garonne") for d in (first, second, first))
    expiring = solicit(second, "emg-garonne")
    solicit(elsewhere, "emsp-garonne")
    ttoken = teammate.access_token
    api(stack, ttoken, "POST", f"/v1/solicitations/{quick}/accept", {})
    api(stack, ttoken, "POST", f"/v1/solicitations/{declined}/decline", {})

    def expired() -> bool:
        rows = api(stack, ctoken, "GET", f"/v1/dossiers/{second}/solicitations")
        return any(r["id"] == expiring and r["status"] == "expiree" for r in rows["solicitations"])

    await wait_for(expired, "the one-second team's solicitation expired", timeout=60)
    api(stack, ttoken, "POST", f"/v1/solicitations/{slow}/accept", {})
    return {
        "solicitations": 4,
        "solicitations_accepted": 2,
        "solicitations_declined": 1,
        "solicitations_expired": 1,
        "region_solicitations": 5,
    }


def response_minutes(world: World) -> list[float]:
    """Sent to accepted, in minutes, of the structure's accepted solicitations, read from
    the stored rows (not from the dashboard's query)."""
    engine = make_engine(world.stack.deployment.settings.database_url, create_tables=False)
    try:
        with engine.connect() as conn:
            sent = dict(
                conn.execute(
                    select(Solicitation.id, Solicitation.created_at)
                    .join(Dossier, Dossier.id == Solicitation.dossier_id)
                    .where(Dossier.structure_id == world.structure)
                ).all()
            )
            accepted = conn.execute(
                select(SolicitationEvent.solicitation_id, SolicitationEvent.at).where(
                    SolicitationEvent.status == "acceptee"
                )
            ).all()
    finally:
        engine.dispose()
    return sorted((at - sent[sid]).total_seconds() / 60 for sid, at in accepted if sid in sent)


def minutes_shown(value: float) -> str:
    rounded = round(value, 1)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}".replace(".", ",")


def response_figures(world: World) -> dict[str, str]:
    minutes = response_minutes(world)
    assert len(minutes) == world.expected["solicitations_accepted"]
    p90 = minutes[math.ceil(0.9 * len(minutes)) - 1]  # nearest rank
    return {
        "response_median_minutes": minutes_shown(statistics.median(minutes)),
        "response_p90_minutes": minutes_shown(p90),
    }


SOLICITATION_KEYS = (
    "solicitations",
    "solicitations_accepted",
    "solicitations_declined",
    "solicitations_expired",
)


async def signed_in(browser: Browser, stack: Stack, person: Person) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", viewport={"width": 1280, "height": 900}
    )
    page = await context.new_page()
    page.set_default_timeout(UI_MS)
    await page.goto(stack.deployment.settings.dossier_api.url + "/tableaux-de-bord/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("Identifiant Matrix").fill(person.localpart)
    await page.get_by_label("Mot de passe").fill(person.password)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("heading", name="Tableaux de bord", level=1)).to_be_visible()
    return context, page


def base(world: World) -> str:
    return world.stack.deployment.settings.dossier_api.url + "/tableaux-de-bord"


def this_month() -> str:
    return f"{utcnow():%Y-%m}"


async def summary_of(page: Page) -> dict[str, str]:
    rows = page.locator("#summary tbody tr")
    figures = {}
    for n in range(await rows.count()):
        row = rows.nth(n)
        figures[str(await row.get_attribute("data-key"))] = (
            await row.locator("td").inner_text()
        ).strip()
    return figures


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as pdftotext (poppler-utils) reads it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rapport.pdf"
        path.write_bytes(pdf)
        done = subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True
        )
    return done.stdout.decode()


def identities_absent(content: str) -> None:
    for patient in PATIENTS:
        for value in patient.values():
            assert value not in content, f"identity in a pseudonymised extraction: {value}"


def audit_rows(world: World, actor: str, action: str) -> list[Any]:
    engine = make_engine(world.stack.deployment.settings.database_url, create_tables=False)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(AuditEntry).where(AuditEntry.actor == actor, AuditEntry.action == action)
                ).all()
            )
    finally:
        engine.dispose()


async def test_manager_sees_figures_extracts_them_and_gets_the_monthly_report(
    world: World, browser: Browser
) -> None:
    expected = world.expected
    context, page = await signed_in(browser, world.stack, world.manager)
    await axe_scan(page, "tableaux de bord")
    await page.get_by_role("link", name="DAC Garonne").click()
    await expect(page.get_by_role("heading", name="DAC Garonne", level=1)).to_be_visible()
    month = this_month()
    await page.get_by_label("Du mois").fill(month)
    await page.get_by_label("Au mois").fill(month)
    await page.get_by_role("button", name="Afficher").click()
    await expect(page.locator(f'#months tr[data-month="{month}"]')).to_be_visible()
    figures = await summary_of(page)
    for key in (
        "opened",
        "active",
        "closed",
        "tasks_done",
        "tasks_overdue",
        "urgent_notes",
        "mails",
        *SOLICITATION_KEYS,
    ):
        assert figures[key] == str(expected[key]), (key, figures)
    assert figures["first_join_hours"] != "—"  # one dossier's circle member joined
    responses = response_figures(world)
    for key, shown in responses.items():
        assert figures[key] == shown, (key, figures, response_minutes(world))
    row = page.locator(f'#solicitations tr[data-month="{month}"] td')
    await expect(row).to_have_text(
        [str(expected["solicitations"]), str(expected["solicitations_accepted"])]
    )
    drawn = page.locator("#h-solicitations ~ .chart-pair img")
    await page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=await drawn.element_handle()
    )
    # The chart is an image of this origin, drawn by matplotlib, its data in the table.
    chart = page.locator("#h-months ~ .chart-pair img")
    await page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=await chart.element_handle()
    )
    svg = await context.request.get(str(await chart.evaluate("img => img.src")))
    assert svg.ok and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"Matplotlib" in await svg.body() or b"matplotlib" in await svg.body()
    await axe_scan(page, "tableau de bord de la structure")

    # CSV and XLSX, pseudonymised: they hold the same figures and no identity.
    query = f"du={month}&au={month}"
    response = await context.request.get(
        f"{base(world)}/structures/{world.structure}/extraction.csv?{query}"
    )
    assert response.ok
    content = (await response.body()).decode("utf-8-sig")
    identities_absent(content)
    rows = list(csv.DictReader(io.StringIO(content), delimiter=";"))
    assert len(rows) == expected["active"]
    assert "nom" not in rows[0] and "ins" not in rows[0]
    assert sum(int(r["notes_urgentes"]) for r in rows) == expected["urgent_notes"]
    assert sum(int(r["notes"]) for r in rows) == expected["notes"]
    assert sum(int(r["taches_faites"]) for r in rows) == expected["tasks_done"]
    assert sum(int(r["taches_en_retard"]) for r in rows) == expected["tasks_overdue"]
    assert sum(int(r["courriels"]) for r in rows) == expected["mails"]
    assert sum(int(r["sollicitations"]) for r in rows) == expected["solicitations"]
    accepted = sum(int(r["sollicitations_acceptees"]) for r in rows)
    assert accepted == expected["solicitations_accepted"]
    assert sum(1 for r in rows if r["statut"] == "closed") == expected["closed"]
    digest = response.headers["x-content-sha256"]
    audited = audit_rows(world, world.manager.user_id, "dashboard.extract")
    assert any(digest in (a.detail or "") and a.allowed for a in audited)

    response = await context.request.get(
        f"{base(world)}/structures/{world.structure}/extraction.xlsx?{query}"
    )
    assert response.ok
    sheet = load_workbook(io.BytesIO(await response.body()), read_only=True).active
    assert sheet is not None
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    header, body = table[0], table[1:]
    assert len(body) == expected["active"]
    column = {name: i for i, name in enumerate(header)}
    assert sum(r[column["notes_urgentes"]] for r in body) == expected["urgent_notes"]
    assert sum(r[column["taches_en_retard"]] for r in body) == expected["tasks_overdue"]
    assert sum(r[column["courriels"]] for r in body) == expected["mails"]
    assert sum(r[column["sollicitations"]] for r in body) == expected["solicitations"]
    accepted = sum(r[column["sollicitations_acceptees"]] for r in body)
    assert accepted == expected["solicitations_accepted"]
    identities_absent(repr(table))
    # Asking for names without the administrator's leave: still pseudonymised.
    response = await context.request.get(
        f"{base(world)}/structures/{world.structure}/extraction.csv?{query}&identite=oui"
    )
    identities_absent((await response.body()).decode("utf-8-sig"))

    # The monthly report of this month, made on the 1st of the next one (injected clock).
    deployment = world.stack.deployment
    install_key_ring(KeyRing.for_secrets(deployment.secrets))
    engine = make_engine(deployment.settings.database_url, create_tables=False)
    first_of_next = next_month(utcnow().date())
    clock = dt.datetime(first_of_next.year, first_of_next.month, 1, 6, tzinfo=dt.UTC)
    try:
        reports = MonthlyReports(
            engine,
            from_address=f"dossiers@{deployment.settings.mail_domain}",
            domain=deployment.settings.mail_domain,
            relay_marker=relay_marker(deployment),
            clock=lambda: clock,
        )
        made = reports.run_due()
        assert (world.structure, month) in made
        assert reports.run_due() == []  # never twice
        with engine.connect() as conn:
            count = conn.execute(
                select(MonthlyReport.id).where(MonthlyReport.structure_id == world.structure)
            ).all()
        assert len(count) == 1
    finally:
        engine.dispose()

    def mailed() -> list[EmailMessage]:
        found = []
        for received in world.sink.received:
            if world.referent_mail in received.rcpt_tos:
                found.append(email.message_from_bytes(received.data, policy=email.policy.default))
        return [m for m in found if isinstance(m, EmailMessage)]

    await wait_for(lambda: bool(mailed()), "monthly report mailed to the référent", timeout=60)
    message = mailed()[0]
    assert "DAC Garonne" in str(message["Subject"])
    pdfs = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1
    attached = pdfs[0].get_content()
    assert isinstance(attached, bytes)
    text = await asyncio.to_thread(pdf_text, attached)
    for label, key in (
        ("Dossiers ouverts", "opened"),
        ("Dossiers actifs", "active"),
        ("Dossiers clos", "closed"),
        ("Tâches faites", "tasks_done"),
        ("Tâches en retard", "tasks_overdue"),
        ("Notes urgentes", "urgent_notes"),
        ("Courriels", "mails"),
        ("Sollicitations des équipes ressources", "solicitations"),
        ("Sollicitations acceptées", "solicitations_accepted"),
        ("Sollicitations refusées", "solicitations_declined"),
        ("Sollicitations expirées", "solicitations_expired"),
    ):
        wanted = expected["tasks_overdue_at_month_end" if key == "tasks_overdue" else key]
        assert re.search(rf"^\s*{label} : {wanted}\s*$", text, re.MULTILINE), (label, text)
    for label, key in (
        (r"Délai médian de réponse des équipes \(minutes\)", "response_median_minutes"),
        (r"Délai de réponse des équipes, 90e centile \(minutes\)", "response_p90_minutes"),
    ):
        wanted = responses[key]
        assert re.search(rf"^\s*{label} : {wanted}\s*$", text, re.MULTILINE), (label, text)
    identities_absent(text)
    # Downloadable from the dashboard: the same file.
    await page.reload()
    link = page.get_by_role("link", name=f"Rapport de {month}")
    await expect(link).to_be_visible()
    href = str(await link.get_attribute("href"))
    response = await context.request.get(world.stack.deployment.settings.dossier_api.url + href)
    assert response.ok and await response.body() == attached
    await context.close()


async def test_identities_only_when_the_administrator_allows_them(
    world: World, browser: Browser
) -> None:
    context, page = await signed_in(browser, world.stack, world.admin)
    await page.goto(f"{base(world)}/structures/{world.structure}")
    for column in ("nom", "prenoms", "date_naissance", "ins"):
        await page.get_by_label(column, exact=True).check()
    await page.get_by_role("button", name="Enregistrer les colonnes").click()
    await expect(page.locator("#extraction")).to_contain_text("date_naissance")
    # The administrator is not staff of the structure: pseudonymised for them, and its
    # aggregates leave the structure (small cells hidden).
    await expect(page.locator("#small-cells")).to_be_visible()
    figures = await summary_of(page)
    assert figures["closed"] == "< 5"
    assert figures["solicitations_accepted"] == "< 5"
    await axe_scan(page, "tableau de bord (administrateur)")
    # The region's and the pathway's: the other structure's solicitation counts there too.
    month = this_month()
    for board in ("region", "parcours/dac"):
        await page.goto(f"{base(world)}/{board}?du={month}&au={month}")
        figures = await summary_of(page)
        assert figures["solicitations"] == str(world.expected["region_solicitations"]), board
    query = f"du={month}&au={month}&identite=oui"
    url = f"{base(world)}/structures/{world.structure}/extraction.csv?{query}"
    response = await context.request.get(url)
    identities_absent((await response.body()).decode("utf-8-sig"))
    changes = audit_rows(world, world.admin.user_id, "dashboard.extraction_columns")
    assert changes and "après" in (changes[-1].detail or "")
    await context.close()

    # The manager, entitled, now gets the names they asked for.
    context, page = await signed_in(browser, world.stack, world.manager)
    response = await context.request.get(url)
    content = (await response.body()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(content), delimiter=";"))
    assert {r["nom"] for r in rows} == {p["birth_name"] for p in PATIENTS}
    assert {r["ins"] for r in rows} == {p["ins_matricule"] for p in PATIENTS}
    await context.close()


async def test_a_manager_cannot_see_another_structure(world: World, browser: Browser) -> None:
    context, page = await signed_in(browser, world.stack, world.other_manager)
    await expect(page.get_by_role("link", name="DAC Ariège")).to_be_visible()
    assert await page.get_by_role("link", name="DAC Garonne").count() == 0
    target = f"{base(world)}/structures/{world.structure}"
    response = await page.goto(target)
    assert response is not None and response.status == 403
    await expect(page.get_by_text("Seuls les responsables de cette structure")).to_be_visible()
    await axe_scan(page, "refus")
    for path in (
        "/extraction.csv",
        "/extraction.xlsx",
        "/dossiers-par-mois.svg",
        "/sollicitations-par-mois.svg",
    ):
        refused = await context.request.get(target + path)
        assert refused.status == 403, path
    response = await page.goto(f"{base(world)}/region")
    assert response is not None and response.status == 403
    refusals = audit_rows(world, world.other_manager.user_id, "dashboard.structure")
    assert refusals and not any(a.allowed for a in refusals)
    extractions = audit_rows(world, world.other_manager.user_id, "dashboard.extract")
    assert len(extractions) == 2 and not any(a.allowed for a in extractions)
    await context.close()
