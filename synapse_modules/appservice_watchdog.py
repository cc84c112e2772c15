"""Delivers appservice transactions that Synapse's sender left behind.

Synapse (1.163) has a window in which a transaction is stored but never sent: its
recoverer finds no unsent transaction and then marks the appservice UP, while an event that
arrived in between was stored as a transaction *not to send now* (the service still read
DOWN). Nothing sends it until the appservice fails again, so an event of a patient room
never reaches Maillon (seen after the appservice was killed during a burst). This watchdog
runs on the instance that sends appservice transactions only (gated), checks every few
seconds and resends a transaction that has been the oldest unsent one for a whole period
while the service is UP and no recoverer runs. A resent transaction the appservice already
has is a replay there (same id and digest): it changes nothing.
"""

from __future__ import annotations

import logging

from synapse.module_api import ModuleApi

from synapse_modules.synapse_private import AppserviceSender

log = logging.getLogger(__name__)

CHECK_EVERY_MS = 5_000


class AppserviceWatchdog:
    def __init__(self, sender: AppserviceSender) -> None:
        self._sender = sender
        self._suspect: int | None = None  # oldest unsent txn id at the previous check

    @classmethod
    def start(cls, api: ModuleApi, sender_user: str) -> AppserviceWatchdog | None:
        sender = AppserviceSender(api, sender_user)
        if not sender.sends_here or sender.service_id is None:
            return None  # another instance sends appservice transactions, or no appservice
        watchdog = cls(sender)
        api.looping_background_call(
            watchdog.check,
            CHECK_EVERY_MS,
            desc="maillon-appservice-watchdog",
            run_on_all_instances=True,  # gated above: this instance sends transactions
        )
        return watchdog

    async def check(self) -> bool:
        """One check; True when a left-behind transaction was sent. Never raises."""
        try:
            return await self._check()
        except Exception as exc:
            log.error("Maillon appservice watchdog: check failed (%s)", type(exc).__name__)
            return False

    async def _check(self) -> bool:
        if self._sender.recovering() or not await self._sender.is_up():
            self._suspect = None  # Synapse's recoverer owns the queue
            return False
        oldest = await self._sender.oldest_unsent()
        if oldest is None or oldest.txn_id != self._suspect:
            # In flight (sent or being sent now) until seen again one period later.
            self._suspect = None if oldest is None else oldest.txn_id
            return False
        log.warning(
            "Maillon appservice watchdog: transaction %s left unsent by Synapse; sending it",
            oldest.txn_id,
        )
        sent = await self._sender.resend(oldest)
        self._suspect = None if sent else oldest.txn_id
        return sent
