"""Accounts for professionals who have none (issue 15) on a real stack: the national
directory imported, a real SMTP server standing for the MSSanté operator (the relay's
outbox sends to it), real Synapse, the dossier service's pages driven over HTTP with their
cookies and CSRF tokens, and a matrix-nio client for the new account.

- Invitation: a coordinator invites an RPPS without an account into a care circle; the
  mail reaches its MSSanté address with a link; the link works once, only for that RPPS,
  never after its expiry or cancellation; the new account lands in the patient room; the
  pending professional got nothing of the dossier before.
- Self-enrolment by RPPS: a code mailed to the directory's MSSanté address; each refusal
  (wrong code, expired code, unknown RPPS, no MSSanté address, account already there,
  rate limits per RPPS and per source address) said in French."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dossier_api.domain.models import AuditEntry, DirectoryMailboxes, Enrolment, Professional
from maillon.shared.circle import (
    DIRECTORY_ALIAS_LOCALPART,
    DIRECTORY_EVENT,
    DirectoryEntry,
    user_state_key,
)
from maillon.shared.homeserver_client import Registered, register_user, request_json
from maillon.shared.store import make_engine
from maillon.wiring.cli import main
from tests.harness.annuaire import Person, person, write_activite, write_mssante
from tests.harness.bot_chat import BotChat
from tests.harness.circle import MakeClient, appservice
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.mail import SinkHandler, smtp_sink
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack

PEOPLE = 90
PER_RPPS = 2
PER_SOURCE = 5
STRONG = "cheval agrafe batterie correcte 42"
PATIENT_WORDS = ("Martin", "Jeanne", "Louise", "241033155500112", "1941")


class Env:
    def __init__(self, stack: Stack, sink: SinkHandler) -> None:
        self.stack = stack
        self.sink = sink
        self.base = stack.deployment.settings.dossier_api.url
        self.used: set[int] = set()

    def engine(self) -> Any:
        return make_engine(self.stack.deployment.settings.database_url, create_tables=False)

    def sql(self, statement: Any) -> None:
        engine = self.engine()
        try:
            with Session(engine) as session, session.begin():
                session.execute(statement)
        finally:
            engine.dispose()

    def pick(self, mailbox: bool = True) -> Person:
        """A professional of the extract with an RPPS (with a mailbox, or without), whose
        names share nothing with the test patient's, not used by another test."""
        for i in range(PEOPLE):
            p = person(i)
            has_box = i % 3 == 0
            names = f"{p.first_name} {p.last_name}".lower()
            if (
                i not in self.used
                and p.id_type == "8"
                and has_box == mailbox
                and not any(w.lower() in names for w in PATIENT_WORDS)
            ):
                self.used.add(i)
                return p
        raise AssertionError("no professional left in the extract")

    async def mail_to(self, address: str, after: int = 0, timeout: float = 60.0) -> Any:
        """The first mail the operator's server received for ``address`` (beyond ``after``
        mails to it already seen)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.sink.received if address in r.rcpt_tos]
            if len(found) > after:
                return message_from_bytes(found[after].data, policy=email.policy.default)
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail reached {address}")
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with smtp_sink() as (sink, sink_port):
        stack = Stack.create(tmp_path_factory.mktemp("stack-enrol"))
        config = stack.directory / "maillon.yaml"
        data = yaml.safe_load(config.read_text())
        data["mail"]["outbound"] = {
            "host": "127.0.0.1",
            "port": sink_port,
            "tls": "none",
            "retry_seconds": [0.5],
            "timeout_seconds": 10,
        }
        data["enrolment"] = {
            "invitation_hours": 48,
            "code_minutes": 10,
            "code_attempts": 3,
            "requests_per_rpps": PER_RPPS,
            "requests_per_source": PER_SOURCE,
        }
        config.write_text(yaml.safe_dump(data, allow_unicode=True))
        root = tmp_path_factory.mktemp("annuaire")
        activite = write_activite(root / "PS_LibreAcces_Personne_activite_202612010000.txt", 120)
        mss = root / "Extraction_Correspondance_MSSante_202612010000.txt"
        write_mssante(mss, PEOPLE, every=3)
        for path in (activite.path, mss):
            assert (
                main(["directory", "import", "--dir", str(stack.directory), "--quiet", str(path)])
                == 0
            )
        stack.start()
        try:
            yield Env(stack, sink)
        finally:
            stack.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A browser's cookies and requests (a loopback source address of its own, for the
    rate limit per source)."""

    async def make(source: str = "127.0.0.1") -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        made.append(session)
        return session

    made: list[aiohttp.ClientSession] = []
    yield make
    for session in made:
        await session.close()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def alert_of(page: str) -> str:
    found = re.search(r'id="enrol-error">([^<]+)<', page)
    assert found, page
    return unescape(found.group(1))


def link_of(mail: Any) -> str:
    found = re.search(r"(http://\S+/invitation/\S+)", mail.get_content())
    assert found, mail.get_content()
    return found.group(1)


async def post_form(
    http: aiohttp.ClientSession, url: str, page_url: str, fields: dict[str, str]
) -> tuple[int, str, aiohttp.ClientResponse]:
    """Open the form's page (its CSRF cookie and token), then post it."""
    async with http.get(page_url) as page:
        assert page.status == 200, await page.text()
        token = csrf_of(await page.text())
    async with http.post(url, data={"csrf": token, **fields}, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


def password_login(stack: Stack, user_id: str) -> Registered:
    """The new account's own login, with the password chosen at enrolment."""
    login = request_json(
        "POST",
        stack.url + "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": STRONG,
        },
    )
    return Registered(login["user_id"], login["access_token"], login["device_id"])


async def published(stack: Stack, user_id: str) -> DirectoryEntry | None:
    """The account's entry in the directory room the Synapse module reads."""
    async with appservice(stack) as api:
        room = await api.resolve_alias(f"#{DIRECTORY_ALIAS_LOCALPART}:{stack.server_name}")
        assert room is not None
        content = await api.get_state(room, DIRECTORY_EVENT, user_state_key(user_id))
    return None if content is None else DirectoryEntry.from_content(user_id, content)


def coordinator(env: Env) -> Registered:
    account = env.stack.register("coord", profession=None)
    env.stack.bind_directory(account.user_id, "Médecin", "Dr Claire Fontaine")
    return account


def invite(env: Env, token: str, dossier_id: str, rpps: str, role: str = "IDE") -> dict[str, Any]:
    return api(
        env.stack,
        token,
        "POST",
        f"/v1/dossiers/{dossier_id}/invitations",
        {"rpps": rpps, "role": role},
    )


async def test_invitation_end_to_end(env: Env, browser: Any, tmp_path: Path) -> None:
    stack = env.stack
    coord = coordinator(env)
    dossier = new_dossier(stack, coord.access_token)
    room_id = dossier["room_id"]
    assert room_id
    p = env.pick()
    invitation = invite(env, coord.access_token, dossier["id"], p.identifier)
    assert invitation["status"] == "pending" and invitation["mailbox"] == p.mailbox
    assert invitation["display_name"] == f"{p.first_name} {p.last_name}"
    # Pending: in the invitations the coordinator sees, not in the circle.
    listed = api(stack, coord.access_token, "GET", f"/v1/dossiers/{dossier['id']}/invitations")
    assert [i["id"] for i in listed["invitations"]] == [invitation["id"]]
    circle = api(stack, coord.access_token, "GET", f"/v1/dossiers/{dossier['id']}/circle")
    assert [m["user_id"] for m in circle["members"]] == [coord.user_id]
    # The mail reaches the MSSanté address: the inviter and the structure, never the patient.
    mail = await env.mail_to(p.mailbox)
    text = mail.get_content()
    assert "Dr Claire Fontaine" in mail["Subject"] and "Dr Claire Fontaine (Médecin)" in text
    assert mail["Auto-Submitted"] == "auto-generated"
    for word in (*PATIENT_WORDS, dossier["id"], room_id):
        assert word not in text and word not in mail["Subject"], word
    link = link_of(mail)
    assert link.startswith(env.base + "/invitation/")
    http = await browser()
    async with http.get(link) as page:
        html = await page.text()
        assert page.status == 200 and p.last_name in html and "Dr Claire Fontaine" in html
        assert not any(word in html for word in PATIENT_WORDS)
    # Another RPPS: refused (the link is bound to the invited one); a weak password too.
    other = env.pick()
    status, html, _ = await post_form(
        http, link, link, {"rpps": other.identifier, "password": STRONG, "password2": STRONG}
    )
    assert status == 403 and "autre professionnel" in alert_of(html)
    status, html, _ = await post_form(
        http, link, link, {"rpps": p.identifier, "password": "azerty123", "password2": "azerty123"}
    )
    assert status == 400 and "trop faible" in alert_of(html)
    # No CSRF token: refused.
    async with http.post(link, data={"rpps": p.identifier}, allow_redirects=False) as resp:
        assert resp.status == 403
    status, _, resp = await post_form(
        http, link, link, {"rpps": p.identifier, "password": STRONG, "password2": STRONG}
    )
    assert status == 303 and resp.headers["Location"] == f"/dossiers/{dossier['id']}"
    async with http.get(env.base + resp.headers["Location"]) as page:
        assert page.status == 200 and "Martin" in await page.text()  # now in the circle
    accepted = api(stack, coord.access_token, "GET", f"/v1/dossiers/{dossier['id']}/invitations")
    row = accepted["invitations"][0]
    assert row["status"] == "accepted" and row["mail"] == "sent"
    user_id = row["user_id"]
    circle = api(stack, coord.access_token, "GET", f"/v1/dossiers/{dossier['id']}/circle")
    member = next(m for m in circle["members"] if m["user_id"] == user_id)
    assert member["role"] == "IDE" and member["active"] and member["added_by"] == coord.user_id
    assert member["display_name"] == f"{p.first_name} {p.last_name}"
    engine = env.engine()
    try:
        with Session(engine) as session:
            pro = session.get(Professional, user_id)
            assert pro is not None and pro.rpps == p.identifier and pro.mssante == p.mailbox
            # Their first trace in the dossier is their enrolment: nothing was theirs before.
            trail = session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.dossier_id == dossier["id"], AuditEntry.actor == user_id)
                .order_by(AuditEntry.id)
            ).all()
            assert trail and trail[0] == "circle.enrol", trail
    finally:
        engine.dispose()
    entry = await published(stack, user_id)
    assert entry is not None and entry.rpps == p.identifier and entry.mssante == p.mailbox
    # The new account logs in with its password and lands in the patient room.
    client = E2EClient(stack.url, password_login(stack, user_id), tmp_path / "c")
    try:
        await client.accept_invite(room_id, timeout=60)
        await client.wait_for_member(room_id, user_id)
    finally:
        await client.close()
    # The link cannot serve twice; the RPPS now has an account (no second invitation).
    async with http.get(link) as page:
        assert page.status == 410 and "déjà servi" in await page.text()
    again = api_error(
        stack,
        coord.access_token,
        "POST",
        f"/v1/dossiers/{dossier['id']}/invitations",
        {"rpps": p.identifier, "role": "IDE"},
    )
    assert again.status == 409 and "déjà un compte" in str(again)


async def test_expired_cancelled_and_refused_invitations(env: Env, browser: Any) -> None:
    stack = env.stack
    coord = coordinator(env)
    dossier = new_dossier(stack, coord.access_token)
    path = f"/v1/dossiers/{dossier['id']}/invitations"
    http = await browser()
    # Expired: its link says so and creates nothing.
    late = env.pick()
    expired = invite(env, coord.access_token, dossier["id"], late.identifier)
    link = link_of(await env.mail_to(late.mailbox))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    env.sql(update(Enrolment).where(Enrolment.id == expired["id"]).values(expires_at=past))
    async with http.get(link) as page:
        assert page.status == 410 and "expiré" in await page.text()
    async with http.get(link.replace("/invitation/", "/invitation/x")) as page:
        assert page.status == 404
    statuses = api(stack, coord.access_token, "GET", path)["invitations"]
    assert [i["status"] for i in statuses] == ["expired"]
    # Cancelled by the coordinator: the link no longer works.
    cancelled = env.pick()
    made = invite(env, coord.access_token, dossier["id"], cancelled.identifier)
    assert (
        api_error(
            stack, coord.access_token, "POST", path, {"rpps": cancelled.identifier, "role": "IDE"}
        ).status
        == 409
    )
    link = link_of(await env.mail_to(cancelled.mailbox))
    done = api(stack, coord.access_token, "DELETE", f"{path}/{made['id']}")
    assert done["status"] == "cancelled"
    assert api_error(stack, coord.access_token, "DELETE", f"{path}/{made['id']}").status == 409
    async with http.get(link) as page:
        assert page.status == 410 and "annulée" in await page.text()
    # Refusals: no MSSanté address, unknown RPPS, a non-professional role, not a coordinator.
    nobox = env.pick(mailbox=False)
    error = api_error(
        stack, coord.access_token, "POST", path, {"rpps": nobox.identifier, "role": "IDE"}
    )
    assert error.status == 400 and "aucune adresse MSSanté" in str(error)
    # A directory address outside the MSSanté trust space: nothing is queued, said in words.
    outside = env.pick()
    env.sql(
        update(DirectoryMailboxes)
        .where(DirectoryMailboxes.national_id == outside.national_id)
        .values(data={"mailboxes": [["dr.x@messagerie.example.com", "PER"]]})
    )
    error = api_error(
        stack, coord.access_token, "POST", path, {"rpps": outside.identifier, "role": "IDE"}
    )
    assert error.status == 400 and "espace de confiance MSSanté" in str(error)
    error = api_error(
        stack, coord.access_token, "POST", path, {"rpps": "99999999999", "role": "IDE"}
    )
    assert error.status == 404 and "annuaire national" in str(error)
    someone = env.pick()
    error = api_error(
        stack, coord.access_token, "POST", path, {"rpps": someone.identifier, "role": "PATIENT"}
    )
    assert error.status == 400
    stranger = stack.register("autre")
    error = api_error(
        stack, stranger.access_token, "POST", path, {"rpps": someone.identifier, "role": "IDE"}
    )
    assert error.status == 403
    assert not [r for r in env.sink.received if someone.mailbox in r.rcpt_tos]


async def test_self_enrolment_with_each_refusal(env: Env, browser: Any) -> None:
    stack = env.stack
    page = env.base + "/inscription"
    http = await browser("127.0.0.2")

    async def ask(rpps: str, client: aiohttp.ClientSession = http) -> tuple[int, str]:
        status, html, _ = await post_form(client, page, page, {"rpps": rpps})
        return status, html

    status, html = await ask("12345")
    assert status == 400 and "11 chiffres" in alert_of(html)
    status, html = await ask("99999999999")
    assert status == 404 and "pas dans l'annuaire national" in alert_of(html)
    nobox = env.pick(mailbox=False)
    status, html = await ask(nobox.identifier)
    assert status == 400 and "aucune adresse de messagerie sécurisée" in alert_of(html)
    p = env.pick()
    status, html = await ask(p.identifier)
    assert status == 200 and "code-sent" in html and p.mailbox not in html
    assert p.mailbox.split("@")[1] in html  # where the code went, masked
    request_id = re.search(r'name="request_id" value="([^"]+)"', html)
    assert request_id
    mail = await env.mail_to(p.mailbox)
    code = re.search(r"\b([0-9]{6})\b", mail.get_content())
    assert code and "code" in mail["Subject"]
    wrong = f"{(int(code.group(1)) + 1) % 10**6:06d}"

    async def send_code(value: str, password: str = STRONG) -> tuple[int, str, Any]:
        fields = {
            "request_id": request_id.group(1),
            "code": value,
            "password": password,
            "password2": password,
        }
        return await post_form(http, page + "/code", page, fields)

    status, html, _ = await send_code(wrong)
    assert status == 400 and "Code incorrect : il vous reste 2 essai(s)." in alert_of(html)
    status, html, resp = await send_code(code.group(1))
    assert status == 303 and resp.headers["Location"] == "/"
    async with http.get(env.base + "/") as home:
        assert home.status == 200 and "/login" not in str(home.url)
    engine = env.engine()
    try:
        with Session(engine) as session:
            pro = session.scalar(select(Professional).where(Professional.rpps == p.identifier))
            assert pro is not None and pro.mssante == p.mailbox
            user_id = pro.user_id
    finally:
        engine.dispose()
    assert password_login(stack, user_id).user_id == user_id
    entry = await published(stack, user_id)
    assert entry is not None and entry.rpps == p.identifier
    # The same code cannot serve twice; that RPPS now has an account.
    status, html, _ = await send_code(code.group(1))
    assert status == 410 and "déjà servi" in alert_of(html)
    other = await browser("127.0.0.3")
    status, html = await ask(p.identifier, other)
    assert status == 409 and "existe déjà" in alert_of(html)
    # An expired code.
    late = env.pick()
    status, html = await ask(late.identifier, other)
    assert status == 200
    late_id = re.search(r'name="request_id" value="([^"]+)"', html)
    assert late_id
    late_code = re.search(r"\b([0-9]{6})\b", (await env.mail_to(late.mailbox)).get_content())
    assert late_code
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    env.sql(update(Enrolment).where(Enrolment.id == late_id.group(1)).values(expires_at=past))
    fields = {"request_id": late_id.group(1), "code": late_code.group(1)}
    status, html, _ = await post_form(
        other, page + "/code", page, {**fields, "password": STRONG, "password2": STRONG}
    )
    assert status == 410 and "Code expiré" in alert_of(html)
    # Rate limit per RPPS: the late one asked once; one more, then refused.
    assert (await ask(late.identifier, other))[0] == 200
    status, html = await ask(late.identifier, other)
    assert status == 429 and "pour ce numéro RPPS" in alert_of(html)
    # Rate limit per source address: PER_SOURCE requests an hour, whatever their outcome.
    third = await browser("127.0.0.4")
    # Each a different unknown RPPS (the same one asked a third time meets its own limit).
    for rpps in ("9" * 9 + f"{n:02d}" for n in range(PER_SOURCE)):
        assert (await ask(rpps, third))[0] == 404
    status, html = await ask(env.pick().identifier, third)
    assert status == 429 and "depuis cette adresse" in alert_of(html)


async def test_invitation_through_the_bot(env: Env, make_client: MakeClient) -> None:
    stack = env.stack
    coord = make_client(stack, "coordbot")
    dossier = new_dossier(stack, coord.account.access_token)
    room = dossier["room_id"]
    await coord.accept_invite(room, timeout=60)
    chat = BotChat(stack, coord)
    await coord.wait_for_member(room, chat.bot, timeout=60)
    p = env.pick()
    _, answer = await chat.command(room, f"!cercle inviter {p.identifier} IDE")
    assert "Invitation envoyée" in answer.body and p.last_name in answer.body
    assert p.mailbox not in answer.body
    _, listing = await chat.command(room, "!cercle")
    assert "invitation en attente" in listing.body and p.last_name in listing.body
    assert "Dossier" not in (await env.mail_to(p.mailbox))["Subject"]
    _, refused = await chat.command(room, "!cercle inviter 123 IDE", ok=False)
    assert "11 chiffres" in refused.body and "!cercle inviter RPPS" in refused.body
    _, again = await chat.command(room, f"!cercle inviter {p.identifier} IDE", ok=False)
    assert "déjà en attente" in again.body


async def test_invitation_from_the_workspace_dossier_page(env: Env, browser: Any) -> None:
    stack = env.stack
    password = "pivoine escalier nuage tambour 7"
    localpart = f"coordpage{secrets.token_hex(3)}"
    account = register_user(
        stack.url, stack.deployment.secrets.registration_shared_secret, localpart, password
    )
    stack.bind_directory(account.user_id, "Médecin", "Dr Paul Page")
    dossier = new_dossier(stack, account.access_token)
    http = await browser()
    async with http.get(env.base + "/login") as login:  # no Pro Santé Connect configured
        assert 'id="psc-login"' not in await login.text()
    status, _, _ = await post_form(
        http,
        env.base + "/login",
        env.base + "/login",
        {"username": localpart, "password": password, "next": f"/dossiers/{dossier['id']}"},
    )
    assert status == 303
    page_url = f"{env.base}/dossiers/{dossier['id']}"
    async with http.get(page_url) as page:
        html = await page.text()
    assert 'id="invite-form"' in html
    p = env.pick()
    fields = {"csrf": csrf_of(html), "rpps": p.identifier, "role": "KINE"}
    async with http.post(page_url + "/invitations", data=fields, allow_redirects=False) as resp:
        assert resp.status == 303
    async with http.get(page_url) as page:
        html = await page.text()
    pending = re.search(r'<ul id="invitations">(.*?)</ul>', html, re.S)
    assert pending and p.last_name in pending.group(1)
    assert "masseur-kinésithérapeute" in pending.group(1)
    [made] = api(stack, account.access_token, "GET", f"/v1/dossiers/{dossier['id']}/invitations")[
        "invitations"
    ]
    await env.mail_to(p.mailbox)
    # Without the session's CSRF token: refused; with it, cancelled.
    cancel = f"{page_url}/invitations/{made['id']}/annuler"
    async with http.post(cancel, data={}, allow_redirects=False) as resp:
        assert resp.status == 403
    async with http.post(cancel, data={"csrf": csrf_of(html)}, allow_redirects=False) as resp:
        assert resp.status == 303
    async with http.get(page_url) as page:
        pending = re.search(r'<ul id="invitations">(.*?)</ul>', await page.text(), re.S)
    assert pending and p.last_name not in pending.group(1)
    # A refusal is said in words on a page of its own (4xx, never a 500).
    nobox = env.pick(mailbox=False)
    fields = {"csrf": csrf_of(html), "rpps": nobox.identifier, "role": "IDE"}
    async with http.post(page_url + "/invitations", data=fields) as resp:
        assert resp.status == 400 and "aucune adresse MSSanté" in unescape(await resp.text())
