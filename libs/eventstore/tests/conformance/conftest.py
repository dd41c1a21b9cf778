"""Every adapter, behind one fixture: each conformance test runs once per backend.

``store_factory`` opens independent store instances on the same backend (separate connections,
like separate processes or replicas of one service), so the tests can race writers against each
other. KurrentDB runs only where a server is reachable (``KURRENTDB_URL``) and is reported as
skipped otherwise, never as passed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shopstream_eventstore import EventStore

StoreFactory = Callable[[], Awaitable[EventStore]]

BACKENDS = ["sqlite", "postgres", "kurrentdb"]


@pytest.fixture(params=BACKENDS)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    opened: list[EventStore] = []
    backend: str = request.param

    if backend == "sqlite":
        from shopstream_eventstore.sqlite import SqliteEventStore

        path = tmp_path / "events.sqlite"

        async def make() -> EventStore:
            return await SqliteEventStore.open(path)

    elif backend == "postgres":
        from shopstream_eventstore.postgres import PostgresEventStore

        dsn: str = request.getfixturevalue("postgres_dsn")

        async def make() -> EventStore:
            return await PostgresEventStore.open(dsn, "conformance")

    else:
        url: str | None = request.getfixturevalue("kurrentdb_url")
        if not url:
            pytest.skip(
                "KurrentDB conformance needs a server: set KURRENTDB_URL, or run where a Docker "
                "engine is available (testcontainers starts one)"
            )
        from shopstream_eventstore.kurrentdb import KurrentDBEventStore

        # One server serves many runs: a fresh stream-name prefix isolates this test.
        prefix = f"t{uuid.uuid4().hex[:12]}"

        async def make() -> EventStore:
            return await KurrentDBEventStore.open(url, prefix=prefix)

    async def factory() -> EventStore:
        store = await make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> EventStore:
    return await store_factory()
