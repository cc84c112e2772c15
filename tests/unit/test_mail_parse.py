"""The mail relay's pure parts: MIME reading, HTML sanitizing, IHE_XDM INS, !mail syntax,
the ``mail:`` configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appservice.mail.outbound import compose
from appservice.mail.parse import MalformedMail, parse_mail
from appservice.mail.sanitize import sanitize_html
from appservice.mail.xdm import ins_from_attachments
from dossier_api.domain.mail.outbox import MailCommandError, parse_mail_command
from dossier_api.domain.mail.routing import domain_allowed
from maillon.shared.settings import SettingsError, load
from maillon.wiring.init_deployment import InitOptions, init_deployment
from tests.harness.mail import build_mail, xdm_zip


def test_parse_reads_headers_text_html_and_attachments() -> None:
    mid, raw = build_mail(
        "d-1@localhost",
        "Compte rendu",
        "Bonjour",
        html="<p>Bonjour <script>x()</script><img src='https://t.example/p.png'></p>",
        attachments=[("cr.pdf", "application/pdf", b"%PDF")],
        in_reply_to="<parent@x.mssante.fr>",
        references=["<root@x.mssante.fr>"],
        headers={"Auto-Submitted": "auto-replied"},
    )
    mail = parse_mail(raw)
    assert mail.message_id == mid and mail.subject == "Compte rendu"
    assert mail.from_address == "dr.house@chu-exemple.mssante.fr"
    assert mail.text == "Bonjour"
    assert mail.html == "<p>Bonjour </p>"
    assert [(a.filename, a.data) for a in mail.attachments] == [("cr.pdf", b"%PDF")]
    assert mail.thread_ids == ("<parent@x.mssante.fr>", "<root@x.mssante.fr>")
    assert mail.is_automatic


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"Subject: sans expediteur\r\n\r\ntexte\r\n",
        b"From: pas une adresse\r\n\r\ntexte\r\n",
        b'From: a@b.mssante.fr\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n'
        b"--z\r\nContent-Type: text/plain\r\n\r\nsans fin\r\n",
        b"From: a@b.mssante.fr\r\nContent-Type: multipart/mixed\r\n\r\ntexte\r\n",
    ],
)
def test_malformed_mails_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedMail):
        parse_mail(raw)


def test_sanitizer_drops_scripts_handlers_remote_images_and_bad_links() -> None:
    html = (
        '<div style="x" onmouseover="a()"><a href="javascript:x()">a</a>'
        '<a href="https://ok.example">b</a><img src="http://t.example/x.gif">'
        "<style>p{}</style><iframe src='https://x'></iframe><b>gras</b></div>"
    )
    clean = sanitize_html(html)
    for forbidden in ("onmouseover", "javascript", "<img", "<style", "<iframe", "style="):
        assert forbidden not in clean
    assert 'href="https://ok.example"' in clean and "<b>gras</b>" in clean


def test_ins_comes_from_ihe_xdm_metadata_with_an_ins_oid_only() -> None:
    _, raw = build_mail(
        "x@localhost",
        "s",
        "t",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip("241033155500112"))],
    )
    assert ins_from_attachments(parse_mail(raw).attachments) == {"241033155500112"}
    _, raw = build_mail(
        "x@localhost",
        "s",
        "t",
        attachments=[("IHE_XDM.ZIP", "application/zip", xdm_zip("241033155500112", "1.2.3"))],
    )
    assert ins_from_attachments(parse_mail(raw).attachments) == set()


def test_sender_domains_match_the_domain_and_its_subdomains() -> None:
    allowed = ("mssante.fr",)
    assert domain_allowed("a@mssante.fr", allowed)
    assert domain_allowed("a@chu.mssante.fr", allowed)
    assert not domain_allowed("a@fakemssante.fr", allowed)
    assert not domain_allowed("a@mssante.fr.evil.com", allowed)
    assert not domain_allowed("", allowed)


def test_mail_command_syntax() -> None:
    assert parse_mail_command("!mail a@b.mssante.fr Objet long\nLigne 1\nLigne 2") == (
        "a@b.mssante.fr",
        "Objet long",
        "Ligne 1\nLigne 2",
    )
    for wrong in ("!mail", "!mail a@b.mssante.fr", "!mail pas-une-adresse Objet"):
        with pytest.raises(MailCommandError):
            parse_mail_command(wrong)


def test_composed_mail_has_threading_and_rfc3834_headers() -> None:
    msg = compose(
        {
            "from": "d-1@maillon.example",
            "to": ["a@b.mssante.fr"],
            "subject": "Re: x",
            "text": "corps",
            "message_id": "<m1@maillon.example>",
            "in_reply_to": "<p@b.mssante.fr>",
            "references": ["<r@b.mssante.fr>", "<p@b.mssante.fr>"],
            "relay_marker": "abc",
            "auto_submitted": "auto-replied",
        }
    )
    assert msg["In-Reply-To"] == "<p@b.mssante.fr>"
    assert msg["References"] == "<r@b.mssante.fr> <p@b.mssante.fr>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Maillon-Relay"] == "abc"


def test_mail_settings_from_init_and_checked(tmp_path: Path) -> None:
    root = init_deployment(InitOptions(directory=tmp_path / "d", server_name="sante.example"))
    mail = load(root).settings.mail
    assert mail.inbound.port == 2525 and mail.max_message_bytes == 25 * 1024 * 1024
    assert mail.allowed_sender_domains == ("mssante.fr",)
    assert load(root).settings.mail_domain == "sante.example"
    config = root / "maillon.yaml"
    config.write_text(config.read_text().replace("tls: none", "tls: ssl"))
    with pytest.raises(SettingsError, match=r"mail\.inbound\.tls"):
        load(root)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("delivery_attempts", 0, "au moins une tentative"),
        ("delivery_attempts", "dix", "un entier est attendu"),
        ("delivery_backoff_seconds", 0, "valeur positive attendue"),
    ],
)
def test_delivery_attempts_and_backoff_are_checked(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    root = init_deployment(InitOptions(directory=tmp_path / "d", server_name="sante.example"))
    mail = load(root).settings.mail
    assert (mail.delivery_attempts, mail.delivery_backoff_seconds) == (40, 0.5)
    config = root / "maillon.yaml"
    data = yaml.safe_load(config.read_text())
    data["mail"][key] = value
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(SettingsError, match=rf"« mail\.{key} » : {message}"):
        load(root)
