"""Rebuild a service's projections from zero, in place, and say whether the result differs.

The projection runner does the rebuild: it fills a fresh generation of tables from position 0
while the serving one keeps serving, then swaps the views over in one transaction. This works on
a stopped service's read model and on a running one's from another process: the runner's guards
make whichever writer is behind fail (the service's own runner then reloads onto the new
generation), and here a rebuild that lost such a race is simply resumed.

With ``verify``, the live projection is compared with one built independently from the events: the
live tables are read at their checkpoint in one snapshot, the same projection is built into a
private scratch file up to that checkpoint (:mod:`.timetravel`), and the two are compared row by
row — checksums, tables only on one side, rows only on one side, a few samples. The runner's own
check (both generations' checksums at the swap position) is reported next to it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopstream_eventstore import EventStore
from shopstream_processing import (
    CheckpointMoved,
    Checksum,
    Projection,
    ProjectionRunner,
    ReadModelDb,
    RebuildResult,
    Row,
    RowCountMismatch,
    Statement,
)
from shopstream_processing.checksum import digest_tables, row_digest
from shopstream_processing.readmodel import REGISTRY_TABLE
from shopstream_processing.sqlite import SqliteReadModel
from shopstream_service.runtime import open_readmodel

from .catalog import select
from .sources import StoreRef, opened
from .timetravel import Progress, build_at

ATTEMPTS = 20
"""Rebuilds resumed after losing a race to the live service's runner before giving up."""
SAMPLES = 3


class RebuildError(Exception):
    """The rebuild could not be done: the message says why (shown as is)."""


@dataclass(frozen=True, slots=True)
class TableDifference:
    table: str
    live_rows: int | None
    """None: the live projection has no such table."""
    rebuilt_rows: int | None
    """None: the rebuilt projection has no such table."""
    only_live: int
    only_rebuilt: int
    live_samples: tuple[Row, ...]
    rebuilt_samples: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    position: int
    """The live checkpoint both sides were read at."""
    live_version: int
    live: str
    rebuilt: str
    differences: tuple[TableDifference, ...]

    @property
    def identical(self) -> bool:
        return self.live == self.rebuilt and not self.differences


@dataclass(frozen=True, slots=True)
class Rebuilt:
    service: str
    projection: str
    version: int
    generation: int
    """The generation now serving."""
    position: int
    """The checkpoint at which it took over."""
    before: Checksum
    """The serving generation before the rebuild, at its checkpoint."""
    after: Checksum
    """The serving generation after the rebuild, at its checkpoint."""
    runner: RebuildResult
    comparison: Comparison | None
    """With ``verify``: the live projection against an independent build."""
    attempts: int

    @property
    def differs(self) -> bool:
        runner = self.runner
        runner_differs = runner.previous is not None and runner.previous != runner.rebuilt
        return runner_differs or (self.comparison is not None and not self.comparison.identical)


async def rebuild(
    ref: StoreRef,
    readmodel_url: str | None = None,
    projection_names: Sequence[str] | None = None,
    *,
    verify: bool = False,
    progress: Progress | None = None,
    batch_size: int = 1_000,
) -> list[Rebuilt]:
    """Rebuild the named projections of ``ref.service`` (all when None) in its read model (by
    default the one its store URL implies: the same SQLite file, or schema ``<service>_read``)."""
    return await rebuild_projections(
        ref,
        select(ref.service, projection_names),
        readmodel_url=readmodel_url,
        verify=verify,
        progress=progress,
        batch_size=batch_size,
    )


async def rebuild_projections(
    ref: StoreRef,
    projections: Sequence[Projection],
    *,
    readmodel_url: str | None = None,
    verify: bool = False,
    progress: Progress | None = None,
    batch_size: int = 1_000,
) -> list[Rebuilt]:
    url = readmodel_url or ref.url
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise RebuildError(f"{ref.service}: its read model needs a sqlite:/// or postgresql:// URL")
    async with opened(ref) as store:
        db = await open_readmodel(url, ref.service)
        try:
            return [
                await _rebuild_one(store, db, ref, projection, verify, progress, batch_size)
                for projection in projections
            ]
        finally:
            await db.close()


async def _rebuild_one(
    store: EventStore,
    db: ReadModelDb,
    ref: StoreRef,
    projection: Projection,
    verify: bool,
    progress: Progress | None,
    batch_size: int,
) -> Rebuilt:
    runner = ProjectionRunner(store, db, projection, service=ref.service, batch_size=batch_size)
    before = await runner.checksum()
    comparison = await compare_with_events(store, db, ref, projection, progress) if verify else None
    watcher = asyncio.create_task(_watch(db, ref, projection, await store.head_position(), progress))
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                result = await runner.rebuild(verify=verify)
            except (CheckpointMoved, RowCountMismatch) as lost:
                # The live service's runner moved the serving generation on meanwhile: the
                # building generation is kept and the next attempt resumes it.
                if attempt == ATTEMPTS:
                    raise RebuildError(
                        f"{ref.service}/{projection.name}: the live projection kept moving ({lost})"
                    ) from None
            else:
                break
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return Rebuilt(
        service=ref.service,
        projection=projection.name,
        version=projection.version,
        generation=result.generation,
        position=result.position,
        before=before,
        after=await runner.checksum(),
        runner=result,
        comparison=comparison,
        attempts=attempt,
    )


async def _watch(
    db: ReadModelDb, ref: StoreRef, projection: Projection, head: int, progress: Progress | None
) -> None:
    """Report the building generation's checkpoint as the runner advances it."""
    if progress is None:
        return
    label = f"{ref.service}/{projection.name} rebuild"
    while True:
        rows = await db.fetch(
            f"SELECT position FROM {REGISTRY_TABLE} WHERE projection = $1 AND serving = 0 AND version = $2",
            projection.name,
            projection.version,
        )
        progress(label, min(head, int(rows[0][0])) if rows else 0, head)
        await asyncio.sleep(0.2)


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Live:
    version: int
    position: int
    tables: dict[str, list[Row]]


async def compare_with_events(
    store: EventStore,
    db: ReadModelDb,
    ref: StoreRef,
    projection: Projection,
    progress: Progress | None = None,
) -> Comparison:
    """The live projection in ``db`` against the same projection built afresh from ``store`` up
    to the live checkpoint, table by table and row by row."""
    live = await _live_tables(db, projection.name)
    with tempfile.TemporaryDirectory(prefix="shopstream-verify-") as scratch:
        path = Path(scratch) / f"{projection.name}.sqlite"
        await build_at(store, ref, projection, path, live.position, progress=progress)
        built = await SqliteReadModel.open(path)
        try:
            names = [table.name for table in projection.tables]
            results = await built.read([Statement(f"SELECT * FROM {name}") for name in names])
        finally:
            await built.close()
    rebuilt = dict(zip(names, results, strict=True))
    return Comparison(
        position=live.position,
        live_version=live.version,
        live=digest_tables(live.tables.items()),
        rebuilt=digest_tables(rebuilt.items()),
        differences=tuple(differences(live.tables, rebuilt)),
    )


async def _live_tables(db: ReadModelDb, projection: str) -> _Live:
    """The serving generation's rows and checkpoint, read in one snapshot through its views."""
    registry = Statement(
        f"SELECT version, tables, position FROM {REGISTRY_TABLE} WHERE projection = $1 AND serving = 1",
        (projection,),
    )
    for _ in range(ATTEMPTS):
        (known,) = await db.read([registry])
        if not known:
            raise RebuildError(f"projection {projection} has no serving generation")
        names = str(known[0][1]).split(",")
        try:
            found, *rows = await db.read([registry, *(Statement(f"SELECT * FROM {name}") for name in names)])
        except Exception:
            # A swap replaced the views between the two reads (a new version's tables): again.
            continue
        if found and found[0][1] == known[0][1]:
            version, _, position = found[0]
            return _Live(int(version), int(position), dict(zip(names, rows, strict=True)))
    raise RebuildError(f"projection {projection}: the live tables kept changing shape while read")


def differences(
    live: Mapping[str, Sequence[Row]], rebuilt: Mapping[str, Sequence[Row]], samples: int = SAMPLES
) -> list[TableDifference]:
    """Per table, the rows only one side has (as multisets: a duplicated row counts twice)."""
    found = []
    for name in sorted(set(live) | set(rebuilt)):
        left, right = live.get(name), rebuilt.get(name)
        left_hashes = Counter(row_digest(row) for row in left or ())
        right_hashes = Counter(row_digest(row) for row in right or ())
        only_left, only_right = left_hashes - right_hashes, right_hashes - left_hashes
        if left is not None and right is not None and not only_left and not only_right:
            continue
        found.append(
            TableDifference(
                table=name,
                live_rows=None if left is None else len(left),
                rebuilt_rows=None if right is None else len(right),
                only_live=only_left.total(),
                only_rebuilt=only_right.total(),
                live_samples=_samples(left or (), only_left, samples),
                rebuilt_samples=_samples(right or (), only_right, samples),
            )
        )
    return found


def _samples(rows: Sequence[Row], wanted: Counter[bytes], limit: int) -> tuple[Row, ...]:
    return tuple([row for row in rows if row_digest(row) in wanted][:limit])
