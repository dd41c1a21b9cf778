"""A demo projection (stock per SKU) and policy (reserve stock for each order) over test events.

Imported by the tests, and run as a script by the kill -9 tests:

    python stockdemo.py projection|policy sqlite PATH
    python stockdemo.py projection|policy postgres DSN SCHEMA

The worker prints ``position N`` each time its checkpoint moves, so a test can wait for
progress and kill it mid-stream without sleeping.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from shopstream_eventstore import EventMetadata, EventStore, NewEvent, RecordedEvent
from shopstream_observability import configure_logging
from shopstream_processing import (
    IssuedCommand,
    PolicyRunner,
    ProjectionRunner,
    ReadModelDb,
    Statement,
    Table,
    TableNames,
)

RECEIVED = "shopstream.test.StockReceived"
RESERVED = "shopstream.test.StockReserved"
RELEASED = "shopstream.test.StockReleased"
ORDER_PLACED = "shopstream.test.OrderPlaced"

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)

# (on_hand, reserved) change per unit of quantity
_EFFECT = {RECEIVED: (1, 0), RESERVED: (-1, 1), RELEASED: (1, -1)}


def stock_event(type_: str, sku: str, quantity: int) -> NewEvent:
    return NewEvent(uuid.uuid4(), type_, {"sku": sku, "quantity": quantity}, EventMetadata(occurred_at=T0))


def order_placed(sku: str, quantity: int) -> NewEvent:
    data = {"order_id": str(uuid.uuid4()), "sku": sku, "quantity": quantity}
    return NewEvent(
        uuid.uuid4(), ORDER_PLACED, data, EventMetadata(occurred_at=T0, correlation_id="checkout-1")
    )


def expected_stock(events: Iterable[RecordedEvent]) -> dict[str, tuple[int, int, int]]:
    """What the ``stock`` table must hold: sku ⇒ (on_hand, reserved, events), folded in Python."""
    stock: dict[str, tuple[int, int, int]] = defaultdict(lambda: (0, 0, 0))
    for event in events:
        if event.type in _EFFECT:
            on_hand, reserved = _EFFECT[event.type]
            quantity = int(event.data["quantity"])
            was = stock[str(event.data["sku"])]
            stock[str(event.data["sku"])] = (
                was[0] + on_hand * quantity,
                was[1] + reserved * quantity,
                was[2] + 1,
            )
    return dict(stock)


class StockProjection:
    """Counters, not facts: applying an event twice changes the result, so a double apply shows."""

    name = "stock"
    version = 1
    tables = (
        Table(
            "stock",
            "sku text PRIMARY KEY, on_hand bigint NOT NULL, reserved bigint NOT NULL, events bigint NOT NULL",
        ),
        Table(
            "stock_movements",
            "position bigint PRIMARY KEY, sku text NOT NULL, on_hand_delta bigint NOT NULL",
            indexes=("sku",),
        ),
    )
    effects: ClassVar = _EFFECT

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        stock, movements = tables["stock"], tables["stock_movements"]
        statements = []
        for event in events:
            if event.type not in self.effects:
                continue
            on_hand, reserved = self.effects[event.type]
            sku, quantity = str(event.data["sku"]), int(event.data["quantity"])
            statements.append(
                Statement(
                    f"INSERT INTO {stock} (sku, on_hand, reserved, events) VALUES ($1, $2, $3, 1) "
                    f"ON CONFLICT (sku) DO UPDATE SET on_hand = {stock}.on_hand + excluded.on_hand, "
                    f"reserved = {stock}.reserved + excluded.reserved, events = {stock}.events + 1",
                    (sku, on_hand * quantity, reserved * quantity),
                )
            )
            statements.append(
                Statement(
                    f"INSERT INTO {movements} (position, sku, on_hand_delta) VALUES ($1, $2, $3)",
                    (event.position, sku, on_hand * quantity),
                )
            )
        return statements


class MissesReleasesProjection(StockProjection):
    """Deliberately wrong: forgets releases. Its checksum must differ from the real one."""

    effects: ClassVar = {RECEIVED: (1, 0), RESERVED: (-1, 1)}


@dataclass(frozen=True)
class ReserveStock:
    order_id: str
    sku: str
    quantity: int


class ReserveOnOrder:
    name = "reserve-on-order"

    def react(self, event: RecordedEvent) -> Sequence[ReserveStock]:
        if event.type != ORDER_PLACED:
            return []
        data = event.data
        return [ReserveStock(str(data["order_id"]), str(data["sku"]), int(data["quantity"]))]


class ReserveStockHandler:
    """The command handler: its effect is an append under the command-derived event id."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.calls = 0

    async def __call__(self, issued: IssuedCommand[ReserveStock]) -> None:
        self.calls += 1
        command = issued.command
        data = {"sku": command.sku, "quantity": command.quantity, "order_id": command.order_id}
        event = NewEvent(issued.event_id(), RESERVED, data, issued.metadata(T0))
        await self.store.append(f"stock-{command.sku}", [event])


# -- the worker process -------------------------------------------------------------------------


async def open_backend(target: Sequence[str]) -> tuple[EventStore, ReadModelDb]:
    if target[0] == "sqlite":
        from shopstream_eventstore.sqlite import SqliteEventStore
        from shopstream_processing.sqlite import SqliteReadModel

        return await SqliteEventStore.open(target[1]), await SqliteReadModel.open(target[1])
    from shopstream_eventstore.postgres import PostgresEventStore
    from shopstream_processing.postgres import PostgresReadModel

    dsn, schema = target[1], target[2]
    return await PostgresEventStore.open(dsn, schema), await PostgresReadModel.open(dsn, schema)


async def main(mode: str, target: Sequence[str]) -> None:
    configure_logging("stockdemo")  # on stderr: stdout carries only the positions
    store, db = await open_backend(target)
    runner: ProjectionRunner | PolicyRunner[ReserveStock]
    if mode == "projection":
        runner = ProjectionRunner(store, db, StockProjection(), service="test", batch_size=20)
    else:
        runner = PolicyRunner(
            store, ReserveOnOrder(), ReserveStockHandler(store), service="test", batch_size=20
        )
    work = asyncio.create_task(runner.run())
    while not work.done():
        seen = runner.position
        print(f"position {seen}", flush=True)
        waiting = asyncio.create_task(runner.wait_until(seen + 1, timeout=3600))
        await asyncio.wait([work, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
    await work


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
