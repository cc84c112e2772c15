"""Shared fixtures: real Maillon stacks (SQLite, PostgreSQL, two federating), nio clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.matrix import E2EClient
from tests.harness.ports import free_port
from tests.harness.postgres import create_database, drop_database
from tests.harness.stack import Stack


@contextlib.contextmanager
def _running(stack: Stack) -> Iterator[Stack]:
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole Maillon stack on the embedded SQLite default, shared by the session."""
    with _running(Stack.create(tmp_path_factory.mktemp("stack-sqlite"))) as running:
        yield running


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole Maillon stack with Synapse and Maillon's store on PostgreSQL."""
    url = create_database()
    try:
        with _running(Stack.create(tmp_path_factory.mktemp("stack-pg"), database_url=url)) as s:
            yield s
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Stack]]:
    """Two Maillon stacks federating over TLS on loopback (server names localhost:PORT)."""
    port_a, port_b = free_port(), free_port()
    first = Stack.create(
        tmp_path_factory.mktemp("region-a"),
        federation=True,
        federation_port=port_a,
        peer_servers=(f"localhost:{port_b}",),
    )
    second = Stack.create(
        tmp_path_factory.mktemp("region-b"),
        federation=True,
        federation_port=port_b,
        peer_servers=(f"localhost:{port_a}",),
    )
    with _running(first) as a, _running(second) as b:
        yield a, b


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[Callable[[Stack, str], E2EClient]]:
    """Register a fresh professional on a stack and give back an encrypting nio client."""
    made: list[E2EClient] = []

    def factory(
        stack: Stack, prefix: str = "pro", profession: str | None = "infirmier"
    ) -> E2EClient:
        account = stack.register(prefix, profession=profession)
        client = E2EClient(stack.url, account, tmp_path / f"store-{account.user_id}")
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()
