"""The one adapter to Synapse internals that the public module API does not expose.

Everything here reads or drives Synapse's application-service sender; nothing else in
``synapse_modules`` may reach past ``synapse.module_api``. Each function documents the
internal it relies on, so a Synapse upgrade has one file to check (tested against the
version pinned in ``pyproject.toml`` by ``tests/integration/test_appservice_transactions.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synapse.handlers.sso import MappingException as MappingException
from synapse.module_api import ModuleApi

# ``MappingException``: what an SSO user-mapping provider raises to refuse a login; Synapse
# shows its message to the person on its error page (synapse.handlers.sso).


@dataclass(frozen=True)
class UnsentTransaction:
    txn_id: int
    handle: Any  # synapse.appservice.AppServiceTransaction


class AppserviceSender:
    """Synapse's sender of appservice transactions, as seen from one instance."""

    def __init__(self, api: ModuleApi, sender_user: str) -> None:
        hs = api._hs  # the adapter's one entry into Synapse's internals
        self._hs = hs
        self._store = hs.get_datastores().main
        self.sends_here: bool = bool(hs.config.worker.should_notify_appservices)
        self._found = self._store.get_app_service_by_user_id(sender_user)

    @property
    def service_id(self) -> str | None:
        return None if self._found is None else str(self._found.id)

    @property
    def _service(self) -> Any:
        if self._found is None:
            raise LookupError("no appservice registered for Maillon's sender")
        return self._found

    async def is_up(self) -> bool:
        """The sender's own view: UP (or never marked) means it sends new transactions
        directly; DOWN means a recoverer owns the queue."""
        from synapse.appservice import ApplicationServiceState

        state = await self._store.get_appservice_state(self._service)
        return state is None or state == ApplicationServiceState.UP

    def recovering(self) -> bool:
        scheduler = self._hs.get_application_service_scheduler()
        return self._service.id in scheduler.txn_ctrl.recoverers

    async def oldest_unsent(self) -> UnsentTransaction | None:
        txn = await self._store.get_oldest_unsent_txn(self._service)
        return None if txn is None else UnsentTransaction(int(txn.id), txn)

    async def resend(self, unsent: UnsentTransaction) -> bool:
        """Send one stored transaction again and, once the appservice acknowledged it,
        delete it as Synapse does (``AppServiceTransaction.send`` then ``complete``)."""
        sent = bool(await unsent.handle.send(self._hs.get_application_service_api()))
        if sent:
            await unsent.handle.complete(self._store)
        return sent
