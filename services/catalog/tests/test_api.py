"""The catalog service over HTTP with its real store and real Kafka.

Orders' and live's events are produced onto Kafka the way their relays would, so the reservation
path goes through the inbox, the stock policy and the projections exactly as in production; what
the catalog publishes is read back from its Kafka topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from shopstream_catalog.bootstrap import LONGEST_WAIT_FOR_A_DEAL, build
from shopstream_catalog.commands import ReserveStock
from shopstream_catalog.domain import STOCK
from shopstream_catalog.handlers import stock_stream
from shopstream_catalog.policies import reservation_id_for
from shopstream_contracts import Money
from shopstream_contracts.catalog.v1 import StockReservationRejected, StockReserved
from shopstream_contracts.live.v1 import FlashDealEnded, FlashDealStarted
from shopstream_contracts.orders.v1 import (
    Attribution,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    PaymentPlan,
)
from shopstream_contracts.topics import CATALOG_STOCK
from shopstream_processing import Statement
from shopstream_service.commands import ConcurrencyConflict, Outcome
from shopstream_service.settings import ServiceSettings
from shopstream_service.testing import RunningService, running_service
from shopstream_testing.topics import read_topic
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], message: str, timeout: float = 30) -> T:
    """The first non-empty result of ``probe`` (the inbox and the policy are asynchronous)."""
    found: T = await wait_until_async(
        cast("Callable[[], Awaitable[Any]]", probe), timeout=timeout, message=message
    )
    return found


async def _queryable(s: RunningService) -> bool:
    """Ready, and every projection's tables exist (the runners create them on start)."""
    if (await s.http.get("/readyz")).status_code != 200:
        return False
    tables = [t.name for p in s.runtime.spec.projections for t in p.tables]
    try:
        await s.context.readmodel.read([Statement(f"SELECT 1 FROM {t} LIMIT 1") for t in tables])
    except Exception:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgres"])
async def svc(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[RunningService]:
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path}/catalog.sqlite"
    else:
        store_url = request.getfixturevalue("postgres_dsn")
    async with running_service(
        build(ServiceSettings()), kafka_bootstrap=kafka_bootstrap, store_url=store_url
    ) as s:
        await eventually(lambda: _queryable(s), "catalog ready")
        yield s


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


@dataclass
class World:
    """One onboarded brand with one product (two SKUs), under ids no other test uses."""

    svc: RunningService
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def __post_init__(self) -> None:
        self.brand = f"brd_{self.tag}"
        self.product = f"prd_{self.tag}"
        self.sku = f"{self.product}-1"
        self.other_sku = f"{self.product}-2"
        self.live = f"liv_{self.tag}"

    @property
    def admin(self) -> dict[str, str]:
        return self.svc.headers("usr_root", "admin")

    @property
    def staff(self) -> dict[str, str]:
        return self.svc.headers(f"usr_ops_{self.tag}", "brand", brands=[self.brand])

    @property
    def other_staff(self) -> dict[str, str]:
        return self.svc.headers(f"usr_rival_{self.tag}", "brand", brands=[f"brd_rival_{self.tag}"])

    def viewer(self, name: str = "ana") -> dict[str, str]:
        return self.svc.headers(f"usr_{name}_{self.tag}", "viewer")

    async def onboard(self) -> None:
        body = {"brand_id": self.brand, "name": "Glow", "country": "BR", "default_currency": "BRL"}
        reply = await self.svc.http.post("/brands", json=body, headers=self.admin)
        assert reply.status_code == 201, reply.text

    async def create_product(self) -> dict[str, Any]:
        body = {
            "product_id": self.product,
            "brand_id": self.brand,
            "title": "Vitamin C serum",
            "skus": [
                {
                    "options": {"size": "30ml"},
                    "list_prices": [{"market": "BR", "price": brl(12990).model_dump()}],
                },
                {"options": {"size": "50ml"}, "barcode": "7891234567895"},
            ],
        }
        reply = await self.svc.http.post("/products", json=body, headers=self.staff)
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created

    async def receive(self, quantity: int, sku: str | None = None) -> dict[str, Any]:
        reply = await self.svc.http.post(
            f"/skus/{sku or self.sku}/stock/receipts", json={"quantity": quantity}, headers=self.staff
        )
        assert reply.status_code == 201, reply.text
        stock: dict[str, Any] = reply.json()
        return stock

    async def ready(self, stock: int) -> None:
        await self.onboard()
        await self.create_product()
        await self.receive(stock)

    def order(
        self,
        buyer: str = "ana",
        quantity: int = 1,
        *,
        deal: str | None = None,
        order_id: str | None = None,
        sku: str | None = None,
    ) -> OrderPlaced:
        unit = brl(4990 if deal else 12990)
        total = Money(amount=unit.amount * quantity, currency="BRL")
        return OrderPlaced(
            order_id=order_id or f"ord_{uuid.uuid4().hex[:12]}",
            buyer_id=f"usr_{buyer}_{self.tag}",
            market="BR",
            line=OrderLine(
                product_id=self.product,
                sku_id=sku or self.sku,
                brand_id=self.brand,
                quantity=quantity,
                unit_price=unit,
                list_price=brl(12990),
                line_total=total,
            ),
            attribution=Attribution(
                channel="live",
                live_id=self.live,
                brand_id=self.brand,
                agreement_id=f"agr_{self.tag}",
                host_ids=[f"usr_host_{self.tag}"],
                price_source="flash_deal" if deal else "list",
                flash_deal_id=deal,
                live_offset_ms=60_000,
            ),
            payment_plan=PaymentPlan(method="card", installments=1, interest_free=True),
            total=total,
            occurred_at=self.svc.clock.now(),
        )

    def deal_started(self, deal: str, units: int, cap: int) -> FlashDealStarted:
        now = self.svc.clock.now()
        return FlashDealStarted(
            live_id=self.live,
            deal_id=deal,
            brand_id=self.brand,
            product_id=self.product,
            sku_id=self.sku,
            deal_price=brl(4990),
            units=units,
            per_buyer_cap=cap,
            duration_ms=300_000,
            ends_at=now + timedelta(minutes=5),
            started_by=f"usr_host_{self.tag}",
            live_offset_ms=60_000,
            occurred_at=now,
        )

    def deal_ended(self, deal: str) -> FlashDealEnded:
        return FlashDealEnded(
            live_id=self.live,
            deal_id=deal,
            sku_id=self.sku,
            reason="cancelled",
            ended_by=f"usr_host_{self.tag}",
            live_offset_ms=120_000,
            occurred_at=self.svc.clock.now(),
        )

    async def reservation(self, order_id: str, *statuses: str) -> dict[str, Any]:
        """The order's reservation once it reached one of ``statuses``."""

        async def probe() -> dict[str, Any] | None:
            reply = await self.svc.http.get(f"/orders/{order_id}/reservations", headers=self.admin)
            if reply.status_code != 200:
                return None
            (row,) = reply.json()
            return cast("dict[str, Any]", row) if row["status"] in statuses else None

        return await eventually(probe, f"order {order_id} {'/'.join(statuses)}")

    async def stock(self) -> dict[str, Any]:
        reply = await self.svc.http.get(f"/skus/{self.sku}/stock", headers=self.staff)
        assert reply.status_code == 200, reply.text
        stock: dict[str, Any] = reply.json()
        return stock

    async def stock_events(self) -> list[str]:
        recorded = await self.svc.context.store.read_stream(stock_stream(self.sku))
        return [r.type.rsplit(".", 1)[1] for r in recorded]


# --- brands -----------------------------------------------------------------------------------


async def test_an_admin_onboards_brands_everyone_signed_in_reads_them(svc: RunningService) -> None:
    w = World(svc)
    body = {"brand_id": w.brand, "name": "Glow", "country": "BR", "default_currency": "BRL"}
    keyed = {**w.admin, "Idempotency-Key": f"k-{w.tag}"}
    first = await svc.http.post("/brands", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    assert first.json() | {"onboarded_at": None} == body | {"onboarded_at": None}
    retried = await svc.http.post("/brands", json=body, headers=keyed)
    assert (retried.status_code, retried.json()) == (201, first.json())
    again = await svc.http.post("/brands", json=body, headers=w.admin)
    assert (again.status_code, again.json()["code"]) == (409, "brand_exists")
    assert [e.type for e in await svc.context.store.read_stream(f"brand-{w.brand}")] == [
        "shopstream.catalog.BrandOnboarded"
    ]

    assert (await svc.http.get(f"/brands/{w.brand}", headers=w.viewer())).json()["name"] == "Glow"
    listed = await svc.http.get("/brands", params={"after": w.brand[:-1], "limit": 200}, headers=w.viewer())
    assert w.brand in [b["brand_id"] for b in listed.json()]
    unknown = await svc.http.get(f"/brands/brd_nope_{w.tag}", headers=w.viewer())
    assert (unknown.status_code, unknown.json()["code"]) == (404, "brand_not_found")


async def test_onboarding_is_refused_precisely(svc: RunningService) -> None:
    w = World(svc)
    body = {"brand_id": w.brand, "name": "Glow", "country": "BR", "default_currency": "BRL"}
    anonymous = await svc.http.post("/brands", json=body)
    assert anonymous.status_code == 401
    staff = await svc.http.post("/brands", json=body, headers=w.staff)
    assert (staff.status_code, staff.json()["code"]) == (403, "role_required")
    invalid = await svc.http.post("/brands", json=body | {"country": "Brazil"}, headers=w.admin)
    assert invalid.status_code == 422
    assert [e["field"] for e in invalid.json()["errors"]] == ["body.country"]
    assert (await svc.http.get(f"/brands/{w.brand}", headers=w.admin)).status_code == 404


# --- products and prices ----------------------------------------------------------------------


async def test_brand_staff_create_products_with_skus_and_list_prices(svc: RunningService) -> None:
    w = World(svc)
    await w.onboard()
    created = await w.create_product()
    assert created["product_id"] == w.product
    assert [(s["sku_id"], s["options"]) for s in created["skus"]] == [
        (w.sku, {"size": "30ml"}),
        (w.other_sku, {"size": "50ml"}),
    ]
    assert [p["price"] for p in created["skus"][0]["list_prices"]] == [{"amount": 12990, "currency": "BRL"}]
    assert created["skus"][0]["stock"] == {"on_hand": 0, "reserved": 0, "available": 0}

    public = (await svc.http.get(f"/products/{w.product}", headers=w.viewer())).json()
    assert public["title"] == "Vitamin C serum"
    assert [s["stock"] for s in public["skus"]] == [None, None], "stock is for the brand only"
    listing = await svc.http.get("/products", params={"after": w.product[:-1]}, headers=w.viewer())
    assert w.product in [p["product_id"] for p in listing.json()]

    console = await svc.http.get(f"/brands/{w.brand}/products", headers=w.staff)
    assert [p["product_id"] for p in console.json()] == [w.product]
    assert console.json()[0]["skus"][1]["stock"] == {"on_hand": 0, "reserved": 0, "available": 0}
    assert (await svc.http.get(f"/brands/{w.brand}/products", headers=w.admin)).status_code == 200
    for outsider in (w.other_staff, w.viewer()):
        denied = await svc.http.get(f"/brands/{w.brand}/products", headers=outsider)
        assert (denied.status_code, denied.json()["code"]) == (403, "not_brand_staff")


async def test_product_creation_is_refused_precisely(svc: RunningService) -> None:
    w = World(svc)
    await w.onboard()
    body: dict[str, Any] = {"product_id": w.product, "brand_id": w.brand, "title": "Serum", "skus": [{}]}
    cases: list[tuple[dict[str, str], dict[str, Any], int, str | None, str | None]] = [
        (w.viewer(), body, 403, "role_required", None),
        (w.other_staff, body, 403, "not_brand_staff", None),
        (w.admin, body | {"brand_id": f"brd_nope_{w.tag}"}, 404, "brand_not_found", "brand_id"),
        (w.staff, body | {"skus": []}, 422, None, "body.skus"),
        (
            w.staff,
            body | {"skus": [{"options": {"s": "M"}}, {"options": {"s": "M"}}]},
            422,
            None,
            "skus.1.options",
        ),
        (
            w.staff,
            body | {"skus": [{"list_prices": [{"market": "BR", "price": {"amount": 0, "currency": "BRL"}}]}]},
            422,
            "non_positive_price",
            "skus.0.list_prices.0.price.amount",
        ),
        (
            w.staff,
            body
            | {"skus": [{"list_prices": [{"market": "BR", "price": {"amount": 1.5, "currency": "BRL"}}]}]},
            422,
            None,
            "body.skus.0.list_prices.0.price.amount",
        ),
        (w.staff, body | {"product_id": "p" * 101}, 422, None, "body.product_id"),
    ]
    for headers, payload, status, code, where in cases:
        reply = await svc.http.post("/products", json=payload, headers=headers)
        assert reply.status_code == status, (payload, reply.text)
        problem = reply.json()
        if code is not None:
            assert problem["code"] == code, problem
        if where is not None:
            assert where in [e["field"] for e in problem["errors"]], problem
    assert await svc.context.store.read_stream(f"product-{w.product}") == []
    await w.create_product()
    again = await svc.http.post("/products", json=body, headers=w.staff)
    assert (again.status_code, again.json()["code"]) == (409, "product_exists")


async def test_a_retried_creation_with_the_same_key_makes_one_product(svc: RunningService) -> None:
    w = World(svc)
    await w.onboard()
    keyed = {**w.staff, "Idempotency-Key": f"k-{w.tag}"}
    body = {"brand_id": w.brand, "title": "Serum", "skus": [{"options": {"size": "M"}}]}
    first, second = [await svc.http.post("/products", json=body, headers=keyed) for _ in range(2)]
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert first.json()["product_id"] == second.json()["product_id"]
    console = await svc.http.get(f"/brands/{w.brand}/products", headers=w.staff)
    assert len(console.json()) == 1


async def test_list_prices_are_set_by_the_brand(svc: RunningService) -> None:
    w = World(svc)
    await w.onboard()
    await w.create_product()
    path = f"/products/{w.product}/skus/{w.sku}/list-prices"
    changed = await svc.http.put(f"{path}/BR", json={"price": brl(9990).model_dump()}, headers=w.staff)
    assert changed.status_code == 200, changed.text
    usd = {"price": {"amount": 2490, "currency": "USD"}}
    assert (await svc.http.put(f"{path}/US", json=usd, headers=w.admin)).status_code == 200
    prices = (await svc.http.get(f"/products/{w.product}", headers=w.viewer())).json()["skus"][0][
        "list_prices"
    ]
    assert [(p["market"], p["price"]["amount"]) for p in prices] == [("BR", 9990), ("US", 2490)]
    (_, first_price, second_price, third_price) = await svc.context.store.read_stream(f"product-{w.product}")
    assert (first_price.data["previous_price"], second_price.data["previous_price"]) == (
        None,
        {"amount": 12990, "currency": "BRL"},
    )
    assert third_price.data["market"] == "US"

    refusals = [
        (f"{path}/BR", w.other_staff, {"price": brl(1).model_dump()}, 403, "not_brand_staff"),
        (f"{path}/BR", w.viewer(), {"price": brl(1).model_dump()}, 403, "role_required"),
        (f"{path}/BR", w.staff, {"price": brl(0).model_dump()}, 422, "non_positive_price"),
        (
            f"/products/{w.product}/skus/nope/list-prices/BR",
            w.staff,
            {"price": brl(1).model_dump()},
            404,
            "sku_not_found",
        ),
        (
            f"/products/nope_{w.tag}/skus/{w.sku}/list-prices/BR",
            w.staff,
            {"price": brl(1).model_dump()},
            404,
            None,
        ),
        (f"{path}/brazil", w.staff, {"price": brl(1).model_dump()}, 422, None),
    ]
    for url, headers, payload, status, code in refusals:
        reply = await svc.http.put(url, json=payload, headers=headers)
        assert reply.status_code == status, (url, reply.text)
        if code is not None:
            assert reply.json()["code"] == code
    assert len(await svc.context.store.read_stream(f"product-{w.product}")) == 4


# --- stock ------------------------------------------------------------------------------------


async def test_stock_is_received_and_adjusted_by_the_brand(svc: RunningService) -> None:
    w = World(svc)
    await w.onboard()
    await w.create_product()
    keyed = {**w.staff, "Idempotency-Key": f"k-{w.tag}"}
    for _ in range(2):
        reply = await svc.http.post(f"/skus/{w.sku}/stock/receipts", json={"quantity": 10}, headers=keyed)
        assert reply.status_code == 201, reply.text
    assert reply.json() | {"deals": []} == {
        "sku_id": w.sku,
        "product_id": w.product,
        "brand_id": w.brand,
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "deals": [],
    }
    adjusted = await svc.http.post(
        f"/skus/{w.sku}/stock/adjustments", json={"delta": -3, "reason": "damaged"}, headers=w.admin
    )
    assert (adjusted.status_code, adjusted.json()["on_hand"]) == (201, 7)
    assert await w.stock_events() == ["SkuRegistered", "StockReceived", "StockAdjusted"]

    refusals = [
        ("receipts", w.other_staff, {"quantity": 1}, 403, "not_brand_staff", None),
        ("receipts", w.viewer(), {"quantity": 1}, 403, "role_required", None),
        ("receipts", w.staff, {"quantity": 0}, 422, None, "body.quantity"),
        ("receipts", w.staff, {"quantity": "3"}, 422, None, "body.quantity"),
        ("adjustments", w.staff, {"delta": 0, "reason": "count"}, 422, "zero_delta", "delta"),
        ("adjustments", w.staff, {"delta": 1, "reason": "theft"}, 422, None, "body.reason"),
        ("adjustments", w.staff, {"delta": -8, "reason": "lost"}, 409, "negative_on_hand", "delta"),
    ]
    for kind, headers, payload, status, code, where in refusals:
        reply = await svc.http.post(f"/skus/{w.sku}/stock/{kind}", json=payload, headers=headers)
        assert reply.status_code == status, (payload, reply.text)
        if code is not None:
            assert reply.json()["code"] == code
        if where is not None:
            assert [e["field"] for e in reply.json()["errors"]] == [where]
    unknown = await svc.http.post(f"/skus/nope_{w.tag}/stock/receipts", json={"quantity": 1}, headers=w.staff)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "sku_not_found")
    assert await w.stock_events() == ["SkuRegistered", "StockReceived", "StockAdjusted"]

    assert (await w.stock())["available"] == 7
    for outsider in (w.other_staff, w.viewer()):
        denied = await svc.http.get(f"/skus/{w.sku}/stock", headers=outsider)
        assert (denied.status_code, denied.json()["code"]) == (403, "not_brand_staff")
    assert (await svc.http.get(f"/skus/nope_{w.tag}/stock", headers=w.admin)).status_code == 404
    assert (await svc.http.get(f"/skus/{w.sku}/stock")).status_code == 401


# --- the sale: reservations and releases --------------------------------------------------------


async def test_an_order_is_reserved_once_and_released_once_per_cancel_or_refund(
    svc: RunningService, kafka_bootstrap: str
) -> None:
    w = World(svc)
    await w.ready(stock=10)
    placed = w.order("ana", quantity=3)
    svc.publish(placed)
    svc.publish(placed)  # delivered again, under another message id
    reserved = await w.reservation(placed.order_id, "reserved")
    assert reserved | {"answered_at": None} == {
        "order_id": placed.order_id,
        "sku_id": w.sku,
        "product_id": w.product,
        "brand_id": w.brand,
        "buyer_id": placed.buyer_id,
        "quantity": 3,
        "released": 0,
        "deal_id": None,
        "status": "reserved",
        "reservation_id": reservation_id_for(placed.order_id),
        "reason": None,
        "detail": None,
        "waiting_since": None,
        "answered_at": None,
    }
    assert (await w.stock())["available"] == 7

    mine = await svc.http.get(f"/orders/{placed.order_id}/reservations", headers=w.viewer("ana"))
    assert mine.status_code == 200
    assert (await svc.http.get(f"/orders/{placed.order_id}/reservations", headers=w.staff)).status_code == 200
    for outsider in (w.viewer("bob"), w.other_staff):
        denied = await svc.http.get(f"/orders/{placed.order_id}/reservations", headers=outsider)
        assert (denied.status_code, denied.json()["code"]) == (403, "not_your_order")
    unknown = await svc.http.get(f"/orders/ord_nope_{w.tag}/reservations", headers=w.admin)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "order_not_found")

    refund = OrderRefunded(
        order_id=placed.order_id,
        buyer_id=placed.buyer_id,
        brand_id=w.brand,
        refund_id=f"rf_{w.tag}",
        sku_id=w.sku,
        amount=brl(12990),
        quantity=1,
        total_refunded=brl(12990),
        order_total=placed.total,
        fully_refunded=False,
        refunded_by=f"usr_ops_{w.tag}",
        occurred_at=svc.clock.now(),
    )
    svc.publish(refund)
    svc.publish(refund)
    await eventually(
        lambda: _released_units(w, placed.order_id, 1), "the refund released one unit", timeout=30
    )
    cancelled = OrderCancelled(
        order_id=placed.order_id,
        buyer_id=placed.buyer_id,
        brand_id=w.brand,
        sku_id=w.sku,
        quantity=3,
        refund=brl(2 * 12990),
        cancelled_by=placed.buyer_id,
        occurred_at=svc.clock.now(),
    )
    svc.publish(cancelled)
    svc.publish(cancelled)
    released = await w.reservation(placed.order_id, "released")
    assert released["released"] == 3
    await svc.settle()
    assert (await w.stock())["available"] == 10
    assert await w.stock_events() == [
        "SkuRegistered",
        "StockReceived",
        "StockReserved",
        "StockReleased",
        "StockReleased",
    ]

    async def published() -> list[str] | None:
        records = read_topic(kafka_bootstrap, CATALOG_STOCK.name)
        types = [r.headers["ce_type"].decode() for r in records if r.key == w.sku.encode()]
        return types if len(types) == 4 else None

    assert await eventually(published, "the relay published the SKU's stock events") == [
        "shopstream.catalog.StockReceived",
        "shopstream.catalog.StockReserved",
        "shopstream.catalog.StockReleased",
        "shopstream.catalog.StockReleased",
    ]


async def _released_units(w: World, order_id: str, units: int) -> bool:
    reply = await w.svc.http.get(f"/orders/{order_id}/reservations", headers=w.admin)
    return reply.status_code == 200 and reply.json()[0]["released"] == units


async def test_orders_the_stock_cannot_serve_are_rejected_with_the_reason(svc: RunningService) -> None:
    w = World(svc)
    await w.ready(stock=2)
    too_many = w.order("ana", quantity=3)
    fits = w.order("bob", quantity=2)
    nothing_left = w.order("cid", quantity=1)
    unknown = w.order("dan", sku=f"sku_nope_{w.tag}")
    answers = []
    for placed in (too_many, fits, nothing_left, unknown):  # one by one: partitions do not keep order
        svc.publish(placed)
        answers.append(await w.reservation(placed.order_id, "rejected", "reserved"))
    assert [(r["status"], r["reason"]) for r in answers[:3]] == [
        ("rejected", "insufficient_stock"),
        ("reserved", None),
        ("rejected", "sold_out"),
    ]
    gone = await w.reservation(unknown.order_id, "rejected")
    assert (gone["reason"], gone["brand_id"]) == ("unknown_sku", None)
    stock = await w.stock()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (2, 2, 0)


async def test_a_flash_deal_of_n_units_confirms_exactly_n_orders(svc: RunningService) -> None:
    w = World(svc)
    await w.ready(stock=20)
    deal = f"deal_{w.tag}"
    early = w.order("early", deal=deal)
    svc.publish(early)  # the order can reach the catalog before the deal does
    await w.reservation(early.order_id, "waiting")

    svc.publish(w.deal_started(deal, units=5, cap=2))
    assert (await w.reservation(early.order_id, "reserved"))["deal_id"] == deal
    orders = [w.order(f"b{n}", deal=deal) for n in range(12)]
    greedy = [w.order("b0", deal=deal) for _ in range(3)]
    outside = w.order("walkin", quantity=16)
    svc.publish(*orders, *greedy, outside)
    answers = [
        await w.reservation(o.order_id, "reserved", "rejected") for o in [early, *orders, *greedy, outside]
    ]

    by_deal = Counter(a["reason"] or "reserved" for a in answers if a["deal_id"] == deal)
    assert by_deal["reserved"] == 5
    assert set(by_deal) <= {"reserved", "deal_cap_reached", "per_buyer_cap_reached"}
    per_buyer = Counter(a["buyer_id"] for a in answers if a["status"] == "reserved" and a["deal_id"])
    assert max(per_buyer.values()) <= 2
    assert answers[-1]["reason"] == "insufficient_stock", "16 units without the deal: the deal's 5 are held"
    stock = await w.stock()
    assert (stock["reserved"], stock["available"]) == (5, 15)
    assert [(d["deal_id"], d["units_allocated"], d["units_left"]) for d in stock["deals"]] == [(deal, 5, 0)]

    svc.publish(w.deal_ended(deal))
    after = w.order("late", quantity=15)
    svc.publish(after)
    assert (await w.reservation(after.order_id, "reserved", "rejected"))["status"] == "reserved"
    assert (await w.stock())["deals"][0]["end_reason"] == "cancelled"


async def test_concurrent_reservations_of_one_sku_never_oversell(svc: RunningService) -> None:
    """Many reservations executed at once on one stock stream: the handler's optimistic
    concurrency decides them one after the other, whatever the interleaving."""
    w = World(svc)
    await w.ready(stock=7)
    now = svc.clock.now()
    commands = [
        ReserveStock(w.sku, f"ord_{w.tag}_{n}", f"usr_{n % 9}", 1 + n % 2, None, f"res_{w.tag}_{n}", now, now)
        for n in range(30)
    ]

    async def execute(command: ReserveStock) -> Outcome:
        # A writer that keeps losing the race gives up after bounded attempts; like the policy
        # runner, it tries again (and decides on the newest state).
        while True:
            try:
                return await svc.context.handler.execute(
                    STOCK, stock_stream(w.sku), command, command_id=uuid.uuid4()
                )
            except ConcurrencyConflict:
                continue

    # Every order twice, all at once.
    outcomes = await asyncio.gather(*(execute(c) for c in [*commands, *commands]))
    decided = [
        e for o in outcomes for e in o.events if isinstance(e, StockReserved | StockReservationRejected)
    ]
    assert sorted(e.order_id for e in decided) == sorted(c.order_id for c in commands), "each decided once"
    reserved = sum(e.quantity for e in decided if isinstance(e, StockReserved))
    assert 6 <= reserved <= 7
    state, _ = await svc.context.handler.load(STOCK, stock_stream(w.sku))
    assert (state.on_hand, state.reserved) == (7, reserved)


async def test_an_order_waiting_for_a_deal_that_never_comes_is_refused(svc: RunningService) -> None:
    w = World(svc)
    await w.ready(stock=5)
    lost = w.order("ana", deal=f"deal_never_{w.tag}")
    svc.publish(lost)
    await w.reservation(lost.order_id, "waiting")
    svc.clock.advance(LONGEST_WAIT_FOR_A_DEAL + timedelta(seconds=1))
    refused = await w.reservation(lost.order_id, "rejected")
    assert refused["reason"] == "deal_not_active"
    assert refused["waiting_since"] is not None


async def test_projections_rebuild_identical(svc: RunningService) -> None:
    w = World(svc)
    await w.ready(stock=4)
    deal = f"deal_{w.tag}"
    svc.publish(w.deal_started(deal, units=2, cap=1))
    orders = [w.order("ana", deal=deal), w.order("ana", deal=deal), w.order("bob", quantity=3)]
    svc.publish(*orders)
    for placed in orders:
        await w.reservation(placed.order_id, "reserved", "rejected")
    await svc.settle()
    for runner in svc.context.projections.values():
        result = await runner.rebuild(verify=True)
        assert result.previous == result.rebuilt, runner.name
