"""The workspace pages and the widget in a real browser (Debian's Chromium driven by
Playwright) against a real stack on PostgreSQL: login with the Matrix account, "Mes
dossiers", search by the patient's name (blind index), the dossier page and its audit, the
refusals (outsider, CSRF, logout, expiry), XSS payloads rendered inert, axe-core scans and
screenshots at 1280 and 360 px; the dossier widget hosted by the real matrix-widget-api."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, BrowserContext, Frame, Page, expect

from dossier_api.domain.directory import upsert_professional
from maillon.shared.circle import DOSSIER_WIDGET_ID, WIDGET_EVENT, DirectoryEntry
from maillon.shared.homeserver_client import HomeserverError, request_any, request_json
from maillon.shared.store import make_engine
from maillon.wiring.cli import main as cli_main
from tests.clients.conftest import ARTIFACTS
from tests.harness.annuaire import person as annuaire_person
from tests.harness.annuaire import write_activite
from tests.harness.circle import wait_for
from tests.harness.dossier import IDENTITY, api, api_error, dossier_body, widget_session
from tests.harness.hydrogen import Person, register_person
from tests.harness.stack import Stack, postgres_stack
from tests.harness.widget_host import JS, WidgetHost

pytestmark = pytest.mark.postgres

WIDGET_SESSION_SECONDS = 30  # the widget's session expiry in this module's stack
UI_MS = 30_000
AXE = JS / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ARTIFACTS / "workspace"
XSS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "<svg onload=window.__xss=1>",
    "javascript:window.__xss=1",
    "{{7*7}} ' \" </textarea></title><iframe src=javascript:window.__xss=1>",
]


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own on PostgreSQL, with a short widget session (expiry tested)."""

    def short_widget_sessions(stack: Stack) -> None:
        config = stack.directory / "maillon.yaml"
        config.write_text(
            config.read_text() + f"\nsessions:\n  widget_max_seconds: {WIDGET_SESSION_SECONDS}\n"
        )

    with postgres_stack(tmp_path_factory.mktemp("stack-ws"), short_widget_sessions) as stack:
        yield stack


async def new_page(browser: Browser, width: int = 1280) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", viewport={"width": width, "height": 900}
    )
    page = await context.new_page()
    page.set_default_timeout(UI_MS)
    return context, page


# -- helpers ----------------------------------------------------------------------------


def base(stack: Stack) -> str:
    return stack.deployment.settings.dossier_api.url


def open_dossier(stack: Stack, token: str, **identity: Any) -> dict[str, Any]:
    body = dossier_body(identity={**IDENTITY, **identity})
    return api(stack, token, "POST", "/v1/dossiers", body)


def join(stack: Stack, person: Person, room_id: str) -> None:
    request_json(
        "POST",
        stack.url + f"/_matrix/client/v3/rooms/{quote(room_id)}/join",
        {},
        token=person.access_token,
    )


async def joined(stack: Stack, person: Person, dossier_id: str) -> None:
    def done() -> bool:
        rows = api(stack, person.access_token, "GET", f"/v1/dossiers/{dossier_id}/activity")
        return any(h["kind"] == "join" and h["user_id"] == person.user_id for h in rows["history"])

    await wait_for(done, "join recorded", timeout=30)


async def room_member(stack: Stack, person: Person, dossier_id: str, room: str) -> None:
    """``person`` joins the patient room once invited (the circle's sync), joined recorded."""

    def invited() -> bool:
        try:
            join(stack, person, room)
        except HomeserverError:
            return False
        return True

    await wait_for(invited, "invited into the patient room", timeout=30)
    await joined(stack, person, dossier_id)


def widget_state(stack: Stack, person: Person, room: str) -> dict[str, Any]:
    """The content of Maillon's widget in the room's state (what Element hosts)."""
    path = f"/rooms/{quote(room)}/state/{WIDGET_EVENT}/{DOSSIER_WIDGET_ID}"
    return dict(
        request_json("GET", stack.url + "/_matrix/client/v3" + path, token=person.access_token)
    )


def openid_token(stack: Stack, person: Person) -> str:
    path = f"/_matrix/client/v3/user/{quote(person.user_id)}/openid/request_token"
    return str(
        request_json("POST", stack.url + path, {}, token=person.access_token)["access_token"]
    )


def audit(stack: Stack, person: Person, dossier_id: str) -> list[dict[str, Any]]:
    return api(stack, person.access_token, "GET", f"/v1/dossiers/{dossier_id}/audit")["entries"]


def raw(
    method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """An HTTP request that does not follow redirects: status, body, headers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


async def login(page: Page, stack: Stack, person: Person) -> None:
    await page.goto(base(stack) + "/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("Identifiant Matrix").fill(person.localpart)
    await page.get_by_label("Mot de passe").fill(person.password)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("heading", name="Mes dossiers", level=1)).to_be_visible()


async def axe_scan(page: Page | Frame, what: str) -> None:
    """axe-core injected into the page (WCAG 2.1 A/AA rules): no serious or critical
    violation."""
    # Evaluated through the DevTools protocol: the page's CSP (no inline script) stays on.
    await page.evaluate(AXE.read_text() + "\n;void 0")
    result = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            });
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"{what}: {json.dumps(bad, ensure_ascii=False, indent=1)}"


async def screenshots(page: Page, name: str) -> None:
    """The page at 1280 and at 360 px (artifacts, not compared); at 360 px nothing may
    overflow sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 360):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        if width == 360:
            overflow = await page.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, f"{name}: {overflow} px wider than a 360 px screen"
    await page.set_viewport_size({"width": 1280, "height": 900})


async def no_matrix_id_shown(page: Page) -> None:
    text = await page.locator("main").inner_text()
    assert not re.search(r"@[a-z0-9._=-]+:[a-z0-9.-]+", text), "a raw Matrix id is shown"


# -- tests ------------------------------------------------------------------------------


async def test_login_find_a_dossier_by_name_open_it_and_read_its_audit(
    ws_stack: Stack, browser: Browser
) -> None:
    stack = ws_stack
    coord = register_person(stack, "coordo", "Aline Coordinatrice", "infirmière coordinatrice")
    nurse = register_person(stack, "ide", "Nadia Infirmière", "infirmière")
    t = coord.access_token
    wanted = open_dossier(stack, t, birth_name="Lefèvre-Dubois", first_names="Zoé Marie", sex="F")
    open_dossier(stack, t, birth_name="Martin", first_names="Paul", sex="M")
    open_dossier(stack, t, birth_name="Dubreuil", first_names="Léa", used_name="Lefort")
    did = wanted["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    today = dt.date.today()
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Appeler la pharmacie", "assignee": coord.user_id, "due": today.isoformat()},
    )
    done = api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Commander le lit médicalisé", "assignee": nurse.user_id},
    )
    api(stack, t, "PATCH", f"/v1/dossiers/{did}/tasks/{done['id']}", {"status": "done"})
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {
            "title": "Visite à domicile",
            "start": start.isoformat(),
            "end": (start + dt.timedelta(minutes=90)).isoformat(),
            "participants": [nurse.user_id],
        },
    )
    api(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": "Chute hier soir.", "urgent": True})

    context, page = await new_page(browser)
    login_url = base(stack) + "/login"
    await page.goto(login_url)
    await axe_scan(page, "connexion")
    await screenshots(page, "login")
    await login(page, stack, coord)
    cookies = {c["name"]: c for c in await context.cookies()}
    session_cookie = cookies["maillon_session"]
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"

    # Mes dossiers: the three, and the worklist with the task due today.
    await expect(page.locator("#count")).to_have_text("3 dossier(s)")
    await expect(page.locator("#todo-tasks")).to_contain_text("Appeler la pharmacie")
    await expect(page.locator("#todo-tasks")).to_contain_text("LEFÈVRE-DUBOIS Zoé Marie")
    await no_matrix_id_shown(page)
    await axe_scan(page, "mes dossiers")
    await screenshots(page, "workspace")

    # Found by name as it is typed (htmx), whatever the accents, case and hyphens.
    await page.get_by_label("Nom du patient").fill("lefevre DUBOIS")
    await expect(page.locator("#count")).to_have_text("1 dossier(s)")
    rows = page.locator("table.dossiers tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("LEFÈVRE-DUBOIS Zoé Marie")
    await expect(rows.first).to_contain_text(did[:6].upper())
    room_link = rows.first.get_by_role("link", name=re.compile("Ouvrir la salle"))
    assert await room_link.get_attribute("href") == (
        "https://matrix.to/#/" + quote(wanted["room_id"], safe="!:")
    )
    await expect(page).to_have_url(re.compile(r"q=lefevre"))
    await page.get_by_label("Nom du patient").fill("lefort")  # a used name
    await expect(page.locator("#count")).to_have_text("1 dossier(s)")
    await expect(rows.first).to_contain_text("LEFORT Léa")
    await page.get_by_label("Nom du patient").fill("zoe")
    await expect(page.locator("#count")).to_have_text("1 dossier(s)")
    await rows.first.get_by_role("link", name="LEFÈVRE-DUBOIS Zoé Marie").click()

    # The dossier page.
    await expect(page.get_by_role("heading", name="LEFÈVRE-DUBOIS Zoé Marie")).to_be_visible()
    header = page.locator("article header")
    await expect(header).to_contain_text("Née le 12 mars 1941")  # no weekday, no "né(e)"
    await expect(header).not_to_contain_text("mercredi 12 mars")
    await expect(page.locator("#identity-status")).to_have_text(
        "Identité qualifiée — INS utilisable"
    )
    await expect(page.locator("#reference")).to_have_text(did[:6].upper())
    circle = page.locator("#circle")
    await expect(circle).to_contain_text(
        "Aline Coordinatrice (infirmière coordinatrice) — coordinateur / référent"
    )
    await expect(circle).not_to_contain_text("(coordinateur)")
    await expect(circle).to_contain_text("Nadia Infirmière (infirmière) — infirmier / infirmière")
    await expect(page.locator("#agenda")).to_contain_text("durée 1 h 30")
    await expect(page.locator("#agenda")).to_contain_text("avec Nadia Infirmière")
    await expect(page.locator("#notes")).to_contain_text("Chute hier soir.")
    tasks = page.locator("#tasks")
    await expect(tasks).to_contain_text("Appeler la pharmacie")
    await expect(tasks).not_to_contain_text("Commander le lit médicalisé")
    await page.get_by_role("link", name="Afficher aussi les tâches faites ou annulées").click()
    await expect(page.locator("#tasks")).to_contain_text("Commander le lit médicalisé — faite")
    audit_table = page.locator("#audit")
    await expect(audit_table).to_contain_text("dossier.read")
    await expect(audit_table).to_contain_text("Aline Coordinatrice")
    await expect(audit_table).to_contain_text("workspace")  # through which component
    await no_matrix_id_shown(page)
    await axe_scan(page, "dossier")
    await screenshots(page, "dossier")

    # English: dates, roles and the pathway in English too.
    await page.get_by_role("link", name="English").click()
    await expect(page.locator("article header")).to_contain_text("Born 12 March 1941")
    await expect(page.locator("#circle")).to_contain_text("coordinator / referent")
    await expect(page.locator("article header")).to_contain_text("DAC — complex situation")
    await expect(page.locator("#agenda")).to_contain_text(
        re.compile(r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) \d+ [A-Z][a-z]+")
    )
    await axe_scan(page, "dossier (en)")
    await page.get_by_role("link", name="Français").click()
    await expect(page.locator("#h-circle")).to_have_text("Cercle de soins")

    # The API has the same view: the reads of the page are in the audit, from the session.
    entries = audit(stack, coord, did)
    reads = [e for e in entries if e["action"] == "dossier.read" and e["actor"] == coord.user_id]
    assert reads and all(e["allowed"] and e["component"] == "workspace" for e in reads)
    await context.close()


async def test_open_a_dossier_through_the_form_with_the_api_checks(
    ws_stack: Stack, browser: Browser
) -> None:
    stack = ws_stack
    coord = register_person(stack, "ouvre", "Bruno Ouvreur", "médecin coordonnateur")
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.get_by_role("link", name="Ouvrir un dossier").click()
    await expect(
        page.get_by_role("heading", name="Ouvrir un dossier de coordination")
    ).to_be_visible()
    await axe_scan(page, "ouvrir un dossier")
    await screenshots(page, "dossier-new")
    await page.get_by_label("Nom de naissance *").fill("Garçon")
    await page.get_by_label("Prénoms *").fill("Étienne")
    await page.get_by_label("Sexe *").select_option("M")
    await page.get_by_label("Date de naissance *").fill("1938-01-01")
    await page.get_by_label("Matricule INS (NIR ou NIA)").fill("12345")  # not an INS
    await page.get_by_role("button", name="Ouvrir le dossier").click()
    await expect(page.locator("#errors")).to_contain_text("ins_matricule")
    assert api(stack, coord.access_token, "GET", "/v1/dossiers?q=garcon")["total"] == 0
    await page.get_by_label("Matricule INS (NIR ou NIA)").fill("")
    await page.get_by_role("button", name="Ouvrir le dossier").click()
    await expect(page.locator("#identity-status")).to_have_text("Identité provisoire — à vérifier")
    await expect(page.locator("article header")).to_contain_text("Né le 1er janvier 1938")
    found = api(stack, coord.access_token, "GET", "/v1/dossiers?q=" + quote("GARCON etienne"))
    assert found["total"] == 1
    [row] = found["dossiers"]
    assert row["display_name"] == "GARÇON Étienne" and row["identity_status"] == "PROV"
    assert page.url.endswith(f"/dossiers/{row['id']}")

    # The same identity again: a likely duplicate (409), confirmed with a reason.
    await page.goto(base(stack) + "/dossiers/nouveau")
    await page.get_by_label("Nom de naissance *").fill("Garcon")
    await page.get_by_label("Prénoms *").fill("Etienne")
    await page.get_by_label("Sexe *").select_option("M")
    await page.get_by_label("Date de naissance *").fill("1938-01-01")
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Ouvrir le dossier").click()
    assert (await posted.value).status == 409
    await expect(page.locator("#errors")).to_contain_text("Doublon possible")
    duplicate = page.locator("#duplicate")
    await expect(duplicate.get_by_role("link")).to_have_text(f"Réf. {row['id'][:6].upper()}")
    await axe_scan(page, "doublon possible")
    assert api(stack, coord.access_token, "GET", "/v1/dossiers?q=garcon")["total"] == 1
    await page.get_by_label("Motif pour ouvrir tout de même un dossier").fill(
        "Homonyme vérifié : autre personne, pièce d'identité contrôlée"
    )
    await page.get_by_role("button", name="Ouvrir tout de même le dossier").click()
    await expect(page.locator("#identity-status")).to_be_visible()
    second = page.url.rsplit("/", 1)[-1]
    assert second != row["id"]
    assert api(stack, coord.access_token, "GET", "/v1/dossiers?q=garcon")["total"] == 2
    history = api(stack, coord.access_token, "GET", f"/v1/dossiers/{second}/identity/history")
    [override] = [e for e in history["history"] if e["kind"] == "duplicate_override"]
    assert override["reason"] == "Homonyme vérifié : autre personne, pièce d'identité contrôlée"
    await context.close()


async def test_name_search_through_the_api(ws_stack: Stack) -> None:
    stack = ws_stack
    coord = register_person(stack, "cherche", "Chloé Chercheuse", "infirmière")
    other = register_person(stack, "autre", "Omar Autre", "infirmier")
    t = coord.access_token
    first = open_dossier(stack, t, birth_name="N'Guyen-Lê", first_names="Anh Thư")
    second = open_dossier(stack, t, birth_name="Nguyen", first_names="Paul")
    open_dossier(stack, other.access_token, birth_name="Nguyen", first_names="Marc")
    api(
        stack,
        t,
        "PATCH",
        f"/v1/dossiers/{second['id']}",
        {"status": "closed", "status_reason": "fin"},
    )

    def ids(query: str) -> list[str]:
        page = api(stack, t, "GET", "/v1/dossiers?" + query)
        assert page["total"] == len(page["dossiers"])
        return sorted(d["id"] for d in page["dossiers"])

    assert ids("q=" + quote("NGUYEN")) == sorted([second["id"]])  # whole tokens: not N'Guyen
    assert ids("q=" + quote("guyen le")) == [first["id"]]
    assert ids("q=" + quote("Lê Anh-THU")) == [first["id"]]
    assert ids("q=" + quote("anh marc")) == []  # every word must match
    assert ids("q=marc") == [], "another professional's dossier is not found"
    assert ids("q=nguyen&status=closed") == [second["id"]]
    assert ids("q=nguyen&status=open") == []
    assert ids("pathway=dac") == sorted([first["id"], second["id"]])
    assert ids("q=" + quote(" - ")) == []
    assert api_error(stack, t, "GET", "/v1/dossiers?status=perdu").status == 400
    assert api_error(stack, t, "GET", "/v1/dossiers?q=" + "x" * 201).status == 400
    # Pages: the total stays the total.
    page = api(stack, t, "GET", "/v1/dossiers?limit=1&offset=1")
    assert page["total"] == 2 and len(page["dossiers"]) == 1
    # The exchange takes JSON only (a third-party page cannot post it without CORS).
    plain = raw(
        "POST",
        base(stack) + "/session/openid",
        json.dumps({"openid_token": openid_token(stack, coord)}).encode(),
        {"Content-Type": "text/plain"},
    )
    assert plain[0] == 415 and "Set-Cookie" not in plain[2]
    # The API refuses a session cookie: it takes Matrix access tokens only.
    session = widget_session(stack, openid_token(stack, coord))
    with pytest.raises(HomeserverError) as refused:
        request_any(
            "GET", base(stack) + "/v1/dossiers?q=nguyen", headers={"Cookie": session["Cookie"]}
        )
    assert refused.value.status == 401


async def test_an_outsider_sees_no_dossier_data_and_is_audited(
    ws_stack: Stack, browser: Browser
) -> None:
    stack = ws_stack
    coord = register_person(stack, "coord", "Inès Coordinatrice", "infirmière coordinatrice")
    outsider = register_person(stack, "curieux", "Victor Curieux", "infirmier")
    dossier = open_dossier(stack, coord.access_token, birth_name="Secretnom", first_names="Alice")
    did = dossier["id"]
    context, page = await new_page(browser)
    await login(page, stack, outsider)
    await expect(page.locator("#count")).to_have_text("0 dossier(s)")
    await page.get_by_label("Nom du patient").fill("secretnom")
    await expect(page.locator("#count")).to_have_text("0 dossier(s)")
    response = await page.goto(base(stack) + f"/dossiers/{did}")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("cercle de soins")
    html = await page.content()
    assert "Secretnom" not in html and "SECRETNOM" not in html and "Alice" not in html
    await axe_scan(page, "refus")
    await screenshots(page, "refusal")
    response = await page.goto(base(stack) + "/dossiers/" + "0" * 32)
    assert response is not None and response.status == 404
    refusals = [e for e in audit(stack, coord, did) if e["actor"] == outsider.user_id]
    assert refusals and not any(e["allowed"] for e in refusals)
    assert {e["action"] for e in refusals} == {"dossier.read"}
    await context.close()


async def test_a_write_without_the_csrf_token_is_refused(ws_stack: Stack, browser: Browser) -> None:
    stack = ws_stack
    coord = register_person(stack, "csrf", "Carla Csrf", "infirmière")
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + "/dossiers/nouveau")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    form = {
        "birth_name": "Sanscsrf",
        "first_names": "Jean",
        "sex": "M",
        "birth_date": "1950-05-05",
        "pathway": "dac",
    }
    for extra in ({}, {"csrf": "faux"}, {"csrf": ""}):
        refused = await context.request.post(
            base(stack) + "/dossiers", form={**form, **extra}, max_redirects=0
        )
        assert refused.status == 403, (extra, refused.status)
        assert "CSRF" in await refused.text()
    refused = await context.request.post(base(stack) + "/logout", form={}, max_redirects=0)
    assert refused.status == 403
    assert api(stack, coord.access_token, "GET", "/v1/dossiers?q=sanscsrf")["total"] == 0
    accepted = await context.request.post(
        base(stack) + "/dossiers", form={**form, "csrf": csrf}, max_redirects=0
    )
    assert accepted.status == 303
    assert api(stack, coord.access_token, "GET", "/v1/dossiers?q=sanscsrf")["total"] == 1
    # The header works as well as the field (htmx sends it); a forged login form is refused.
    login_refused = await context.request.post(
        base(stack) + "/login", form={"username": "x", "password": "y"}, max_redirects=0
    )
    assert login_refused.status == 403
    await context.close()


async def test_sessions_are_refused_after_logout_and_after_expiry(
    ws_stack: Stack, browser: Browser
) -> None:
    stack = ws_stack
    coord = register_person(stack, "sortie", "Sophie Sortie", "infirmière")
    context, page = await new_page(browser)
    await login(page, stack, coord)
    cookie = next(c for c in await context.cookies() if c["name"] == "maillon_session")
    jar = {"Cookie": f"maillon_session={cookie['value']}"}
    status, _, _ = raw("GET", base(stack) + "/", headers=jar)
    assert status == 200
    await page.get_by_role("button", name="Se déconnecter").click()
    await expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    status, _, headers = raw("GET", base(stack) + "/", headers=jar)  # the old cookie, replayed
    assert status == 303 and headers["Location"].startswith("/login")
    await context.close()
    # The Matrix login of the workspace left no Matrix session behind.
    devices = request_json(
        "GET", stack.url + "/_matrix/client/v3/devices", token=coord.access_token
    )
    assert [d["device_id"] for d in devices["devices"]] == [coord.device_id]

    # A widget's session: refused after its logout, and after its expiry.
    dossier = open_dossier(stack, coord.access_token)
    join(stack, coord, dossier["room_id"])
    await joined(stack, coord, dossier["id"])
    page_url = base(stack) + f"/widget/dossiers/{dossier['id']}?room={quote(dossier['room_id'])}"
    first = widget_session(stack, openid_token(stack, coord))
    assert raw("GET", page_url, headers={"Cookie": first["Cookie"]})[0] == 200
    # The widget's session opens no workspace page, and writes only with its CSRF token.
    workspace_page = base(stack) + f"/dossiers/{dossier['id']}"
    assert raw("GET", workspace_page, headers={"Cookie": first["Cookie"]})[0] == 403
    write_url = page_url.replace("?room=", "/notes?room=")
    note = b"text=sans+jeton"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = raw("POST", write_url, note, {"Cookie": first["Cookie"], **form_type})
    assert refused[0] == 403 and "CSRF" in refused[1]
    accepted = raw(
        "POST",
        write_url,
        note + b"&csrf=" + first["csrf_token"].encode(),
        {"Cookie": first["Cookie"], **form_type},
    )
    assert accepted[0] == 303
    texts = [
        n["text"]
        for n in api(stack, coord.access_token, "GET", f"/v1/dossiers/{dossier['id']}/notes")[
            "notes"
        ]
    ]
    assert texts == ["sans jeton"]
    no_csrf = raw("DELETE", base(stack) + "/session", headers={"Cookie": first["Cookie"]})
    assert no_csrf[0] == 403
    ended = raw(
        "DELETE",
        base(stack) + "/session",
        headers={"Cookie": first["Cookie"], "X-CSRF-Token": first["csrf_token"]},
    )
    assert ended[0] == 200
    assert raw("GET", page_url, headers={"Cookie": first["Cookie"]})[0] == 401

    second = widget_session(stack, openid_token(stack, coord))
    opened = time.monotonic()
    assert raw("GET", page_url, headers={"Cookie": second["Cookie"]})[0] == 200

    def refused() -> bool:
        return raw("GET", page_url, headers={"Cookie": second["Cookie"]})[0] == 401

    await wait_for(refused, "widget session expired", timeout=WIDGET_SESSION_SECONDS + 10)
    assert time.monotonic() - opened >= WIDGET_SESSION_SECONDS - 1, "not before its expiry"


async def test_xss_payloads_in_text_fields_render_inert(ws_stack: Stack, browser: Browser) -> None:
    stack = ws_stack
    coord = register_person(stack, "xss", "Xavier Xss", "infirmier")
    t = coord.access_token
    payload = " ".join(XSS)
    dossier = open_dossier(
        stack,
        t,
        birth_name=XSS[0],
        first_names=XSS[1],
        used_name=XSS[2],
        contact=XSS[3],
    )
    did = dossier["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": payload})
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": payload[:200], "assignee": coord.user_id, "due": dt.date.today().isoformat()},
    )
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {
            "title": XSS[1],
            "place": XSS[4],
            "start": start.isoformat(),
            "end": (start + dt.timedelta(hours=1)).isoformat(),
        },
    )
    api(stack, t, "POST", f"/v1/dossiers/{did}/alerts", {"text": XSS[2], "to": [coord.user_id]})
    context, page = await new_page(browser)
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    await login(page, stack, coord)
    await page.get_by_label("Nom du patient").fill(XSS[0])  # a search echoes what is typed
    for url in (
        base(stack) + "/?q=" + quote(XSS[1]),
        base(stack) + f"/dossiers/{did}",
        # What the searches of the page echo (in the dossier, in the directory).
        base(stack) + f"/dossiers/{did}?q=" + quote(XSS[4]) + "&annuaire=" + quote(XSS[1]),
        base(stack) + "/?lang=en",
    ):
        await page.goto(url)
        await expect(page.locator("main")).to_be_visible()
        injected = await page.evaluate(
            """() => ({
                xss: window.__xss === 1,
                elements: document.querySelectorAll(
                    "main script, main img, main svg, main iframe, main textarea:not([name])"
                ).length,
                handlers: [...document.querySelectorAll("*")].filter(
                    e => [...e.attributes].some(a => a.name.startsWith("on"))).length,
                scripts: [...document.scripts].map(s => s.src),
            })"""
        )
        assert injected["xss"] is False and injected["elements"] == 0, (url, injected)
        assert injected["handlers"] == 0, (url, injected)
        assert all(s.endswith("/static/htmx-2.0.11.min.js") for s in injected["scripts"])
    text = await page.locator("main").inner_text()
    assert "<svg onload=window.__xss=1>" in text  # shown as text, in the worklist
    await page.goto(base(stack) + f"/dossiers/{did}")
    text = await page.locator("main").inner_text()
    for part in XSS:
        assert part in text, part  # the note shows every payload, as text
    assert await page.evaluate("() => window.__xss") is None
    assert not violations, violations  # nothing was even tried: all escaped
    await context.close()


async def test_the_widget_in_a_matrix_widget_api_host_reads_the_dossier(
    ws_stack: Stack, browser: Browser
) -> None:
    """The widget as Element hosts it: matrix-widget-api's ClientWidgetApi, a WidgetDriver
    answering get_openid with a real token; the widget trades it for a session and shows the
    dossier of its room; the OpenID token goes to the exchange endpoint only."""
    stack = ws_stack
    coord = register_person(stack, "widget", "Wanda Widget", "infirmière coordinatrice")
    outsider = register_person(stack, "dehors", "Denis Dehors", "infirmier")
    dossier = open_dossier(stack, coord.access_token, birth_name="Widgetnom", first_names="Rose")
    did, room = dossier["id"], dossier["room_id"]
    join(stack, coord, room)
    await joined(stack, coord, did)
    state = widget_state(stack, coord, room)
    # Bound 3 of OpenID tokens: no other widget may join Maillon's in a patient room, not
    # even one set by the room's coordinator.
    with pytest.raises(HomeserverError) as other_widget:
        request_json(
            "PUT",
            stack.url + f"/_matrix/client/v3/rooms/{quote(room)}/state/{WIDGET_EVENT}/autre_widget",
            {"type": "m.custom", "url": "https://ailleurs.example/widget", "name": "Autre"},
            token=coord.access_token,
        )
    assert other_widget.value.status == 403
    # Bound 1: the OpenID token opens no page (the workspace sends it to its login).
    token = openid_token(stack, coord)
    status, _, headers = raw("GET", base(stack) + "/", headers={"X-Matrix-OpenID": token})
    assert status == 303 and headers["Location"].startswith("/login")
    host = WidgetHost()
    try:
        context, page = await new_page(browser, width=360)
        sent: list[tuple[str, str]] = []
        page.on("request", lambda r: sent.append((r.url, r.post_data or "")))
        await page.goto(host.page_url(state, room, coord.user_id, coord.access_token, stack.url))
        frame = page.frame_locator("#widget")
        await expect(frame.locator("#patient-name")).to_have_text("WIDGETNOM Rose")
        await expect(frame.locator("main")).to_contain_text("Cercle de soins")
        await expect(page.locator("#status")).to_have_text(
            re.compile("openid: token given|widget ready")
        )
        exchanges = [u for u, _ in sent if u.endswith("/session/openid")]
        assert len(exchanges) == 1
        tokens = [
            json.loads(body)["openid_token"] for u, body in sent if u.endswith("/session/openid")
        ]
        for url, body in sent:
            if not url.endswith("/session/openid"):
                assert tokens[0] not in url and tokens[0] not in body, url
        widget_frame = next(f for f in page.frames if "/widget" in f.url)
        await axe_scan(widget_frame, "widget")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "widget-360.png"), full_page=True)
        widget_cookies = [
            c for c in await context.cookies(base(stack)) if c["name"] == "maillon_session"
        ]
        assert widget_cookies and widget_cookies[0]["httpOnly"]
        await context.close()

        # An authenticated outsider in the same host sees no dossier data (audited).
        context, page = await new_page(browser, width=360)
        await page.goto(
            host.page_url(state, room, outsider.user_id, outsider.access_token, stack.url)
        )
        frame = page.frame_locator("#widget")
        await expect(frame.locator(".notice")).to_contain_text("Accès refusé")
        assert "Widgetnom" not in await frame.locator("body").inner_html()
        await context.close()
        # Nor may the outsider write through the widget, CSRF token and all (audited).
        held = widget_session(stack, openid_token(stack, outsider))
        write = raw(
            "POST",
            base(stack) + f"/widget/dossiers/{did}/notes?room={quote(room)}",
            f"text=intrus&csrf={held['csrf_token']}".encode(),
            {"Cookie": held["Cookie"], "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert write[0] == 403 and "Accès refusé" in write[1] and "Widgetnom" not in write[1]
        assert "intrus" not in [
            n["text"]
            for n in api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}/notes")["notes"]
        ]
        entries = audit(stack, coord, did)
        refusals = [e for e in entries if e["actor"] == outsider.user_id]
        assert refusals and not any(e["allowed"] for e in refusals)
        assert "widget.write" in {e["action"] for e in refusals}
        assert {e["component"] for e in refusals} == {"widget"}
        reads = [e for e in entries if e["actor"] == coord.user_id and e["component"] == "widget"]
        assert {"dossier.read", "circle.read"} <= {e["action"] for e in reads if e["allowed"]}

        # Element's user says no: no token, no session, no dossier.
        context, page = await new_page(browser, width=360)
        await page.goto(
            host.page_url(state, room, coord.user_id, coord.access_token, stack.url, "block")
        )
        frame = page.frame_locator("#widget")
        await expect(frame.locator(".notice")).to_contain_text("Accès refusé")
        await context.close()
    finally:
        host.close()


# -- the acceptance scenario ------------------------------------------------------------


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=12)
    doc.cell(text=text)
    return bytes(doc.output())


def _directory_nurse(stack: Stack, tmp: Path) -> Any:
    """A small national directory imported into the stack; its first nurse (RPPS)."""
    made = write_activite(tmp / "PS_LibreAcces_Personne_activite_202612010000.txt", 60)
    command = ["directory", "import", "--dir", str(stack.directory), "--quiet", str(made.path)]
    assert cli_main(command) == 0
    return next(
        p
        for p in (annuaire_person(i) for i in range(60))
        if p.profession == "Infirmier" and p.id_type == "8"
    )


def _download(stack: Stack, token: str, path: str) -> bytes:
    req = urllib.request.Request(base(stack) + path, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        return bytes(resp.read())


async def test_acceptance_coordinator_adds_a_nurse_who_writes_in_the_widget(
    ws_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    """Issue 12's scenario in one browser run: the coordinator logs into the workspace,
    opens a dossier, finds a nurse in the directory and adds her; the nurse, in the widget
    of the patient room (matrix-widget-api host, real OpenID token), writes an urgent note
    with a PDF attached, fills the pathway form (draft kept, then submitted) and gives the
    coordinator a task; the coordinator sees them in the timeline and the worklist, finds the
    dossier by the patient's name and reads each step in the audit. Every value is checked
    through the API too."""
    stack = ws_stack
    listed = _directory_nurse(stack, tmp_path)
    coord = register_person(stack, "scoord", "Claire Scénario", "infirmière coordinatrice")
    nurse = register_person(stack, "snurse", f"{listed.first_name} {listed.last_name}", None)
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:  # her account bound to her directory entry (by RPPS), as `!annuaire lier` does
        upsert_professional(
            engine,
            DirectoryEntry(nurse.user_id, "Infirmier", rpps=listed.identifier),
            f"{listed.first_name.title()} {listed.last_name.title()}",
        )
    finally:
        engine.dispose()
    nurse_name = f"{listed.first_name.title()} {listed.last_name.title()}"
    dossier = open_dossier(stack, coord.access_token, birth_name="Scénario", first_names="Paule")
    did, room = dossier["id"], dossier["room_id"]
    t = coord.access_token

    # 1. The coordinator logs in, opens the dossier, finds the nurse and adds her.
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + f"/dossiers/{did}")
    await expect(page.locator("#patient-name")).to_have_text("SCÉNARIO Paule")
    await page.get_by_label("Chercher dans l'annuaire").fill(
        f"{listed.last_name} {listed.first_name}"
    )
    await page.locator("#circle-section").get_by_role("button", name="Rechercher").click()
    choice = page.locator("#directory-results label", has_text=listed.last_name).first
    await expect(choice).to_contain_text("Infirmier")
    await choice.click()
    await page.get_by_label("Rôle", exact=True).select_option("IDE")
    await page.locator("#directory-results").get_by_role("button", name="Ajouter").click()
    await expect(page.locator("#circle")).to_contain_text(nurse_name)
    await no_matrix_id_shown(page)
    members = api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
    added = next(m for m in members if m["user_id"] == nurse.user_id)
    assert added["role"] == "IDE" and added["active"] and added["added_by"] == coord.user_id
    await screenshots(page, "dossier-coordinator")
    await axe_scan(page, "dossier")

    # 2. The nurse, in the widget of the patient room.
    await room_member(stack, nurse, did, room)
    state = widget_state(stack, nurse, room)
    pdf = _pdf("Compte rendu de passage infirmier")
    (tmp_path / "compte-rendu.pdf").write_bytes(pdf)
    host = WidgetHost()
    try:
        wctx, wpage = await new_page(browser, width=360)
        await wpage.goto(host.page_url(state, room, nurse.user_id, nurse.access_token, stack.url))
        w = wpage.frame_locator("#widget")
        await expect(w.locator("#patient-name")).to_have_text("SCÉNARIO Paule")
        await w.get_by_label("Nouvelle note").fill("Escarre sacrée constatée, avis demandé.")
        await w.get_by_label("Note urgente").check()
        await w.get_by_label("Joindre un document").set_input_files(
            str(tmp_path / "compte-rendu.pdf")
        )
        await w.get_by_role("button", name="Écrire la note").click()
        await expect(w.locator("#notes li.urgent").first).to_contain_text("Escarre sacrée")
        await expect(w.locator("#notes .documents")).to_contain_text("compte-rendu.pdf")

        # The pathway form: a draft kept, then submitted (French validation on the way).
        await w.get_by_text("Remplir : Évaluation de l'autonomie").click()
        await w.get_by_label("GIR (AGGIR)").select_option("3")
        await w.get_by_label("Aides en place").fill("SSIAD matin et soir")
        await w.get_by_role("button", name="Enregistrer le brouillon").click()
        await expect(w.locator("#forms-section summary").first).to_contain_text("brouillon")
        draft = widget_draft = api(
            stack, nurse.access_token, "GET", f"/v1/dossiers/{did}/forms/evaluation-autonomie/draft"
        )
        assert draft["answers"] == {"gir": "3", "aides_en_place": "SSIAD matin et soir"}
        await w.get_by_text("Remplir : Évaluation de l'autonomie").click()
        await expect(w.get_by_label("GIR (AGGIR)")).to_have_value("3")  # the draft, kept
        await w.get_by_label("Chutes depuis 6 mois").fill("2")
        await w.get_by_role("button", name="Envoyer le formulaire").click()  # required missing
        # The browser's own check stops it: the fields are marked required.
        assert await w.get_by_label("Date de l'évaluation").evaluate("e => !e.validity.valid")
        await w.locator("#evaluation-autonomie-vit_seul-n").check()
        await w.get_by_label("Date de l'évaluation").fill(dt.date.today().isoformat())
        await w.get_by_role("button", name="Envoyer le formulaire").click()
        await expect(w.locator("#forms")).to_contain_text("Évaluation de l'autonomie")
        assert widget_draft  # (the draft is done with once submitted)
        assert (
            api_error(
                stack,
                nurse.access_token,
                "GET",
                f"/v1/dossiers/{did}/forms/evaluation-autonomie/draft",
            ).status
            == 404
        )

        # A task for the coordinator, due today.
        await w.get_by_text("Nouvelle tâche").click()
        await w.get_by_label("Intitulé").fill("Passer voir Mme Scénario")
        await w.get_by_label("Confiée à").select_option(coord.user_id)
        await w.get_by_label("Échéance").fill(dt.date.today().isoformat())
        await w.locator("#tasks-section").get_by_role("button", name="Ajouter").click()
        await expect(w.locator("#tasks")).to_contain_text("Passer voir Mme Scénario")

        widget_frame = next(f for f in wpage.frames if "/widget/dossiers/" in f.url)
        await axe_scan(widget_frame, "widget (nurse)")
        overflow = await widget_frame.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 1, f"the widget is {overflow} px wider than its 360 px frame"
        SHOTS.mkdir(parents=True, exist_ok=True)
        for width in (360, 1280):
            await wpage.set_viewport_size({"width": width, "height": 900})
            await wpage.screenshot(path=str(SHOTS / f"widget-nurse-{width}.png"), full_page=True)
        await wctx.close()
    finally:
        host.close()

    # Every value through the API.
    notes = api(stack, t, "GET", f"/v1/dossiers/{did}/notes")["notes"]
    note = next(n for n in notes if n["author"] == nurse.user_id)
    assert note["urgent"] and note["text"] == "Escarre sacrée constatée, avis demandé."
    assert [d["name"] for d in note["documents"]] == ["compte-rendu.pdf"]
    assert note["documents"][0]["media_type"] == "application/pdf"
    assert _download(stack, t, note["documents"][0]["url"]) == pdf
    forms = api(stack, t, "GET", f"/v1/dossiers/{did}/forms")["forms"]
    assert [(f["form_id"], f["author"]) for f in forms] == [("evaluation-autonomie", nurse.user_id)]
    assert forms[0]["answers"] == {
        "gir": "3",
        "vit_seul": False,
        "aides_en_place": "SSIAD matin et soir",
        "chutes_6_mois": 2,
        "date_evaluation": dt.date.today().isoformat(),
    }
    tasks = api(stack, t, "GET", f"/v1/dossiers/{did}/tasks")["tasks"]
    task = next(x for x in tasks if x["title"] == "Passer voir Mme Scénario")
    assert task["assignee"] == coord.user_id and task["created_by"] == nurse.user_id

    # 3. The coordinator: timeline, worklist, search by name, audit.
    await page.goto(base(stack) + f"/dossiers/{did}")
    timeline = page.locator("#timeline")
    await expect(timeline).to_contain_text("Escarre sacrée")
    await expect(timeline).to_contain_text("Évaluation de l'autonomie")
    await page.locator("#timeline-section").get_by_label("formulaire").check()
    await page.locator("#timeline-section").get_by_role("button", name="Afficher").click()
    await expect(page.locator("#timeline")).not_to_contain_text("Escarre sacrée")
    await expect(page.locator("#timeline")).to_contain_text("Évaluation de l'autonomie")
    line = api(stack, t, "GET", f"/v1/dossiers/{did}/timeline")["entries"]
    assert {"note", "form", "task", "circle"} <= {e["kind"] for e in line}
    await page.goto(base(stack) + "/")
    await expect(page.locator("#todo-tasks")).to_contain_text("Passer voir Mme Scénario")
    await page.get_by_label("Nom du patient").fill("scenario")
    await expect(page.locator("#count")).to_have_text("1 dossier(s)")
    await page.locator("#resultats").get_by_role("link", name="SCÉNARIO Paule").click()
    audit_table = page.locator("#audit")
    for action in ("circle.add", "notes.write", "notes.attach", "forms.draft", "forms.write"):
        await expect(audit_table).to_contain_text(action)
    entries = audit(stack, coord, did)
    steps = {(e["actor"], e["action"], e["component"]) for e in entries if e["allowed"]}
    assert {
        (coord.user_id, "circle.add", "workspace"),
        (nurse.user_id, "notes.write", "widget"),
        (nurse.user_id, "notes.attach", "widget"),
        (nurse.user_id, "forms.draft", "widget"),
        (nurse.user_id, "forms.write", "widget"),
        (nurse.user_id, "tasks.write", "widget"),
    } <= steps
    await context.close()


async def test_mes_dossiers_filters_the_unread_urgent_notes(
    ws_stack: Stack, browser: Browser
) -> None:
    """ "Notes urgentes non lues": an urgent note of someone else, readable by the whole
    circle, written since I last read the dossier; reading the dossier marks it read."""
    stack = ws_stack
    coord = register_person(stack, "lu", "Lucie Lecture", "infirmière coordinatrice")
    nurse = register_person(stack, "urg", "Ugo Urgent", "infirmier")
    t = coord.access_token
    urgent = open_dossier(stack, t, birth_name="Urgentnom", first_names="Anne")
    calm = open_dossier(stack, t, birth_name="Calmenom", first_names="Marc")
    for d in (urgent, calm):
        member = {"user_id": nurse.user_id, "role": "IDE"}
        api(stack, t, "POST", f"/v1/dossiers/{d['id']}/circle", member)
    # Not unread for me: my own urgent note, a restricted urgent one, a plain one.
    api(stack, t, "POST", f"/v1/dossiers/{calm['id']}/notes", {"text": "moi", "urgent": True})
    restricted = {"text": "réservée", "urgent": True, "visible_to_roles": ["IDE"]}
    api(stack, nurse.access_token, "POST", f"/v1/dossiers/{calm['id']}/notes", restricted)
    api(stack, nurse.access_token, "POST", f"/v1/dossiers/{calm['id']}/notes", {"text": "RAS"})
    api(
        stack,
        nurse.access_token,
        "POST",
        f"/v1/dossiers/{urgent['id']}/notes",
        {"text": "Chute ce matin", "urgent": True},
    )

    def unread() -> list[str]:
        rows = api(stack, t, "GET", "/v1/dossiers?unread_urgent=1")["dossiers"]
        return [d["id"] for d in rows]

    assert unread() == [urgent["id"]]
    assert api_error(stack, t, "GET", "/v1/dossiers?unread_urgent=oui").status == 400
    listed = {d["id"]: d for d in api(stack, t, "GET", "/v1/dossiers")["dossiers"]}
    assert listed[urgent["id"]]["unread_urgent"] and not listed[calm["id"]]["unread_urgent"]
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.get_by_label("Notes urgentes non lues").check()
    await expect(page.locator("#count")).to_have_text("1 dossier(s)")
    await expect(page.locator("#resultats tbody")).to_contain_text("URGENTNOM Anne")
    await expect(page.locator("#resultats tbody")).to_contain_text("urgent non lu")
    await page.locator("#resultats").get_by_role("link", name="URGENTNOM Anne").click()
    await expect(page.locator("#notes")).to_contain_text("Chute ce matin")
    assert unread() == []  # read in the page
    await page.goto(base(stack) + f"/dossiers/{calm['id']}")  # a second read marker
    await expect(page.locator("#notes")).to_contain_text("RAS")
    assert unread() == []
    await page.goto(base(stack) + "/?unread_urgent=1")
    await expect(page.locator("#count")).to_have_text("0 dossier(s)")
    # A new urgent note makes it unread again.
    api(
        stack,
        nurse.access_token,
        "POST",
        f"/v1/dossiers/{urgent['id']}/notes",
        {"text": "Nouvelle chute", "urgent": True},
    )
    assert unread() == [urgent["id"]]

    # "À faire" shows the 10 nearest tasks (only their identities opened) and says how
    # many more there are.
    for n in range(12):
        task = {"title": f"Tâche {n:02d}", "assignee": coord.user_id}
        task["due"] = (dt.date.today() + dt.timedelta(days=n % 7)).isoformat()
        api(stack, t, "POST", f"/v1/dossiers/{calm['id']}/tasks", task)
    await page.goto(base(stack) + "/")
    await expect(page.locator("#todo-tasks li")).to_have_count(10)
    await expect(page.locator("#more-tasks")).to_contain_text("2 de plus")
    await context.close()


async def test_every_write_of_the_dossier_page_goes_through_the_service(
    ws_stack: Stack, browser: Browser
) -> None:
    """The page's other forms (the same in the widget): reply in a thread, correction (the
    original kept), task done (under the filter), appointment with duration and iCalendar,
    PPCS editor and its PDF, consent with its history, search in the dossier, removal from
    the circle; a bad value gets a French message (4xx), never a 500."""
    stack = ws_stack
    coord = register_person(stack, "tout", "Thérèse Tout", "infirmière coordinatrice")
    nurse = register_person(stack, "sortante", "Sarah Sortante", "infirmière")
    t = coord.access_token
    dossier = open_dossier(stack, t, birth_name="Ecritures", first_names="Lou")
    did = dossier["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + f"/dossiers/{did}")

    # A note, a reply in its thread, a correction.
    await page.get_by_label("Nouvelle note").fill("Tension 15/9 ce matin")
    await page.get_by_role("button", name="Écrire la note").click()
    first = page.locator("#notes > li").first
    await expect(first).to_contain_text("Tension 15/9 ce matin")
    await first.locator("summary", has_text="Répondre").click()
    await first.get_by_label("Votre réponse").fill("Contrôle demain")
    await first.get_by_role("button", name="Envoyer").click()
    await expect(page.locator("#notes .reply")).to_contain_text("Contrôle demain")
    first = page.locator("#notes > li", has_text="Tension 15/9").first
    await first.locator("summary", has_text="Corriger").click()
    await first.get_by_label("Texte corrigé").fill("Tension 14/9 ce matin")
    await first.get_by_role("button", name="Corriger").click()
    await expect(page.locator("#notes")).to_contain_text("Tension 14/9 ce matin")
    await expect(page.locator("#notes")).to_contain_text("corrigée")
    notes = api(stack, t, "GET", f"/v1/dossiers/{did}/notes")["notes"]
    original = next(n for n in notes if n["text"] == "Tension 15/9 ce matin")
    reply = next(n for n in notes if n["text"] == "Contrôle demain")
    correction = next(n for n in notes if n["text"] == "Tension 14/9 ce matin")
    assert reply["reply_to"] == original["id"] and correction["corrects"] == original["id"]
    assert original["corrected_by"] == correction["id"]

    # A task, done: it stays under the filter.
    await page.get_by_text("Nouvelle tâche").click()
    await page.get_by_label("Intitulé").fill("Commander le lit médicalisé")
    await page.locator("#tasks-section").get_by_role("button", name="Ajouter").click()
    await expect(page.locator("#tasks")).to_contain_text("Commander le lit médicalisé")
    await page.get_by_role("button", name="Marquer faite : Commander le lit médicalisé").click()
    await expect(page.locator("#tasks")).not_to_contain_text("Commander le lit médicalisé")
    await page.get_by_role("link", name="Afficher aussi les tâches faites").click()
    await expect(page.locator("#tasks li.done")).to_contain_text("Commander le lit médicalisé")
    [task] = api(stack, t, "GET", f"/v1/dossiers/{did}/tasks?statut=faites")["tasks"]
    assert task["done_by"] == coord.user_id

    # An appointment: duration, participants, the iCalendar link.
    day = dt.date.today() + dt.timedelta(days=3)
    await page.get_by_text("Nouveau rendez-vous").click()
    await page.get_by_label("Objet").fill("Visite à domicile")
    await page.get_by_label("Début").fill(f"{day.isoformat()}T10:00")
    await page.get_by_label("Durée (minutes)").fill("90")
    await page.get_by_label("Participants").select_option(nurse.user_id)
    await page.locator("#agenda-section").get_by_role("button", name="Ajouter").click()
    await expect(page.locator("#agenda")).to_contain_text("durée 1 h 30")
    await expect(page.locator("#agenda")).to_contain_text("Sarah Sortante")
    ics = await context.request.get(base(stack) + f"/dossiers/{did}/files/agenda.ics")
    assert ics.status == 200 and "SUMMARY:Visite à domicile" in await ics.text()
    [appointment] = api(stack, t, "GET", f"/v1/dossiers/{did}/appointments")["appointments"]
    assert appointment["participants"] == [nurse.user_id]

    # The PPCS editor and its PDF.
    await page.get_by_text("Modifier le PPCS").click()
    await page.get_by_label("Problème", exact=True).first.fill("Risque de chute")
    await page.get_by_label("Objectifs (un par ligne)").first.fill("Aucune chute\nMarcher seule")
    await page.get_by_label("Action", exact=True).first.fill("Kinésithérapie 2 fois par semaine")
    await page.locator("#who-1").select_option(nurse.user_id)
    await page.get_by_role("button", name="Enregistrer le PPCS").click()
    await expect(page.locator("#ppcs-problems")).to_contain_text("Aucune chute ; Marcher seule")
    plan = api(stack, t, "GET", f"/v1/dossiers/{did}/ppcs")
    assert plan["problems"] == [
        {"problem": "Risque de chute", "goals": ["Aucune chute", "Marcher seule"]}
    ]
    assert plan["actions"] == [
        {"action": "Kinésithérapie 2 fois par semaine", "who": nurse.user_id}
    ]
    pdf = await context.request.get(base(stack) + f"/dossiers/{did}/files/ppcs.pdf")
    assert pdf.status == 200 and (await pdf.body()).startswith(b"%PDF")

    # Consent, with its history.
    await page.get_by_text("Enregistrer un changement du consentement").click()
    await page.locator("#c-share").check()
    await page.get_by_label("Comment il a été recueilli").fill("à l'oral, en présence de sa fille")
    await page.locator("#consent-section").get_by_role("button", name="Enregistrer").click()
    await expect(page.locator("#consent-history")).to_contain_text("partage hors équipe de soins")
    history = api(stack, t, "GET", f"/v1/dossiers/{did}/consent/history")["history"]
    assert [(e["field"], e["value"]) for e in history][-1] == ("share_outside", True)

    # Search in the dossier, the timeline filter.
    await page.get_by_label("Mots à chercher").fill("lit medicalise")
    await page.locator("#search-section").get_by_role("button", name="Rechercher").click()
    await expect(page.locator("#search-results")).to_contain_text("Commander le lit médicalisé")

    # A bad value: a French message, 4xx, nothing written.
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    bad = await context.request.post(
        base(stack) + f"/dossiers/{did}/agenda",
        form={"csrf": csrf or "", "title": "x", "start": "demain", "minutes": "30"},
        max_redirects=0,
    )
    assert bad.status == 400 and "une date et une heure attendues" in await bad.text()
    bad = await context.request.post(
        base(stack) + f"/dossiers/{did}/forms",
        form={"csrf": csrf or "", "form_id": "evaluation-autonomie", "f_chutes_6_mois": "deux"},
        max_redirects=0,
    )
    assert bad.status == 400 and "un entier est attendu" in await bad.text()
    assert api(stack, t, "GET", f"/v1/dossiers/{did}/forms")["forms"] == []

    # Removal from the circle (coordinators only).
    await page.get_by_role("button", name="Retirer du cercle Sarah Sortante (infirmière)").click()
    await expect(page.locator("#circle")).not_to_contain_text("Sarah Sortante")
    members = api(stack, t, "GET", f"/v1/dossiers/{did}/circle")["members"]
    assert not next(m for m in members if m["user_id"] == nurse.user_id)["active"]
    await axe_scan(page, "dossier après écritures")
    await screenshots(page, "dossier-writes")
    await no_matrix_id_shown(page)
    await context.close()


async def test_alerts_identity_status_and_closing_from_the_dossier_page(
    ws_stack: Stack, browser: Browser
) -> None:
    """What the bot does with !alerte, !dossier fermer and the identity status, the page does
    with forms: each write goes through the service (checked through the API), a transition
    RNIV refuses is said in French and changes nothing, a closed dossier is read-only."""
    stack = ws_stack
    coord = register_person(stack, "alerte", "Agnès Alerte", "infirmière coordinatrice")
    nurse = register_person(stack, "alertee", "Nora Alertée", "infirmière")
    t = coord.access_token
    did = open_dossier(
        stack, t, birth_name="Vigilance", first_names="Rémi", sex="M", identity_status="PROV"
    )["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + f"/dossiers/{did}")

    # An alert to the nurse: in the dossier, in her worklist.
    await page.get_by_text("Alerter des membres du cercle").click()
    await page.get_by_label("Nora Alertée (infirmière)").check()
    await page.get_by_label("Message de l'alerte").fill("Rappeler la famille avant midi")
    await page.get_by_role("button", name="Envoyer l'alerte").click()
    await expect(page.locator("#alerts")).to_contain_text(
        "Agnès Alerte (infirmière coordinatrice) → Nora Alertée (infirmière) : Rappeler la famille"
    )
    [alert] = api(stack, t, "GET", f"/v1/dossiers/{did}/alerts")["alerts"]
    assert (alert["author"], alert["recipients"]) == (coord.user_id, [nurse.user_id])
    assert alert["text"] == "Rappeler la famille avant midi"
    worklist = api(stack, nurse.access_token, "GET", "/v1/me/worklist")
    assert [a["text"] for a in worklist["alerts"]] == ["Rappeler la famille avant midi"]

    # Identity: VALI without a checked document is refused in words, nothing changes.
    await page.get_by_text("Changer le statut de l'identité").click()
    await page.get_by_label("Nouveau statut").select_option("VALI")
    await page.locator("#identity-section").get_by_role("button", name="Enregistrer").click()
    await expect(page.locator("#identity-error")).to_be_visible()
    assert api(stack, t, "GET", f"/v1/dossiers/{did}")["identity_status"] == "PROV"
    # With the passport checked: validated, recorded with its proof.
    await page.get_by_text("Changer le statut de l'identité").click()
    await page.get_by_label("Nouveau statut").select_option("VALI")
    await page.get_by_label("Pièce d'identité contrôlée").select_option("passeport")
    await page.locator("#identity-section").get_by_role("button", name="Enregistrer").click()
    await expect(page.locator("#identity-status")).to_have_text(
        "Identité validée (pièce d'identité contrôlée) — INS à récupérer"
    )
    assert api(stack, t, "GET", f"/v1/dossiers/{did}")["identity_status"] == "VALI"
    history = api(stack, t, "GET", f"/v1/dossiers/{did}/identity/history")["history"]
    change = history[-1]
    assert (change["from_status"], change["to_status"]) == ("PROV", "VALI"), change
    assert change["document"]["kind"] == "passeport"
    assert change["document"]["checked_by"] == coord.user_id

    # Closing needs a reason; closed, the page offers no write, and can reopen it.
    await page.get_by_text("Clore le dossier").first.click()
    await page.get_by_label("Motif de la clôture").fill("entrée en EHPAD")
    await page.locator("#status-section").get_by_role("button", name="Clore le dossier").click()
    await expect(page.get_by_text("Rouvrir le dossier").first).to_be_visible()
    closed = api(stack, t, "GET", f"/v1/dossiers/{did}")
    assert (closed["status"], closed["status_reason"]) == ("closed", "entrée en EHPAD")
    await expect(page.locator("main")).to_contain_text("Clos le")
    assert await page.get_by_text("Alerter des membres du cercle").count() == 0
    assert await page.get_by_text("Nouvelle note").count() == 0
    await axe_scan(page, "dossier clos")
    await page.get_by_text("Rouvrir le dossier").first.click()
    await page.locator("#status-section").get_by_role("button", name="Rouvrir le dossier").click()
    await expect(page.get_by_text("Clore le dossier").first).to_be_visible()
    assert api(stack, t, "GET", f"/v1/dossiers/{did}")["status"] == "open"

    # The nurse (not a coordinator) is offered neither closing nor the identity change.
    nurse_context, nurse_page = await new_page(browser)
    await login(nurse_page, stack, nurse)
    await nurse_page.goto(base(stack) + f"/dossiers/{did}")
    await expect(nurse_page.locator("#alerts")).to_contain_text("Rappeler la famille")
    assert await nurse_page.get_by_text("Clore le dossier").count() == 0
    assert await nurse_page.get_by_text("Changer le statut de l'identité").count() == 0
    csrf = await nurse_page.locator("input[name=csrf]").first.get_attribute("value")
    refused = await nurse_context.request.post(
        base(stack) + f"/dossiers/{did}/status",
        form={"csrf": csrf or "", "status": "closed", "status_reason": "essai"},
        max_redirects=0,
    )
    assert refused.status == 403 and "coordina" in await refused.text()
    assert api(stack, t, "GET", f"/v1/dossiers/{did}")["status"] == "open"
    await no_matrix_id_shown(page)
    await nurse_context.close()
    await context.close()
