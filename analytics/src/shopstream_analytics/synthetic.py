"""A synthetic history, written straight into the five services' stores: brands, products,
stock and agreements, then lives one after another, each with its audience samples, pins,
flash deals, chat (messages, questions and answers), orders placed then confirmed or rejected
(with the catalog's reservation and the commission accrued to each host), and a few
cancellations (stock released, commission reversed). The stores also hold inbox copies of what
their services consume (live lifecycle and deals in orders, chat and commission; orders placed,
confirmed and cancelled in catalog and commission), as the services' inboxes keep them.

Payloads have the contract shapes (the first event of every type is checked with
``REGISTRY.validate_for_publish``); ids, times and payloads follow from the seed alone (only the
stores' ``recorded_at`` is the wall clock). Writes go through ``append_many`` in large batches
(one request per run of consecutive events of a stream, so a store's positions follow
``occurred_at`` within each live, and a live's cancellations and the next live's schedule come a
little out of time order, as late events do), the five stores concurrently. It is for
benchmarks and tests: it never checks what the stores already hold.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shopstream_contracts import REGISTRY
from shopstream_eventstore import AppendRequest, EventMetadata, EventStore, NewEvent
from shopstream_messaging.inbox import inbox_stream

from .sources import SERVICES, SourceError, StoreRef, open_store

_topic = functools.cache(REGISTRY.topic)

DEFAULT_START = datetime(2025, 1, 6, 18, 0, tzinfo=UTC)

Planned = tuple[datetime, str, str, str, dict[str, Any], str | None]
"""(occurred_at, service, stream id, type, data, correlation id)."""


@dataclass(frozen=True, slots=True)
class GenerateSummary:
    events: int
    """Own events written (the history's length)."""
    inbox_copies: int
    per_service: dict[str, int]
    live_ids: list[str] = field(default_factory=list)


def _money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "BRL"}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class _Catalog:
    """Brands, their products (one SKU each), hosts and agreements: the cast of every live."""

    def __init__(self, tag: str, rng: random.Random, brands: int = 8, products: int = 6) -> None:
        self.brands = [f"brd_{tag}_{b}" for b in range(brands)]
        self.products = {
            brand: [
                (f"prd_{brand}_{p}", f"sku_{brand}_{p}", rng.randrange(2_000, 30_000, 10))
                for p in range(products)
            ]
            for brand in self.brands
        }
        self.hosts = {
            brand: [f"usr_{tag}_host_{b}", f"usr_{tag}_cohost_{b}"] for b, brand in enumerate(self.brands)
        }
        self.agreements = {brand: f"agr_{brand}" for brand in self.brands}


class _Plan:
    """Builds one batch of planned events in time order."""

    def __init__(self, tag: str, rng: random.Random) -> None:
        self.tag = tag
        self.rng = rng
        self.events: list[Planned] = []

    def add(
        self,
        at: datetime,
        service: str,
        stream: str,
        type_: str,
        data: dict[str, Any],
        corr: str | None = None,
        *,
        copies: Sequence[str] = (),
    ) -> None:
        """An event of ``service``, and its inbox copies in the stores of ``copies`` (right
        after it: a consumer stores what it consumed before it reacts)."""
        data["occurred_at"] = _iso(at)
        full_type = f"shopstream.{service}.{type_}"
        self.events.append((at, service, stream, full_type, data, corr))
        if copies:
            topic = _topic(full_type)
            copy_stream = inbox_stream(topic.name, str(data[topic.key]))
            for consumer in copies:
                self.events.append((at, consumer, copy_stream, full_type, dict(data), corr))

    def setup(self, cast: _Catalog, at: datetime) -> None:
        for brand in cast.brands:
            self.add(
                at,
                "catalog",
                f"brand-{brand}",
                "BrandOnboarded",
                {
                    "brand_id": brand,
                    "name": f"Brand {brand}",
                    "country": "BR",
                    "default_currency": "BRL",
                    "onboarded_by": "usr_admin",
                },
            )
            host, cohost = cast.hosts[brand]
            self.add(
                at,
                "commission",
                f"agreement-{cast.agreements[brand]}",
                "CommissionAgreementSigned",
                {
                    "agreement_id": cast.agreements[brand],
                    "agreement_version": 1,
                    "brand_id": brand,
                    "influencer_id": host,
                    "rate_bps": 1200,
                    "holdback_days": 30,
                    "cohost_shares": [
                        {"influencer_id": host, "share_bps": 7000},
                        {"influencer_id": cohost, "share_bps": 3000},
                    ],
                    "effective_from": _iso(at),
                    "signed_by": f"usr_ops_{brand}",
                },
            )
            for product, sku, price in cast.products[brand]:
                self.add(
                    at,
                    "catalog",
                    f"product-{product}",
                    "ProductCreated",
                    {
                        "product_id": product,
                        "brand_id": brand,
                        "title": f"Product {product}",
                        "description": None,
                        "skus": [{"sku_id": sku, "options": {"size": "30 ml"}, "barcode": None}],
                        "created_by": f"usr_ops_{brand}",
                    },
                )
                self.add(
                    at,
                    "catalog",
                    f"product-{product}",
                    "ListPriceSet",
                    {
                        "product_id": product,
                        "sku_id": sku,
                        "brand_id": brand,
                        "market": "BR",
                        "price": _money(price),
                        "previous_price": None,
                        "set_by": f"usr_ops_{brand}",
                    },
                )
                self.add(
                    at,
                    "catalog",
                    f"stock-{sku}",
                    "StockReceived",
                    {
                        "sku_id": sku,
                        "product_id": product,
                        "brand_id": brand,
                        "quantity": 1_000_000,
                        "on_hand_after": 1_000_000,
                        "available_after": 1_000_000,
                        "reference": f"PO-{sku}",
                        "received_by": f"usr_ops_{brand}",
                    },
                )

    def live(self, cast: _Catalog, number: int, start: datetime) -> str:
        rng, tag = self.rng, self.tag
        brand = cast.brands[number % len(cast.brands)]
        hosts = cast.hosts[brand]
        products = cast.products[brand]
        live_id = f"liv_{tag}_{number:06d}"
        room_id = f"room_{tag}_{number:06d}"
        stream, room = f"live-{live_id}", f"room-{room_id}"
        minutes = rng.randint(30, 90)
        end = start + timedelta(minutes=minutes)

        def offset(at: datetime) -> int:
            return int((at - start).total_seconds() * 1000)

        def lifecycle(at: datetime, type_: str, data: dict[str, Any]) -> None:
            self.add(at, "live", stream, type_, data, copies=("orders", "chat", "commission"))

        lifecycle(
            start - timedelta(days=2),
            "LiveScheduled",
            {
                "live_id": live_id,
                "title": f"Live {number}",
                "description": None,
                "scheduled_start_at": _iso(start),
                "host_ids": hosts,
                "brands": [{"brand_id": brand, "agreement_id": cast.agreements[brand]}],
                "showcase": [{"product_id": p, "brand_id": brand, "sku_ids": [s]} for p, s, _ in products],
                "scheduled_by": hosts[0],
            },
        )
        lifecycle(start, "LiveStarted", {"live_id": live_id, "started_by": hosts[0]})
        opened = start + timedelta(milliseconds=100)
        self.add(
            opened,
            "chat",
            room,
            "ChatRoomOpened",
            {
                "room_id": room_id,
                "live_id": live_id,
                "slow_mode_interval_ms": 0,
                "banned_words_version": 1,
                "live_offset_ms": 100,
            },
        )
        viewers = rng.randint(200, 20_000)
        peak = viewers
        for minute in range(1, minutes + 1):
            window_end = start + timedelta(minutes=minute)
            viewers = max(10, viewers + rng.randint(-viewers // 10, viewers // 8 + 5))
            peak = max(peak, viewers)
            self.add(
                window_end + timedelta(milliseconds=150),
                "live",
                stream,
                "AudienceSampled",
                {
                    "live_id": live_id,
                    "window_start": _iso(window_end - timedelta(minutes=1)),
                    "window_end": _iso(window_end),
                    "concurrent_viewers": viewers,
                    "peak_concurrent_viewers": peak,
                    "joins": rng.randint(0, viewers // 5 + 1),
                    "likes": rng.randint(0, viewers * 3),
                    "live_offset_ms": offset(window_end) + 150,
                },
            )
        deals = self._pins_and_deals(cast, brand, live_id, stream, start, minutes, lifecycle, offset)
        self._chat(live_id, room_id, room, start, minutes, viewers, hosts, offset)
        self._orders(cast, brand, live_id, start, minutes, peak, deals, offset)
        lifecycle(end, "LiveEnded", {"live_id": live_id, "ended_by": hosts[0], "live_offset_ms": offset(end)})
        closed = end + timedelta(milliseconds=80)
        self.add(
            closed,
            "chat",
            room,
            "ChatRoomClosed",
            {"room_id": room_id, "live_id": live_id, "live_offset_ms": offset(closed)},
        )
        return live_id

    def _pins_and_deals(
        self,
        cast: _Catalog,
        brand: str,
        live_id: str,
        stream: str,
        start: datetime,
        minutes: int,
        lifecycle: Callable[[datetime, str, dict[str, Any]], None],
        offset: Callable[[datetime], int],
    ) -> list[tuple[str, str, str, int, datetime, datetime]]:
        """Pins every ~10 minutes, a flash deal on every other pin; returns the deals
        ``(deal_id, product, sku, price, started, ended)``."""
        rng = self.rng
        deals = []
        host = cast.hosts[brand][0]
        for slot in range(max(1, minutes // 10)):
            product, sku, price = rng.choice(cast.products[brand])
            pinned = start + timedelta(minutes=slot * 10, seconds=rng.randint(5, 60))
            unpinned = pinned + timedelta(minutes=8)
            self.add(
                pinned,
                "live",
                stream,
                "ProductPinned",
                {
                    "live_id": live_id,
                    "product_id": product,
                    "brand_id": brand,
                    "sku_id": sku,
                    "pinned_by": host,
                    "live_offset_ms": offset(pinned),
                },
            )
            if slot % 2 == 0:
                deal_id = f"deal_{live_id}_{slot}"
                started = pinned + timedelta(seconds=30)
                ended = started + timedelta(minutes=5)
                deal_price = price * 7 // 10
                lifecycle(
                    started,
                    "FlashDealStarted",
                    {
                        "live_id": live_id,
                        "deal_id": deal_id,
                        "brand_id": brand,
                        "product_id": product,
                        "sku_id": sku,
                        "deal_price": _money(deal_price),
                        "units": 500,
                        "per_buyer_cap": 2,
                        "duration_ms": 300_000,
                        "ends_at": _iso(ended),
                        "started_by": host,
                        "live_offset_ms": offset(started),
                    },
                )
                lifecycle(
                    ended,
                    "FlashDealEnded",
                    {
                        "live_id": live_id,
                        "deal_id": deal_id,
                        "sku_id": sku,
                        "reason": "deadline",
                        "ended_by": None,
                        "live_offset_ms": offset(ended),
                    },
                )
                deals.append((deal_id, product, sku, deal_price, started, ended))
            self.add(
                unpinned,
                "live",
                stream,
                "ProductUnpinned",
                {
                    "live_id": live_id,
                    "product_id": product,
                    "unpinned_by": host,
                    "live_offset_ms": offset(unpinned),
                },
            )
        return deals

    def _chat(
        self,
        live_id: str,
        room_id: str,
        room: str,
        start: datetime,
        minutes: int,
        viewers: int,
        hosts: Sequence[str],
        offset: Callable[[datetime], int],
    ) -> None:
        rng = self.rng
        span = minutes * 60_000
        for n in range(rng.randint(minutes * 8, minutes * 14)):
            at = start + timedelta(milliseconds=rng.randrange(500, span))
            author = f"usr_v{rng.randrange(viewers + 50)}"
            message_id = f"msg_{room_id}_{n}"
            text = rng.choice(_LINES)
            self.add(
                at,
                "chat",
                room,
                "MessagePosted",
                {
                    "room_id": room_id,
                    "live_id": live_id,
                    "message_id": message_id,
                    "author": {"user_id": author, "display_name": author, "role": "viewer"},
                    "text": text,
                    "reply_to_message_id": None,
                    "live_offset_ms": offset(at),
                },
            )
            if n % 25 == 0:
                asked = at + timedelta(seconds=2)
                answered = asked + timedelta(seconds=rng.randint(5, 90))
                question_id = f"q_{room_id}_{n}"
                self.add(
                    asked,
                    "chat",
                    room,
                    "QuestionAsked",
                    {
                        "room_id": room_id,
                        "live_id": live_id,
                        "question_id": question_id,
                        "message_id": message_id,
                        "asked_by": author,
                        "marked_by": hosts[1],
                        "text": text,
                        "product_id": None,
                        "live_offset_ms": offset(asked),
                    },
                )
                self.add(
                    answered,
                    "chat",
                    room,
                    "QuestionAnswered",
                    {
                        "room_id": room_id,
                        "live_id": live_id,
                        "question_id": question_id,
                        "answered_by": hosts[0],
                        "answer": "Yes, it is!",
                        "live_offset_ms": offset(answered),
                    },
                )

    def _orders(
        self,
        cast: _Catalog,
        brand: str,
        live_id: str,
        start: datetime,
        minutes: int,
        peak: int,
        deals: Sequence[tuple[str, str, str, int, datetime, datetime]],
        offset: Callable[[datetime], int],
    ) -> None:
        rng = self.rng
        hosts = cast.hosts[brand]
        agreement = cast.agreements[brand]
        span = minutes * 60_000
        count = min(rng.randint(minutes * 2, minutes * 5), peak)
        for n in range(count):
            order_id = f"ord_{live_id}_{n}"
            buyer = f"usr_b{rng.randrange(peak)}"
            deal = rng.choice(deals) if deals and rng.random() < 0.5 else None
            if deal is not None:
                deal_id, product, sku, unit, deal_start, _ = deal
                placed = deal_start + timedelta(milliseconds=rng.randrange(1, 300_000))
                source, list_price = "flash_deal", next(p for pr, s, p in cast.products[brand] if s == sku)
            else:
                product, sku, unit = rng.choice(cast.products[brand])
                deal_id, list_price, source = None, unit, "list"
                placed = start + timedelta(milliseconds=rng.randrange(1_000, span))
            quantity = rng.choice((1, 1, 1, 2, 3))
            total = unit * quantity
            line = {
                "product_id": product,
                "sku_id": sku,
                "brand_id": brand,
                "quantity": quantity,
                "unit_price": _money(unit),
                "list_price": _money(list_price),
                "line_total": _money(total),
            }
            attribution = {
                "channel": "live",
                "live_id": live_id,
                "brand_id": brand,
                "agreement_id": agreement,
                "host_ids": hosts,
                "price_source": source,
                "flash_deal_id": deal_id,
                "live_offset_ms": offset(placed),
            }
            stream, corr = f"order-{order_id}", f"cor_{order_id}"
            self.add(
                placed,
                "orders",
                stream,
                "OrderPlaced",
                {
                    "order_id": order_id,
                    "buyer_id": buyer,
                    "market": "BR",
                    "line": line,
                    "attribution": attribution,
                    "payment_plan": {
                        "method": "card",
                        "installments": 1,
                        "interest_free": True,
                        "terms_id": None,
                    },
                    "total": _money(total),
                },
                corr,
                copies=("catalog", "commission"),
            )
            decided = placed + timedelta(milliseconds=rng.randint(20, 400))
            if rng.random() < 0.12:
                reason = "deal_cap_reached" if deal_id else "insufficient_stock"
                self.add(
                    decided,
                    "catalog",
                    f"stock-{sku}",
                    "StockReservationRejected",
                    {
                        "sku_id": sku,
                        "order_id": order_id,
                        "buyer_id": buyer,
                        "quantity": quantity,
                        "deal_id": deal_id,
                        "reason": reason,
                        "detail": None,
                    },
                    corr,
                )
                self.add(
                    decided + timedelta(milliseconds=30),
                    "orders",
                    stream,
                    "OrderRejected",
                    {"order_id": order_id, "buyer_id": buyer, "reason": reason, "detail": None},
                    corr,
                )
                continue
            reservation = f"res_{order_id}"
            self.add(
                decided,
                "catalog",
                f"stock-{sku}",
                "StockReserved",
                {
                    "sku_id": sku,
                    "product_id": product,
                    "brand_id": brand,
                    "reservation_id": reservation,
                    "order_id": order_id,
                    "buyer_id": buyer,
                    "quantity": quantity,
                    "deal_id": deal_id,
                    "deal_units_left": None,
                    "available_after": 500_000,
                },
                corr,
            )
            confirmed = decided + timedelta(milliseconds=30)
            self.add(
                confirmed,
                "orders",
                stream,
                "OrderConfirmed",
                {
                    "order_id": order_id,
                    "buyer_id": buyer,
                    "reservation_id": reservation,
                    "market": "BR",
                    "line": line,
                    "attribution": attribution,
                    "total": _money(total),
                },
                corr,
                copies=("catalog", "commission"),
            )
            accrued = confirmed + timedelta(milliseconds=50)
            cancelled = rng.random() < 0.04
            for host, share in zip(hosts, (7000, 3000), strict=True):
                amount = total * 1200 * share // 100_000_000
                accrual = f"acc_{order_id}_{host}"
                self.add(
                    accrued,
                    "commission",
                    f"account-{host}",
                    "CommissionAccrued",
                    {
                        "influencer_id": host,
                        "accrual_id": accrual,
                        "order_id": order_id,
                        "brand_id": brand,
                        "live_id": live_id,
                        "agreement_id": agreement,
                        "agreement_version": 1,
                        "rate_bps": 1200,
                        "share_bps": share,
                        "base": _money(total),
                        "amount": _money(amount),
                        "hold_until": _iso(accrued + timedelta(days=30)),
                    },
                    corr,
                )
                if cancelled:
                    self.add(
                        accrued + timedelta(hours=2, milliseconds=100),
                        "commission",
                        f"account-{host}",
                        "CommissionReversed",
                        {
                            "influencer_id": host,
                            "reversal_id": f"rev_{order_id}_{host}",
                            "accrual_id": accrual,
                            "order_id": order_id,
                            "amount": _money(amount),
                            "reason": "order_cancelled",
                            "refund_id": None,
                        },
                        corr,
                    )
            if cancelled:
                at = accrued + timedelta(hours=2)
                self.add(
                    at,
                    "orders",
                    stream,
                    "OrderCancelled",
                    {
                        "order_id": order_id,
                        "buyer_id": buyer,
                        "brand_id": brand,
                        "sku_id": sku,
                        "quantity": quantity,
                        "refund": _money(total),
                        "cancelled_by": buyer,
                        "reason": None,
                    },
                    corr,
                    copies=("catalog", "commission"),
                )
                self.add(
                    at + timedelta(milliseconds=60),
                    "catalog",
                    f"stock-{sku}",
                    "StockReleased",
                    {
                        "sku_id": sku,
                        "product_id": product,
                        "brand_id": brand,
                        "reservation_id": reservation,
                        "order_id": order_id,
                        "quantity": quantity,
                        "deal_id": deal_id,
                        "reason": "order_cancelled",
                        "refund_id": None,
                        "available_after": 500_000,
                    },
                    corr,
                )


_LINES = (
    "Does it work for sensitive skin?",
    "Love this! 😍",
    "How long does shipping take?",
    "Just ordered two 🙌",
    "Is there a bigger size?",
    "Olá from Porto Alegre!",
    "What's the price after the live?",
    "Can you show the texture again?",
)


class _Writer:
    """Per store: events grouped by stream, appended in batches, one batch in flight per store."""

    def __init__(
        self, stores: Mapping[str, EventStore], batch: int, progress: Callable[[int], None] | None
    ) -> None:
        self._stores = stores
        self._batch = batch
        self._progress = progress
        # Consecutive events of one stream share a request; requests keep the events' order.
        self._pending: dict[str, list[tuple[str, list[NewEvent]]]] = {name: [] for name in stores}
        self._counts: dict[str, int] = dict.fromkeys(stores, 0)
        self._own: dict[str, int] = dict.fromkeys(stores, 0)
        self._flights: dict[str, asyncio.Task[None]] = {}

    def add(self, service: str, stream: str, event: NewEvent, own: bool) -> bool:
        """Buffer an event; True when the service's batch is full (then ``flush`` it)."""
        runs = self._pending[service]
        if runs and runs[-1][0] == stream:
            runs[-1][1].append(event)
        else:
            runs.append((stream, [event]))
        self._own[service] += own
        self._counts[service] += 1
        return self._counts[service] >= self._batch

    async def close(self) -> None:
        for service in self._stores:
            await self.flush(service)
        await asyncio.gather(*self._flights.values())

    async def flush(self, service: str) -> None:
        previous = self._flights.get(service)
        if previous is not None:
            await previous
        runs, self._pending[service] = self._pending[service], []
        self._counts[service] = 0
        if self._progress is not None and self._own[service]:
            self._progress(self._own[service])
        self._own[service] = 0
        if runs:
            requests = [AppendRequest(stream, events) for stream, events in runs]
            self._flights[service] = asyncio.create_task(self._append(service, requests))

    async def _append(self, service: str, requests: list[AppendRequest]) -> None:
        await self._stores[service].append_many(requests)


def _time_ordered_id(at: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 (milliseconds since the epoch, then random bits): ids that grow with time keep
    the stores' unique index on event ids appending at its end, where random UUIDv4s would touch a
    random page of a large index for every insert."""
    millis = int(at.timestamp() * 1000)
    return uuid.UUID(
        int=(millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    )


async def generate(
    refs: Sequence[StoreRef],
    events: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    batch: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> GenerateSummary:
    """Append ``events`` own events (plus inbox copies) to the stores of ``refs`` (one per
    service, all five). ``progress`` is called with the own events of each batch sent."""
    by_service = {ref.service: ref for ref in refs}
    missing = [name for name in SERVICES if name not in by_service]
    if missing:
        raise SourceError(f"the synthetic history needs every service's store; missing {missing}")
    if events < 0:
        raise ValueError("the number of events must be ≥ 0")
    rng = random.Random(seed)
    tag = f"s{seed}"
    cast = _Catalog(tag, rng)
    stores: dict[str, EventStore] = {}
    written: dict[str, int] = dict.fromkeys(SERVICES, 0)
    copies = 0
    live_ids: list[str] = []
    checked: set[str] = set()
    try:
        for name in SERVICES:
            stores[name] = await open_store(by_service[name], create=True)
        writer = _Writer(stores, batch, progress)
        plan = _Plan(tag, rng)
        plan.setup(cast, start - timedelta(days=30))
        moment = start
        number = 0
        remaining = events
        while remaining > 0:
            if not plan.events:
                live_ids.append(plan.live(cast, number, moment))
                number += 1
                moment += timedelta(hours=rng.randint(2, 6))
            plan.events.sort(key=operator.itemgetter(0))
            for at, service, stream, type_, data, corr in plan.events:
                own = not stream.startswith("inbox:")
                if own:
                    if remaining == 0:
                        continue
                    remaining -= 1
                    written[service] += 1
                    if type_ not in checked:
                        REGISTRY.validate_for_publish(type_, 1, data)
                        checked.add(type_)
                else:
                    copies += 1
                event_id = _time_ordered_id(at, rng)
                metadata = EventMetadata(at, corr)
                if writer.add(service, stream, NewEvent(event_id, type_, data, metadata), own):
                    await writer.flush(service)
            plan.events.clear()
        await writer.close()
    finally:
        for store in stores.values():
            await store.close()
    return GenerateSummary(events, copies, written, live_ids)
