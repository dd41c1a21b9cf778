"""Rebuilding the services' projections on the recorded history: from zero, every one equals the
live one by checksum and row by row; a projection whose code drifted from what built the live
tables is reported with its differing tables and rows; and a rebuild from another process while
the service runs and writes swaps in cleanly, the service carrying on over the new tables."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shopstream_analytics.catalog import projections_of, select
from shopstream_analytics.rebuild import Rebuilt, compare_with_events, rebuild, rebuild_projections
from shopstream_analytics.sources import SERVICES, opened, store_refs
from shopstream_catalog.bootstrap import build
from shopstream_cli.platform import ServiceProcess
from shopstream_cli.sale import Tokens, World
from shopstream_contracts import REGISTRY
from shopstream_eventstore import RecordedEvent
from shopstream_infra import create_topics
from shopstream_infra.procs import free_ports
from shopstream_processing import Projection, Statement, Table, TableNames
from shopstream_service.runtime import open_readmodel
from shopstream_service.settings import ServiceSettings
from shopstream_testing.waiting import wait_until_async

from .history import RecordedHistory

pytestmark = pytest.mark.integration


def copy_stores(history: RecordedHistory, into: Path) -> str:
    """A private copy of the recorded stores (a rebuild swaps tables in place)."""
    shutil.copytree(history.workdir / "data", into, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return f"sqlite:///{into}/{{service}}.sqlite"


@pytest.fixture
def stores(recorded_history: RecordedHistory, tmp_path: Path) -> str:
    return copy_stores(recorded_history, tmp_path / "data")


async def test_every_projection_of_every_service_rebuilds_equal_to_the_live_one(stores: str) -> None:
    for ref in store_refs(stores):
        async with opened(ref) as store:
            head = await store.head_position()
        results = await rebuild(ref, verify=True)
        assert [r.projection for r in results] == [p.name for p in projections_of(ref.service)]
        for result in results:
            label = f"{ref.service}/{result.projection}"
            assert not result.differs, label
            assert result.comparison is not None, label
            assert result.comparison.identical, label
            assert result.comparison.position == head, label
            assert result.runner.previous == result.runner.rebuilt, label
            # The rebuilt generation took over at the head, with the very rows the live one had.
            assert (result.generation, result.position) == (2, head), label
            assert result.before == result.after, label
    assert {ref.service for ref in store_refs(stores)} == set(SERVICES)


@dataclass(frozen=True)
class Drifted:
    """A projection whose code changed after it built the live tables: ``skip`` events are lost."""

    inner: Projection
    skip: str
    version: int
    tables: Sequence[Table]

    @property
    def name(self) -> str:
        return self.inner.name

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        kept = [event for event in events if not event.type.endswith(self.skip)]
        return self.inner.apply(kept, {name: tables[name] for name in self.inner_tables()})

    def inner_tables(self) -> list[str]:
        return [table.name for table in self.inner.tables]


def drifted(service: str, name: str, skip: str, version: int = 1, extra: Table | None = None) -> Drifted:
    (inner,) = select(service, [name])
    return Drifted(inner, skip, version, (*inner.tables, *([extra] if extra else [])))


async def test_a_projection_that_drifted_from_the_live_one_is_reported_with_its_differences(
    stores: str, recorded_history: RecordedHistory
) -> None:
    (ref,) = store_refs(stores, ["catalog"])
    # Same name and version, but releases of reserved stock are no longer applied.
    (result,) = await rebuild_projections(ref, [drifted("catalog", "stock", "StockReleased")], verify=True)
    assert result.differs
    assert result.runner.previous is not None
    assert result.runner.previous != result.runner.rebuilt
    comparison = result.comparison
    assert comparison is not None
    assert not comparison.identical
    by_table = {d.table: d for d in comparison.differences}
    # Each sale cancelled orders and refunded units: the reservations of those SKUs were released.
    returned = {u.sku_id for r in recorded_history.reports for u in r.units if u.units_returned}
    stock = by_table["stock"]
    assert (stock.only_live, stock.only_rebuilt) == (len(returned), len(returned))
    assert stock.live_rows == stock.rebuilt_rows
    assert {row[0] for row in stock.live_samples} <= returned
    assert {row[0] for row in stock.live_samples} == {row[0] for row in stock.rebuilt_samples}
    released = by_table["reservations"]
    assert released.only_live == released.only_rebuilt > 0
    assert "deals" not in by_table


async def test_a_new_version_with_other_tables_is_reported_table_by_table(stores: str) -> None:
    (ref,) = store_refs(stores, ["catalog"])
    history = Table("stock_history", "sku_id text NOT NULL, at text NOT NULL, on_hand bigint NOT NULL")
    changed = drifted("catalog", "stock", "StockReleased", version=2, extra=history)
    (result,) = await rebuild_projections(ref, [changed], verify=True)
    assert result.differs
    assert result.generation == 2
    assert result.runner.previous is None  # the runner compares only generations of one version
    comparison = result.comparison
    assert comparison is not None
    assert comparison.live_version == 1
    by_table = {d.table: d for d in comparison.differences}
    assert set(by_table) == {"stock", "reservations", "stock_history"}
    new = by_table["stock_history"]
    assert (new.live_rows, new.rebuilt_rows) == (None, 0)
    # The new version serves now: its tables only.
    db = await open_readmodel(ref.url, "catalog")
    try:
        assert await db.fetch("SELECT version FROM projection_generations WHERE projection = 'stock'") == [
            (2,)
        ]
    finally:
        await db.close()


# --- while the service runs ----------------------------------------------------------------------


@pytest.fixture
async def running_catalog(stores: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    (port,) = free_ports(1)
    (ref,) = store_refs(stores, ["catalog"])
    spec = build(ServiceSettings())
    create_topics(
        kafka_bootstrap, [*spec.consumes, *(t.name for t in REGISTRY.topics() if t.service == "catalog")]
    )
    service = ServiceProcess(
        "catalog",
        port,
        tmp_path / "catalog.log",
        {
            **os.environ,
            "SHOPSTREAM_STORE_URL": ref.url,
            "SHOPSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SHOPSTREAM_CONSUMER_GROUP": f"catalog-rebuild-{uuid.uuid4().hex[:8]}",
            "SHOPSTREAM_HTTP_PORT": str(port),
            "SHOPSTREAM_CLOCK_CONTROL": "true",
        },
    )
    service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
            await wait_until_async(
                lambda: _ready(http), timeout=60, message="catalog ready", ignore=(httpx.TransportError,)
            )
        yield service
    finally:
        assert service.proc is not None
        service.proc.stop(signal.SIGTERM, 15)


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_a_rebuild_from_another_process_while_the_service_writes_swaps_in_cleanly(
    running_catalog: ServiceProcess, stores: str, recorded_history: RecordedHistory
) -> None:
    (ref,) = store_refs(stores, ["catalog"])
    world = World.new(Tokens(), recorded_history.reports[0].ids.run)
    receipts: list[int] = []
    rebuilding = asyncio.Event()
    rebuilt = asyncio.Event()
    async with httpx.AsyncClient(base_url=running_catalog.url, timeout=30) as http:

        async def receive(n: int) -> None:
            reply = await http.post(
                f"/skus/{world.deal_sku}/stock/receipts",
                headers={**world.as_staff(), "Idempotency-Key": f"rebuild-test-{n}"},
                json={"quantity": 1, "reference": f"PO-rebuild-{n}"},
            )
            assert reply.status_code == 201, reply.text
            if rebuilding.is_set() and not rebuilt.is_set():
                receipts.append(n)

        async def keep_receiving() -> int:
            n = 0
            while not rebuilt.is_set():
                await receive(n)
                n += 1
            return n

        async def rebuild_stock() -> list[Rebuilt]:
            rebuilding.set()
            try:
                # Small batches: the rebuild takes long enough for the service to write meanwhile.
                return await rebuild(ref, None, ["stock"], verify=True, batch_size=5)
            finally:
                rebuilt.set()

        before = await _on_hand(http, world)
        sent, (result,) = await asyncio.gather(keep_receiving(), rebuild_stock())
        assert receipts, "no write landed while the rebuild ran"
        await receive(sent)  # one more, applied by the service's runner to the rebuilt generation
        expected = before + sent + 1
        await wait_until_async(
            lambda: _on_hand_is(http, world, expected), timeout=30, message="stock applied"
        )
        async with opened(ref) as store:
            applied = await store.head_position()
        assert (await http.get("/readyz")).status_code == 200

    assert not result.differs
    assert result.generation == 2
    (stock,) = select("catalog", ["stock"])
    async with opened(ref) as store:
        db = await open_readmodel(ref.url, "catalog")
        try:
            # The service's runner follows the swapped-in generation and has applied the store:
            # the live tables equal a build from the events.
            generations = await db.fetch(
                "SELECT generation, serving FROM projection_generations WHERE projection = 'stock'"
            )
            assert generations == [(2, 1)]
            now = await compare_with_events(store, db, ref, stock)
            assert now.identical
            assert now.position >= applied
        finally:
            await db.close()


async def _on_hand(http: httpx.AsyncClient, world: World) -> int:
    reply = await http.get(f"/skus/{world.deal_sku}/stock", headers=world.as_staff())
    assert reply.status_code == 200, reply.text
    return int(reply.json()["on_hand"])


async def _on_hand_is(http: httpx.AsyncClient, world: World, expected: int) -> bool:
    return await _on_hand(http, world) == expected
