"""Pro Santé Connect login (issue 15) end to end: a real OpenID Connect provider started by
the test (Authlib, PSC-shaped ID tokens and userinfo: ``SubjectNameID``, ``SubjectRefPro``),
a stack made by ``maillon init --psc-client-id … --psc-issuer …``, the national directory
imported, and Synapse's real SSO flow driven by headless Chromium from the workspace's
login page. The account created is bound to the RPPS's directory entry; an identity the
directory does not list is refused with a page that says why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import async_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.models import Professional
from maillon.shared.circle import DIRECTORY_ALIAS_LOCALPART, DIRECTORY_EVENT, user_state_key
from maillon.shared.store import make_engine
from maillon.wiring.cli import main
from maillon.wiring.init_deployment import PSC_ISSUER, ProSanteConnect
from tests.harness.annuaire import person, write_activite, write_mssante
from tests.harness.circle import appservice
from tests.harness.dossier import api, new_dossier
from tests.harness.hydrogen import CHROMIUM
from tests.harness.oidc_provider import Professional as PscIdentity
from tests.harness.oidc_provider import pro_sante_connect
from tests.harness.stack import Stack


@pytest.fixture(scope="module")
def psc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Any]]:
    with pro_sante_connect() as provider:
        psc = ProSanteConnect(
            provider.client.client_id, provider.client.client_secret, provider.issuer
        )
        stack = Stack.create(tmp_path_factory.mktemp("stack-psc"), psc=psc)
        homeserver = yaml.safe_load((stack.directory / "homeserver.yaml").read_text())
        public = homeserver["public_baseurl"].rstrip("/")
        provider.client.redirect_uris.append(f"{public}/_synapse/client/oidc/callback")
        root = tmp_path_factory.mktemp("annuaire-psc")
        activite = write_activite(root / "PS_LibreAcces_Personne_activite_202612010000.txt", 60)
        mss = root / "Extraction_Correspondance_MSSante_202612010000.txt"
        write_mssante(mss, 60, every=3)
        for path in (activite.path, mss):
            command = ["directory", "import", "--dir", str(stack.directory), "--quiet"]
            assert main([*command, str(path)]) == 0
        stack.start()
        try:
            asyncio.run(directory_room(stack))
            yield stack, provider
        finally:
            stack.stop()


async def directory_room(stack: Stack, timeout: float = 60.0) -> str:
    """The directory room, once the appservice has made it (at its start)."""
    deadline = time.monotonic() + timeout
    alias = f"#{DIRECTORY_ALIAS_LOCALPART}:{stack.server_name}"
    while True:
        async with appservice(stack) as api:
            room = await api.resolve_alias(alias)
        if room is not None:
            return room
        assert time.monotonic() < deadline, "the appservice never made the directory room"
        await asyncio.sleep(0.3)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = await browser.new_context(locale="fr-FR")
        try:
            yield await context.new_page()
        finally:
            await browser.close()


def _listed_rpps() -> tuple[Any, PscIdentity]:
    p = next(person(i) for i in range(0, 60, 3) if person(i).id_type == "8")
    return p, PscIdentity(p.identifier, p.first_name, p.last_name, p.profession_code)


async def test_login_with_pro_sante_connect_binds_the_rpps(
    psc_stack: tuple[Stack, Any], page: Any, tmp_path: Path
) -> None:
    stack, provider = psc_stack
    p, identity = _listed_rpps()
    provider.identity = identity
    workspace = stack.deployment.settings.dossier_api.url
    await page.goto(workspace + "/login")
    button = page.locator("#psc-login")
    assert await button.inner_text() == "Se connecter avec Pro Santé Connect"
    await button.click()
    await page.wait_for_url(workspace + "/", timeout=60_000)
    assert provider.authorizations == 1
    assert set(provider.acr_values) == {"eidas1"}  # Synapse asked for PSC's eIDAS level
    # Logged in to the workspace as the new account, named and bound by the directory.
    signed_in = await page.locator("text=Connecté·e").inner_text()
    assert f"{p.first_name} {p.last_name}, {p.profession}" in signed_in
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            pro = session.scalar(select(Professional).where(Professional.rpps == p.identifier))
            assert pro is not None and pro.mssante == p.mailbox
            assert pro.display_name == f"{p.first_name} {p.last_name}"
            assert pro.user_id.endswith(":" + stack.server_name)
    finally:
        engine.dispose()
    # Published where the care-circle module reads the directory.
    room = await directory_room(stack)
    async with appservice(stack) as api:
        content = await api.get_state(room, DIRECTORY_EVENT, user_state_key(pro.user_id))
    assert content is not None and content["rpps"] == p.identifier
    # A second login finds the same account (Synapse keeps the PSC subject's link).
    await page.context.clear_cookies()
    await page.goto(workspace + "/login")
    await page.locator("#psc-login").click()
    await page.wait_for_url(workspace + "/", timeout=60_000)
    assert provider.authorizations == 2
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(Professional.user_id).where(Professional.rpps == p.identifier)
            ).all()
        assert rows == [pro.user_id]
    finally:
        engine.dispose()


async def test_an_identity_outside_the_directory_is_refused(
    psc_stack: tuple[Stack, Any], page: Any
) -> None:
    stack, provider = psc_stack
    provider.identity = PscIdentity("99999999999", "Inconnu", "HORS-ANNUAIRE")
    workspace = stack.deployment.settings.dossier_api.url
    await page.goto(workspace + "/login")
    await page.locator("#psc-login").click()
    await page.wait_for_selector("text=n'est pas dans l'annuaire national", timeout=60_000)
    assert "99999999999" in await page.content()
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with Session(engine) as session:
            assert (
                session.scalar(select(Professional).where(Professional.rpps == "99999999999"))
                is None
            )
    finally:
        engine.dispose()


def test_init_configures_pro_sante_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "deploiement"
    base = ["init", "--dir", str(target), "--server-name", "sante.example.org"]
    psc = ["--psc-client-id", "maillon-region", "--psc-client-secret", "s3cret-de-test"]
    assert main([*base, *psc]) == 0
    homeserver = yaml.safe_load((target / "homeserver.yaml").read_text())
    [provider] = homeserver["oidc_providers"]
    assert provider["idp_id"] == "psc" and provider["idp_name"] == "Pro Santé Connect"
    assert provider["issuer"] == PSC_ISSUER and provider["scopes"] == ["openid", "scope_all"]
    # As ANS's own client does: the eIDAS level asked for, the e-CPS wallet's endpoints.
    assert provider["additional_authorization_parameters"] == {"acr_values": "eidas1"}
    assert provider["discover"] is False
    assert provider["authorization_endpoint"] == "https://wallet.esw.esante.gouv.fr/auth"
    openid = f"{PSC_ISSUER}/protocol/openid-connect"
    assert provider["token_endpoint"] == f"{openid}/token"
    assert provider["userinfo_endpoint"] == f"{openid}/userinfo"
    assert provider["jwks_uri"] == f"{openid}/certs"
    assert provider["client_id"] == "maillon-region"
    assert provider["client_secret"] == "s3cret-de-test"
    assert "skip_verification" not in provider  # https: the provider is verified
    mapping = provider["user_mapping_provider"]
    assert mapping["module"] == "synapse_modules.psc_mapping.ProSanteConnectMapping"
    assert homeserver["sso"]["client_whitelist"] == ["http://127.0.0.1:8090/"]
    settings = yaml.safe_load((target / "maillon.yaml").read_text())
    assert settings["homeserver"]["pro_sante_connect"] is True
    # Without Pro Santé Connect: no provider, no button; one option alone is refused.
    plain = tmp_path / "sans-psc"
    assert main(["init", "--dir", str(plain), "--server-name", "sante.example.org"]) == 0
    assert "oidc_providers" not in yaml.safe_load((plain / "homeserver.yaml").read_text())
    capsys.readouterr()
    alone = ["init", "--dir", str(tmp_path / "x"), "--server-name", "s.example.org"]
    assert main([*alone, "--psc-client-id", "seul"]) == 2
    assert "--psc-client-secret" in capsys.readouterr().err


async def test_an_invited_professional_joins_by_pro_sante_connect(
    psc_stack: tuple[Stack, Any], page: Any
) -> None:
    """The invitation of an RPPS without an account: its professional logs in with Pro
    Santé Connect (the e-CPS proves the RPPS, as the mailed link would): the pending entry
    becomes theirs and they land on the dossier."""
    stack, provider = psc_stack
    coordinator = stack.register("coordpsc")
    dossier = new_dossier(stack, coordinator.access_token)
    p = [person(i) for i in range(0, 60, 3) if person(i).id_type == "8"][1]
    path = f"/v1/dossiers/{dossier['id']}"
    made = api(
        stack,
        coordinator.access_token,
        "POST",
        f"{path}/invitations",
        {"rpps": p.identifier, "role": "KINE"},
    )
    assert made["status"] == "pending"
    provider.identity = PscIdentity(p.identifier, p.first_name, p.last_name, p.profession_code)
    workspace = stack.deployment.settings.dossier_api.url
    await page.goto(workspace + "/login")
    await page.locator("#psc-login").click()
    await page.wait_for_url(f"{workspace}/dossiers/{dossier['id']}", timeout=60_000)
    [row] = api(stack, coordinator.access_token, "GET", f"{path}/invitations")["invitations"]
    assert row["status"] == "accepted" and row["user_id"]
    circle = api(stack, coordinator.access_token, "GET", f"{path}/circle")["members"]
    member = next(m for m in circle if m["user_id"] == row["user_id"])
    assert member["role"] == "KINE" and member["active"]
    assert member["display_name"] == f"{p.first_name} {p.last_name}"
