"""Sender authentication (DKIM / SPF / DMARC through authheaders) against a real DNS
server of the test, and the bounds of IHE_XDM packages."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Iterator

import dns.resolver
import pytest

from appservice.mail.authenticate import Peer, authenticate, configure_resolver, describe
from appservice.mail.parse import Attachment
from appservice.mail.xdm import XdmTooLarge, ins_from_attachments
from tests.harness.mail import SENDER, build_mail, xdm_zip
from tests.harness.mail_auth import DkimKey, FakeDns, fake_dns

DOMAIN = SENDER.split("@")[1]


@pytest.fixture
def dns_server() -> Iterator[FakeDns]:
    saved = dns.resolver.default_resolver
    with fake_dns() as server:
        configure_resolver((server.address,))
        try:
            yield server
        finally:
            dns.resolver.default_resolver = saved


def test_dkim_signed_mail_is_authenticated_for_its_domain(dns_server: FakeDns) -> None:
    key = DkimKey(DOMAIN)
    dns_server.txt[key.dns_name] = [key.record()]
    dns_server.txt[f"_dmarc.{DOMAIN}"] = [b"v=DMARC1; p=reject"]
    _, raw = build_mail("d-1@maillon.example", "Objet", "Texte")
    auth = authenticate(key.sign(raw), SENDER, Peer("127.0.0.1"), SENDER)
    assert auth["method"] == "dkim" and auth["name"] == DOMAIN, auth
    assert describe(auth) == f"🔒 DKIM valide pour {DOMAIN}"
    assert key.dns_name in dns_server.queries

    tampered = key.sign(raw).replace(b"Texte", b"Autre")
    auth = authenticate(tampered, SENDER, Peer("127.0.0.1"), SENDER)
    assert auth["method"] == "none" and auth["dkim"] == "fail"
    assert describe(auth).startswith("⚠ expéditeur non authentifié")


def test_spf_pass_with_dmarc_authenticates(dns_server: FakeDns) -> None:
    dns_server.txt[DOMAIN] = [b"v=spf1 ip4:127.0.0.1 -all"]
    dns_server.txt[f"_dmarc.{DOMAIN}"] = [b"v=DMARC1; p=reject"]
    _, raw = build_mail("d-1@maillon.example", "Objet", "Texte")
    auth = authenticate(raw, SENDER, Peer("127.0.0.1", "mx.example"), SENDER)
    assert (auth["method"], auth["spf"], auth["dmarc"]) == ("spf", "pass", "pass"), auth
    other = authenticate(raw, SENDER, Peer("127.0.0.9", "mx.example"), SENDER)
    assert other["method"] == "none" and other["spf"] == "fail"


def test_a_senders_records_are_asked_once_per_ttl_not_at_each_mail(dns_server: FakeDns) -> None:
    dns_server.txt[DOMAIN] = [b"v=spf1 ip4:127.0.0.1 -all"]
    dns_server.txt[f"_dmarc.{DOMAIN}"] = [b"v=DMARC1; p=reject"]
    _, raw = build_mail("d-1@maillon.example", "Objet", "Texte")
    first = authenticate(raw, SENDER, Peer("127.0.0.1", "mx.example"), SENDER)
    asked = list(dns_server.queries)
    assert asked, "the first mail's records come from the DNS server"
    for _ in range(5):
        again = authenticate(raw, SENDER, Peer("127.0.0.1", "mx.example"), SENDER)
        assert again == first
    assert dns_server.queries == asked, "later mails of the sender: from the cache (TTL 60 s)"


def test_unsigned_mail_is_not_authenticated(dns_server: FakeDns) -> None:
    _, raw = build_mail("d-1@maillon.example", "Objet", "Texte")
    auth = authenticate(raw, SENDER, Peer("127.0.0.1"), SENDER)
    assert auth["method"] == "none"
    assert describe(auth).startswith("⚠ expéditeur non authentifié")


def _zip(entries: dict[str, bytes]) -> Attachment:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return Attachment("IHE_XDM.ZIP", "application/zip", buffer.getvalue())


def test_xdm_bounds_are_checked_before_decompressing() -> None:
    ins = "241033155500112"
    assert ins_from_attachments([Attachment("IHE_XDM.ZIP", "application/zip", xdm_zip(ins))]) == {
        ins
    }
    with pytest.raises(XdmTooLarge):  # one METADATA.XML inflating to 2 MB
        ins_from_attachments([_zip({"IHE_XDM/S1/METADATA.XML": b" " * (2 * 1024 * 1024)})])
    with pytest.raises(XdmTooLarge):  # too many metadata files
        ins_from_attachments([_zip({f"IHE_XDM/S{i}/METADATA.XML": b"<a/>" for i in range(21)})])
    with pytest.raises(XdmTooLarge):  # too many entries
        ins_from_attachments([_zip({f"IHE_XDM/S1/DOC{i}.PDF": b"x" for i in range(1001)})])
    with pytest.raises(XdmTooLarge):  # the total, over several packages of one mail
        ins_from_attachments(
            [_zip({f"IHE_XDM/S{i}/METADATA.XML": b" " * 900_000 for i in range(5)})]
        )


def test_xdm_directory_sizes_that_lie_are_not_believed() -> None:
    """A central directory announcing a small METADATA.XML whose data inflates further:
    reading stops at the bound."""
    big = b" " * (20 * 1024 * 1024)
    attachment = _zip({"IHE_XDM/S1/METADATA.XML": big})
    data = bytearray(attachment.data)
    real = len(big).to_bytes(4, "little")
    small = (100).to_bytes(4, "little")
    assert data.count(real) >= 2  # local header and central directory
    lying = Attachment("IHE_XDM.ZIP", "application/zip", bytes(data).replace(real, small))
    tracemalloc.start()
    try:
        assert ins_from_attachments([lying]) == set()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"{peak} bytes allocated for a 100-byte entry"
