"""The read-model database: one small transaction API over SQLite and PostgreSQL.

Projections write portable SQL with ``$1``-style numbered parameters (PostgreSQL's own style);
the SQLite backend rewrites them to ``?1``. A transaction is a list of statements handed over
at once, so the SQLite backend runs it in a single hop to its connection's thread and the
PostgreSQL backend pipelines runs of identical statements.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

Row = tuple[Any, ...]

REGISTRY_TABLE = "projection_generations"
"""Every generation of every projection in this database, with its checkpoint."""

REGISTRY_DDL = f"""
CREATE TABLE IF NOT EXISTS {REGISTRY_TABLE} (
    projection text    NOT NULL,
    generation integer NOT NULL,
    version    integer NOT NULL,
    tables     text    NOT NULL,
    position   bigint  NOT NULL,
    serving    integer NOT NULL,
    PRIMARY KEY (projection, generation)
)
"""


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    args: tuple[Any, ...] = ()
    expect_rows: int | None = None
    """When set, the transaction fails with ``RowCountMismatch`` (and rolls back) unless the
    statement changed exactly this many rows: an optimistic guard such as a checkpoint update
    ``WHERE position = <the position this batch was read after>``."""


def runs(statements: Sequence[Statement]) -> list[Sequence[Statement]]:
    """Consecutive statements with the same parameterised SQL and no row-count guard, grouped so a
    backend can execute each group as one ``executemany`` (a projection's upsert per event);
    every other statement is a group of its own."""
    grouped: list[Sequence[Statement]] = []
    start = 0
    while start < len(statements):
        first = statements[start]
        end = start + 1
        if first.expect_rows is None and first.args:
            while (
                end < len(statements)
                and statements[end].sql == first.sql
                and statements[end].expect_rows is None
            ):
                end += 1
        grouped.append(statements[start:end])
        start = end
    return grouped


class RowCountMismatch(Exception):
    def __init__(self, statement: Statement, actual: int) -> None:
        self.statement = statement
        self.actual = actual
        super().__init__(f"expected {statement.expect_rows} changed row(s), got {actual}: {statement.sql}")


class ReadModelDb(Protocol):
    """Where projections keep their tables. Readers query the stable table names (views)."""

    async def transaction(self, statements: Sequence[Statement]) -> None:
        """Run every statement, in order, in one transaction: all take effect or none."""
        ...

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        """Run the queries against one consistent snapshot; one result list per query."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def close(self) -> None: ...


_SQLITE_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\$(\d+)""", re.DOTALL)


@lru_cache(maxsize=1024)
def sqlite_sql(sql: str) -> str:
    """``$N`` ⇒ ``?N`` outside string literals, quoted identifiers and comments.

    SQLite would read ``$1`` as a *named* parameter, numbered by first appearance, so ``$2 ... $1``
    would bind the wrong values; ``?N`` keeps PostgreSQL's meaning, repeats included.
    """
    return _SQLITE_TOKENS.sub(lambda m: f"?{m.group(1)}" if m.group(1) else m.group(0), sql)
