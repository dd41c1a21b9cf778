"""Time travel: a projection built as of a wall-clock instant or a global position, into a target
of its own — a fresh SQLite file, never the live read model — and queried there.

The store's events up to the position are read in pages and folded through the projection's own
``apply``, each page in one transaction with the target's checkpoint, exactly as the live runner
folds them; so the target holds the rows the live projection held when its checkpoint was at that
position. Its tables carry the projection's stable names (the names the services' queries use),
and a ``time_travel`` table says what the file is: service, projection, version and position.

The file is built under a temporary name next to the target and renamed over it at the end: a
failed or interrupted build leaves nothing behind, and an existing target is replaced only if it
is itself a time-travel file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shopstream_catalog.projections import SkuStock, sku_stock
from shopstream_eventstore import EventStore
from shopstream_processing import Projection, Row, Statement
from shopstream_processing.readmodel import sqlite_sql
from shopstream_processing.sqlite import SqliteReadModel

from .sources import StoreRef, opened, position_at, read_range

Progress = Callable[[str, int, int], None]
"""Told ``(what, position reached, end position)`` as a long read advances."""

MARKER_TABLE = "time_travel"
MARKER_DDL = (
    f"CREATE TABLE {MARKER_TABLE} (service text NOT NULL, projection text NOT NULL, "
    "version integer NOT NULL, store text NOT NULL, as_of text, position bigint NOT NULL, "
    "events bigint NOT NULL)"
)


class TimeTravelError(Exception):
    """The build cannot be done as asked: the message says why (shown as is); nothing was written."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A projection built as of a position."""

    path: Path
    service: str
    projection: str
    version: int
    position: int
    as_of: datetime | None
    """The instant asked for, when the position came from one."""
    events: int
    """Events read from the store (the projection ignores most)."""
    rows: dict[str, int]
    """Rows per table."""


async def build_as_of(
    ref: StoreRef,
    projection: Projection,
    target: Path,
    *,
    at: datetime | None = None,
    position: int | None = None,
    progress: Progress | None = None,
    page: int = 5_000,
) -> Snapshot:
    """Build ``projection`` from ``ref``'s store as of ``at`` (its last event recorded at or before
    that instant) or ``position`` (exactly one of them) into the SQLite file ``target``."""
    if (at is None) == (position is None):
        raise TimeTravelError("say either an instant or a position to build as of")
    if at is not None and at.tzinfo is None:
        raise TimeTravelError(f"{at.isoformat()} has no time zone: say one (e.g. +00:00)")
    target = _writable_target(ref, target)
    async with opened(ref) as store:
        head = await store.head_position()
        if position is None:
            assert at is not None
            until = await position_at(store, at)
        elif position < 0 or position > head:
            raise TimeTravelError(f"{ref.service}: position {position} is not in the store (head {head})")
        else:
            until = position
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            built = await build_at(
                store, ref, projection, temporary, until, at=at, progress=progress, page=page
            )
            await asyncio.to_thread(_seal, temporary, target)
        finally:
            for leftover in _sqlite_files(temporary):
                leftover.unlink(missing_ok=True)
    return dataclasses.replace(built, path=target)


async def build_at(
    store: EventStore,
    ref: StoreRef,
    projection: Projection,
    path: Path,
    until: int,
    *,
    at: datetime | None = None,
    progress: Progress | None = None,
    page: int = 5_000,
) -> Snapshot:
    """``projection`` as of position ``until`` of ``store`` into the new SQLite file ``path``."""
    label = f"{ref.service}/{projection.name}"
    tables = {table.name: table.name for table in projection.tables}
    db = await SqliteReadModel.open(path)
    try:
        create = [
            Statement(MARKER_DDL),
            Statement(
                f"INSERT INTO {MARKER_TABLE} VALUES ($1, $2, $3, $4, $5, 0, 0)",
                (ref.service, projection.name, projection.version, ref.label, at and at.isoformat()),
            ),
        ]
        for table in projection.tables:
            create.append(Statement(f"CREATE TABLE {table.name} ({table.columns})"))
            create += [
                Statement(f"CREATE INDEX {table.name}__i{n} ON {table.name} ({columns})")
                for n, columns in enumerate(table.indexes)
            ]
        await db.transaction(create)
        reached = events = 0
        if progress is not None:
            progress(label, 0, until)
        async for batch in read_range(store, until=until, page=page):
            # The checkpoint moves in the same transaction as the rows it accounts for.
            checkpoint = Statement(
                f"UPDATE {MARKER_TABLE} SET position = $1, events = $2 WHERE position = $3",
                (batch[-1].position, events + len(batch), reached),
                expect_rows=1,
            )
            await db.transaction([checkpoint, *projection.apply(batch, tables)])
            reached, events = batch[-1].position, events + len(batch)
            if progress is not None:
                progress(label, reached, until)
        counts = await db.read([Statement(f"SELECT count(*) FROM {name}") for name in tables])
    finally:
        await db.close()
    return Snapshot(
        path=path,
        service=ref.service,
        projection=projection.name,
        version=projection.version,
        position=until,
        as_of=at,
        events=events,
        rows={name: int(result[0][0]) for name, result in zip(tables, counts, strict=True)},
    )


def _writable_target(ref: StoreRef, target: Path) -> Path:
    target = target.expanduser().resolve()
    if ref.url.startswith("sqlite:///"):
        live = Path(ref.url.removeprefix("sqlite:///")).expanduser().resolve()
        if target == live:
            raise TimeTravelError(
                f"{target} is {ref.service}'s live store and read model: choose another target"
            )
    if not target.parent.is_dir():
        raise TimeTravelError(f"cannot write {target}: {target.parent} is not a directory")
    if not os.access(target.parent, os.W_OK):
        raise TimeTravelError(f"cannot write {target}: {target.parent} is not writable")
    if target.exists() and not is_time_travel_file(target):
        raise TimeTravelError(f"{target} exists and is not a time-travel file: choose another target")
    return target


def is_time_travel_file(path: Path) -> bool:
    """Whether ``path`` was built here. Looked at without leaving a trace: a file in write-ahead-log
    mode (every live store) is rejected from its header, as opening it, even read-only, would
    leave its ``-wal`` and ``-shm`` files behind."""
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError:
        return False
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00") or header[18] == 2:
        return False
    try:
        with contextlib.closing(_read_only(path)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MARKER_TABLE,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return found is not None


def _seal(temporary: Path, target: Path) -> None:
    """One self-contained file (no write-ahead log beside it, so read-only readers leave none
    behind either), renamed onto the target."""
    with contextlib.closing(sqlite3.connect(temporary)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    os.replace(temporary, target)


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


# --- reading a time-travel file ----------------------------------------------------------------


def query(path: Path, sql: str, args: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of one SQL query (SQLite dialect) over a time-travel file, read-only."""
    if not is_time_travel_file(path):
        raise TimeTravelError(f"{path} is not a time-travel file")
    with contextlib.closing(_read_only(path)) as conn:
        try:
            cursor = conn.execute(sql, tuple(args))
        except sqlite3.Error as exc:
            raise TimeTravelError(f"query failed: {exc}") from None
        columns = [column[0] for column in cursor.description or ()]
        return columns, cursor.fetchall()


class SnapshotDb:
    """A time-travel file as a read-only read model, for the services' own query functions."""

    def __init__(self, path: Path) -> None:
        if not is_time_travel_file(path):
            raise TimeTravelError(f"{path} is not a time-travel file")
        self._path = path

    async def transaction(self, statements: Sequence[Statement]) -> None:
        raise TimeTravelError("a time-travel file is read-only")

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        def run() -> list[list[Row]]:
            with contextlib.closing(_read_only(self._path)) as conn:
                return [conn.execute(sqlite_sql(q.sql), q.args).fetchall() for q in queries]

        return await asyncio.to_thread(run)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        (rows,) = await self.read([Statement(sql, args)])
        return rows

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Balance:
    """An influencer's commission in one currency, as the commission service reports it."""

    currency: str
    held: int
    released: int
    total: int
    accrued: int
    reversed: int
    accruals: int


async def stock_of(path: Path, sku_id: str) -> SkuStock | None:
    """The stock of a SKU in a time-travel build of catalog's ``stock`` projection."""
    return await sku_stock(SnapshotDb(path), sku_id)


async def balance_of(path: Path, influencer_id: str) -> list[Balance]:
    """An influencer's balance per currency in a time-travel build of commission's ``ledger``:
    held (accrued, not released, net of reversals) and released (net of reversals after release)."""
    rows = await SnapshotDb(path).fetch(
        "SELECT currency, "
        "SUM(CASE WHEN released IS NULL THEN amount - reversed_before_release ELSE 0 END), "
        "SUM(CASE WHEN released IS NULL THEN 0 ELSE released - reversed_after_release END), "
        "SUM(amount), SUM(reversed_before_release + reversed_after_release), COUNT(*) "
        "FROM commission_accruals WHERE influencer_id = $1 GROUP BY currency ORDER BY currency",
        influencer_id,
    )
    return [
        Balance(currency, int(held), int(released), int(held) + int(released), int(accrued), int(back), count)
        for currency, held, released, accrued, back, count in rows
    ]
