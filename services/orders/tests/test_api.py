"""The orders service over HTTP with its real store and real Kafka.

Catalog and live events are produced onto Kafka the way those services' relays would, so every
test goes through the inbox, the projections and the saga policy exactly as in production.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import orjson
import pytest

from shopstream_contracts import Money
from shopstream_contracts.catalog.v1 import (
    ListPriceSet,
    ProductCreated,
    ReservationRejectionReason,
    Sku,
    StockReservationRejected,
    StockReserved,
)
from shopstream_contracts.live.v1 import (
    FlashDealStarted,
    LiveBrand,
    LiveEnded,
    LiveScheduled,
    LiveStarted,
    PaymentTermsOffered,
)
from shopstream_contracts.topics import CATALOG_STOCK, ORDERS_ORDER
from shopstream_messaging.inbox import inbox_stream
from shopstream_orders.bootstrap import build
from shopstream_orders.handlers import order_id_for, stream_of
from shopstream_processing import Statement
from shopstream_service.settings import ServiceSettings
from shopstream_service.testing import RunningService, running_service
from shopstream_testing.topics import read_topic
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], message: str) -> T:
    """The first non-empty result of ``probe`` (the inbox and the saga are asynchronous)."""
    found: T = await wait_until_async(
        cast("Callable[[], Awaitable[Any]]", probe), timeout=30, message=message
    )
    return found


@pytest.fixture(params=["sqlite", "postgres"])
async def svc(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[RunningService]:
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path}/orders.sqlite"
    else:
        store_url = request.getfixturevalue("postgres_dsn")
    async with running_service(
        build(ServiceSettings()), kafka_bootstrap=kafka_bootstrap, store_url=store_url
    ) as s:
        await eventually(lambda: _queryable(s), "orders ready")
        yield s


async def _queryable(s: RunningService) -> bool:
    """Ready, and every projection's tables exist: /readyz can say ready before the runners
    created them on an empty store (reported to the kit)."""
    if (await s.http.get("/readyz")).status_code != 200:
        return False
    tables = [t.name for p in s.runtime.spec.projections for t in p.tables]
    try:
        await s.context.readmodel.read([Statement(f"SELECT 1 FROM {t} LIMIT 1") for t in tables])
    except Exception:
        return False
    return True


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


@dataclass
class World:
    """One brand selling one SKU on one live with a flash deal, under ids no other test uses."""

    svc: RunningService
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def __post_init__(self) -> None:
        t = self.tag
        self.brand, self.product, self.sku = f"brd_{t}", f"prd_{t}", f"sku_{t}"
        self.live, self.deal, self.terms = f"liv_{t}", f"deal_{t}", f"terms_{t}"
        self.hosts = [f"usr_ana_{t}", f"usr_bia_{t}"]
        self.agreement = f"agr_{t}"
        self.buyer = f"usr_buyer_{t}"
        self.started_at: datetime | None = None
        self.reservation_id = ""

    # -- tokens -------------------------------------------------------------------------------

    def buyer_headers(self, buyer: str | None = None, key: str | None = None) -> dict[str, str]:
        headers = self.svc.headers(buyer or self.buyer, "viewer")
        return {**headers, "Idempotency-Key": key} if key else headers

    @property
    def staff(self) -> dict[str, str]:
        return self.svc.headers(f"usr_ops_{self.tag}", "brand", brands=[self.brand])

    @property
    def admin(self) -> dict[str, str]:
        return self.svc.headers("usr_root", "admin")

    # -- the other services' events ---------------------------------------------------------

    def now(self) -> datetime:
        return self.svc.clock.now()

    async def catalog(self, list_price: int = 12990) -> None:
        self.svc.publish(
            ProductCreated(
                product_id=self.product,
                brand_id=self.brand,
                title="Glow serum",
                skus=[Sku(sku_id=self.sku, options={"size": "30ml"})],
                created_by="usr_ops",
                occurred_at=self.now(),
            ),
            ListPriceSet(
                product_id=self.product,
                sku_id=self.sku,
                brand_id=self.brand,
                market="BR",
                price=brl(list_price),
                set_by="usr_ops",
                occurred_at=self.now(),
            ),
        )
        await self.until_quote(lambda q: q["line"]["list_price"]["amount"] == list_price, live=False)

    async def live_on_air(self) -> None:
        self.svc.publish(
            LiveScheduled(
                live_id=self.live,
                title="Glow week",
                scheduled_start_at=self.now(),
                host_ids=self.hosts,
                brands=[LiveBrand(brand_id=self.brand, agreement_id=self.agreement)],
                scheduled_by=self.hosts[0],
                occurred_at=self.now(),
            )
        )
        await self.until_quote_refused("live_not_started")
        self.started_at = self.now()
        self.svc.publish(
            LiveStarted(live_id=self.live, started_by=self.hosts[0], occurred_at=self.started_at)
        )
        await self.until_quote(lambda q: q["attribution"]["channel"] == "live")

    async def flash_deal(self, price: int = 8990, minutes: int = 5) -> None:
        assert self.started_at is not None
        at = self.now()
        self.svc.publish(
            FlashDealStarted(
                live_id=self.live,
                deal_id=self.deal,
                brand_id=self.brand,
                product_id=self.product,
                sku_id=self.sku,
                deal_price=brl(price),
                units=40,
                per_buyer_cap=2,
                duration_ms=minutes * 60_000,
                ends_at=at + timedelta(minutes=minutes),
                started_by=self.hosts[0],
                live_offset_ms=int((at - self.started_at) / timedelta(milliseconds=1)),
                occurred_at=at,
            )
        )
        await self.until_quote(lambda q: q["attribution"]["price_source"] == "flash_deal")

    async def end_live(self) -> None:
        self.svc.publish(
            LiveEnded(
                live_id=self.live, ended_by=self.hosts[0], live_offset_ms=60_000, occurred_at=self.now()
            )
        )
        await self.until_quote(lambda q: q["attribution"]["channel"] == "replay")

    def reserve(
        self, order: dict[str, Any], reservation: str | None = None, correlation_id: str | None = None
    ) -> str:
        """Catalog's answer: units reserved (returns the answer's event id)."""
        reservation_id = reservation or f"res_{uuid.uuid4().hex[:8]}"
        (event_id,) = self.svc.publish(
            StockReserved(
                sku_id=self.sku,
                product_id=self.product,
                brand_id=self.brand,
                reservation_id=reservation_id,
                order_id=order["order_id"],
                buyer_id=order["buyer_id"],
                quantity=order["line"]["quantity"],
                deal_id=order["attribution"]["flash_deal_id"],
                available_after=10,
                occurred_at=self.now(),
            ),
            correlation_id=correlation_id,
        )
        self.reservation_id = reservation_id
        return event_id

    def refuse(self, order: dict[str, Any], reason: ReservationRejectionReason = "deal_cap_reached") -> None:
        self.svc.publish(
            StockReservationRejected(
                sku_id=self.sku,
                order_id=order["order_id"],
                buyer_id=order["buyer_id"],
                quantity=order["line"]["quantity"],
                reason=reason,
                detail="all 40 units are gone",
                occurred_at=self.now(),
            )
        )

    async def processed(self, event_id: str) -> None:
        """Wait until the inbox stored the event, then until the saga and projections handled it."""

        async def stored() -> bool:
            events = await self.svc.context.store.read_stream(inbox_stream(CATALOG_STOCK.name, self.sku))
            return str(uuid.UUID(event_id)) in {str(e.event_id) for e in events}

        await eventually(stored, f"event {event_id} in the inbox")
        await self.svc.settle()

    # -- the API ------------------------------------------------------------------------------

    async def quote(self, live: bool = True, **params: Any) -> httpx.Response:
        query = {"market": "BR", **({"live_id": self.live} if live else {}), **params}
        return await self.svc.http.get(f"/skus/{self.sku}/quote", params=query, headers=self.buyer_headers())

    async def until_quote(self, check: Any, live: bool = True) -> dict[str, Any]:
        async def ok() -> dict[str, Any] | None:
            reply = await self.quote(live)
            body: dict[str, Any] = reply.json()
            return body if reply.status_code == 200 and check(body) else None

        return await eventually(ok, "quote")

    async def until_quote_refused(self, code: str) -> None:
        async def refused() -> bool:
            body: dict[str, Any] = (await self.quote()).json()
            return body.get("code") == code

        await eventually(refused, f"quote refused with {code}")

    def order_body(self, quantity: int = 1, live: bool = True, **plan: Any) -> dict[str, Any]:
        return {
            "sku_id": self.sku,
            "quantity": quantity,
            "market": "BR",
            **({"live_id": self.live} if live else {}),
            "payment_plan": {"method": "card", **plan},
        }

    async def place(
        self, key: str | None = None, buyer: str | None = None, expect: int = 201, **body: Any
    ) -> dict[str, Any]:
        reply = await self.svc.http.post(
            "/orders",
            json=self.order_body(**body),
            headers=self.buyer_headers(buyer, key or uuid.uuid4().hex),
        )
        assert reply.status_code == expect, reply.text
        result: dict[str, Any] = reply.json()
        return result

    async def get(self, order_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.svc.http.get(f"/orders/{order_id}", headers=headers or self.admin)

    async def until_status(self, order_id: str, status: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.get(order_id)).json()
            return body if body["status"] == status else None

        return await eventually(reached, f"order {status}")

    async def confirmed(self, **body: Any) -> dict[str, Any]:
        order = await self.place(**body)
        self.reserve(order)
        return await self.until_status(order["order_id"], "confirmed")


@pytest.fixture
async def world(svc: RunningService) -> World:
    world = World(svc)
    await world.catalog()
    await world.live_on_air()
    return world


def problem(reply: httpx.Response, status: int, code: str | None = None, field: str | None = None) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body


# -- placing and the saga ------------------------------------------------------------------------


async def test_a_flash_deal_order_is_priced_attributed_confirmed_and_published(world: World) -> None:
    await world.flash_deal(price=8990)
    world.svc.clock.advance(timedelta(seconds=90))
    order = await world.place(key="k-1", quantity=2, installments=1)
    assert order["status"] == "placed"
    assert order["order_id"] == order_id_for(world.buyer, "k-1")
    assert order["line"] == {
        "product_id": world.product,
        "sku_id": world.sku,
        "brand_id": world.brand,
        "quantity": 2,
        "unit_price": {"amount": 8990, "currency": "BRL"},
        "list_price": {"amount": 12990, "currency": "BRL"},
        "line_total": {"amount": 17980, "currency": "BRL"},
    }
    attribution = order["attribution"]
    assert attribution["channel"] == "live"
    assert (attribution["live_id"], attribution["brand_id"], attribution["agreement_id"]) == (
        world.live,
        world.brand,
        world.agreement,
    )
    assert attribution["host_ids"] == world.hosts
    assert (attribution["price_source"], attribution["flash_deal_id"]) == ("flash_deal", world.deal)
    assert attribution["live_offset_ms"] >= 90_000
    assert order["total"] == {"amount": 17980, "currency": "BRL"}
    assert order["payment_plan"] == {
        "method": "card",
        "installments": 1,
        "interest_free": True,
        "terms_id": None,
    }

    events = await world.svc.context.store.read_stream(stream_of(order["order_id"]))
    correlation = events[0].metadata.correlation_id
    answer = world.reserve(order, correlation_id=correlation)
    confirmed = await world.until_status(order["order_id"], "confirmed")
    reservation = world.reservation_id
    assert confirmed["reservation_id"] == reservation
    assert (confirmed["line"], confirmed["attribution"]) == (order["line"], order["attribution"])

    events = await world.svc.context.store.read_stream(stream_of(order["order_id"]))
    assert [e.type for e in events] == ["shopstream.orders.OrderPlaced", "shopstream.orders.OrderConfirmed"]
    # The confirmation is caused by the catalog's answer and stays in the sale's correlation.
    assert (events[1].metadata.causation_id, events[1].metadata.correlation_id) == (answer, correlation)

    async def published() -> list[str] | None:
        records = await asyncio.to_thread(read_topic, world.svc.settings.kafka_bootstrap, ORDERS_ORDER.name)
        mine = [r for r in records if r.key == order["order_id"].encode()]
        return [r.headers["ce_type"].decode() for r in mine] if len(mine) == 2 else None

    types = await eventually(published, "published order events")
    assert types == ["shopstream.orders.OrderPlaced", "shopstream.orders.OrderConfirmed"]
    record = next(
        r
        for r in await asyncio.to_thread(read_topic, world.svc.settings.kafka_bootstrap, ORDERS_ORDER.name)
        if r.key == order["order_id"].encode() and r.headers["ce_type"] == b"shopstream.orders.OrderConfirmed"
    )
    assert orjson.loads(record.value or b"")["reservation_id"] == reservation


async def test_a_refused_reservation_rejects_the_order_with_its_reason(world: World) -> None:
    await world.flash_deal()
    order = await world.place()
    world.refuse(order, "deal_cap_reached")
    rejected = await world.until_status(order["order_id"], "rejected")
    assert (rejected["reason"], rejected["detail"]) == ("deal_cap_reached", "all 40 units are gone")
    # A late reservation for a rejected order changes nothing.
    await world.processed(world.reserve(order))
    assert (await world.get(order["order_id"])).json()["status"] == "rejected"
    other = await world.place()
    world.refuse(other, "sold_out")
    await world.until_status(other["order_id"], "rejected")
    stats = (
        await world.svc.http.get("/stats/orders", params={"live_id": world.live}, headers=world.admin)
    ).json()
    assert stats["by_status"] == {"rejected": 2}
    assert stats["rejected_by_reason"] == {"deal_cap_reached": 1, "sold_out": 1}


async def test_an_answer_delivered_twice_confirms_once(world: World) -> None:
    order = await world.place()
    world.reserve(order, "res_first")
    await world.until_status(order["order_id"], "confirmed")
    # Catalog re-sends its answer under a new event id (a retry after a crash, say).
    await world.processed(world.reserve(order, "res_again"))
    events = await world.svc.context.store.read_stream(stream_of(order["order_id"]))
    assert [e.type.rsplit(".", 1)[1] for e in events] == ["OrderPlaced", "OrderConfirmed"]
    assert (await world.get(order["order_id"])).json()["reservation_id"] == "res_first"


async def test_one_idempotency_key_makes_one_order(world: World) -> None:
    await world.flash_deal()
    first = await world.place(key="click", quantity=1)
    again = await world.place(key="click", quantity=1, expect=200)
    assert again["order_id"] == first["order_id"]
    replies = await asyncio.gather(
        *(
            world.svc.http.post(
                "/orders", json=world.order_body(quantity=2), headers=world.buyer_headers(key="double-click")
            )
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in replies) == [200] * 7 + [201]
    assert len({r.json()["order_id"] for r in replies}) == 1
    reused = await world.svc.http.post(
        "/orders", json=world.order_body(quantity=3), headers=world.buyer_headers(key="click")
    )
    problem(reused, 409, "idempotency_key_reused")
    # Another buyer with the same key places an order of their own.
    other = await world.place(key="click", buyer=f"usr_other_{world.tag}")
    assert other["order_id"] != first["order_id"]
    mine = (await world.svc.http.get("/me/orders", headers=world.buyer_headers())).json()
    assert len(mine["orders"]) == 2
    assert await world.svc.context.store.stream_version(stream_of(first["order_id"])) == 0


async def test_a_retry_after_the_deal_ended_returns_the_order_as_placed(world: World) -> None:
    await world.flash_deal(minutes=1)
    await world.place(key="k")
    world.svc.clock.advance(timedelta(minutes=2))
    quote = (await world.quote()).json()
    assert (quote["attribution"]["price_source"], quote["line"]["unit_price"]["amount"]) == ("list", 12990)
    again = await world.place(key="k", expect=200)
    assert again["line"]["unit_price"]["amount"] == 8990
    assert (await world.place(key="k2"))["attribution"]["price_source"] == "list"


async def test_web_and_replay_orders_pay_the_list_price(world: World) -> None:
    await world.flash_deal()
    web = await world.place(live=False)
    assert web["attribution"] == {
        "channel": "web",
        "live_id": None,
        "brand_id": world.brand,
        "agreement_id": None,
        "host_ids": [],
        "price_source": "list",
        "flash_deal_id": None,
        "live_offset_ms": None,
    }
    assert web["total"]["amount"] == 12990
    await world.end_live()
    replay = await world.place()
    assert (replay["attribution"]["channel"], replay["attribution"]["price_source"]) == ("replay", "list")
    assert (replay["attribution"]["live_id"], replay["attribution"]["host_ids"]) == (world.live, world.hosts)


async def test_payment_terms_of_the_live_allow_interest_free_installments(world: World) -> None:
    world.svc.publish(
        PaymentTermsOffered(
            live_id=world.live,
            terms_id=world.terms,
            brand_id=world.brand,
            max_installments=6,
            interest_free=True,
            min_installment=brl(2500),
            offered_by=world.hosts[0],
            live_offset_ms=1000,
            occurred_at=world.now(),
        )
    )
    await world.until_quote(lambda q: True)

    async def with_terms(installments: int, quantity: int = 1) -> httpx.Response:
        body = world.order_body(quantity, installments=installments, terms_id=world.terms)
        return await world.svc.http.post(
            "/orders", json=body, headers=world.buyer_headers(key=uuid.uuid4().hex)
        )

    async def accepted() -> httpx.Response | None:
        reply = await with_terms(6, quantity=2)
        return reply if reply.status_code == 201 else None

    placed = await eventually(accepted, "payment terms known")
    assert placed.json()["payment_plan"] == {
        "method": "card",
        "installments": 6,
        "interest_free": True,
        "terms_id": world.terms,
    }
    problem(await with_terms(7, quantity=2), 422, "too_many_installments", "payment_plan.installments")
    # 12990 in 6 installments is 2165 each, below the 2500 minimum (25980 in 6 was 4330 each).
    problem(await with_terms(6), 422, "installment_below_minimum", "payment_plan.installments")
    unknown = world.order_body(installments=2, terms_id="terms_nope")
    reply = await world.svc.http.post("/orders", json=unknown, headers=world.buyer_headers(key="t"))
    problem(reply, 404, "terms_not_found", "payment_plan.terms_id")


# -- cancel, ship, refund ------------------------------------------------------------------------


async def test_the_buyer_cancels_a_confirmed_order(world: World) -> None:
    order = await world.confirmed(quantity=2)
    stranger = world.svc.headers(f"usr_stranger_{world.tag}", "viewer")
    url = f"/orders/{order['order_id']}/cancel"
    problem(await world.svc.http.post(url, json={}, headers=stranger), 403, "not_your_order")
    reply = await world.svc.http.post(url, json={"reason": "ordered twice"}, headers=world.buyer_headers())
    assert reply.status_code == 200, reply.text
    cancelled = reply.json()
    assert (cancelled["status"], cancelled["cancelled_by"], cancelled["cancel_reason"]) == (
        "cancelled",
        world.buyer,
        "ordered twice",
    )
    assert (cancelled["refunded"], cancelled["returned_units"]) == (order["total"], 2)
    again = await world.svc.http.post(url, headers=world.buyer_headers())
    assert again.json()["status"] == "cancelled"
    events = await world.svc.context.store.read_stream(stream_of(order["order_id"]))
    assert [e.type.rsplit(".", 1)[1] for e in events].count("OrderCancelled") == 1
    problem(
        await world.svc.http.post("/orders/nope/cancel", headers=world.buyer_headers()),
        404,
        "order_not_found",
    )


async def test_a_placed_order_cannot_be_cancelled_yet(world: World) -> None:
    order = await world.place()
    reply = await world.svc.http.post(f"/orders/{order['order_id']}/cancel", headers=world.buyer_headers())
    problem(reply, 409, "order_not_confirmed")


async def test_a_shipped_order_is_refunded_not_cancelled(world: World) -> None:
    order = await world.confirmed()
    url = f"/orders/{order['order_id']}"
    problem(await world.svc.http.post(f"{url}/ship", headers=world.buyer_headers()), 403, "role_required")
    shipped = await world.svc.http.post(f"{url}/ship", headers=world.staff)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["shipped"] is True
    problem(await world.svc.http.post(f"{url}/cancel", headers=world.buyer_headers()), 409, "order_shipped")


async def test_partial_refunds_never_exceed_what_was_paid(world: World) -> None:
    await world.flash_deal(price=3333)
    order = await world.confirmed(quantity=3)
    url = f"/orders/{order['order_id']}/refunds"
    problem(
        await world.svc.http.post(url, json={"amount": 100}, headers=world.buyer_headers()),
        403,
        "role_required",
    )
    other_brand = world.svc.headers("usr_rival", "brand", brands=["brd_rival"])
    problem(await world.svc.http.post(url, json={"amount": 100}, headers=other_brand), 403, "not_brand_staff")

    keyed = {**world.staff, "Idempotency-Key": "damaged-1"}
    first = await world.svc.http.post(url, json={"quantity": 1, "reason": "damaged"}, headers=keyed)
    assert first.status_code == 201, first.text
    refund = first.json()["refund"]
    assert (refund["amount"], refund["quantity"], refund["reason"]) == (brl(3333).model_dump(), 1, "damaged")
    repeat = await world.svc.http.post(url, json={"quantity": 1, "reason": "damaged"}, headers=keyed)
    assert repeat.status_code == 200
    assert repeat.json()["refund"]["refund_id"] == refund["refund_id"]
    problem(
        await world.svc.http.post(url, json={"quantity": 2}, headers=keyed), 409, "idempotency_key_reused"
    )

    too_much = await world.svc.http.post(url, json={"amount": 6667}, headers=world.staff)
    problem(too_much, 422, "refund_exceeds_paid", "amount")
    problem(await world.svc.http.post(url, json={}, headers=world.staff), 422, "empty_refund", "amount")
    problem(await world.svc.http.post(url, json={"amount": 0}, headers=world.staff), 422, field="body.amount")

    rest = await world.svc.http.post(url, json={"amount": 6666, "quantity": 2}, headers=world.admin)
    assert rest.status_code == 201, rest.text
    final = rest.json()["order"]
    assert (final["status"], final["refunded"]["amount"], final["returned_units"]) == ("refunded", 9999, 3)
    assert [r["amount"]["amount"] for r in final["refunds"]] == [3333, 6666]
    problem(
        await world.svc.http.post(url, json={"amount": 1}, headers=world.staff), 409, "order_fully_refunded"
    )
    problem(
        await world.svc.http.post(f"/orders/{order['order_id']}/cancel", headers=world.buyer_headers()),
        409,
        "order_refunded",
    )


# -- queries and authorization -------------------------------------------------------------------


async def test_buyers_see_only_their_own_orders(world: World) -> None:
    mine = await world.place()
    theirs = await world.place(buyer=f"usr_other_{world.tag}")
    assert (await world.get(mine["order_id"], world.buyer_headers())).status_code == 200
    problem(await world.get(theirs["order_id"], world.buyer_headers()), 403, "not_your_order")
    assert (await world.get(theirs["order_id"], world.staff)).status_code == 200
    rival = world.svc.headers("usr_rival", "brand", brands=["brd_rival"])
    problem(await world.get(theirs["order_id"], rival), 403, "not_your_order")
    problem(await world.get("ord_unknown"), 404, "order_not_found")
    problem(await world.svc.http.get(f"/orders/{mine['order_id']}"), 401, "unauthenticated")
    listed = (await world.svc.http.get("/me/orders", headers=world.buyer_headers())).json()
    assert [o["order_id"] for o in listed["orders"]] == [mine["order_id"]]
    assert listed["next_before"] is None


async def test_me_orders_pages_newest_first_and_filters_by_status(world: World) -> None:
    orders = [await world.place() for _ in range(3)]
    world.reserve(orders[0])
    await world.until_status(orders[0]["order_id"], "confirmed")
    page = (await world.svc.http.get("/me/orders", params={"limit": 2}, headers=world.buyer_headers())).json()
    assert [o["order_id"] for o in page["orders"]] == [orders[2]["order_id"], orders[1]["order_id"]]
    rest = await world.svc.http.get(
        "/me/orders", params={"limit": 2, "before": page["next_before"]}, headers=world.buyer_headers()
    )
    assert [o["order_id"] for o in rest.json()["orders"]] == [orders[0]["order_id"]]
    confirmed = await world.svc.http.get(
        "/me/orders", params={"status": "confirmed"}, headers=world.buyer_headers()
    )
    assert [o["order_id"] for o in confirmed.json()["orders"]] == [orders[0]["order_id"]]
    problem(
        await world.svc.http.get("/me/orders", params={"status": "lost"}, headers=world.buyer_headers()), 422
    )


async def test_a_brand_sees_only_its_own_sales(world: World) -> None:
    await world.flash_deal(price=5000)
    sold = await world.confirmed(quantity=2)
    await world.place()  # still placed: listed, but not a sale in the totals
    url = f"/brands/{world.brand}/sales"
    reply = await world.svc.http.get(url, headers=world.staff)
    assert reply.status_code == 200, reply.text
    sales = reply.json()
    assert sales["totals"] == [
        {
            "currency": "BRL",
            "orders": 1,
            "gross": 10000,
            "refunded": 0,
            "net": 10000,
            "units_sold": 2,
            "units_returned": 0,
        }
    ]
    assert sold["order_id"] in [o["order_id"] for o in sales["orders"]]
    assert len(sales["orders"]) == 2
    assert (await world.svc.http.get(url, headers=world.admin)).status_code == 200
    rival = world.svc.headers("usr_rival", "brand", brands=["brd_rival"])
    problem(await world.svc.http.get(url, headers=rival), 403, "not_brand_staff")
    problem(await world.svc.http.get(url, headers=world.buyer_headers()), 403, "not_brand_staff")
    problem(await world.svc.http.get(url), 401)


async def test_stats_are_for_admins_and_count_deals_per_buyer(world: World) -> None:
    await world.flash_deal()
    for buyer, quantity in (("a", 2), ("a", 1), ("b", 1)):
        await world.confirmed(buyer=f"usr_{buyer}_{world.tag}", quantity=quantity)
    problem(await world.svc.http.get("/stats/orders", headers=world.staff), 403, "role_required")
    stats = (
        await world.svc.http.get("/stats/orders", params={"live_id": world.live}, headers=world.admin)
    ).json()
    assert stats["by_status"] == {"confirmed": 3}
    assert stats["deals"] == [
        {
            "deal_id": world.deal,
            "confirmed_orders": 3,
            "units_sold": 4,
            "buyers": 2,
            "most_units_bought_by_one_buyer": 3,
            "most_units_held_by_one_buyer": 3,
        }
    ]
    assert stats["sales"][0]["gross"] == 4 * 8990


# -- bad input -----------------------------------------------------------------------------------


async def test_bad_orders_are_refused_precisely_and_change_nothing(world: World) -> None:
    post = world.svc.http.post
    headers = world.buyer_headers(key="bad")
    problem(
        await post("/orders", json=world.order_body(), headers=world.buyer_headers()),
        422,
        field="header.idempotency-key",
    )
    problem(
        await post("/orders", json=world.order_body(quantity=0), headers=headers), 422, field="body.quantity"
    )
    problem(
        await post("/orders", json={**world.order_body(), "market": "br"}, headers=headers),
        422,
        field="body.market",
    )
    problem(
        await post("/orders", json={**world.order_body(), "coupon": "x"}, headers=headers),
        422,
        field="body.coupon",
    )
    problem(
        await post("/orders", json=world.order_body(installments=49), headers=headers),
        422,
        field="body.payment_plan.installments",
    )
    problem(
        await post("/orders", json={**world.order_body(), "sku_id": "sku_nope"}, headers=headers),
        404,
        "sku_not_found",
        "sku_id",
    )
    problem(
        await post("/orders", json={**world.order_body(), "live_id": "liv_nope"}, headers=headers),
        404,
        "live_not_found",
        "live_id",
    )
    problem(
        await post("/orders", json={**world.order_body(), "market": "US"}, headers=headers),
        422,
        "not_sold_in_market",
        "market",
    )
    problem(await post("/orders", json=world.order_body(), headers={"Idempotency-Key": "k"}), 401)
    influencer = {**world.svc.headers("usr_inf", "influencer"), "Idempotency-Key": "k"}
    problem(await post("/orders", json=world.order_body(), headers=influencer), 403, "role_required")
    assert (await world.svc.http.get("/me/orders", headers=world.buyer_headers())).json()["orders"] == []


async def test_a_live_that_has_not_started_sells_nothing(svc: RunningService) -> None:
    world = World(svc)
    await world.catalog()
    svc.publish(
        LiveScheduled(
            live_id=world.live,
            title="Soon",
            scheduled_start_at=world.now() + timedelta(hours=1),
            host_ids=world.hosts,
            brands=[LiveBrand(brand_id="brd_someone_else", agreement_id="agr_x")],
            scheduled_by=world.hosts[0],
            occurred_at=world.now(),
        )
    )
    await world.until_quote_refused("live_not_started")
    reply = await svc.http.post("/orders", json=world.order_body(), headers=world.buyer_headers(key="early"))
    problem(reply, 409, "live_not_started", "live_id")
    svc.publish(LiveStarted(live_id=world.live, started_by=world.hosts[0], occurred_at=world.now()))
    await world.until_quote_refused("brand_not_on_live")
    reply = await svc.http.post("/orders", json=world.order_body(), headers=world.buyer_headers(key="early"))
    problem(reply, 422, "brand_not_on_live", "live_id")


# -- rebuild -------------------------------------------------------------------------------------


async def test_projections_rebuilt_from_zero_are_identical(world: World) -> None:
    await world.flash_deal()
    confirmed = await world.confirmed(quantity=2)
    await world.svc.http.post(
        f"/orders/{confirmed['order_id']}/refunds", json={"amount": 10}, headers=world.staff
    )
    rejected = await world.place()
    world.refuse(rejected)
    await world.until_status(rejected["order_id"], "rejected")
    await world.svc.settle()
    for name in ("orders", "order_pricing"):
        result = await world.svc.context.projections[name].rebuild(verify=True)
        assert result.previous is not None
        assert result.previous == result.rebuilt
    assert (await world.get(confirmed["order_id"])).json()["refunded"]["amount"] == 10
