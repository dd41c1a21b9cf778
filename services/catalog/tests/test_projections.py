"""The read models, fed by a real SQLite store: what the queries show equals what the deciders
folded, and a rebuild from position 0 yields the same rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shopstream_catalog.commands import (
    Actor,
    CloseDeal,
    CreateProduct,
    ExpireDeferredReservations,
    NewPrice,
    NewSku,
    OnboardBrand,
    OpenDeal,
    ReceiveStock,
    RegisterSku,
    ReleaseStock,
    ReserveStock,
    SetListPrice,
    StockCommand,
)
from shopstream_catalog.domain import BRAND, PRODUCT, STOCK
from shopstream_catalog.events import INTERNAL_EVENTS
from shopstream_catalog.projections import (
    CatalogView,
    StockView,
    brand,
    products,
    reservations_of_order,
    sku_stock,
    waiting_since,
)
from shopstream_contracts import Money
from shopstream_eventstore import EventMetadata, EventStore
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_processing import ProjectionRunner, ReadModelDb
from shopstream_processing.sqlite import SqliteReadModel
from shopstream_service.domain import Decider, fold
from shopstream_service.events import EventCatalog

pytestmark = pytest.mark.integration

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
ADMIN = Actor("usr_admin", frozenset({"admin"}))
SKU = "prd-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


class Backend:
    def __init__(self, store: EventStore, db: ReadModelDb) -> None:
        self.store = store
        self.db = db
        self.catalog = EventCatalog(INTERNAL_EVENTS)
        self.runners = [
            ProjectionRunner(store, db, p, service="catalog") for p in (CatalogView(), StockView())
        ]

    async def run(self, decider: Decider[Any, Any], stream: str, commands: Sequence[object]) -> None:
        for command in commands:
            recorded = await self.store.read_stream(stream)
            state = fold(decider, [self.catalog.decode(r) for r in recorded])
            events = decider.decide(command, state)
            if events:
                new = [self.catalog.to_new(e, uuid.uuid4(), EventMetadata(occurred_at=T0)) for e in events]
                await self.store.append(stream, new)

    async def caught_up(self) -> None:
        head = await self.store.head_position()
        await asyncio.gather(*(runner.wait_until(head, 10) for runner in self.runners))


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    path = tmp_path / "catalog.sqlite"
    backend = Backend(await SqliteEventStore.open(path), await SqliteReadModel.open(path))
    tasks = [asyncio.create_task(runner.run()) for runner in backend.runners]
    try:
        yield backend
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await backend.db.close()
        await backend.store.close()


def reserve(order: str, quantity: int, deal: str | None = None, buyer: str = "usr_ana") -> ReserveStock:
    return ReserveStock(SKU, order, buyer, quantity, deal, f"res-{order}", at(10), at(10))


async def test_the_read_models_show_what_the_deciders_decided(backend: Backend) -> None:
    await backend.run(BRAND, "brand-brd", [OnboardBrand("brd", "Glow", "BR", "BRL", ADMIN, T0)])
    sku = NewSku(SKU, {"size": "M"}, None, (NewPrice("BR", brl(12990)),))
    create = CreateProduct(
        "prd", "brd", True, "Serum", None, (sku, NewSku("prd-2", {"size": "L"})), ADMIN, T0
    )
    await backend.run(
        PRODUCT, "product-prd", [create, SetListPrice("prd", SKU, "BR", brl(9990), ADMIN, at(1))]
    )
    commands: list[StockCommand] = [
        RegisterSku(SKU, "prd", "brd", T0),
        ReceiveStock(SKU, 10, None, ADMIN, at(1)),
        reserve("o-waits", 1, deal="deal-x"),
        OpenDeal(SKU, "deal-1", "liv", 4, 2, at(5), at(600), at(5)),
        reserve("o-deal", 2, deal="deal-1"),
        reserve("o-plain", 3),
        reserve("o-refused", 5),
        ReleaseStock(SKU, "o-plain", "order_refunded", 1, "rf-1", at(20)),
        ReleaseStock(SKU, "o-deal", "order_cancelled", None, None, at(21)),
        reserve("o-deal-2", 1, deal="deal-1", buyer="usr_bob"),
        CloseDeal(SKU, "deal-1", "deadline", at(30), at(30)),
    ]
    await backend.run(STOCK, f"stock-{SKU}", commands)
    await backend.caught_up()

    assert (await brand(backend.db, "brd")) is not None
    (product,) = await products(
        backend.db, brand_id="brd", product_id=None, after="", limit=10, with_stock=True
    )
    assert [(s.sku_id, [p.price.amount for p in s.list_prices]) for s in product.skus] == [
        (SKU, [9990]),
        ("prd-2", []),
    ]

    state = fold(STOCK, [backend.catalog.decode(r) for r in await backend.store.read_stream(f"stock-{SKU}")])
    stock = await sku_stock(backend.db, SKU)
    assert stock is not None
    assert (stock.on_hand, stock.reserved, stock.available) == (
        state.on_hand,
        state.reserved,
        state.available,
    )
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 3, 7)
    assert product.skus[0].stock is not None
    assert product.skus[0].stock.available == 7
    (deal,) = stock.deals
    assert (deal.units_allocated, deal.units_left, deal.end_reason) == (
        4,
        state.deals["deal-1"].units_left,
        "deadline",
    )
    assert deal.units_left == 3

    async def status(order: str) -> tuple[str, int, str | None]:
        (row,) = await reservations_of_order(backend.db, order)
        return row.status, row.released, row.reason

    assert [await status(o) for o in ("o-deal", "o-plain", "o-refused", "o-deal-2", "o-waits")] == [
        ("released", 2, None),
        ("reserved", 1, None),
        ("rejected", 0, "insufficient_stock"),
        ("reserved", 0, None),
        ("waiting", 0, None),
    ]
    assert list(await waiting_since(backend.db)) == [SKU]

    await backend.run(STOCK, f"stock-{SKU}", [ExpireDeferredReservations(SKU, at(100), at(100))])
    await backend.caught_up()
    (expired,) = await reservations_of_order(backend.db, "o-waits")
    assert (expired.status, expired.reason, expired.waiting_since) == ("rejected", "deal_not_active", at(10))
    assert await waiting_since(backend.db) == {}

    for runner in backend.runners:
        result = await runner.rebuild(verify=True)
        assert result.previous == result.rebuilt, runner.name
