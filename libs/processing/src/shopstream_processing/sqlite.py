"""Read models in the service's SQLite file, next to its event store.

The database has one writer connection on its own thread and one reader connection on another;
every transaction and every snapshot read is a single synchronous function run on that thread,
never a round trip per statement. WAL lets readers keep reading while a batch is applied.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from shopstream_eventstore.sqlite import connect

from .readmodel import REGISTRY_DDL, Row, RowCountMismatch, Statement, sqlite_sql

T = TypeVar("T")


class SqliteReadModel:
    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="readmodel-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="readmodel-reader")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path | str) -> SqliteReadModel:
        db = cls(path)
        db._path.parent.mkdir(parents=True, exist_ok=True)
        db._writer = await db._on(db._writer_thread, lambda: connect(db._path))
        db._reader = await db._on(db._reader_thread, lambda: connect(db._path))
        await db.transaction([Statement(REGISTRY_DDL)])
        return db

    async def transaction(self, statements: Sequence[Statement]) -> None:
        conn = self._conn(self._writer)
        await self._on(self._writer_thread, lambda: _write(conn, statements))

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        conn = self._conn(self._reader)
        return await self._on(self._reader_thread, lambda: _read(conn, queries))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        (rows,) = await self.read([Statement(sql, args)])
        return rows

    async def close(self) -> None:
        for conn, thread in ((self._writer, self._writer_thread), (self._reader, self._reader_thread)):
            if conn is not None:
                await self._on(thread, conn.close)
            thread.shutdown(wait=True)
        self._writer = self._reader = None

    @staticmethod
    def _conn(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError("the read-model database is closed")
        return conn

    @staticmethod
    async def _on(thread: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        done = asyncio.get_running_loop().run_in_executor(thread, fn)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The thread cannot be stopped mid-transaction: let it end (commit or roll back)
            # before the cancellation goes on, so whoever looks next sees its outcome.
            await asyncio.wait([done])
            raise


def _write(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that reads first could
    # fail to upgrade (SQLITE_BUSY without waiting) when the event store is writing.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            cursor = conn.execute(sqlite_sql(statement.sql), statement.args)
            if statement.expect_rows is not None and cursor.rowcount != statement.expect_rows:
                raise RowCountMismatch(statement, cursor.rowcount)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _read(conn: sqlite3.Connection, queries: Sequence[Statement]) -> list[list[Row]]:
    conn.execute("BEGIN")
    try:
        return [conn.execute(sqlite_sql(query.sql), query.args).fetchall() for query in queries]
    finally:
        conn.execute("COMMIT")
