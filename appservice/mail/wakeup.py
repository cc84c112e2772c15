"""Wake the poster when a mail is spooled by another process (the SMTP intake processes of
a worker deployment): PostgreSQL LISTEN on the spool's channel, no polling interval."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from dossier_api.domain.mail.spool import SPOOL_CHANNEL
from maillon.shared.lease import libpq_url

log = logging.getLogger(__name__)


async def listen_for_spooled_mail(database_url: str, wake: asyncio.Event) -> None:
    """Set ``wake`` at each NOTIFY (forever; reconnects after a lost connection)."""
    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url), autocommit=True, application_name="maillon-mail-wakeup"
            ) as conn:
                await conn.execute(f"LISTEN {SPOOL_CHANNEL}")
                wake.set()  # whatever was spooled while nobody listened
                delay = 0.5
                async for _ in conn.notifies():
                    wake.set()
        except (psycopg.Error, OSError) as exc:
            log.warning("spool notifications interrupted (%s); retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
