"""Projection rebuild: the orders service's own ``orders`` read model rebuilt from position 0 by
``ProjectionRunner.rebuild``, against a raw scan of the same events (``SELECT … ORDER BY
position`` in pages of the same size, ``orjson.loads`` of every payload).

The store holds a flash sale's orders: each order placed (the golden OrderPlaced payload) and then
confirmed, or for one in ten rejected. The read model is first built live, by the runner
following the store as a service does; every rebuild must give the same checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from shopstream_eventstore import AppendRequest, EventMetadata, EventStore, NewEvent, StreamState
from shopstream_eventstore.postgres import PostgresEventStore
from shopstream_eventstore.sqlite import SqliteEventStore, ThreadedConnection
from shopstream_orders.projections import OrdersView
from shopstream_processing import ProjectionRunner, ReadModelDb
from shopstream_processing.postgres import PostgresReadModel
from shopstream_processing.sqlite import SqliteReadModel

from ..context import BenchContext
from ..figures import Figure, Target
from ..measure import Stopwatch
from ..registry import Benchmark
from .store import OCCURRED_AT, explained, golden

PAGE = 5_000
"""Events per read while rebuilding (the runner's ``rebuild_batch_size``, its default) and per
read of the raw scan alike."""
LIVE_BATCH = 500
"""Events per batch while the runner follows the store (its ``batch_size``)."""


def sale(orders: int) -> list[AppendRequest]:
    """Each order's stream: placed, then confirmed (nine in ten) or rejected."""
    placed = golden("shopstream.orders.OrderPlaced")
    confirmed = golden("shopstream.orders.OrderConfirmed")
    rejected = golden("shopstream.orders.OrderRejected")
    prefix = uuid.uuid4().hex[:8]
    requests = []
    for n in range(orders):
        order_id = f"ord_{prefix}{n:08d}"
        outcome = ("OrderRejected", rejected) if n % 10 == 9 else ("OrderConfirmed", confirmed)
        events = [
            _event("OrderPlaced", {**placed, "order_id": order_id}),
            _event(outcome[0], {**outcome[1], "order_id": order_id}),
        ]
        requests.append(AppendRequest(f"order-{order_id}", events, StreamState.NO_STREAM))
    return requests


def _event(name: str, data: dict[str, Any]) -> NewEvent:
    return NewEvent(uuid.uuid4(), f"shopstream.orders.{name}", data, EventMetadata(OCCURRED_AT))


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    open: Callable[[], Awaitable[tuple[EventStore, ReadModelDb]]]
    raw_scan: Callable[[], Awaitable[int]]
    """Reads every event in pages and decodes every payload; returns how many it read."""


def sqlite_backend(ctx: BenchContext) -> Backend:
    # The service's layout: store and read models in one file.
    path = ctx.scratch("projection-sqlite") / "orders.sqlite"

    async def open_() -> tuple[EventStore, ReadModelDb]:
        return await SqliteEventStore.open(path), await SqliteReadModel.open(path)

    async def raw_scan() -> int:
        conn = ThreadedConnection("raw-scan")
        await conn.open(path)
        try:
            return await _scan(
                lambda after: conn.run(
                    lambda c: c.execute(
                        "SELECT position, data FROM events WHERE position > ? ORDER BY position LIMIT ?",
                        (after, PAGE),
                    ).fetchall()
                )
            )
        finally:
            await conn.close()

    return Backend("SQLite", open_, raw_scan)


def postgres_backend(ctx: BenchContext) -> Backend:
    dsn = ctx.postgres_database("bench_projection")

    async def open_() -> tuple[EventStore, ReadModelDb]:
        return await PostgresEventStore.open(dsn, "orders"), await PostgresReadModel.open(dsn, "orders_read")

    async def raw_scan() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await _scan(
                lambda after: conn.fetch(
                    "SELECT position, data FROM orders.events WHERE position > $1 ORDER BY position LIMIT $2",
                    after,
                    PAGE,
                )
            )
        finally:
            await conn.close()

    return Backend("PostgreSQL", open_, raw_scan)


async def _scan(page: Callable[[int], Awaitable[list[Any]]]) -> int:
    position = count = 0
    while rows := await page(position):
        # Each payload is decoded and let go: a page's worth of dicts kept alive would make the
        # collector's passes a large part of the baseline, and the baseline is the fastest scan.
        for row in rows:
            orjson.loads(row[1])
        count += len(rows)
        position = rows[-1][0]
    return count


@asynccontextmanager
async def following(runner: ProjectionRunner) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def measure_backend(ctx: BenchContext, backend: Backend) -> Figure:
    orders = ctx.size(smoke=250, quick=25_000, full=100_000)
    store, db = await backend.open()
    try:
        ctx.step(f"projection {backend.name}: storing {2 * orders:,} events")
        requests = sale(orders)
        for start in range(0, len(requests), 500):
            await store.append_many(requests[start : start + 500])
        head = await store.head_position()
        runner = ProjectionRunner(
            store, db, OrdersView(), service="orders", batch_size=LIVE_BATCH, rebuild_batch_size=PAGE
        )
        async with following(runner):
            await runner.wait_until(head, timeout=600)
        live = await runner.checksum()
        samples, raw, mismatches, scanned = [], [], 0, 0
        for repeat in range(ctx.repeats):
            ctx.step(f"projection {backend.name}: rebuild {repeat + 1}/{ctx.repeats}")
            with Stopwatch() as watch:
                result = await runner.rebuild()
            samples.append(head / watch.seconds)
            rebuilt = await runner.checksum()
            mismatches += int(rebuilt != live or result.position != head)
            with Stopwatch() as watch:
                scanned = await backend.raw_scan()
            raw.append(scanned / watch.seconds)
    finally:
        await db.close()
        await store.close()
    figure = Figure(
        "projection",
        f"{backend.name} rebuild of orders' read model",
        "events/s",
        samples,
        baseline=f"raw SELECT … ORDER BY position ({PAGE}/page) + orjson.loads",
        baseline_samples=raw,
        targets=[
            Target("at_least", 100_000, "≥ 100,000 events/s"),
            Target("ratio_at_least", 0.5, "≥ 0.5 × raw scan + decode"),
        ],
        checks={"mismatched_checksums": mismatches, "missing_events": 2 * orders - scanned},
    )
    return explained(figure, {"rebuild": NOTE})


NOTE = (
    "Profile (py-spy and per-thread CPU time, 60,000 events on SQLite, before this work): a rebuild "
    "was Python per event under one GIL, ~1 core busy on 2: pydantic decode of every payload "
    "(REGISTRY.decode, ~6 µs), stdlib json of OrderPlaced for `placed` (~7 µs), RecordedEvent "
    "decoding in the store's reader (~15 µs incl. the hop), and an INSERT then an UPDATE per order "
    "executed one by one. What moved: OrdersView opts in to raw events (`apply_raw`, the runner "
    "reads `read_all_raw`/`subscribe_raw`); payloads at the latest version already in canonical "
    "form (every field, no other, UTC `…Z` times) are read straight from orjson without pydantic, "
    "anything else still goes through decode/upcast + to_data; `placed` is orjson with sorted keys "
    "(byte-identical, checked ASCII); an order placed and updated within one page is one folded "
    "INSERT (a conflict fails the batch and the runner re-applies it event by event, so rows equal "
    "the per-event fold); JSON is parsed per event in a generator, since keeping a page's dicts "
    "alive made the cyclic GC's full passes ~25% of the time. Runner (all projections): rebuild "
    "pages of 5,000 (fewer fsyncs on SQLite), the next page folded while the previous page's "
    "transaction runs (apply is pure), secondary indexes built after the bulk fill. Left: ~15 µs "
    "CPU/event still mostly serial under the GIL — SQLite insert of a ~1 KB row ~4-7 µs, the "
    "store's raw read ~2.5 µs, orjson.loads ~1.5 µs, the fold ~2.5 µs, dropping the old "
    "generation's tables in the swap ~15% on SQLite; on PostgreSQL the rebuild is close to the raw "
    "scan itself, so ≥ 100,000 events/s needs a faster read (the raw scan alone is below it here) "
    "and COPY instead of executemany for the folded rows."
)


async def run(ctx: BenchContext) -> list[Figure]:
    return [
        await measure_backend(ctx, sqlite_backend(ctx)),
        await measure_backend(ctx, postgres_backend(ctx)),
    ]


BENCHMARK = Benchmark(
    name="projection",
    title="projection rebuild (orders' read model) against a raw scan and decode",
    run=run,
    order=20,
)
