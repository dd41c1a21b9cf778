"""The PostgreSQL event store (asyncpg), one schema per service.

The gap problem: with a plain identity column, transaction A can take position 10, B take 11,
and B commit first; a reader that sees 11 and saves it as its checkpoint never sees 10. Here
every append transaction first takes a transaction-scoped advisory lock for the schema, so
positions are allocated and made visible one transaction at a time, in position order
(PostgreSQL makes a commit visible before it releases the transaction's locks). A reader's
snapshot is therefore always a prefix of the positions. Group commit keeps the cost of this
serialisation low: concurrent appends of one process share one locked transaction and one
WAL flush, and processes queue on the lock, not on each other's rows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from . import _serialization as ser
from ._catchup import follow
from ._groupcommit import GroupCommitStore, PendingUnit
from ._versioning import check_expected, retry_result
from .errors import DuplicateEventId, EventStoreError, StoreUnavailable
from .model import AppendRequest, AppendResult, RecordedEvent

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_COLUMNS = "event_id, stream_id, stream_version, position, type, data_version, data, metadata, recorded_at"


def _ddl(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL,
    type           text        NOT NULL,
    data_version   integer     NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE TABLE IF NOT EXISTS {schema}.streams (
    stream_id text PRIMARY KEY,
    version   bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
"""


class PostgresEventStore(GroupCommitStore):
    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        schema: str,
        *,
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema {schema!r} must be a lower-case SQL identifier")
        super().__init__()
        self._pool = pool
        self._dsn = dsn
        self._schema = schema
        self._poll_interval = poll_interval
        self._clock = clock
        self._channel = f"{schema}_events"
        self._listener: asyncpg.Connection | None = None

    @classmethod
    async def open(cls, dsn: str, schema: str, *, pool_size: int = 8, **options: Any) -> PostgresEventStore:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        store = cls(pool, dsn, schema, **options)
        await store._start()
        return store

    async def _start(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # Two replicas starting together would race on CREATE ... IF NOT EXISTS.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._schema)
            await conn.execute(_ddl(self._schema))
        # A connection of its own: a pooled one would lose its LISTEN when reset on release.
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(self._channel, self._on_notify)

    def _on_notify(self, *_: object) -> None:
        self._signal.notify()

    @property
    def schema(self) -> str:
        return self._schema

    async def read_stream(self, stream_id: str, from_version: int = 0) -> list[RecordedEvent]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM {self._schema}.events "
            "WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version",
            stream_id,
            from_version,
        )
        return [_row_to_event(row) for row in rows]

    async def stream_version(self, stream_id: str) -> int | None:
        version = await self._pool.fetchval(
            f"SELECT version FROM {self._schema}.streams WHERE stream_id = $1", stream_id
        )
        return None if version is None else int(version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM {self._schema}.events WHERE position > $1 ORDER BY position LIMIT $2",
            after_position,
            limit,
        )
        return [_row_to_event(row) for row in rows]

    async def head_position(self) -> int:
        return int(await self._pool.fetchval(f"SELECT coalesce(max(position), 0) FROM {self._schema}.events"))

    def subscribe(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RecordedEvent]]:
        return follow(self.read_all, self._signal, after_position, batch_size, self._poll_interval)

    async def get_checkpoint(self, name: str) -> int:
        position = await self._pool.fetchval(
            f"SELECT position FROM {self._schema}.checkpoints WHERE name = $1", name
        )
        return 0 if position is None else int(position)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self._pool.execute(
            f"INSERT INTO {self._schema}.checkpoints (name, position) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            name,
            position,
        )

    async def close(self) -> None:
        await self._committer.close()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._pool.close()

    # -- internals -------------------------------------------------------------------------

    async def _write_group(self, group: list[PendingUnit]) -> None:
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._schema)
            for unit in group:
                try:
                    async with conn.transaction():
                        unit.results = [
                            await self._append_one(conn, request, now) for request in unit.requests
                        ]
                except EventStoreError as exc:
                    unit.error = exc
            await conn.execute("SELECT pg_notify($1, '')", self._channel)

    async def _append_one(
        self, conn: PoolConnectionProxy[asyncpg.Record], request: AppendRequest, now: datetime
    ) -> AppendResult:
        schema = self._schema
        stream_id = request.stream_id
        ids = [event.event_id for event in request.events]
        if len(set(ids)) != len(ids):
            raise DuplicateEventId(next(i for i in ids if ids.count(i) > 1), "appears twice in one append")
        if ids:
            found = [
                (row[0], row[1], int(row[2]), int(row[3]))
                for row in await conn.fetch(
                    f"SELECT event_id, stream_id, stream_version, position FROM {schema}.events "
                    "WHERE event_id = ANY($1::uuid[])",
                    ids,
                )
            ]
            retry = retry_result(stream_id, ids, found)
            if retry is not None:
                return retry
        version = await conn.fetchval(f"SELECT version FROM {schema}.streams WHERE stream_id = $1", stream_id)
        current: int | None = None if version is None else int(version)
        check_expected(stream_id, request.expected_version, current)
        if not ids:
            head = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {schema}.events")
            return AppendResult(stream_id, -1 if current is None else current, int(head))
        first = 0 if current is None else current + 1
        events = request.events
        position = await conn.fetchval(
            f"WITH inserted AS (INSERT INTO {schema}.events "
            "(event_id, stream_id, stream_version, type, data_version, data, metadata, recorded_at) "
            "SELECT e.id, $2, e.version, e.type, e.data_version, e.data::jsonb, e.metadata::jsonb, $3 "
            "FROM unnest($1::uuid[], $4::bigint[], $5::text[], $6::int[], $7::text[], $8::text[]) "
            "WITH ORDINALITY AS e(id, version, type, data_version, data, metadata, n) ORDER BY e.n "
            "RETURNING position) SELECT max(position) FROM inserted",
            ids,
            stream_id,
            now,
            [first + offset for offset in range(len(events))],
            [event.type for event in events],
            [event.data_version for event in events],
            [ser.dump_data(event) for event in events],
            [ser.dump_metadata(event.metadata) for event in events],
        )
        last_version = first + len(ids) - 1
        await conn.execute(
            f"INSERT INTO {schema}.streams (stream_id, version) VALUES ($1, $2) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
            stream_id,
            last_version,
        )
        return AppendResult(stream_id, last_version, int(position))


def _row_to_event(row: asyncpg.Record) -> RecordedEvent:
    return ser.recorded(
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_version=int(row["stream_version"]),
        position=int(row["position"]),
        type_=row["type"],
        data_version=row["data_version"],
        data=row["data"],
        metadata=row["metadata"],
        recorded_at=row["recorded_at"],
    )
