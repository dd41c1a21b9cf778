"""Two independent stores connected through real Kafka: relay ⇒ topic ⇒ inbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shopstream_contracts import REGISTRY
from shopstream_eventstore import AppendRequest, EventStore
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
async def running(*jobs: object) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(job) for job in jobs]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_ten_thousand_events_arrive_exactly_once_in_key_order(
    kafka_node_factory: KafkaNodeFactory, tmp_path: Path
) -> None:
    # A node of its own: the contract topic must hold only this test's events.
    kafka_bootstrap = kafka_node_factory().bootstrap_servers
    create_topics(kafka_bootstrap, [ORDERS], partitions=6)
    source = await SqliteEventStore.open(tmp_path / "orders.sqlite")
    target = await SqliteEventStore.open(tmp_path / "commission.sqlite")
    await fill(source, 10_000, keys=400)
    sent = await read_everything(source)
    async with running(
        run_relay(source, kafka_bootstrap, "orders", REGISTRY),
        run_inbox(target, kafka_bootstrap, "commission", REGISTRY, [ORDERS], group_id="commission"),
    ):
        await wait_until_async(
            lambda: _count(target, len(sent)),
            timeout=120,
            interval=0.5,
            message="all 10,000 events stored by the inbox",
        )
    report = compare(sent, await read_everything(target), key_field="order_id")
    assert report.exact, report
    assert report.received == 10_000
    await source.close()
    await target.close()


async def _count(store: EventStore, expected: int) -> bool:
    return len(await read_everything(store)) >= expected
