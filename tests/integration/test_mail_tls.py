"""Outbound mail over STARTTLS with a client certificate, as MSSanté operators require:
a real SMTP exchange with an aiosmtpd server that demands and checks the certificate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from appservice.mail.outbound import TemporaryFailure, send_one
from maillon.shared.settings import MailOutbound
from maillon.shared.tls import write_self_signed_certificate
from tests.harness.mail import SinkHandler
from tests.harness.ports import free_port


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Path]:
    server_cert, server_key = write_self_signed_certificate(tmp_path / "server", "localhost")
    client_cert, client_key = write_self_signed_certificate(
        tmp_path / "client", "structure.mssante.fr"
    )
    return {"server_cert": server_cert, "server_key": server_key,
            "client_cert": client_cert, "client_key": client_key}  # fmt: skip


@pytest.fixture
def operator(certificates: dict[str, Path]) -> Iterator[tuple[SinkHandler, int]]:
    """An operator's server: STARTTLS required, client certificate required and checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["server_cert"], certificates["server_key"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(certificates["client_cert"])
    handler = SinkHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        decode_data=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "d-1@maillon.example"
    msg["To"] = "dr.house@chu-exemple.mssante.fr"
    msg["Subject"] = "Avis"
    msg.set_content("Bonjour")
    return msg


async def test_starttls_with_client_certificate(
    certificates: dict[str, Path], operator: tuple[SinkHandler, int]
) -> None:
    sink, port = operator
    config = MailOutbound(
        host="127.0.0.1",
        port=port,
        tls="starttls",
        client_cert_file=str(certificates["client_cert"]),
        client_key_file=str(certificates["client_key"]),
        ca_file=str(certificates["server_cert"]),
        timeout_seconds=10,
    )
    await send_one(config, None, _mail())
    assert [r.rcpt_tos for r in sink.received] == [["dr.house@chu-exemple.mssante.fr"]]

    # Without the certificate the operator refuses the TLS session: a temporary failure
    # (retried, then reported), never a mail sent in clear.
    bare = MailOutbound(
        host="127.0.0.1",
        port=port,
        tls="starttls",
        ca_file=str(certificates["server_cert"]),
        timeout_seconds=10,
    )
    with pytest.raises(TemporaryFailure):
        await send_one(bare, None, _mail())
    assert len(sink.received) == 1
