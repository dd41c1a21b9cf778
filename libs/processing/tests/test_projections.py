"""Projection runner against the real event stores and read-model databases (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from prometheus_client import REGISTRY

from shopstream_eventstore import AppendRequest, EventStore, RecordedEvent
from shopstream_processing import (
    Backoff,
    EventProcessingFailed,
    ProjectionRunner,
    ReadModelDb,
    Statement,
    Table,
    TableNames,
)
from shopstream_testing.waiting import wait_until_async

from .conftest import Backend
from .stockdemo import (
    RECEIVED,
    RELEASED,
    RESERVED,
    MissesReleasesProjection,
    StockProjection,
    expected_stock,
    stock_event,
)

pytestmark = pytest.mark.integration

SKUS = [f"SKU-{n}" for n in range(8)]
FAST_RETRY = Backoff(initial=0.01, maximum=0.05)


@asynccontextmanager
async def running(*runners: ProjectionRunner) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(runner.run()) for runner in runners]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def append_stock(store: EventStore, count: int, seed: int, per_append: int = 5) -> list[int]:
    """Random receipts, reservations and releases over a few SKUs; returns the append positions."""
    rng = random.Random(seed)
    positions = []
    for _ in range(0, count, per_append):
        requests = []
        for _ in range(per_append):
            sku = rng.choice(SKUS)
            kind = rng.choices([RECEIVED, RESERVED, RELEASED], weights=[3, 2, 1])[0]
            requests.append(AppendRequest(f"stock-{sku}", [stock_event(kind, sku, rng.randint(1, 9))]))
        results = await store.append_many(requests)
        positions.append(results[-1].position)
    return positions


async def everything(store: EventStore) -> list[RecordedEvent]:
    return await store.read_all(0, 1_000_000)


async def stock_rows(db: ReadModelDb) -> dict[str, tuple[int, int, int]]:
    rows = await db.fetch("SELECT sku, on_hand, reserved, events FROM stock")
    return {sku: (on_hand, reserved, events) for sku, on_hand, reserved, events in rows}


async def totals(db: ReadModelDb) -> tuple[int, int, int]:
    ((count, on_hand, events),) = await db.fetch(
        "SELECT count(*), coalesce(sum(on_hand), 0), coalesce(sum(events), 0) FROM stock"
    )
    return int(count), int(on_hand), int(events)


async def physical_tables(backend: Backend, db: ReadModelDb) -> set[str]:
    if backend.kind == "sqlite":
        rows = await db.fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'stock%'")
    else:
        rows = await db.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name LIKE 'stock%'"
        )
    return {name for (name,) in rows}


async def caught_up(runner: ProjectionRunner, store: EventStore, timeout: float = 30) -> int:
    head = await store.head_position()
    await runner.wait_until(head, timeout)
    return head


async def test_projection_follows_concurrent_appends_with_read_your_writes(backend: Backend) -> None:
    store, db = backend.store, await backend.db()
    runner = ProjectionRunner(store, db, StockProjection(), service="test", batch_size=50)

    async def writer(seed: int) -> None:
        for position in await append_stock(store, 100, seed):
            # Read-your-writes: once wait_until returns, the reader sees this append.
            await runner.wait_until(position, timeout=30)
            assert await db.fetch("SELECT sku FROM stock_movements WHERE position = $1", position)

    async with running(runner):
        await asyncio.gather(*(writer(seed) for seed in range(6)))
        await caught_up(runner, store)
        assert await runner.lag() == 0

    assert await stock_rows(db) == expected_stock(await everything(store))
    with pytest.raises(TimeoutError):
        await runner.wait_until(await store.head_position() + 1, timeout=0.05)


async def test_rebuild_while_appending_equals_the_live_projection(backend: Backend) -> None:
    store, db = backend.store, await backend.db()
    runner = ProjectionRunner(store, db, StockProjection(), service="test", batch_size=40)
    await append_stock(store, 400, seed=1)

    async with running(runner):
        await caught_up(runner, store)
        appending = asyncio.create_task(append_stock(store, 600, seed=2, per_append=2))
        result = await runner.rebuild(verify=True)
        await appending
        await caught_up(runner, store)

    # At one aligned position, under concurrent appends, the rebuilt rows equal the live rows.
    assert result.previous is not None
    assert result.previous == result.rebuilt
    assert result.generation == 2
    assert await physical_tables(backend, db) == {"stock__g2", "stock_movements__g2"}
    assert await stock_rows(db) == expected_stock(await everything(store))

    # And a projection built from zero elsewhere has the same checksum as the one kept live.
    reference = ProjectionRunner(store, await backend.db("reference"), StockProjection(), service="test")
    async with running(reference):
        await caught_up(reference, store)
    assert await reference.checksum() == await runner.checksum()


async def test_a_different_projection_has_a_different_checksum(backend: Backend) -> None:
    store = backend.store
    await append_stock(store, 300, seed=3)
    assert any(e.type == RELEASED for e in await everything(store))
    right = ProjectionRunner(store, await backend.db(), StockProjection(), service="test")
    again = ProjectionRunner(store, await backend.db("again"), StockProjection(), service="test")
    wrong = ProjectionRunner(store, await backend.db("wrong"), MissesReleasesProjection(), service="test")
    async with running(right, again, wrong):
        for runner in (right, again, wrong):
            await caught_up(runner, store)
    checksum = await right.checksum()
    assert await again.checksum() == checksum
    different = await wrong.checksum()
    assert different.position == checksum.position
    assert different.digest != checksum.digest


async def test_readers_never_see_a_partial_table_during_rebuild_and_swap(backend: Backend) -> None:
    store, db = backend.store, await backend.db()
    runner = ProjectionRunner(store, db, StockProjection(), service="test", batch_size=10)
    await append_stock(store, 500, seed=4)
    async with running(runner):
        await caught_up(runner, store)
    full = await totals(db)
    assert full[2] == 500

    reader_db = await backend.db()  # another connection, as an API replica would have
    reads: list[tuple[int, int, int]] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            reads.append(await totals(reader_db))

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    try:
        for _ in range(2):
            await runner.rebuild()
    finally:
        done.set()
        await asyncio.gather(*readers)

    assert reads, "the readers must have read while the rebuilds ran"
    assert set(reads) == {full}
    assert await physical_tables(backend, db) == {"stock__g3", "stock_movements__g3"}


class StockProjectionV2(StockProjection):
    """Version 2 adds a column: the runner must rebuild, with version 1 serving meanwhile."""

    version = 2
    tables = (
        Table(
            "stock",
            "sku text PRIMARY KEY, on_hand bigint NOT NULL, reserved bigint NOT NULL, "
            "events bigint NOT NULL, last_position bigint",
        ),
        StockProjection.tables[1],
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        stock = tables["stock"]
        statements = list(super().apply(events, tables))
        statements += [
            Statement(
                f"UPDATE {stock} SET last_position = $1 WHERE sku = $2", (e.position, str(e.data["sku"]))
            )
            for e in events
            if e.type in self.effects
        ]
        return statements


async def test_a_new_version_is_rebuilt_while_the_old_one_serves(backend: Backend) -> None:
    store, db = backend.store, await backend.db()
    await append_stock(store, 300, seed=5)
    v1 = ProjectionRunner(store, db, StockProjection(), service="test")
    async with running(v1):
        await caught_up(v1, store)
    full = await totals(db)

    reader_db = await backend.db()
    reads: list[tuple[int, int, int]] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            reads.append(await totals(reader_db))

    reading = asyncio.create_task(reader())
    v2 = ProjectionRunner(store, db, StockProjectionV2(), service="test", batch_size=10)
    try:
        async with running(v2):
            head = await caught_up(v2, store)
            # Once wait_until returns, readers are on version 2, not on a frozen version 1.
            rows = await reader_db.fetch("SELECT count(*) FROM stock WHERE last_position IS NULL")
            assert rows == [(0,)]
    finally:
        done.set()
        await reading
    assert reads
    assert set(reads) == {full}
    registry = await db.fetch("SELECT generation, version, position, serving FROM projection_generations")
    assert registry == [(2, 2, head, 1)]


async def test_an_interrupted_rebuild_resumes_its_generation(backend: Backend) -> None:
    store, db = backend.store, await backend.db()
    await append_stock(store, 400, seed=6)
    first = ProjectionRunner(store, db, StockProjection(), service="test", batch_size=10)
    async with running(first):
        await caught_up(first, store)

    # Pages of 10 while rebuilding too (not the default 5,000), so that it stops mid-way.
    crashing = ProjectionRunner(
        store, db, CrashesDuringRebuild(), service="test", batch_size=10, rebuild_batch_size=10
    )
    with pytest.raises(EventProcessingFailed):
        await crashing.rebuild()
    ((building,),) = await db.fetch("SELECT position FROM projection_generations WHERE serving = 0")
    assert 0 < building < await store.head_position(), "the rebuild must stop mid-way"

    # A new runner (a restarted process) picks the same generation up where it stopped.
    second = ProjectionRunner(
        store, db, StockProjection(), service="test", batch_size=10, rebuild_batch_size=10
    )
    result = await second.rebuild(verify=True)
    assert result.generation == 2
    assert result.previous == result.rebuilt
    assert await stock_rows(db) == expected_stock(await everything(store))


class CrashesDuringRebuild(StockProjection):
    """Stops working after a few batches into generation 2, as if the process died there."""

    def __init__(self) -> None:
        self.batches = 0

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        if tables["stock"] == "stock__g2":
            self.batches += 1
            if self.batches > 5:
                raise RuntimeError("the process died here")
        return super().apply(events, tables)


class FlakyProjection(StockProjection):
    """Fails on one SKU until repaired: a poison event in the local store."""

    broken = True

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        if self.broken and any(e.data.get("sku") == "POISON" for e in events):
            raise ValueError("cannot handle POISON")
        return super().apply(events, tables)


async def test_a_failing_apply_never_advances_the_checkpoint_and_is_retried(backend: Backend) -> None:
    store, db = backend.store, await backend.db()
    before = await append_stock(store, 20, seed=7)
    poison = await store.append("stock-POISON", [stock_event(RECEIVED, "POISON", 1)])
    await append_stock(store, 20, seed=8)
    projection = FlakyProjection()
    runner = ProjectionRunner(store, db, projection, service="test", batch_size=100, backoff=FAST_RETRY)

    async with running(runner):
        await wait_until_async(lambda: runner.failures >= 3, timeout=30, message="repeated failures")
        error = runner.last_error
        assert isinstance(error, EventProcessingFailed)
        assert error.event.position == poison.position
        # The events before the poison were applied (one by one); nothing at or after it.
        assert runner.position == before[-1]
        assert await stock_rows(db) == expected_stock(
            e for e in await everything(store) if e.position < poison.position
        )

        projection.broken = False
        await caught_up(runner, store)
        assert runner.failures == 0
    assert await stock_rows(db) == expected_stock(await everything(store))


async def test_two_runners_of_one_projection_never_apply_an_event_twice(backend: Backend) -> None:
    store = backend.store
    one = ProjectionRunner(store, await backend.db(), StockProjection(), service="test", backoff=FAST_RETRY)
    two = ProjectionRunner(store, await backend.db(), StockProjection(), service="test", backoff=FAST_RETRY)
    async with running(one, two):
        await asyncio.gather(*(append_stock(store, 150, seed) for seed in range(4)))
        await caught_up(one, store)
        await caught_up(two, store)
    db = await backend.db()
    assert await stock_rows(db) == expected_stock(await everything(store))


async def test_a_runner_that_loses_the_checkpoint_race_follows_on_without_a_failure(backend: Backend) -> None:
    """Two replicas of a service run the same projection on one database: whichever applies a
    batch first wins, the other finds the checkpoint moved. That is how replicas share the work,
    not a failure: the loser must not back off, report itself unhealthy or log an error, and its
    read-your-writes must follow the winner's checkpoint."""
    store = backend.store
    service = f"two-runners-{backend.kind}"
    runners = [
        ProjectionRunner(store, await backend.db(), StockProjection(), service=service) for _ in range(2)
    ]

    def failures() -> float:
        return (
            REGISTRY.get_sample_value(
                "shopstream_processing_failures_total", {"service": service, "runner": "projection:stock"}
            )
            or 0.0
        )

    async with running(*runners):
        for runner in runners:
            await runner.wait_loaded(10)
        for seed in range(30):
            positions = await append_stock(store, 10, seed)
            # Both follow every append at once (the default backoff would make a loser wait).
            await asyncio.gather(*(runner.wait_until(positions[-1], 5) for runner in runners))
        assert [runner.failures for runner in runners] == [0, 0]
        assert failures() == 0
    assert await stock_rows(await backend.db()) == expected_stock(await everything(store))
