"""The relay's worker loops: do a round, sleep until woken (or a second) when idle.

The wake is cleared before each round, not after: a wake during a round (a mail spooled,
a lane finished) makes the next round start at once instead of being lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def work_forever(
    round_: Callable[[], Awaitable[int]], wake: asyncio.Event, what: str, idle: float = 1.0
) -> None:
    while True:
        wake.clear()
        try:
            done = await round_()
        except Exception:
            log.exception("%s loop error; retrying", what)
            done = 0
        if done == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=idle)
