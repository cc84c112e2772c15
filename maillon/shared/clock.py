"""The one clock of Maillon: aware UTC datetimes (stored as such by ``store.UTCDateTime``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def every(interval: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """``work`` every ``interval`` seconds, forever; a failure is logged (its kind only: no
    data) and the next round runs anyway."""
    while True:
        await asyncio.sleep(interval)
        try:
            await work()
        except Exception as exc:
            log.error("%s failed: %s", what, type(exc).__name__)
