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
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from . import _serialization as ser
from ._catchup import follow
from ._groupcommit import GroupCommitStore, PendingUnit
from ._planning import GroupPlan, Stored, group_ids, group_streams, plan_group
from .errors import StoreUnavailable
from .model import RawEvent, RecordedEvent

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_COLUMNS = "event_id, stream_id, stream_version, position, type, data_version, data, metadata, recorded_at"


def ddl(schema: str) -> str:
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
            await conn.execute(ddl(self._schema))
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

    async def read_all_raw(self, after_position: int = 0, limit: int = 1000) -> list[RawEvent]:
        rows = await self._pool.fetch(
            "SELECT position, event_id::text, stream_id, stream_version, type, data_version, "
            f"data::text, metadata::text, recorded_at FROM {self._schema}.events "
            "WHERE position > $1 ORDER BY position LIMIT $2",
            after_position,
            limit,
        )
        return [RawEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], ser.utc_time(r[8])) for r in rows]

    async def head_position(self) -> int:
        return await self._head(self._pool)

    async def _head(self, db: asyncpg.Pool | PoolConnectionProxy[asyncpg.Record]) -> int:
        return int(await db.fetchval(f"SELECT coalesce(max(position), 0) FROM {self._schema}.events"))

    def subscribe(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RecordedEvent]]:
        return follow(self.read_all, self._signal, after_position, batch_size, self._poll_interval)

    def subscribe_raw(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RawEvent]]:
        return follow(self.read_all_raw, self._signal, after_position, batch_size, self._poll_interval)

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

    async def _write_group(self, group: list[PendingUnit]) -> list[PendingUnit]:
        """The whole group in four round trips whatever its size: lock, one lookup of what the
        group touches, one statement that inserts every event, upserts every stream and notifies
        the listeners, commit."""
        now = self._clock()
        schema = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
            stored: dict[UUID, Stored] = {}
            versions: dict[str, int] = {}
            for event_id, stream_id, version, position in await conn.fetch(
                f"SELECT event_id, stream_id, stream_version, position FROM {schema}.events "
                "WHERE event_id = ANY($1::uuid[]) "
                f"UNION ALL SELECT NULL, stream_id, version, NULL FROM {schema}.streams "
                "WHERE stream_id = ANY($2::text[])",
                group_ids(group),
                group_streams(group),
            ):
                if event_id is None:
                    versions[stream_id] = int(version)
                else:
                    stored[event_id] = Stored(stream_id, int(version), int(position))
            plan, deferred = plan_group(group, stored, versions)
            positions = await self._insert(conn, plan, now) if plan.rows else []
            head = positions[0] - 1 if positions else await self._head(conn)
        plan.finish(lambda n: head if n < 0 else positions[n])
        return deferred

    async def _insert(
        self, conn: PoolConnectionProxy[asyncpg.Record], plan: GroupPlan, now: datetime
    ) -> list[int]:
        """Positions of ``plan.rows`` in order (allocated in row order under the lock)."""
        schema = self._schema
        rows = plan.rows
        records = await conn.fetch(
            f"WITH inserted AS (INSERT INTO {schema}.events "
            "(event_id, stream_id, stream_version, type, data_version, data, metadata, recorded_at) "
            "SELECT e.id, e.stream_id, e.version, e.type, e.data_version, e.data::jsonb, "
            "e.metadata::jsonb, $8 "
            "FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::text[], "
            "$7::text[]) "
            "WITH ORDINALITY AS e(id, stream_id, version, type, data_version, data, metadata, n) "
            "ORDER BY e.n RETURNING position), "
            f"streams AS (INSERT INTO {schema}.streams (stream_id, version) "
            "SELECT * FROM unnest($9::text[], $10::bigint[]) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version), "
            "notified AS (SELECT pg_notify($11, '')) "
            "SELECT position FROM inserted, notified ORDER BY position",
            [row.event.event_id for row in rows],
            [row.stream_id for row in rows],
            [row.stream_version for row in rows],
            [row.event.type for row in rows],
            [row.event.data_version for row in rows],
            [ser.dump_data(row.event) for row in rows],
            [ser.dump_metadata(row.event.metadata) for row in rows],
            now,
            list(plan.written_streams),
            list(plan.written_streams.values()),
            self._channel,
        )
        return [int(record[0]) for record in records]


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
