"""Two independent stores connected through real Kafka: relay ⇒ topic ⇒ inbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from shopstream_contracts import REGISTRY
from shopstream_eventstore import AppendRequest, AppendResult, EventStore, StoreUnavailable
from shopstream_eventstore.postgres import PostgresEventStore
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_infra import create_topics
from shopstream_messaging.pipeline import run_inbox, run_relay
from shopstream_messaging.reconcile import compare, read_everything
from shopstream_testing.contract_events import order_events
from shopstream_testing.plugin import KafkaNodeFactory
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.integration

ORDERS = "shopstream.orders.order"


async def fill(store: EventStore, count: int, keys: int, chunk: int = 500) -> None:
    requests = [AppendRequest(stream, [event]) for stream, event in order_events(count, keys)]
    for start in range(0, len(requests), chunk):
        await store.append_many(requests[start : start + chunk])


@contextlib.asynccontextmanager
async def running(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def deliver(bootstrap: str, source: EventStore, target: EventStore, expected: int) -> None:
    """Run the orders relay and the commission inbox until ``expected`` events are in the target,
    then check every one arrived exactly once, in per-key order."""
    create_topics(bootstrap, [ORDERS], partitions=6)
    async with running(
        run_relay(source, bootstrap, "orders", REGISTRY),
        run_inbox(
            target, bootstrap, "commission", REGISTRY, [ORDERS], group_id="commission", max_records=300
        ),
    ):
        await wait_until_async(
            lambda: _count(target, expected), timeout=120, interval=0.5, message=f"{expected} events stored"
        )
    report = compare(await read_everything(source), await read_everything(target), key_field="order_id")
    assert report.exact, report
    assert report.received == expected


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_ten_thousand_events_arrive_exactly_once_in_key_order(
    backend: str, kafka_node_factory: KafkaNodeFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        source: EventStore = await SqliteEventStore.open(tmp_path / "orders.sqlite")
        target: EventStore = await SqliteEventStore.open(tmp_path / "commission.sqlite")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        source = await PostgresEventStore.open(dsn, "orders")
        target = await PostgresEventStore.open(dsn, "commission")
    await fill(source, 10_000, keys=400)
    # A node of its own: the contract topic must hold only this test's events.
    await deliver(kafka_node_factory().bootstrap_servers, source, target, 10_000)
    await source.close()
    await target.close()


class FlakyStore(SqliteEventStore):
    """A store whose first appends fail as if its disk were gone: nothing may be committed to
    Kafka for them, so the inbox must get the same messages again."""

    failures_left = 3

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if self.failures_left:
            self.failures_left -= 1
            raise StoreUnavailable("the disk is gone")
        return await super().append_many(requests)


async def test_an_append_that_fails_is_redelivered_not_committed(
    kafka_node_factory: KafkaNodeFactory, tmp_path: Path
) -> None:
    source = await SqliteEventStore.open(tmp_path / "orders.sqlite")
    target = await FlakyStore.open(tmp_path / "commission.sqlite")
    assert isinstance(target, FlakyStore)
    await fill(source, 2000, keys=50)
    await deliver(kafka_node_factory().bootstrap_servers, source, target, 2000)
    assert target.failures_left == 0
    await source.close()
    await target.close()


async def _count(store: EventStore, expected: int) -> bool:
    return len(await read_everything(store)) >= expected
