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
from ._catchup import AppendSignal, follow
from ._groupcommit import GroupCommitter, PendingUnit
from ._versioning import check_expected, retry_result
from .errors import DuplicateEventId, EventStoreError
from .model import AppendRequest, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, StreamState

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

Synchronous = Literal["FULL", "NORMAL"]


def connect(path: Path | str, synchronous: Synchronous = "FULL") -> sqlite3.Connection:
    """A connection with the settings every Shopstream SQLite file uses (store and projections)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL makes every commit durable against power loss, not only against a killed process.
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteEventStore:
    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "FULL",
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._path = Path(path)
        self._synchronous = synchronous
        self._poll_interval = poll_interval
        self._clock = clock
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._signal = AppendSignal()
        self._committer = GroupCommitter(self._write_group)
        self._committer.on_commit = self._signal.notify

    @classmethod
    async def open(cls, path: Path | str, **options: Any) -> SqliteEventStore:
        store = cls(path, **options)
        await store._start()
        return store

    async def _start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._on(self._writer_thread, lambda: connect(self._path, self._synchronous))
        await self._on(self._writer_thread, lambda: self._conn(self._writer).executescript(SCHEMA))
        self._reader = await self._on(self._reader_thread, lambda: connect(self._path, self._synchronous))

    @property
    def path(self) -> Path:
        return self._path

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        (result,) = await self._committer.submit([AppendRequest(stream_id, events, expected_version)])
        return result

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not requests:
            return []
        return await self._committer.submit(requests)

    async def read_stream(self, stream_id: str, from_version: int = 0) -> list[RecordedEvent]:
        return await self._read(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? "
            "ORDER BY stream_version",
            (stream_id, from_version),
        )

    async def stream_version(self, stream_id: str) -> int | None:
        def query() -> int | None:
            row = (
                self._conn(self._reader)
                .execute("SELECT version FROM streams WHERE stream_id = ?", (stream_id,))
                .fetchone()
            )
            return None if row is None else int(row[0])

        return await self._on(self._reader_thread, query)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await self._read(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (after_position, limit),
        )

    async def head_position(self) -> int:
        def query() -> int:
            row = self._conn(self._reader).execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
            return int(row[0])

        return await self._on(self._reader_thread, query)

    def subscribe(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RecordedEvent]]:
        return follow(self.read_all, self._signal, after_position, batch_size, self._poll_interval)

    async def get_checkpoint(self, name: str) -> int:
        def query() -> int:
            row = (
                self._conn(self._reader)
                .execute("SELECT position FROM checkpoints WHERE name = ?", (name,))
                .fetchone()
            )
            return 0 if row is None else int(row[0])

        return await self._on(self._reader_thread, query)

    async def save_checkpoint(self, name: str, position: int) -> None:
        def write() -> None:
            self._conn(self._writer).execute(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            )

        await self._on(self._writer_thread, write)

    async def close(self) -> None:
        await self._committer.close()
        for conn, thread in ((self._writer, self._writer_thread), (self._reader, self._reader_thread)):
            if conn is not None:
                await self._on(thread, conn.close)
            thread.shutdown(wait=True)
        self._writer = self._reader = None

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _conn(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise EventStoreError("the store is closed")
        return conn

    @staticmethod
    async def _on(thread: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, fn)

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[RecordedEvent]:
        def query() -> list[RecordedEvent]:
            rows = self._conn(self._reader).execute(sql, params).fetchall()
            return [_row_to_event(row) for row in rows]

        return await self._on(self._reader_thread, query)

    async def _write_group(self, group: list[PendingUnit]) -> None:
        now = self._clock().isoformat()
        await self._on(self._writer_thread, lambda: self._write_group_sync(group, now))

    def _write_group_sync(self, group: list[PendingUnit], now: str) -> None:
        conn = self._conn(self._writer)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for unit in group:
                conn.execute("SAVEPOINT unit")
                try:
                    unit.results = [_append_one(conn, request, now) for request in unit.requests]
                except EventStoreError as exc:
                    conn.execute("ROLLBACK TO unit")
                    unit.error = exc
                conn.execute("RELEASE unit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


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


def _append_one(conn: sqlite3.Connection, request: AppendRequest, now: str) -> AppendResult:
    stream_id = request.stream_id
    ids = [event.event_id for event in request.events]
    if len(set(ids)) != len(ids):
        raise DuplicateEventId(next(i for i in ids if ids.count(i) > 1), "appears twice in one append")
    if ids:
        marks = ",".join("?" * len(ids))
        found = [
            (UUID(row[0]), row[1], row[2], row[3])
            for row in conn.execute(
                "SELECT event_id, stream_id, stream_version, position FROM events "
                f"WHERE event_id IN ({marks})",
                [str(i) for i in ids],
            )
        ]
        retry = retry_result(stream_id, ids, found)
        if retry is not None:
            return retry
    row = conn.execute("SELECT version FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
    current: int | None = None if row is None else int(row[0])
    check_expected(stream_id, request.expected_version, current)
    if not ids:
        position = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        return AppendResult(stream_id, -1 if current is None else current, int(position))
    first = 0 if current is None else current + 1
    conn.executemany(
        "INSERT INTO events (event_id, stream_id, stream_version, type, data_version, data, metadata, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                str(event.event_id),
                stream_id,
                first + offset,
                event.type,
                event.data_version,
                ser.dump_data(event),
                ser.dump_metadata(event.metadata),
                now,
            )
            for offset, event in enumerate(request.events)
        ],
    )
    last_version = first + len(ids) - 1
    conn.execute(
        "INSERT INTO streams (stream_id, version) VALUES (?, ?) "
        "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
        (stream_id, last_version),
    )
    position = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return AppendResult(stream_id, last_version, int(position))
