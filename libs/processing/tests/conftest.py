"""Each integration test runs once per read-model backend, with the matching event store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shopstream_eventstore import EventStore
from shopstream_processing import ReadModelDb


@dataclass
class Backend:
    kind: str
    store: EventStore
    worker_target: list[str]
    """The store/read-model arguments of ``stockdemo.py``."""
    _open_db: Callable[[str], Awaitable[ReadModelDb]]
    _opened: list[ReadModelDb] = field(default_factory=list)

    async def db(self, name: str = "main") -> ReadModelDb:
        """``main`` shares the store's file or schema, as in a service; other names are separate."""
        db = await self._open_db(name)
        self._opened.append(db)
        return db

    async def close(self) -> None:
        for db in self._opened:
            await db.close()
        await self.store.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        from shopstream_eventstore.sqlite import SqliteEventStore
        from shopstream_processing.sqlite import SqliteReadModel

        path = tmp_path / "service.sqlite"

        async def open_sqlite(name: str) -> ReadModelDb:
            return await SqliteReadModel.open(path if name == "main" else tmp_path / f"{name}.sqlite")

        backend = Backend("sqlite", await SqliteEventStore.open(path), ["sqlite", str(path)], open_sqlite)
    else:
        from shopstream_eventstore.postgres import PostgresEventStore
        from shopstream_processing.postgres import PostgresReadModel

        dsn: str = request.getfixturevalue("postgres_dsn")

        async def open_postgres(name: str) -> ReadModelDb:
            return await PostgresReadModel.open(dsn, "service" if name == "main" else name)

        store = await PostgresEventStore.open(dsn, "service")
        backend = Backend("postgres", store, ["postgres", dsn, "service"], open_postgres)
    try:
        yield backend
    finally:
        await backend.close()
