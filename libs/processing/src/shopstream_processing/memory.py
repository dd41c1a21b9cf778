"""An in-memory read model for projection unit tests: the ``ReadModelDb`` interface over one
``:memory:`` SQLite connection, no threads and no files, with the same ``$N`` SQL as the real
backends."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .readmodel import Row, Statement, sqlite_sql


class MemoryReadModel:
    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")

    async def transaction(self, statements: Sequence[Statement]) -> None:
        with self.conn:
            for statement in statements:
                self.conn.execute(sqlite_sql(statement.sql), statement.args)

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        return [list(self.conn.execute(sqlite_sql(query.sql), query.args).fetchall()) for query in queries]

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        (rows,) = await self.read([Statement(sql, args)])
        return rows

    async def close(self) -> None:
        self.conn.close()

    def dump(self, tables: Iterable[str]) -> dict[str, list[Row]]:
        """Every row of ``tables``, in an order independent of how they were written."""
        return {
            table: sorted(self.conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in tables
        }
