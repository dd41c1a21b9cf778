"""The embedded event store: one SQLite file per service, WAL mode.

Why global order is gap-free here: SQLite admits one writer at a time (``BEGIN IMMEDIATE``
takes the write lock before positions are allocated), so positions are allocated and committed
in the same order, and a WAL reader sees a prefix of the commits. No event can become readable
after a higher position has been read.

Each connection lives on its own thread and every operation is one hop to it: a whole group
commit is a single synchronous function, not a round trip per statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

from . import _serialization as ser
from ._catchup import follow
from ._groupcommit import GroupCommitStore, PendingUnit
from ._planning import Stored, group_ids, group_streams, plan_group
from .errors import EventStoreError
from .model import RawEvent, RecordedEvent

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    data_version   INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = "event_id, stream_id, stream_version, position, type, data_version, data, metadata, recorded_at"
_READ_ALL_RAW = (
    "SELECT position, event_id, stream_id, stream_version, type, data_version, data, metadata, "
    "recorded_at FROM events WHERE position > ? ORDER BY position LIMIT ?"
)

Synchronous = Literal["FULL", "NORMAL"]


def connect(path: Path | str, synchronous: Synchronous = "FULL") -> sqlite3.Connection:
    """A connection with the settings every Shopstream SQLite file uses (store and projections)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL makes every commit durable against power loss, not only against a killed process.
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class ThreadedConnection:
    """One SQLite connection that lives on a thread of its own.

    ``run`` executes a whole synchronous function there (a transaction, a snapshot read), so
    each operation costs one hop to the thread, not one per statement. A cancelled caller does
    not abandon the function half-way: it waits for the thread to finish (commit or roll back)
    so that whoever looks next sees its outcome.
    """

    def __init__(self, name: str) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def open(self, path: Path, synchronous: Synchronous = "FULL") -> None:
        self._conn = await self._submit(lambda: connect(path, synchronous))

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise EventStoreError("the SQLite connection is closed")
        return await self._submit(lambda: fn(conn))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._submit(conn.close)
        self._thread.shutdown(wait=True)

    async def _submit(self, fn: Callable[[], T]) -> T:
        done = asyncio.get_running_loop().run_in_executor(self._thread, fn)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])
            raise


class SqliteEventStore(GroupCommitStore):
    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "FULL",
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self._path = Path(path)
        self._synchronous = synchronous
        self._poll_interval = poll_interval
        self._clock = clock
        self._writer = ThreadedConnection("sqlite-writer")
        self._reader = ThreadedConnection("sqlite-reader")

    @classmethod
    async def open(cls, path: Path | str, **options: Any) -> SqliteEventStore:
        store = cls(path, **options)
        await store._start()
        return store

    async def _start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await self._writer.open(self._path, self._synchronous)
        await self._writer.run(lambda conn: conn.executescript(SCHEMA))
        await self._reader.open(self._path, self._synchronous)

    @property
    def path(self) -> Path:
        return self._path

    async def read_stream(self, stream_id: str, from_version: int = 0) -> list[RecordedEvent]:
        return await self._read(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? "
            "ORDER BY stream_version",
            (stream_id, from_version),
        )

    async def stream_version(self, stream_id: str) -> int | None:
        def query(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT version FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
            return None if row is None else int(row[0])

        return await self._reader.run(query)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await self._read(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (after_position, limit),
        )

    async def read_all_raw(self, after_position: int = 0, limit: int = 1000) -> list[RawEvent]:
        def query(conn: sqlite3.Connection) -> list[RawEvent]:
            rows = conn.execute(_READ_ALL_RAW, (after_position, limit)).fetchall()
            return [
                RawEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], ser.utc_time(r[8])) for r in rows
            ]

        return await self._reader.run(query)

    async def head_position(self) -> int:
        def query(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])

        return await self._reader.run(query)

    def subscribe(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RecordedEvent]]:
        return follow(self.read_all, self._signal, after_position, batch_size, self._poll_interval)

    def subscribe_raw(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RawEvent]]:
        return follow(self.read_all_raw, self._signal, after_position, batch_size, self._poll_interval)

    async def get_checkpoint(self, name: str) -> int:
        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT position FROM checkpoints WHERE name = ?", (name,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._reader.run(query)

    async def save_checkpoint(self, name: str, position: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            )

        await self._writer.run(write)

    async def close(self) -> None:
        await self._committer.close()
        await self._writer.close()
        await self._reader.close()

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[RecordedEvent]:
        def query(conn: sqlite3.Connection) -> list[RecordedEvent]:
            return [_row_to_event(row) for row in conn.execute(sql, params).fetchall()]

        return await self._reader.run(query)

    async def _write_group(self, group: list[PendingUnit]) -> list[PendingUnit]:
        now = self._clock().isoformat()
        return await self._writer.run(lambda conn: _write_group(conn, group, now))


_CHUNK = 500
"""Parameters per ``IN (...)`` lookup: far below SQLite's limit, and a prepared statement per size."""

_INSERT = (
    "INSERT INTO events (position, event_id, stream_id, stream_version, type, data_version, data, "
    "metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_STREAM = (
    "INSERT INTO streams (stream_id, version) VALUES (?, ?) "
    "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version"
)


def _write_group(conn: sqlite3.Connection, group: list[PendingUnit], now: str) -> list[PendingUnit]:
    """The whole group in one transaction: two lookups, one insert of every event, one upsert of
    every stream. Positions are given explicitly: under ``BEGIN IMMEDIATE`` this connection is
    the only writer, so the head cannot move while the group is planned."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        stored = {
            UUID(row[0]): Stored(row[1], row[2], row[3])
            for row in _lookup(
                conn,
                "SELECT event_id, stream_id, stream_version, position FROM events WHERE event_id IN",
                [str(i) for i in group_ids(group)],
            )
        }
        versions = dict(
            _lookup(conn, "SELECT stream_id, version FROM streams WHERE stream_id IN", group_streams(group))
        )
        head = int(conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        plan, deferred = plan_group(group, stored, versions)
        conn.executemany(
            _INSERT,
            [
                (
                    head + 1 + n,
                    str(row.event.event_id),
                    row.stream_id,
                    row.stream_version,
                    row.event.type,
                    row.event.data_version,
                    ser.dump_data(row.event),
                    ser.dump_metadata(row.event.metadata),
                    now,
                )
                for n, row in enumerate(plan.rows)
            ],
        )
        conn.executemany(_UPSERT_STREAM, plan.written_streams.items())
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    plan.finish(lambda n: head + 1 + n)
    return deferred


def _lookup(conn: sqlite3.Connection, sql: str, keys: Sequence[str]) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        rows += conn.execute(f"{sql} ({','.join('?' * len(chunk))})", chunk).fetchall()
    return rows


def _row_to_event(row: tuple[Any, ...]) -> RecordedEvent:
    return ser.recorded(
        event_id=row[0],
        stream_id=row[1],
        stream_version=row[2],
        position=row[3],
        type_=row[4],
        data_version=row[5],
        data=row[6],
        metadata=row[7],
        recorded_at=row[8],
    )
