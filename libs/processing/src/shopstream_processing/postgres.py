"""Read models in PostgreSQL (asyncpg), in the service's schema.

Every connection of the pool has ``search_path`` set to the schema, so projections and readers
write the same unqualified SQL as on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from .readmodel import REGISTRY_DDL, Row, RowCountMismatch, Statement, runs

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, schema: str, *, pool_size: int = 4) -> PostgresReadModel:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema {schema!r} must be a lower-case SQL identifier")
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=pool_size, server_settings={"search_path": schema}
        )
        async with pool.acquire() as conn, conn.transaction():
            # The same lock the event store takes while creating the schema: concurrent
            # CREATE ... IF NOT EXISTS of one object can fail instead of waiting.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(REGISTRY_DDL)
        return cls(pool)

    async def transaction(self, statements: Sequence[Statement]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            for run in runs(statements):
                statement = run[0]
                if statement.expect_rows is None and statement.args:
                    # One pipelined executemany, not one round trip per statement.
                    await conn.executemany(statement.sql, [s.args for s in run])
                    continue
                status = await conn.execute(statement.sql, *statement.args)
                if statement.expect_rows is not None:
                    changed = int(status.rsplit(" ", 1)[-1])
                    if changed != statement.expect_rows:
                        raise RowCountMismatch(statement, changed)

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return [[tuple(record) for record in await conn.fetch(q.sql, *q.args)] for q in queries]

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(record) for record in await self._pool.fetch(sql, *args)]

    async def close(self) -> None:
        await self._pool.close()
