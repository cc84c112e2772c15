"""The watchdog's decision, over a fake of Synapse's sender (the real one is exercised in
tests/integration/test_appservice_transactions.py): only a transaction that stayed the
oldest unsent one for a whole period, while the service is UP and not recovering, is sent."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_modules.appservice_watchdog import AppserviceWatchdog
from synapse_modules.synapse_private import UnsentTransaction


class FakeSender:
    def __init__(self) -> None:
        self.up = True
        self.recovers = False
        self.queue: list[int] = []
        self.sent: list[int] = []
        self.accepts = True

    def recovering(self) -> bool:
        return self.recovers

    async def is_up(self) -> bool:
        return self.up

    async def oldest_unsent(self) -> UnsentTransaction | None:
        return UnsentTransaction(self.queue[0], None) if self.queue else None

    async def resend(self, unsent: UnsentTransaction) -> bool:
        if not self.accepts:
            return False
        self.sent.append(unsent.txn_id)
        self.queue.remove(unsent.txn_id)
        return True


def watchdog(sender: FakeSender) -> AppserviceWatchdog:
    return AppserviceWatchdog(sender)  # type: ignore[arg-type]


async def test_a_transaction_in_flight_is_left_to_synapse() -> None:
    sender = FakeSender()
    dog = watchdog(sender)
    sender.queue = [7]
    assert not await dog.check()  # first seen: may be in flight
    sender.queue = [8]  # 7 was sent by Synapse meanwhile
    assert not await dog.check()
    sender.queue = []
    assert not await dog.check()
    assert sender.sent == []


async def test_a_transaction_left_behind_is_sent_once() -> None:
    sender = FakeSender()
    dog = watchdog(sender)
    sender.queue = [7, 9]
    assert not await dog.check()
    assert await dog.check()
    assert sender.sent == [7]
    assert not await dog.check()  # 9 is seen for the first time now
    assert await dog.check()
    assert sender.sent == [7, 9]


async def test_nothing_is_sent_while_synapse_recovers_or_marks_the_service_down() -> None:
    sender = FakeSender()
    dog = watchdog(sender)
    sender.queue = [7]
    sender.recovers = True
    for _ in range(3):
        assert not await dog.check()
    sender.recovers, sender.up = False, False
    for _ in range(3):
        assert not await dog.check()
    sender.up = True
    assert not await dog.check()  # the period starts again once UP
    assert await dog.check()


async def test_a_refused_send_is_tried_again_and_an_error_never_escapes() -> None:
    sender = FakeSender()
    dog = watchdog(sender)
    sender.queue = [7]
    sender.accepts = False
    await dog.check()
    assert not await dog.check()
    sender.accepts = True
    assert await dog.check()

    class Broken(FakeSender):
        async def is_up(self) -> bool:
            raise RuntimeError("store unreachable")

    assert not await watchdog(Broken()).check()


def test_it_starts_only_where_transactions_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    class Api:
        def looping_background_call(self, *args: Any, **kwargs: Any) -> None:
            calls.append((args, kwargs))

    class Elsewhere:
        sends_here = False
        service_id = "maillon"

    monkeypatch.setattr(
        "synapse_modules.appservice_watchdog.AppserviceSender", lambda api, user: Elsewhere()
    )
    assert AppserviceWatchdog.start(Api(), "@maillon:localhost") is None  # type: ignore[arg-type]
    Elsewhere.sends_here = True
    assert AppserviceWatchdog.start(Api(), "@maillon:localhost") is not None  # type: ignore[arg-type]
    assert len(calls) == 1 and calls[0][1]["run_on_all_instances"] is True
