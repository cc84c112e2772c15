"""The relay's worker loops: do a round, sleep until woken (or a second) when idle."""

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
        try:
            done = await round_()
        except Exception:
            log.exception("%s loop error; retrying", what)
            done = 0
        if done == 0:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=idle)
