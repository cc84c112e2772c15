"""The SMTP intake reads and stores a mail in one transaction on one connection (on
PostgreSQL each connection taken from the pool costs a ping and each transaction its own
round trips): the mail is committed when ``accept`` returns (the ``250``), a copy of it
is stored nothing more, and a refusal stores nothing."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import dns.resolver
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from appservice.mail.authenticate import configure_resolver
from appservice.mail.intake import ACCEPTED, DUPLICATE, OURS, UNKNOWN_DOSSIER, Intake, Refusal
from dossier_api.domain.mail.models import MailSpool
from dossier_api.domain.mail.routing import Router
from dossier_api.domain.mail.spool import Spool
from dossier_api.domain.models import Dossier
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey, MailSettings
from maillon.shared.store import make_engine
from tests.harness.mail import build_mail
from tests.harness.mail_auth import fake_dns
from tests.harness.postgres import create_database, drop_database

DOMAIN = "localhost"
SENDER = "dr.house@chu-exemple.mssante.fr"


@pytest.fixture
def store() -> Iterator[tuple[Engine, Intake]]:
    saved = dns.resolver.default_resolver
    with fake_dns() as server:  # sender checks ask the test's DNS server (no records)
        configure_resolver((server.address,))
        try:
            yield from _store()
        finally:
            dns.resolver.default_resolver = saved


def _store() -> Iterator[tuple[Engine, Intake]]:
    url = create_database("maillon_mail_intake")
    ring = KeyRing(
        [DataKey("k1", base64.b64encode(os.urandom(32)).decode())], BlindIndex(os.urandom(32))
    )
    install_key_ring(ring)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        for localpart, status in (("suivi.a", "open"), ("suivi.ferme", "closed")):
            session.add(
                Dossier(
                    pathway="dac",
                    referent="@coord:localhost",
                    identity={},
                    status=status,
                    room_id=f"!{localpart}:localhost",
                    mail_localpart=localpart,
                )
            )
    spool = Spool(engine, ring)
    intake = Intake(spool, Router(engine, ring, DOMAIN, "dossiers"), MailSettings(), "marker")
    try:
        yield engine, intake
    finally:
        engine.dispose()
        drop_database(url)


def _checkouts(engine: Engine) -> list[Any]:
    taken: list[Any] = []
    event.listen(engine, "checkout", lambda *args: taken.append(args))
    return taken


def _spooled(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(MailSpool)) or 0)


def test_a_mail_is_read_and_stored_on_one_connection(store: tuple[Engine, Intake]) -> None:
    engine, intake = store
    address = f"suivi.a@{DOMAIN}"
    _, raw = build_mail(address, "Compte rendu", "Sortie prévue lundi")
    taken = _checkouts(engine)
    result = intake.accept(raw, SENDER, [address], "smtp")
    assert result.reply == ACCEPTED and len(result.spool_ids) == 1
    assert len(taken) == 1
    assert _spooled(engine) == 1  # committed: another connection sees it

    taken.clear()
    again = intake.accept(raw, SENDER, [address], "smtp")  # the sender sent it again
    assert (again.reply, again.spool_ids) == (DUPLICATE, ())
    assert len(taken) == 1
    assert _spooled(engine) == 1


def test_a_mail_of_ours_and_a_closed_dossier_store_nothing(store: tuple[Engine, Intake]) -> None:
    engine, intake = store
    address = f"suivi.a@{DOMAIN}"
    mid, raw = build_mail(address, "Re: notre courriel", "Copie de ce que nous avons envoyé")
    # A mail we sent, come back (a copy in the polled mailbox).
    assert intake.spool.enqueue("!suivi.a:localhost", "$sent", None, {"message_id": mid})
    taken = _checkouts(engine)
    assert intake.accept(raw, SENDER, [address], "imap").reply == OURS
    assert len(taken) == 1

    taken.clear()
    closed = f"suivi.ferme@{DOMAIN}"
    _, raw = build_mail(closed, "Compte rendu", "Texte")
    with pytest.raises(Refusal) as refused:
        intake.accept(raw, SENDER, [closed], "smtp")
    assert refused.value.reply == UNKNOWN_DOSSIER
    assert len(taken) == 1
    assert _spooled(engine) == 0
