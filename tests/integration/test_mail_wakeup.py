"""The poster is woken by PostgreSQL NOTIFY when a mail is spooled on another connection
(an SMTP intake process of a worker deployment), not by its idle polling."""

from __future__ import annotations

import asyncio
import base64
import os

from appservice.mail.wakeup import listen_for_spooled_mail
from dossier_api.domain.mail.routing import Target
from dossier_api.domain.mail.spool import Spool
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine
from tests.harness.mail import build_mail
from tests.harness.postgres import create_database, drop_database


async def test_a_mail_spooled_elsewhere_wakes_the_poster_at_once() -> None:
    url = create_database("maillon_mail_wake")
    ring = KeyRing(
        [DataKey("k1", base64.b64encode(os.urandom(32)).decode())], BlindIndex(os.urandom(32))
    )
    install_key_ring(ring)
    engine = make_engine(url)
    wake = asyncio.Event()
    listener = asyncio.create_task(listen_for_spooled_mail(url, wake))
    try:
        await asyncio.wait_for(wake.wait(), timeout=30)  # listening (and catching up)
        wake.clear()
        spool = Spool(engine, ring)
        _, raw = build_mail("dossier@x", "Compte rendu", "Texte")
        target = Target("dossier-1", "!room:x")
        ids = await asyncio.to_thread(spool.accept, raw, {}, [target], "dedup-1")
        assert len(ids) == 1
        # Far less than the poster's idle second would be; the deadline is only for a
        # loaded machine: the NOTIFY arrives at the commit.
        await asyncio.wait_for(wake.wait(), timeout=10)
        # A second copy of the same mail stores nothing (and so notifies nothing).
        assert await asyncio.to_thread(spool.accept, raw, {}, [target], "dedup-1") == []
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        engine.dispose()
        drop_database(url)
