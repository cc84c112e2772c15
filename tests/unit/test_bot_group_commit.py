"""The bot's small writes (handled commands, note-thread links) asked for while one
transaction is being committed go together in the next one; a lone write waits for
nothing; a failed batch fails each of its writers, and the next one still goes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from coordination_bot.services import GroupCommit


async def test_writes_asked_during_a_commit_share_the_next_one() -> None:
    batches: list[list[str]] = []
    first_in = threading.Event()
    release = threading.Event()

    def write(items: list[str]) -> list[str]:
        batches.append(list(items))
        if len(batches) == 1:
            first_in.set()
            assert release.wait(10)
        return [item.upper() for item in items]

    group = GroupCommit(write)
    first = asyncio.create_task(group.submit("a"))
    assert await asyncio.to_thread(first_in.wait, 10)
    later = [asyncio.create_task(group.submit(x)) for x in "bcde"]
    await asyncio.sleep(0)  # all asked while "a" is being committed
    release.set()
    assert await first == "A"
    assert [await t for t in later] == ["B", "C", "D", "E"]
    assert batches == [["a"], ["b", "c", "d", "e"]]

    assert await group.submit("f") == "F"  # alone: written at once, by itself
    assert batches[-1] == ["f"]


async def test_a_failed_batch_fails_each_writer_and_the_next_goes() -> None:
    fail = True

    def write(items: list[str]) -> list[str]:
        if fail:
            raise RuntimeError("disque plein")
        return items

    group = GroupCommit(write)
    results = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results), results
    fail = False
    assert await group.submit("c") == "c"


async def test_a_writer_that_stops_waiting_does_not_stop_the_others() -> None:
    release = threading.Event()

    def write(items: list[str]) -> list[str]:
        assert release.wait(10)
        return items

    group = GroupCommit(write)
    gone = asyncio.create_task(group.submit("a"))
    kept = asyncio.create_task(group.submit("b"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await kept == "b"
    with pytest.raises(asyncio.CancelledError):
        await gone
