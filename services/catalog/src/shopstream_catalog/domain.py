"""The catalog's aggregates: brand, product (SKUs and list prices) and the stock of one SKU.

Stock is the aggregate that must never oversell. Every movement of a SKU — receipts,
adjustments, flash deals, reservations and releases — is one stream, so reservations for a SKU
are decided one at a time on its latest state (the command handler appends at the expected
version and decides again on conflict). Figures::

    on_hand   units the warehouse holds (receipts and adjustments)
    reserved  units promised to orders (reservations minus releases); always <= on_hand
    available on_hand - reserved
    held      the unreserved units of the flash deals still running: only their orders take them

Rules the stock decider enforces:

- A reservation answers an order exactly once: a second ReserveStock for an order already
  reserved, rejected or waiting returns no event, whatever its quantity.
- An order without a deal reserves from ``available - held``; an order of a deal reserves from
  the deal's units (``deal_cap_reached`` once gone), within its per-buyer cap (net of releases),
  while the deal runs or if the order was placed before it ended (``deal_not_active``); physical
  stock is checked too, excluding what other running deals hold.
- A deal's allocation is what the stock could set aside when the deal started (at most its
  announced units). It holds those units until live says the deal ended.
- An order may name a deal the catalog has not heard of yet (live's and orders' topics are
  consumed independently): it is deferred and decided when the deal opens, closes, or the wait
  expires — never guessed.
- A release happens once per cancellation and once per refund id, never more than the units
  still reserved; released deal units go back to the deal while it still holds stock.
- An adjustment never takes on_hand below what is reserved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from immutables import Map
from pydantic import ValidationError

from shopstream_contracts import Event, Money
from shopstream_contracts.catalog.v1 import (
    BrandOnboarded,
    ListPriceSet,
    ProductCreated,
    ReservationRejectionReason,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound

from .commands import (
    AdjustStock,
    CloseDeal,
    CreateProduct,
    ExpireDeferredReservations,
    OnboardBrand,
    OpenDeal,
    ProductCommand,
    ReceiveStock,
    RegisterSku,
    ReleaseStock,
    ReserveStock,
    SetListPrice,
    StockCommand,
)
from .events import (
    DealClosed,
    DealOpened,
    DealUnitsReturned,
    DeferredReservationWithdrawn,
    ReservationDeferred,
    SkuRegistered,
)

E = TypeVar("E", bound=Event)


def _build(model: type[E], field_prefix: str = "", **data: Any) -> E:
    """Construct a contract event strictly; a value the contract refuses is the caller's fault,
    reported on the offending field (under ``field_prefix``) rather than as a crash."""
    try:
        return model(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = field_prefix + ".".join(str(part) for part in first["loc"])
        raise Invalid("invalid_value", f"{where}: {first['msg']}", field=where) from None


# --- brand ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrandState:
    onboarded: BrandOnboarded | None = None


class BrandDecider:
    def initial_state(self) -> BrandState:
        return BrandState()

    def evolve(self, state: BrandState, event: DomainEvent) -> BrandState:
        if isinstance(event, BrandOnboarded):
            return BrandState(event)
        return state

    def decide(self, command: OnboardBrand, state: BrandState) -> Sequence[DomainEvent]:
        if not command.actor.is_admin:
            raise Forbidden("admin_required", "only an admin onboards a brand")
        if state.onboarded is not None:
            raise DomainError(
                "brand_exists", f"brand {command.brand_id!r} is already onboarded", field="brand_id"
            )
        return [
            _build(
                BrandOnboarded,
                brand_id=command.brand_id,
                name=command.name,
                country=command.country,
                default_currency=command.default_currency,
                onboarded_by=command.actor.user_id,
                occurred_at=command.at,
            )
        ]


# --- product ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductState:
    created: ProductCreated | None = None
    prices: Mapping[tuple[str, str], Money] = field(default_factory=dict)
    """(sku_id, market) ⇒ current list price."""

    def sku_ids(self) -> frozenset[str]:
        return frozenset(s.sku_id for s in self.created.skus) if self.created else frozenset()


def _refuse_duplicates(command: CreateProduct) -> None:
    seen_ids: set[str] = set()
    seen_options: set[frozenset[tuple[str, str]]] = set()
    seen_barcodes: set[str] = set()
    for index, sku in enumerate(command.skus):
        markets = [price.market for price in sku.list_prices]
        for position, market in enumerate(markets):
            if market in markets[:position]:
                raise Invalid(
                    "duplicate_market",
                    f"one list price per market; {market} is given twice",
                    field=f"skus.{index}.list_prices.{position}.market",
                )
        options = frozenset(sku.options.items())
        if sku.sku_id in seen_ids:
            raise Invalid(
                "duplicate_sku", f"SKU {sku.sku_id!r} is listed twice", field=f"skus.{index}.sku_id"
            )
        if options in seen_options:
            raise Invalid(
                "duplicate_options",
                "two SKUs of a product must differ by their options",
                field=f"skus.{index}.options",
            )
        if sku.barcode is not None and sku.barcode in seen_barcodes:
            raise Invalid(
                "duplicate_barcode", f"barcode {sku.barcode} is listed twice", field=f"skus.{index}.barcode"
            )
        seen_ids.add(sku.sku_id)
        seen_options.add(options)
        if sku.barcode is not None:
            seen_barcodes.add(sku.barcode)


class ProductDecider:
    def initial_state(self) -> ProductState:
        return ProductState()

    def evolve(self, state: ProductState, event: DomainEvent) -> ProductState:
        if isinstance(event, ProductCreated):
            return replace(state, created=event)
        if isinstance(event, ListPriceSet):
            return replace(state, prices={**state.prices, (event.sku_id, event.market): event.price})
        return state

    def decide(self, command: ProductCommand, state: ProductState) -> Sequence[DomainEvent]:
        if isinstance(command, CreateProduct):
            return self._create(command, state)
        return self._set_price(command, state)

    def _create(self, command: CreateProduct, state: ProductState) -> Sequence[DomainEvent]:
        if not command.actor.manages(command.brand_id):
            raise Forbidden("not_brand_staff", f"only staff of brand {command.brand_id!r} or an admin")
        if not command.brand_onboarded:
            raise NotFound("brand_not_found", f"no brand {command.brand_id!r}", field="brand_id")
        if state.created is not None:
            raise DomainError(
                "product_exists", f"product {command.product_id!r} already exists", field="product_id"
            )
        if not command.skus:
            raise Invalid("no_skus", "a product has at least one SKU", field="skus")
        _refuse_duplicates(command)
        created = _build(
            ProductCreated,
            product_id=command.product_id,
            brand_id=command.brand_id,
            title=command.title,
            description=command.description,
            skus=[
                {"sku_id": sku.sku_id, "options": dict(sku.options), "barcode": sku.barcode}
                for sku in command.skus
            ],
            created_by=command.actor.user_id,
            occurred_at=command.at,
        )
        # Initial prices go through the same rules as later ones, in the same append.
        created_state = replace(state, created=created)
        prices: list[DomainEvent] = []
        for index, sku in enumerate(command.skus):
            for position, new in enumerate(sku.list_prices):
                set_price = SetListPrice(
                    command.product_id, sku.sku_id, new.market, new.price, command.actor, command.at
                )
                prefix = f"skus.{index}.list_prices.{position}."
                prices.extend(self._set_price(set_price, created_state, field_prefix=prefix))
        return [created, *prices]

    def _set_price(
        self, command: SetListPrice, state: ProductState, *, field_prefix: str = ""
    ) -> Sequence[DomainEvent]:
        product = state.created
        if product is None:
            raise NotFound("product_not_found", f"no product {command.product_id!r}", field="product_id")
        if not command.actor.manages(product.brand_id):
            raise Forbidden("not_brand_staff", f"only staff of brand {product.brand_id!r} or an admin")
        if command.sku_id not in state.sku_ids():
            raise NotFound(
                "sku_not_found",
                f"product {product.product_id!r} has no SKU {command.sku_id!r}",
                field="sku_id",
            )
        if command.price.amount <= 0:
            raise Invalid(
                "non_positive_price", "a list price is above zero", field=f"{field_prefix}price.amount"
            )
        previous = state.prices.get((command.sku_id, command.market))
        if previous == command.price:
            return []
        return [
            _build(
                ListPriceSet,
                field_prefix,
                product_id=product.product_id,
                sku_id=command.sku_id,
                brand_id=product.brand_id,
                market=command.market,
                price=command.price,
                previous_price=previous,
                set_by=command.actor.user_id,
                occurred_at=command.at,
            )
        ]


# --- stock ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    order_id: str
    buyer_id: str
    quantity: int
    deal_id: str | None
    released: int = 0
    refunds: frozenset[str] = frozenset()

    @property
    def outstanding(self) -> int:
        return self.quantity - self.released


@dataclass(frozen=True, slots=True)
class Deal:
    deal_id: str
    units_allocated: int
    per_buyer_cap: int
    units_left: int
    ended_at: datetime | None = None
    bought: Map[str, int] = field(default_factory=Map)
    """Units each buyer holds under the deal, net of releases."""

    @property
    def running(self) -> bool:
        """Until its FlashDealEnded arrives. Deadlines are live's to enforce: comparing live's
        clock with ours would let clock skew end a deal early or late here."""
        return self.ended_at is None

    def takes_order_placed_at(self, placed_at: datetime) -> bool:
        """An order placed before the deal ended counts even if the end reached us first (the
        two come on different topics, and a restarted catalog may read them in either order)."""
        return self.ended_at is None or placed_at < self.ended_at


@dataclass(frozen=True, slots=True)
class Deferred:
    reservation_id: str
    order_id: str
    buyer_id: str
    quantity: int
    deal_id: str
    placed_at: datetime
    deferred_at: datetime


@dataclass(frozen=True, slots=True)
class StockState:
    sku_id: str | None = None
    """None until the SKU is registered: the catalog does not know it."""
    product_id: str = ""
    brand_id: str = ""
    on_hand: int = 0
    reserved: int = 0
    reservations: Map[str, Reservation] = field(default_factory=Map)
    """order id ⇒ its reservation. Persistent maps here and in ``Deal.bought``: a hot SKU's
    stream holds one entry per order, and copying a dict of them on every event made each event
    O(n) and a fold of the stream O(n²)."""
    rejected: Map[str, ReservationRejectionReason] = field(default_factory=Map)
    deferred: Mapping[str, Deferred] = field(default_factory=dict)
    """order id ⇒ waiting for its deal, in arrival order."""
    withdrawn: frozenset[str] = frozenset()
    deals: Mapping[str, Deal] = field(default_factory=dict)
    closed_unopened: frozenset[str] = frozenset()
    """Deals that ended here without ever having started here."""

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def held(self, *, except_deal: str | None = None) -> int:
        return sum(
            deal.units_left for deal in self.deals.values() if deal.deal_id != except_deal and deal.running
        )

    def answered(self, order_id: str) -> bool:
        return (
            order_id in self.reservations
            or order_id in self.rejected
            or order_id in self.deferred
            or order_id in self.withdrawn
        )

    def knows_deal(self, deal_id: str) -> bool:
        return deal_id in self.deals or deal_id in self.closed_unopened


def _with_deal(state: StockState, deal: Deal) -> StockState:
    return replace(state, deals={**state.deals, deal.deal_id: deal})


def _without(mapping: Mapping[str, Deferred], key: str) -> dict[str, Deferred]:
    return {k: v for k, v in mapping.items() if k != key}


class StockDecider:
    def initial_state(self) -> StockState:
        return StockState()

    # evolve ----------------------------------------------------------------------------------

    def evolve(self, state: StockState, event: DomainEvent) -> StockState:
        handler = _EVOLVERS.get(type(event))
        return state if handler is None else handler(state, event)

    # decide ----------------------------------------------------------------------------------

    def decide(self, command: StockCommand, state: StockState) -> Sequence[DomainEvent]:
        if isinstance(command, RegisterSku):
            return _register(command, state)
        if isinstance(command, ReceiveStock):
            return _receive(command, state)
        if isinstance(command, AdjustStock):
            return _adjust(command, state)
        if isinstance(command, ReserveStock):
            return self._reserve(command, state)
        if isinstance(command, ReleaseStock):
            return _release(command, state)
        if isinstance(command, OpenDeal):
            return self._open_deal(command, state)
        if isinstance(command, CloseDeal):
            return self._close_deal(command, state)
        return self._expire(command, state)

    def _reserve(self, command: ReserveStock, state: StockState) -> Sequence[DomainEvent]:
        if state.answered(command.order_id):
            return []
        if state.sku_id is None:
            return [
                _rejection(_Request.of(command), "unknown_sku", f"the catalog has no SKU {command.sku_id!r}")
            ]
        if command.deal_id is not None and not state.knows_deal(command.deal_id):
            return [
                ReservationDeferred(
                    sku_id=command.sku_id,
                    reservation_id=command.reservation_id,
                    order_id=command.order_id,
                    buyer_id=command.buyer_id,
                    quantity=command.quantity,
                    deal_id=command.deal_id,
                    placed_at=command.placed_at,
                    occurred_at=command.at,
                )
            ]
        return [_decide_reservation(_Request.of(command), state)]

    def _open_deal(self, command: OpenDeal, state: StockState) -> Sequence[DomainEvent]:
        if state.knows_deal(command.deal_id):
            return []
        free = max(0, state.available - state.held())
        opened = DealOpened(
            sku_id=command.sku_id,
            deal_id=command.deal_id,
            live_id=command.live_id,
            units_announced=command.units,
            units_allocated=min(command.units, free),
            per_buyer_cap=command.per_buyer_cap,
            started_at=command.started_at,
            ends_at=command.ends_at,
            occurred_at=command.at,
        )
        return [opened, *self._answer_waiting(command, self.evolve(state, opened))]

    def _close_deal(self, command: CloseDeal, state: StockState) -> Sequence[DomainEvent]:
        deal = state.deals.get(command.deal_id)
        if command.deal_id in state.closed_unopened or (deal is not None and deal.ended_at is not None):
            return []
        closed = DealClosed(
            sku_id=command.sku_id,
            deal_id=command.deal_id,
            reason=command.reason,
            ended_at=command.ended_at,
            units_left=0 if deal is None else deal.units_left,
            occurred_at=command.at,
        )
        return [closed, *self._answer_waiting(command, self.evolve(state, closed))]

    def _answer_waiting(self, command: OpenDeal | CloseDeal, state: StockState) -> list[DomainEvent]:
        """Decide the orders that waited for this deal, in the order they arrived, each on the
        state its predecessors left."""
        events: list[DomainEvent] = []
        for waiting in [w for w in state.deferred.values() if w.deal_id == command.deal_id]:
            event = _decide_reservation(_Request.waiting(waiting, command.sku_id, command.at), state)
            state = self.evolve(state, event)
            events.append(event)
        return events

    def _expire(self, command: ExpireDeferredReservations, state: StockState) -> Sequence[DomainEvent]:
        return [
            _rejection(
                _Request.waiting(waiting, command.sku_id, command.at),
                "deal_not_active",
                f"flash deal {waiting.deal_id!r} was never announced for this SKU",
            )
            for waiting in state.deferred.values()
            if waiting.deferred_at < command.deferred_before
        ]


@dataclass(frozen=True, slots=True)
class _Request:
    """A reservation to decide: straight from ReserveStock, or one that waited for its deal."""

    sku_id: str
    order_id: str
    buyer_id: str
    quantity: int
    deal_id: str | None
    reservation_id: str
    placed_at: datetime
    at: datetime

    @classmethod
    def of(cls, command: ReserveStock) -> _Request:
        return cls(
            command.sku_id,
            command.order_id,
            command.buyer_id,
            command.quantity,
            command.deal_id,
            command.reservation_id,
            command.placed_at,
            command.at,
        )

    @classmethod
    def waiting(cls, deferred: Deferred, sku_id: str, at: datetime) -> _Request:
        return cls(
            sku_id,
            deferred.order_id,
            deferred.buyer_id,
            deferred.quantity,
            deferred.deal_id,
            deferred.reservation_id,
            deferred.placed_at,
            at,
        )


def _rejection(
    request: _Request, reason: ReservationRejectionReason, detail: str
) -> StockReservationRejected:
    return _build(
        StockReservationRejected,
        sku_id=request.sku_id,
        order_id=request.order_id,
        buyer_id=request.buyer_id,
        quantity=request.quantity,
        deal_id=request.deal_id,
        reason=reason,
        detail=detail,
        occurred_at=request.at,
    )


def _decide_reservation(request: _Request, state: StockState) -> StockReserved | StockReservationRejected:
    quantity = request.quantity
    deal: Deal | None = None
    if request.deal_id is not None:
        deal = state.deals.get(request.deal_id)
        if deal is None or not deal.takes_order_placed_at(request.placed_at):
            return _rejection(
                request, "deal_not_active", f"flash deal {request.deal_id!r} was not running when ordered"
            )
        holding = deal.bought.get(request.buyer_id, 0)
        if holding + quantity > deal.per_buyer_cap:
            return _rejection(
                request,
                "per_buyer_cap_reached",
                f"at most {deal.per_buyer_cap} per buyer; this buyer already has {holding}",
            )
        if deal.units_left < quantity:
            return _rejection(
                request, "deal_cap_reached", f"{deal.units_left} unit(s) of the deal left, {quantity} ordered"
            )
    room = state.available - state.held(except_deal=request.deal_id)
    if room < quantity:
        if room <= 0:
            return _rejection(request, "sold_out", "no unit left")
        return _rejection(request, "insufficient_stock", f"{room} unit(s) left, {quantity} ordered")
    return _build(
        StockReserved,
        sku_id=request.sku_id,
        product_id=state.product_id,
        brand_id=state.brand_id,
        reservation_id=request.reservation_id,
        order_id=request.order_id,
        buyer_id=request.buyer_id,
        quantity=quantity,
        deal_id=request.deal_id,
        deal_units_left=None if deal is None else deal.units_left - quantity,
        available_after=state.available - quantity,
        occurred_at=request.at,
    )


def _registered(state: StockState, sku_id: str) -> str:
    if state.sku_id is None:
        raise NotFound("sku_not_found", f"no SKU {sku_id!r}", field="sku_id")
    return state.sku_id


def _register(command: RegisterSku, state: StockState) -> Sequence[DomainEvent]:
    if state.sku_id is None:
        return [
            SkuRegistered(
                sku_id=command.sku_id,
                product_id=command.product_id,
                brand_id=command.brand_id,
                occurred_at=command.at,
            )
        ]
    if state.product_id == command.product_id:
        return []
    raise DomainError(
        "sku_taken", f"SKU {command.sku_id!r} belongs to product {state.product_id!r}", field="sku_id"
    )


def _receive(command: ReceiveStock, state: StockState) -> Sequence[DomainEvent]:
    sku_id = _registered(state, command.sku_id)
    if not command.actor.manages(state.brand_id):
        raise Forbidden("not_brand_staff", f"only staff of brand {state.brand_id!r} or an admin")
    if command.quantity < 1:
        raise Invalid("non_positive_quantity", "receive at least one unit", field="quantity")
    return [
        _build(
            StockReceived,
            sku_id=sku_id,
            product_id=state.product_id,
            brand_id=state.brand_id,
            quantity=command.quantity,
            on_hand_after=state.on_hand + command.quantity,
            available_after=state.available + command.quantity,
            reference=command.reference,
            received_by=command.actor.user_id,
            occurred_at=command.at,
        )
    ]


def _adjust(command: AdjustStock, state: StockState) -> Sequence[DomainEvent]:
    sku_id = _registered(state, command.sku_id)
    if not command.actor.manages(state.brand_id):
        raise Forbidden("not_brand_staff", f"only staff of brand {state.brand_id!r} or an admin")
    if command.delta == 0:
        raise Invalid("zero_delta", "an adjustment adds or removes at least one unit", field="delta")
    on_hand_after = state.on_hand + command.delta
    if on_hand_after < 0:
        raise DomainError(
            "negative_on_hand",
            f"{state.on_hand} unit(s) on hand: {-command.delta} cannot be removed",
            field="delta",
        )
    if on_hand_after < state.reserved:
        raise DomainError(
            "below_reserved",
            f"{state.reserved} unit(s) are reserved for orders and {state.on_hand} on hand: "
            f"removing {-command.delta} would oversell; cancel orders first",
            field="delta",
        )
    return [
        _build(
            StockAdjusted,
            sku_id=sku_id,
            product_id=state.product_id,
            brand_id=state.brand_id,
            delta=command.delta,
            reason=command.reason,
            note=command.note,
            on_hand_after=on_hand_after,
            available_after=on_hand_after - state.reserved,
            adjusted_by=command.actor.user_id,
            occurred_at=command.at,
        )
    ]


def _release(command: ReleaseStock, state: StockState) -> Sequence[DomainEvent]:
    reservation = state.reservations.get(command.order_id)
    if reservation is None:
        waiting = state.deferred.get(command.order_id)
        if waiting is not None and command.reason == "order_cancelled":
            return [
                DeferredReservationWithdrawn(
                    sku_id=command.sku_id,
                    order_id=command.order_id,
                    deal_id=waiting.deal_id,
                    occurred_at=command.at,
                )
            ]
        return []
    if command.reason == "order_cancelled":
        quantity = reservation.outstanding
    elif command.refund_id is not None and command.refund_id in reservation.refunds:
        return []
    else:
        quantity = min(command.quantity or 0, reservation.outstanding)
    if quantity <= 0:
        return []
    released = _build(
        StockReleased,
        sku_id=command.sku_id,
        product_id=state.product_id,
        brand_id=state.brand_id,
        reservation_id=reservation.reservation_id,
        order_id=reservation.order_id,
        quantity=quantity,
        deal_id=reservation.deal_id,
        reason=command.reason,
        refund_id=command.refund_id if command.reason == "order_refunded" else None,
        available_after=state.available + quantity,
        occurred_at=command.at,
    )
    deal = state.deals.get(reservation.deal_id) if reservation.deal_id is not None else None
    if deal is None or not deal.running:
        return [released]
    return [
        released,
        DealUnitsReturned(
            sku_id=command.sku_id,
            deal_id=deal.deal_id,
            order_id=reservation.order_id,
            buyer_id=reservation.buyer_id,
            quantity=quantity,
            units_left_after=deal.units_left + quantity,
            occurred_at=command.at,
        ),
    ]


# evolve, one function per event type -----------------------------------------------------------


def _on_registered(state: StockState, event: SkuRegistered) -> StockState:
    return replace(state, sku_id=event.sku_id, product_id=event.product_id, brand_id=event.brand_id)


def _on_received(state: StockState, event: StockReceived) -> StockState:
    return replace(state, on_hand=state.on_hand + event.quantity)


def _on_adjusted(state: StockState, event: StockAdjusted) -> StockState:
    return replace(state, on_hand=state.on_hand + event.delta)


def _on_reserved(state: StockState, event: StockReserved) -> StockState:
    reservation = Reservation(
        event.reservation_id, event.order_id, event.buyer_id, event.quantity, event.deal_id
    )
    state = replace(
        state,
        reserved=state.reserved + event.quantity,
        reservations=state.reservations.set(event.order_id, reservation),
        deferred=_without(state.deferred, event.order_id),
    )
    deal = state.deals.get(event.deal_id) if event.deal_id is not None else None
    if deal is None:
        return state
    bought = deal.bought.set(event.buyer_id, deal.bought.get(event.buyer_id, 0) + event.quantity)
    return _with_deal(state, replace(deal, units_left=deal.units_left - event.quantity, bought=bought))


def _on_rejected(state: StockState, event: StockReservationRejected) -> StockState:
    return replace(
        state,
        rejected=state.rejected.set(event.order_id, event.reason),
        deferred=_without(state.deferred, event.order_id),
    )


def _on_released(state: StockState, event: StockReleased) -> StockState:
    reservation = state.reservations[event.order_id]
    reservation = replace(
        reservation,
        released=reservation.released + event.quantity,
        refunds=reservation.refunds | ({event.refund_id} if event.refund_id else set()),
    )
    state = replace(
        state,
        reserved=state.reserved - event.quantity,
        reservations=state.reservations.set(event.order_id, reservation),
    )
    deal = state.deals.get(event.deal_id) if event.deal_id is not None else None
    if deal is None:
        return state
    bought = deal.bought.set(reservation.buyer_id, deal.bought.get(reservation.buyer_id, 0) - event.quantity)
    return _with_deal(state, replace(deal, bought=bought))


def _on_deal_units_returned(state: StockState, event: DealUnitsReturned) -> StockState:
    deal = state.deals[event.deal_id]
    return _with_deal(state, replace(deal, units_left=deal.units_left + event.quantity))


def _on_deal_opened(state: StockState, event: DealOpened) -> StockState:
    return _with_deal(
        state,
        Deal(
            deal_id=event.deal_id,
            units_allocated=event.units_allocated,
            per_buyer_cap=event.per_buyer_cap,
            units_left=event.units_allocated,
        ),
    )


def _on_deal_closed(state: StockState, event: DealClosed) -> StockState:
    deal = state.deals.get(event.deal_id)
    if deal is None:
        return replace(state, closed_unopened=state.closed_unopened | {event.deal_id})
    return _with_deal(state, replace(deal, ended_at=event.ended_at))


def _on_deferred(state: StockState, event: ReservationDeferred) -> StockState:
    waiting = Deferred(
        event.reservation_id,
        event.order_id,
        event.buyer_id,
        event.quantity,
        event.deal_id,
        event.placed_at,
        event.occurred_at,
    )
    return replace(state, deferred={**state.deferred, event.order_id: waiting})


def _on_withdrawn(state: StockState, event: DeferredReservationWithdrawn) -> StockState:
    return replace(
        state,
        deferred=_without(state.deferred, event.order_id),
        withdrawn=state.withdrawn | {event.order_id},
    )


_EVOLVERS: Mapping[type[DomainEvent], Callable[[StockState, Any], StockState]] = {
    SkuRegistered: _on_registered,
    StockReceived: _on_received,
    StockAdjusted: _on_adjusted,
    StockReserved: _on_reserved,
    StockReservationRejected: _on_rejected,
    StockReleased: _on_released,
    DealUnitsReturned: _on_deal_units_returned,
    DealOpened: _on_deal_opened,
    DealClosed: _on_deal_closed,
    ReservationDeferred: _on_deferred,
    DeferredReservationWithdrawn: _on_withdrawn,
}

BRAND = BrandDecider()
PRODUCT = ProductDecider()
STOCK = StockDecider()
