"""Policy runner against the real event stores: every command's effect happens exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from shopstream_eventstore import AppendRequest, EventStore, RecordedEvent
from shopstream_processing import Backoff, EventProcessingFailed, IssuedCommand, PolicyRunner, command_id
from shopstream_testing.waiting import wait_until_async

from .conftest import Backend
from .stockdemo import ORDER_PLACED, RESERVED, ReserveOnOrder, ReserveStock, ReserveStockHandler, order_placed

pytestmark = pytest.mark.integration

CHECKPOINT = "policy:reserve-on-order"


@asynccontextmanager
async def running(runner: PolicyRunner[ReserveStock]) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def place_orders(store: EventStore, count: int, seed: int) -> list[RecordedEvent]:
    rng = random.Random(seed)
    requests = [
        AppendRequest(f"order-{seed}-{n}", [order_placed(f"SKU-{rng.randrange(5)}", rng.randint(1, 3))])
        for n in range(count)
    ]
    for start in range(0, count, 25):
        await store.append_many(requests[start : start + 25])
    return [e for e in await store.read_all(0, 1_000_000) if e.type == ORDER_PLACED]


async def reservations(store: EventStore) -> list[RecordedEvent]:
    return [e for e in await store.read_all(0, 1_000_000) if e.type == RESERVED]


def assert_one_reservation_per_order(orders: list[RecordedEvent], reserved: list[RecordedEvent]) -> None:
    expected = {command_id(ReserveOnOrder.name, order.event_id): order for order in orders}
    assert len(reserved) == len(orders)
    assert {event.event_id for event in reserved} == set(expected)
    for event in reserved:
        cause = expected[event.event_id]
        assert event.data["order_id"] == cause.data["order_id"]
        assert event.metadata.causation_id == str(cause.event_id)
        assert event.metadata.correlation_id == "checkout-1"


async def test_replaying_a_policy_from_zero_appends_nothing_new(backend: Backend) -> None:
    store = backend.store
    orders = await place_orders(store, 120, seed=1)
    handler = ReserveStockHandler(store)
    runner = PolicyRunner(store, ReserveOnOrder(), handler, service="test", batch_size=25)
    async with running(runner):
        await runner.wait_until(orders[-1].position, timeout=30)
    assert_one_reservation_per_order(orders, await reservations(store))
    assert handler.calls == len(orders)
    assert await store.get_checkpoint(CHECKPOINT) >= orders[-1].position

    # Forget the checkpoint: every command is issued again, with the same ids, to no effect.
    head = await store.head_position()
    await store.save_checkpoint(CHECKPOINT, 0)
    replay = PolicyRunner(store, ReserveOnOrder(), handler, service="test", batch_size=25)
    async with running(replay):
        await replay.wait_until(head, timeout=30)
    assert handler.calls == 2 * len(orders)
    assert await store.head_position() == head
    assert_one_reservation_per_order(orders, await reservations(store))


class CrashesOnce(ReserveStockHandler):
    """Fails once at the n-th command, after earlier commands of the same batch took effect:
    the checkpoint must stay before the batch, and the retry must not double those effects."""

    def __init__(self, store: EventStore, fail_at: int) -> None:
        super().__init__(store)
        self.fail_at = fail_at
        self.failed = False

    async def __call__(self, issued: IssuedCommand[ReserveStock]) -> None:
        if self.calls + 1 == self.fail_at and not self.failed:
            self.failed = True
            self.calls += 1
            raise ConnectionError("broker went away")
        await super().__call__(issued)


async def test_a_failed_command_keeps_the_checkpoint_and_the_retry_acts_once(backend: Backend) -> None:
    store = backend.store
    orders = await place_orders(store, 60, seed=2)
    handler = CrashesOnce(store, fail_at=37)
    runner = PolicyRunner(
        store, ReserveOnOrder(), handler, service="test", batch_size=50, backoff=Backoff(initial=0.01)
    )
    async with running(runner):
        await runner.wait_until(orders[-1].position, timeout=30)
        assert runner.failures == 0
    assert handler.failed
    # 36 commands done, the 37th failed, then the whole batch of 50 again, then the other 10.
    assert handler.calls == 36 + 1 + 60
    assert_one_reservation_per_order(orders, await reservations(store))


async def test_a_restarted_policy_continues_from_its_checkpoint(backend: Backend) -> None:
    store = backend.store
    orders = await place_orders(store, 100, seed=3)
    first = PolicyRunner(store, ReserveOnOrder(), ReserveStockHandler(store), service="test", batch_size=10)
    async with running(first):
        await first.wait_until(orders[40].position, timeout=30)
    saved = await store.get_checkpoint(CHECKPOINT)
    assert saved >= orders[40].position

    handler = ReserveStockHandler(store)
    second = PolicyRunner(store, ReserveOnOrder(), handler, service="test", batch_size=10)
    async with running(second):
        await second.wait_until(orders[-1].position, timeout=30)
    assert handler.calls == len([o for o in orders if o.position > saved])
    assert_one_reservation_per_order(orders, await reservations(store))


async def test_a_poison_event_is_retried_loudly_and_never_skipped(backend: Backend) -> None:
    store = backend.store
    orders = await place_orders(store, 5, seed=4)

    class Broken(ReserveOnOrder):
        def react(self, event: RecordedEvent) -> list[ReserveStock]:
            if event.event_id == orders[2].event_id:
                raise KeyError("quantity")
            return list(super().react(event))

    runner = PolicyRunner(
        store,
        Broken(),
        ReserveStockHandler(store),
        service="test",
        batch_size=10,
        backoff=Backoff(initial=0.01, maximum=0.05),
    )
    async with running(runner):
        await wait_until_async(lambda: runner.failures >= 3, timeout=30, message="repeated failures")
        assert isinstance(runner.last_error, EventProcessingFailed)
        assert runner.last_error.event.event_id == orders[2].event_id
        assert runner.position < orders[2].position
        assert await store.get_checkpoint(CHECKPOINT) < orders[2].position
