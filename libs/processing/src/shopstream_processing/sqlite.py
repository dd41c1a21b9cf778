"""Read models in the service's SQLite file, next to its event store.

The database has one writer connection on its own thread and one reader connection on another;
every transaction and every snapshot read is a single synchronous function run on that thread,
never a round trip per statement. WAL lets readers keep reading while a batch is applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from shopstream_eventstore.sqlite import ThreadedConnection

from .readmodel import REGISTRY_DDL, Row, RowCountMismatch, Statement, runs, sqlite_sql

T = TypeVar("T")


class SqliteReadModel:
    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._writer = ThreadedConnection("readmodel-writer")
        self._reader = ThreadedConnection("readmodel-reader")

    @classmethod
    async def open(cls, path: Path | str) -> SqliteReadModel:
        db = cls(path)
        db._path.parent.mkdir(parents=True, exist_ok=True)
        await db._writer.open(db._path)
        await db._reader.open(db._path)
        await db.transaction([Statement(REGISTRY_DDL)])
        return db

    async def transaction(self, statements: Sequence[Statement]) -> None:
        await self._writer.run(lambda conn: _write(conn, statements))

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        return await self._reader.run(lambda conn: _read(conn, queries))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        (rows,) = await self.read([Statement(sql, args)])
        return rows

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()


def _write(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that reads first could
    # fail to upgrade (SQLITE_BUSY without waiting) when the event store is writing.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for run in runs(statements):
            statement = run[0]
            if len(run) > 1:
                conn.executemany(sqlite_sql(statement.sql), [s.args for s in run])
                continue
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
