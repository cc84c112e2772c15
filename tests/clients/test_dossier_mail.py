"""A secure mail written on the dossier page (what the bot's ``!mail`` does): it leaves
from the dossier's MSSanté address with the sender's name, reaches a real SMTP server once
even when the form is sent twice, and a recipient outside the MSSanté trust space is
refused in French with nothing queued. Real stack on PostgreSQL, headless Chromium."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from dossier_api.domain.mail.models import MailOutbox
from maillon.shared.store import make_engine
from tests.clients.test_workspace import axe_scan, base, login, new_page, open_dossier
from tests.harness.circle import wait_for
from tests.harness.dossier import api
from tests.harness.hydrogen import register_person
from tests.harness.mail import SinkHandler
from tests.harness.stack import Stack, postgres_stack_with_smtp

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def mail_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, SinkHandler]]:
    with postgres_stack_with_smtp(tmp_path_factory.mktemp("stack-mail")) as made:
        yield made


async def test_a_secure_mail_from_the_dossier_page(
    mail_stack: tuple[Stack, SinkHandler], browser: Browser
) -> None:
    stack, sink = mail_stack
    coord = register_person(stack, "courriel", "Corinne Courriel", "infirmière coordinatrice")
    dossier = open_dossier(stack, coord.access_token, birth_name="Postal", first_names="Yves")
    did = dossier["id"]
    context, page = await new_page(browser)
    await login(page, stack, coord)
    await page.goto(base(stack) + f"/dossiers/{did}")
    section = page.locator("#mail-section")
    await expect(section).to_contain_text(dossier["mail_address"])

    # Outside the MSSanté trust space: refused in words, nothing leaves.
    await section.get_by_text("Écrire un courriel sécurisé").click()
    await section.get_by_label("Destinataire (adresse MSSanté)").fill("quelqu.un@gmail.com")
    await section.get_by_label("Objet", exact=True).fill("Compte rendu")
    await section.get_by_label("Texte du courriel").fill("Bonjour, voici le point.")
    await section.get_by_role("button", name="Envoyer le courriel").click()
    await expect(page.locator("#mail-error")).to_contain_text("gmail.com")

    # To a doctor's MSSanté mailbox: it arrives once, from the dossier's address.
    await section.get_by_text("Écrire un courriel sécurisé").click()
    await section.get_by_label("Destinataire (adresse MSSanté)").fill(
        "dr.martin@cabinet.mssante.fr"
    )
    await section.get_by_label("Objet", exact=True).fill("Point sur la situation")
    await section.get_by_label("Texte du courriel").fill("Bonjour, la visite est prévue jeudi.")
    form = page.locator("#mail-section form")
    fields = {
        name: await form.locator(f"[name={name}]").input_value()
        for name in ("csrf", "nonce", "to", "subject", "text")
    }
    await section.get_by_role("button", name="Envoyer le courriel").click()
    await expect(page.locator("#mail-error")).to_have_count(0)
    # The same filled form sent again (a double click, a reload): still one mail.
    again = await context.request.post(
        base(stack) + f"/dossiers/{did}/mail", form=fields, max_redirects=0
    )
    assert again.status == 303, await again.text()

    def delivered() -> bool:
        return any("dr.martin@cabinet.mssante.fr" in r.rcpt_tos for r in sink.received)

    await wait_for(delivered, "the mail at the SMTP server", timeout=60)
    mails = [r for r in sink.received if "dr.martin@cabinet.mssante.fr" in r.rcpt_tos]
    message = email.message_from_bytes(mails[0].data, policy=email.policy.default)
    assert message["Subject"] == "Point sur la situation"
    assert dossier["mail_address"] in str(message["From"])
    assert "Corinne Courriel" in str(message["From"])
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "la visite est prévue jeudi" in body.get_content()
    refused = [r for r in sink.received if any("gmail" in t for t in r.rcpt_tos)]
    assert refused == []
    # The outbox holds it once (the second post was the same mail), and it is audited.
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with engine.connect() as conn:
            queued = conn.execute(
                select(MailOutbox.source_event_id).where(
                    MailOutbox.source_event_id.like(f"maillon.page.{did}.%")
                )
            ).all()
    finally:
        engine.dispose()
    assert len(queued) == 1, queued
    entries = api(stack, coord.access_token, "GET", f"/v1/dossiers/{did}/audit")["entries"]
    sent = [e for e in entries if e["action"] == "mail.send" and e["allowed"]]
    assert len(sent) == 2 and all(e["component"] == "workspace" for e in sent)
    await axe_scan(page, "dossier, courriel")
    await context.close()
