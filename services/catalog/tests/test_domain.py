"""The catalog's deciders, given/when/then: every command path and every refusal, and the stock
invariants (never oversold, each order decided once, deal caps) over random interleavings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from shopstream_catalog.commands import (
    Actor,
    AdjustStock,
    CloseDeal,
    CreateProduct,
    ExpireDeferredReservations,
    NewPrice,
    NewSku,
    OnboardBrand,
    OpenDeal,
    ReceiveStock,
    RegisterSku,
    ReleaseReason,
    ReleaseStock,
    ReserveStock,
    SetListPrice,
    StockCommand,
)
from shopstream_catalog.domain import BRAND, PRODUCT, STOCK, StockState
from shopstream_catalog.events import (
    DealClosed,
    DealOpened,
    DealUnitsReturned,
    DeferredReservationWithdrawn,
    ReservationDeferred,
    SkuRegistered,
)
from shopstream_contracts import Money
from shopstream_contracts.catalog.v1 import (
    BrandOnboarded,
    ListPriceSet,
    ProductCreated,
    Sku,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound, fold

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
BRAND_ID = "brd_glow"
PRODUCT_ID = "prd_serum"
SKU_ID = "sku_serum_30ml"
ADMIN = Actor("usr_admin", frozenset({"admin"}))
STAFF = Actor("usr_glow_ops", frozenset({"brand"}), frozenset({BRAND_ID}))
OTHER_STAFF = Actor("usr_other_ops", frozenset({"brand"}), frozenset({"brd_other"}))
VIEWER = Actor("usr_viewer", frozenset({"viewer"}), frozenset({BRAND_ID}))
"""A viewer whose token lists the brand still does not manage it: the role is required."""


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rejection_reason(events: Sequence[DomainEvent]) -> str:
    assert len(events) == 1
    assert isinstance(events[0], StockReservationRejected)
    return events[0].reason


# --- brand ------------------------------------------------------------------------------------


def onboard(actor: Actor = ADMIN, **overrides: Any) -> OnboardBrand:
    fields: dict[str, Any] = {
        "brand_id": BRAND_ID,
        "name": "Glow",
        "country": "BR",
        "default_currency": "BRL",
        "actor": actor,
        "at": T0,
    }
    return OnboardBrand(**(fields | overrides))


BRAND_ONBOARDED = BrandOnboarded(
    brand_id=BRAND_ID,
    name="Glow",
    country="BR",
    default_currency="BRL",
    onboarded_by="usr_admin",
    occurred_at=T0,
)


class TestBrand:
    def test_an_admin_onboards_a_brand(self) -> None:
        assert BRAND.decide(onboard(), BRAND.initial_state()) == [BRAND_ONBOARDED]

    @pytest.mark.parametrize("actor", [STAFF, VIEWER])
    def test_only_an_admin_onboards(self, actor: Actor) -> None:
        with pytest.raises(Forbidden) as refused:
            BRAND.decide(onboard(actor), BRAND.initial_state())
        assert refused.value.code == "admin_required"

    def test_a_brand_is_onboarded_once(self) -> None:
        with pytest.raises(DomainError) as refused:
            BRAND.decide(onboard(), fold(BRAND, [BRAND_ONBOARDED]))
        assert (refused.value.code, refused.value.status, refused.value.field) == (
            "brand_exists",
            409,
            "brand_id",
        )

    def test_a_value_the_contract_refuses_is_invalid_on_its_field(self) -> None:
        with pytest.raises(Invalid) as refused:
            BRAND.decide(onboard(country="Brazil"), BRAND.initial_state())
        assert refused.value.field == "country"


# --- product ----------------------------------------------------------------------------------

SKUS = (
    NewSku("sku_serum_30ml", {"size": "30ml"}, "7891234567895"),
    NewSku("sku_serum_50ml", {"size": "50ml"}),
)


def create(actor: Actor = STAFF, **overrides: Any) -> CreateProduct:
    fields: dict[str, Any] = {
        "product_id": PRODUCT_ID,
        "brand_id": BRAND_ID,
        "brand_onboarded": True,
        "title": "Vitamin C serum",
        "description": None,
        "skus": SKUS,
        "actor": actor,
        "at": T0,
    }
    return CreateProduct(**(fields | overrides))


PRODUCT_CREATED = ProductCreated(
    product_id=PRODUCT_ID,
    brand_id=BRAND_ID,
    title="Vitamin C serum",
    skus=[
        Sku(sku_id="sku_serum_30ml", options={"size": "30ml"}, barcode="7891234567895"),
        Sku(sku_id="sku_serum_50ml", options={"size": "50ml"}),
    ],
    created_by="usr_glow_ops",
    occurred_at=T0,
)


def price(amount: int, actor: Actor = STAFF, **overrides: Any) -> SetListPrice:
    fields: dict[str, Any] = {
        "product_id": PRODUCT_ID,
        "sku_id": SKU_ID,
        "market": "BR",
        "price": brl(amount),
        "actor": actor,
        "at": at(60),
    }
    return SetListPrice(**(fields | overrides))


def price_set(amount: int, previous: int | None = None, market: str = "BR") -> ListPriceSet:
    return ListPriceSet(
        product_id=PRODUCT_ID,
        sku_id=SKU_ID,
        brand_id=BRAND_ID,
        market=market,
        price=brl(amount),
        previous_price=None if previous is None else brl(previous),
        set_by="usr_glow_ops",
        occurred_at=at(60),
    )


class TestCreateProduct:
    def test_brand_staff_create_a_product_of_their_brand(self) -> None:
        assert PRODUCT.decide(create(), PRODUCT.initial_state()) == [PRODUCT_CREATED]

    def test_an_admin_creates_a_product_of_any_brand(self) -> None:
        (created,) = PRODUCT.decide(create(ADMIN), PRODUCT.initial_state())
        assert isinstance(created, ProductCreated)
        assert (created.brand_id, created.created_by) == (BRAND_ID, "usr_admin")

    @pytest.mark.parametrize("actor", [OTHER_STAFF, VIEWER])
    def test_nobody_else_creates_products_of_the_brand(self, actor: Actor) -> None:
        with pytest.raises(Forbidden) as refused:
            PRODUCT.decide(create(actor), PRODUCT.initial_state())
        assert refused.value.code == "not_brand_staff"

    def test_a_product_belongs_to_an_onboarded_brand(self) -> None:
        with pytest.raises(NotFound) as refused:
            PRODUCT.decide(create(brand_onboarded=False), PRODUCT.initial_state())
        assert (refused.value.code, refused.value.field) == ("brand_not_found", "brand_id")

    def test_initial_list_prices_are_set_with_the_product(self) -> None:
        skus = (SKUS[0], NewSku("sku_serum_50ml", {"size": "50ml"}, None, (NewPrice("BR", brl(15990)),)))
        created, priced = PRODUCT.decide(create(skus=skus), PRODUCT.initial_state())
        assert created == PRODUCT_CREATED
        assert isinstance(priced, ListPriceSet)
        assert (priced.sku_id, priced.market, priced.price, priced.previous_price) == (
            "sku_serum_50ml",
            "BR",
            brl(15990),
            None,
        )

    @pytest.mark.parametrize(
        ("prices", "code", "field"),
        [
            (
                (NewPrice("BR", brl(100)), NewPrice("BR", brl(200))),
                "duplicate_market",
                "skus.0.list_prices.1.market",
            ),
            ((NewPrice("BR", brl(0)),), "non_positive_price", "skus.0.list_prices.0.price.amount"),
            ((NewPrice("Brazil", brl(100)),), "invalid_value", "skus.0.list_prices.0.market"),
        ],
    )
    def test_initial_list_prices_follow_the_price_rules(
        self, prices: tuple[NewPrice, ...], code: str, field: str
    ) -> None:
        with pytest.raises(Invalid) as refused:
            PRODUCT.decide(create(skus=(NewSku("a", {}, None, prices),)), PRODUCT.initial_state())
        assert (refused.value.code, refused.value.field) == (code, field)

    def test_a_product_id_is_used_once(self) -> None:
        with pytest.raises(DomainError) as refused:
            PRODUCT.decide(create(), fold(PRODUCT, [PRODUCT_CREATED]))
        assert (refused.value.code, refused.value.status) == ("product_exists", 409)

    def test_a_product_has_a_sku(self) -> None:
        with pytest.raises(Invalid) as refused:
            PRODUCT.decide(create(skus=()), PRODUCT.initial_state())
        assert (refused.value.code, refused.value.field) == ("no_skus", "skus")

    @pytest.mark.parametrize(
        ("skus", "code", "field"),
        [
            ((NewSku("a", {"size": "S"}), NewSku("a", {"size": "M"})), "duplicate_sku", "skus.1.sku_id"),
            ((NewSku("a", {"size": "S"}), NewSku("b", {"size": "S"})), "duplicate_options", "skus.1.options"),
            (
                (NewSku("a", {}, "12345678"), NewSku("b", {"x": "y"}, "12345678")),
                "duplicate_barcode",
                "skus.1.barcode",
            ),
        ],
    )
    def test_skus_of_a_product_are_distinct(self, skus: tuple[NewSku, ...], code: str, field: str) -> None:
        with pytest.raises(Invalid) as refused:
            PRODUCT.decide(create(skus=skus), PRODUCT.initial_state())
        assert (refused.value.code, refused.value.field) == (code, field)

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [({"title": ""}, "title"), ({"skus": (NewSku("a", {}, "12ab"),)}, "skus.0.barcode")],
    )
    def test_values_the_contract_refuses_are_invalid_on_their_field(
        self, overrides: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(Invalid) as refused:
            PRODUCT.decide(create(**overrides), PRODUCT.initial_state())
        assert refused.value.field == field


class TestListPrice:
    def test_the_first_price_of_a_sku_in_a_market_has_no_previous_price(self) -> None:
        assert PRODUCT.decide(price(12990), fold(PRODUCT, [PRODUCT_CREATED])) == [price_set(12990)]

    def test_a_new_price_names_the_one_it_replaces(self) -> None:
        state = fold(PRODUCT, [PRODUCT_CREATED, price_set(12990)])
        assert PRODUCT.decide(price(9990), state) == [price_set(9990, previous=12990)]

    def test_markets_are_priced_separately(self) -> None:
        state = fold(PRODUCT, [PRODUCT_CREATED, price_set(12990)])
        events = PRODUCT.decide(price(2490, market="US", price=Money(amount=2490, currency="USD")), state)
        assert len(events) == 1
        assert isinstance(events[0], ListPriceSet)
        assert (events[0].market, events[0].previous_price) == ("US", None)

    def test_setting_the_current_price_again_changes_nothing(self) -> None:
        state = fold(PRODUCT, [PRODUCT_CREATED, price_set(12990)])
        assert PRODUCT.decide(price(12990), state) == []

    def test_an_admin_sets_prices_of_any_brand(self) -> None:
        (event,) = PRODUCT.decide(price(12990, ADMIN), fold(PRODUCT, [PRODUCT_CREATED]))
        assert isinstance(event, ListPriceSet)
        assert event.set_by == "usr_admin"

    def test_an_unknown_product_is_not_found(self) -> None:
        with pytest.raises(NotFound) as refused:
            PRODUCT.decide(price(12990), PRODUCT.initial_state())
        assert (refused.value.code, refused.value.field) == ("product_not_found", "product_id")

    def test_a_sku_of_another_product_is_not_found(self) -> None:
        with pytest.raises(NotFound) as refused:
            PRODUCT.decide(price(12990, sku_id="sku_other"), fold(PRODUCT, [PRODUCT_CREATED]))
        assert (refused.value.code, refused.value.field) == ("sku_not_found", "sku_id")

    @pytest.mark.parametrize("actor", [OTHER_STAFF, VIEWER])
    def test_only_the_brand_or_an_admin_prices(self, actor: Actor) -> None:
        with pytest.raises(Forbidden):
            PRODUCT.decide(price(12990, actor), fold(PRODUCT, [PRODUCT_CREATED]))

    @pytest.mark.parametrize("amount", [0, -100])
    def test_a_list_price_is_above_zero(self, amount: int) -> None:
        with pytest.raises(Invalid) as refused:
            PRODUCT.decide(price(amount), fold(PRODUCT, [PRODUCT_CREATED]))
        assert (refused.value.code, refused.value.field) == ("non_positive_price", "price.amount")


# --- stock ------------------------------------------------------------------------------------

REGISTERED = SkuRegistered(sku_id=SKU_ID, product_id=PRODUCT_ID, brand_id=BRAND_ID, occurred_at=T0)


def received(
    quantity: int, on_hand_after: int | None = None, available_after: int | None = None
) -> StockReceived:
    return StockReceived(
        sku_id=SKU_ID,
        product_id=PRODUCT_ID,
        brand_id=BRAND_ID,
        quantity=quantity,
        on_hand_after=quantity if on_hand_after is None else on_hand_after,
        available_after=quantity if available_after is None else available_after,
        received_by="usr_glow_ops",
        occurred_at=T0,
    )


def reserve(
    order: str, quantity: int = 1, *, buyer: str | None = None, deal: str | None = None, placed: float = 1
) -> ReserveStock:
    return ReserveStock(
        sku_id=SKU_ID,
        order_id=order,
        buyer_id=buyer or f"buyer-of-{order}",
        quantity=quantity,
        deal_id=deal,
        reservation_id=f"res-{order}",
        placed_at=at(placed),
        at=at(placed + 0.5),
    )


def cancel(order: str, when: float = 100) -> ReleaseStock:
    return ReleaseStock(SKU_ID, order, "order_cancelled", None, None, at(when))


def refund(order: str, refund_id: str, quantity: int, when: float = 100) -> ReleaseStock:
    return ReleaseStock(SKU_ID, order, "order_refunded", quantity, refund_id, at(when))


def open_deal(deal: str = "deal-1", units: int = 5, cap: int = 2, when: float = 0) -> OpenDeal:
    return OpenDeal(SKU_ID, deal, "liv_1", units, cap, at(when), at(when + 600), at(when))


def close_deal(deal: str = "deal-1", when: float = 50) -> CloseDeal:
    return CloseDeal(SKU_ID, deal, "deadline", at(when), at(when))


def run(
    commands: Sequence[StockCommand], events: Sequence[DomainEvent] = (REGISTERED,)
) -> tuple[StockState, list[DomainEvent]]:
    """Decide each command on the state the previous ones left; the events they caused."""
    state = fold(STOCK, events)
    caused: list[DomainEvent] = []
    for command in commands:
        new = STOCK.decide(command, state)
        for event in new:
            state = STOCK.evolve(state, event)
        caused.extend(new)
    return state, caused


def last(
    commands: Sequence[StockCommand], events: Sequence[DomainEvent] = (REGISTERED,)
) -> Sequence[DomainEvent]:
    """The events the last command caused, on the state the others left."""
    state, _ = run(commands[:-1], events)
    return STOCK.decide(commands[-1], state)


class TestRegisterSku:
    def test_a_new_product_registers_its_skus(self) -> None:
        command = RegisterSku(SKU_ID, PRODUCT_ID, BRAND_ID, T0)
        assert STOCK.decide(command, STOCK.initial_state()) == [REGISTERED]

    def test_registering_again_for_the_same_product_changes_nothing(self) -> None:
        assert STOCK.decide(RegisterSku(SKU_ID, PRODUCT_ID, BRAND_ID, T0), fold(STOCK, [REGISTERED])) == []

    def test_a_sku_belongs_to_one_product(self) -> None:
        with pytest.raises(DomainError) as refused:
            STOCK.decide(RegisterSku(SKU_ID, "prd_other", BRAND_ID, T0), fold(STOCK, [REGISTERED]))
        assert (refused.value.code, refused.value.field) == ("sku_taken", "sku_id")


class TestReceiveAndAdjust:
    def test_received_units_add_to_on_hand_and_available(self) -> None:
        events = last(
            [reserve("o1", 3), ReceiveStock(SKU_ID, 5, "PO-7", STAFF, at(10))], [REGISTERED, received(10)]
        )
        assert events == [
            StockReceived(
                sku_id=SKU_ID,
                product_id=PRODUCT_ID,
                brand_id=BRAND_ID,
                quantity=5,
                on_hand_after=15,
                available_after=12,
                reference="PO-7",
                received_by="usr_glow_ops",
                occurred_at=at(10),
            )
        ]

    def test_an_unknown_sku_is_not_found(self) -> None:
        with pytest.raises(NotFound) as refused:
            STOCK.decide(ReceiveStock(SKU_ID, 5, None, STAFF, T0), STOCK.initial_state())
        assert (refused.value.code, refused.value.field) == ("sku_not_found", "sku_id")

    @pytest.mark.parametrize("actor", [OTHER_STAFF, VIEWER])
    def test_only_the_brand_or_an_admin_receives(self, actor: Actor) -> None:
        with pytest.raises(Forbidden):
            STOCK.decide(ReceiveStock(SKU_ID, 5, None, actor, T0), fold(STOCK, [REGISTERED]))

    def test_an_admin_receives_stock_of_any_brand(self) -> None:
        (event,) = STOCK.decide(ReceiveStock(SKU_ID, 5, None, ADMIN, T0), fold(STOCK, [REGISTERED]))
        assert isinstance(event, StockReceived)
        assert event.received_by == "usr_admin"

    def test_at_least_one_unit_is_received(self) -> None:
        with pytest.raises(Invalid) as refused:
            STOCK.decide(ReceiveStock(SKU_ID, 0, None, STAFF, T0), fold(STOCK, [REGISTERED]))
        assert refused.value.field == "quantity"

    def test_an_adjustment_moves_on_hand_and_available(self) -> None:
        events = last(
            [reserve("o1", 3), AdjustStock(SKU_ID, -4, "damaged", "box crushed", STAFF, at(10))],
            [REGISTERED, received(10)],
        )
        assert events == [
            StockAdjusted(
                sku_id=SKU_ID,
                product_id=PRODUCT_ID,
                brand_id=BRAND_ID,
                delta=-4,
                reason="damaged",
                note="box crushed",
                on_hand_after=6,
                available_after=3,
                adjusted_by="usr_glow_ops",
                occurred_at=at(10),
            )
        ]

    def test_an_adjustment_never_takes_on_hand_below_what_is_reserved(self) -> None:
        state, _ = run([reserve("o1", 3)], [REGISTERED, received(10)])
        assert STOCK.decide(AdjustStock(SKU_ID, -7, "lost", None, STAFF, T0), state) != []
        with pytest.raises(DomainError) as refused:
            STOCK.decide(AdjustStock(SKU_ID, -8, "lost", None, STAFF, T0), state)
        assert (refused.value.code, refused.value.status, refused.value.field) == (
            "below_reserved",
            409,
            "delta",
        )

    def test_an_adjustment_never_takes_on_hand_below_zero(self) -> None:
        with pytest.raises(DomainError) as refused:
            STOCK.decide(
                AdjustStock(SKU_ID, -11, "count", None, STAFF, T0), fold(STOCK, [REGISTERED, received(10)])
            )
        assert (refused.value.code, refused.value.field) == ("negative_on_hand", "delta")

    def test_an_adjustment_changes_something(self) -> None:
        with pytest.raises(Invalid) as refused:
            STOCK.decide(AdjustStock(SKU_ID, 0, "count", None, STAFF, T0), fold(STOCK, [REGISTERED]))
        assert (refused.value.code, refused.value.field) == ("zero_delta", "delta")

    def test_adjustments_are_for_the_brand_or_an_admin_on_a_known_sku(self) -> None:
        with pytest.raises(Forbidden):
            STOCK.decide(AdjustStock(SKU_ID, 1, "found", None, OTHER_STAFF, T0), fold(STOCK, [REGISTERED]))
        with pytest.raises(NotFound):
            STOCK.decide(AdjustStock(SKU_ID, 1, "found", None, ADMIN, T0), STOCK.initial_state())


class TestReserve:
    def test_an_order_reserves_its_units(self) -> None:
        assert last([reserve("o1", 2)], [REGISTERED, received(5)]) == [
            StockReserved(
                sku_id=SKU_ID,
                product_id=PRODUCT_ID,
                brand_id=BRAND_ID,
                reservation_id="res-o1",
                order_id="o1",
                buyer_id="buyer-of-o1",
                quantity=2,
                available_after=3,
                occurred_at=at(1.5),
            )
        ]

    def test_an_order_is_reserved_once(self) -> None:
        assert last([reserve("o1", 2), reserve("o1", 2)], [REGISTERED, received(5)]) == []

    def test_a_rejected_order_stays_rejected_when_stock_comes_back(self) -> None:
        events: list[DomainEvent] = [REGISTERED, received(1)]
        assert last([reserve("o1", 2), reserve("o1", 2)], events) == []
        state, caused = run(
            [reserve("o1", 2), ReceiveStock(SKU_ID, 5, None, STAFF, T0), reserve("o1", 2)], events
        )
        assert [type(e) for e in caused] == [StockReservationRejected, StockReceived]
        assert state.reserved == 0

    def test_an_unknown_sku_is_rejected_not_raised(self) -> None:
        assert rejection_reason(last([reserve("o1")], [])) == "unknown_sku"

    def test_nothing_left_is_sold_out(self) -> None:
        assert (
            rejection_reason(last([reserve("o1", 2), reserve("o2")], [REGISTERED, received(2)])) == "sold_out"
        )

    def test_fewer_left_than_ordered_is_insufficient_stock(self) -> None:
        events = last([reserve("o1", 2), reserve("o2", 2)], [REGISTERED, received(3)])
        assert rejection_reason(events) == "insufficient_stock"
        assert isinstance(events[0], StockReservationRejected)
        assert events[0].detail == "1 unit(s) left, 2 ordered"

    def test_units_held_by_a_running_deal_are_not_sold_outside_it(self) -> None:
        stock: list[DomainEvent] = [REGISTERED, received(10)]
        assert rejection_reason(last([open_deal(units=8), reserve("o1", 3)], stock)) == "insufficient_stock"
        assert rejection_reason(last([open_deal(units=10), reserve("o1", 1)], stock)) == "sold_out"
        (reserved,) = last([open_deal(units=8), reserve("o1", 2)], stock)
        assert isinstance(reserved, StockReserved)
        assert (reserved.deal_id, reserved.available_after) == (None, 8)

    def test_units_a_deal_did_not_sell_come_back_when_it_ends(self) -> None:
        (reserved,) = last([open_deal(units=10), close_deal(), reserve("o1", 4)], [REGISTERED, received(10)])
        assert isinstance(reserved, StockReserved)


class TestFlashDeal:
    STOCK: tuple[DomainEvent, ...] = (REGISTERED, received(10))

    def test_a_deal_sets_aside_its_units(self) -> None:
        assert last([open_deal(units=5, cap=2)], self.STOCK) == [
            DealOpened(
                sku_id=SKU_ID,
                deal_id="deal-1",
                live_id="liv_1",
                units_announced=5,
                units_allocated=5,
                per_buyer_cap=2,
                started_at=T0,
                ends_at=at(600),
                occurred_at=T0,
            )
        ]

    def test_a_deal_sets_aside_no_more_than_the_stock_not_already_held(self) -> None:
        (opened,) = last(
            [reserve("o1", 3), open_deal("deal-a", units=4), open_deal("deal-b", units=9)], self.STOCK
        )
        assert isinstance(opened, DealOpened)
        assert (opened.units_announced, opened.units_allocated) == (9, 3)

    def test_a_deal_order_takes_from_the_deal(self) -> None:
        (reserved,) = last([open_deal(), reserve("o1", 2, deal="deal-1")], self.STOCK)
        assert isinstance(reserved, StockReserved)
        assert (reserved.deal_id, reserved.deal_units_left, reserved.available_after) == ("deal-1", 3, 8)

    def test_the_deal_sells_its_units_and_no_more(self) -> None:
        orders = [reserve(f"o{n}", deal="deal-1") for n in range(7)]
        state, caused = run([open_deal(units=5, cap=1), *orders], self.STOCK)
        reasons = [e.reason for e in caused if isinstance(e, StockReservationRejected)]
        assert sum(isinstance(e, StockReserved) for e in caused) == 5
        assert reasons == ["deal_cap_reached", "deal_cap_reached"]
        assert (state.reserved, state.deals["deal-1"].units_left) == (5, 0)

    def test_a_buyer_gets_no_more_than_the_per_buyer_cap_across_orders(self) -> None:
        commands: list[StockCommand] = [open_deal(cap=2), reserve("o1", 1, buyer="ana", deal="deal-1")]
        events = last([*commands, reserve("o2", 2, buyer="ana", deal="deal-1")], self.STOCK)
        assert rejection_reason(events) == "per_buyer_cap_reached"
        (reserved,) = last([*commands, reserve("o2", 1, buyer="ana", deal="deal-1")], self.STOCK)
        assert isinstance(reserved, StockReserved)

    def test_an_order_placed_after_the_deal_ended_is_refused(self) -> None:
        events = last([open_deal(), close_deal(when=50), reserve("o1", deal="deal-1", placed=51)], self.STOCK)
        assert rejection_reason(events) == "deal_not_active"

    def test_an_order_placed_before_the_deal_ended_counts_even_if_the_end_came_first(self) -> None:
        (reserved,) = last(
            [open_deal(), close_deal(when=50), reserve("o1", deal="deal-1", placed=49)], self.STOCK
        )
        assert isinstance(reserved, StockReserved)
        assert reserved.deal_units_left == 4

    def test_a_deal_that_ended_here_without_starting_is_not_active(self) -> None:
        assert rejection_reason(last([close_deal(), reserve("o1", deal="deal-1", placed=0)], self.STOCK)) == (
            "deal_not_active"
        )

    def test_physical_stock_bounds_a_deal(self) -> None:
        commands: list[StockCommand] = [
            open_deal(units=5, cap=5),
            AdjustStock(SKU_ID, -8, "lost", None, STAFF, T0),
        ]
        assert rejection_reason(last([*commands, reserve("o1", 3, deal="deal-1")], self.STOCK)) == (
            "insufficient_stock"
        )

    def test_deal_orders_never_take_another_running_deals_units(self) -> None:
        commands: list[StockCommand] = [
            open_deal("deal-a", units=6, cap=9),
            open_deal("deal-b", units=4, cap=9),
        ]
        commands += [AdjustStock(SKU_ID, -3, "damaged", None, STAFF, T0)]
        assert rejection_reason(last([*commands, reserve("o1", 4, deal="deal-a")], self.STOCK)) == (
            "insufficient_stock"
        )
        (reserved,) = last([*commands, reserve("o1", 3, deal="deal-a")], self.STOCK)
        assert isinstance(reserved, StockReserved)

    def test_a_deal_is_opened_and_closed_once(self) -> None:
        assert last([open_deal(), open_deal()], self.STOCK) == []
        assert last([open_deal(), close_deal(), close_deal()], self.STOCK) == []
        assert last([close_deal(), open_deal()], self.STOCK) == []

    def test_closing_reports_the_units_left(self) -> None:
        events = last([open_deal(units=5), reserve("o1", 2, deal="deal-1"), close_deal(when=50)], self.STOCK)
        assert events == [
            DealClosed(
                sku_id=SKU_ID,
                deal_id="deal-1",
                reason="deadline",
                ended_at=at(50),
                units_left=3,
                occurred_at=at(50),
            )
        ]


class TestOrderBeforeItsDeal:
    STOCK: tuple[DomainEvent, ...] = (REGISTERED, received(10))

    def test_an_order_of_a_deal_not_heard_of_yet_waits(self) -> None:
        assert last([reserve("o1", deal="deal-1")], self.STOCK) == [
            ReservationDeferred(
                sku_id=SKU_ID,
                reservation_id="res-o1",
                order_id="o1",
                buyer_id="buyer-of-o1",
                quantity=1,
                deal_id="deal-1",
                placed_at=at(1),
                occurred_at=at(1.5),
            )
        ]

    def test_waiting_orders_are_decided_in_arrival_order_when_the_deal_opens(self) -> None:
        waiting = [reserve("o1", 2, buyer="ana", deal="deal-1"), reserve("o2", 2, buyer="bob", deal="deal-1")]
        waiting += [reserve("o3", 1, buyer="cid", deal="deal-1"), reserve("o4", 1, buyer="dan", deal="other")]
        opened, first, second, third = last([*waiting, open_deal(units=3, cap=2, when=5)], self.STOCK)
        assert isinstance(opened, DealOpened)
        assert isinstance(first, StockReserved)
        assert (first.order_id, first.deal_units_left, first.occurred_at) == ("o1", 1, at(5))
        assert isinstance(second, StockReservationRejected)
        assert (second.order_id, second.reason) == ("o2", "deal_cap_reached")
        assert isinstance(third, StockReserved)
        assert third.order_id == "o3"

    def test_a_waiting_order_is_answered_once(self) -> None:
        commands: list[StockCommand] = [
            reserve("o1", deal="deal-1"),
            open_deal(),
            reserve("o1", deal="deal-1"),
        ]
        assert last(commands, self.STOCK) == []
        assert last([reserve("o1", deal="deal-1"), reserve("o1", deal="deal-1")], self.STOCK) == []

    def test_waiting_orders_are_refused_when_the_deal_ends_without_starting_here(self) -> None:
        closed, refused = last([reserve("o1", deal="deal-1"), close_deal()], self.STOCK)
        assert isinstance(closed, DealClosed)
        assert rejection_reason([refused]) == "deal_not_active"

    def test_orders_waiting_too_long_are_refused(self) -> None:
        commands: list[StockCommand] = [
            reserve("o1", deal="deal-1", placed=1),
            reserve("o2", deal="deal-2", placed=30),
            ExpireDeferredReservations(SKU_ID, deferred_before=at(10), at=at(70)),
        ]
        state, caused = run(commands, self.STOCK)
        (expired,) = caused[2:]
        assert isinstance(expired, StockReservationRejected)
        assert (expired.order_id, expired.reason, expired.occurred_at) == ("o1", "deal_not_active", at(70))
        assert list(state.deferred) == ["o2"]

    def test_a_cancelled_waiting_order_is_withdrawn_and_never_reserved(self) -> None:
        state, caused = run([reserve("o1", deal="deal-1"), cancel("o1"), open_deal()], self.STOCK)
        assert caused[1] == DeferredReservationWithdrawn(
            sku_id=SKU_ID, order_id="o1", deal_id="deal-1", occurred_at=at(100)
        )
        assert [type(e) for e in caused[2:]] == [DealOpened]
        assert state.reserved == 0
        assert (
            last([reserve("o1", deal="deal-1"), cancel("o1"), reserve("o1", deal="deal-1")], self.STOCK) == []
        )


class TestRelease:
    STOCK: tuple[DomainEvent, ...] = (REGISTERED, received(10))

    def released(
        self, quantity: int, reason: ReleaseReason, refund_id: str | None, available_after: int
    ) -> StockReleased:
        return StockReleased(
            sku_id=SKU_ID,
            product_id=PRODUCT_ID,
            brand_id=BRAND_ID,
            reservation_id="res-o1",
            order_id="o1",
            quantity=quantity,
            reason=reason,
            refund_id=refund_id,
            available_after=available_after,
            occurred_at=at(100),
        )

    def test_a_cancellation_releases_every_unit(self) -> None:
        assert last([reserve("o1", 3), cancel("o1")], self.STOCK) == [
            self.released(3, "order_cancelled", None, 10)
        ]

    def test_a_cancellation_releases_once(self) -> None:
        assert last([reserve("o1", 3), cancel("o1"), cancel("o1")], self.STOCK) == []

    def test_a_refund_releases_the_units_it_returns(self) -> None:
        assert last([reserve("o1", 3), refund("o1", "rf-1", 1)], self.STOCK) == [
            self.released(1, "order_refunded", "rf-1", 8)
        ]

    def test_a_refund_releases_once(self) -> None:
        assert last([reserve("o1", 3), refund("o1", "rf-1", 1), refund("o1", "rf-1", 1)], self.STOCK) == []

    def test_refunds_never_release_more_than_is_still_reserved(self) -> None:
        state, caused = run([reserve("o1", 3), refund("o1", "rf-1", 2), refund("o1", "rf-2", 2)], self.STOCK)
        assert [e.quantity for e in caused if isinstance(e, StockReleased)] == [2, 1]
        assert state.reserved == 0
        assert last([reserve("o1", 3), refund("o1", "rf-1", 3), cancel("o1")], self.STOCK) == []

    def test_a_cancellation_after_a_partial_refund_releases_the_rest(self) -> None:
        assert last([reserve("o1", 3), refund("o1", "rf-1", 1), cancel("o1")], self.STOCK) == [
            self.released(2, "order_cancelled", None, 10)
        ]

    def test_a_money_only_refund_releases_nothing(self) -> None:
        assert last([reserve("o1", 3), refund("o1", "rf-1", 0)], self.STOCK) == []

    @pytest.mark.parametrize("setup", [[], [reserve("o1", 30)]])
    def test_an_order_without_units_reserved_releases_nothing(self, setup: list[StockCommand]) -> None:
        assert last([*setup, cancel("o1")], self.STOCK) == []

    def test_units_of_a_running_deal_go_back_to_the_deal(self) -> None:
        commands: list[StockCommand] = [
            open_deal(units=5, cap=1),
            reserve("o1", buyer="ana", deal="deal-1"),
            cancel("o1"),
        ]
        released, returned = last(commands, self.STOCK)
        assert isinstance(released, StockReleased)
        assert released.deal_id == "deal-1"
        assert returned == DealUnitsReturned(
            sku_id=SKU_ID,
            deal_id="deal-1",
            order_id="o1",
            buyer_id="ana",
            quantity=1,
            units_left_after=5,
            occurred_at=at(100),
        )
        (again,) = last([*commands, reserve("o2", buyer="ana", deal="deal-1")], self.STOCK)
        assert isinstance(again, StockReserved)
        assert again.deal_units_left == 4

    def test_units_of_an_ended_deal_go_back_to_general_stock(self) -> None:
        commands: list[StockCommand] = [
            open_deal(units=5),
            reserve("o1", deal="deal-1"),
            close_deal(),
            cancel("o1"),
        ]
        state, caused = run(commands, self.STOCK)
        assert not any(isinstance(e, DealUnitsReturned) for e in caused)
        assert (state.reserved, state.available, state.held()) == (0, 10, 0)


# --- properties -------------------------------------------------------------------------------


BUYERS = ["ana", "bob", "cid", "dan"]
DEALS = ["deal-a", "deal-b"]
ORDERS = [f"o{n}" for n in range(12)]


def steps() -> st.SearchStrategy[StockCommand]:
    order = st.sampled_from(ORDERS)
    deal = st.sampled_from(DEALS)
    quantity = st.integers(min_value=1, max_value=3)
    when = st.integers(min_value=0, max_value=100)
    return st.one_of(
        st.builds(lambda q, t: ReceiveStock(SKU_ID, q, None, STAFF, at(t)), st.integers(1, 6), when),
        st.builds(
            lambda d, t: AdjustStock(SKU_ID, d, "correction", None, STAFF, at(t)),
            st.integers(-6, 6).filter(bool),
            when,
        ),
        st.builds(
            lambda o, q, b, d, t: ReserveStock(SKU_ID, o, b, q, d, f"res-{o}", at(t), at(t)),
            order,
            quantity,
            st.sampled_from(BUYERS),
            st.one_of(st.none(), deal),
            when,
        ),
        st.builds(lambda o, t: cancel(o, t), order, when),
        st.builds(
            lambda o, r, q, t: refund(o, f"rf-{r}", q, t), order, st.integers(0, 3), st.integers(0, 3), when
        ),
        st.builds(
            lambda d, u, c, t: OpenDeal(SKU_ID, d, "liv_1", u, c, at(t), at(t + 30), at(t)),
            deal,
            st.integers(1, 8),
            st.integers(1, 3),
            when,
        ),
        st.builds(lambda d, t: CloseDeal(SKU_ID, d, "cancelled", at(t), at(t)), deal, when),
        st.builds(lambda t: ExpireDeferredReservations(SKU_ID, at(t), at(t)), when),
    )


def decide_all(commands: Sequence[StockCommand]) -> tuple[StockState, list[DomainEvent]]:
    """Run commands in order, skipping the ones refused (a user's mistake changes nothing), and
    check after each that deciding it again on the new state causes nothing."""
    state = fold(STOCK, [REGISTERED])
    history: list[DomainEvent] = []
    for command in commands:
        try:
            events = STOCK.decide(command, state)
        except DomainError:
            continue
        for event in events:
            state = STOCK.evolve(state, event)
        history.extend(events)
        if not isinstance(command, ReceiveStock | AdjustStock | ExpireDeferredReservations):
            assert STOCK.decide(command, state) == [], f"{command} acted twice"
        assert 0 <= state.reserved <= state.on_hand, "oversold"
    return state, history


@settings(max_examples=400, deadline=None)
@for_all(st.lists(steps(), max_size=60))
def test_stock_is_never_oversold_and_every_order_is_answered_once(commands: list[StockCommand]) -> None:
    state, history = decide_all(commands)

    answers = Counter(e.order_id for e in history if isinstance(e, StockReserved | StockReservationRejected))
    assert all(count == 1 for count in answers.values()), answers

    on_hand = sum(e.quantity for e in history if isinstance(e, StockReceived))
    on_hand += sum(e.delta for e in history if isinstance(e, StockAdjusted))
    reserved = {e.order_id: e.quantity for e in history if isinstance(e, StockReserved)}
    released = Counter[str]()
    for event in history:
        if isinstance(event, StockReleased):
            released[event.order_id] += event.quantity
            assert released[event.order_id] <= reserved[event.order_id], "released more than reserved"
    assert (state.on_hand, state.reserved) == (on_hand, sum(reserved.values()) - sum(released.values()))

    releases = Counter((e.order_id, e.refund_id or "cancel") for e in history if isinstance(e, StockReleased))
    assert all(count == 1 for count in releases.values()), releases

    for event in history:
        if isinstance(event, StockReserved | StockReleased | StockReceived | StockAdjusted):
            assert event.available_after >= 0

    for deal in state.deals.values():
        net = {
            order: quantity - released[order]
            for order, quantity in reserved.items()
            if state.reservations[order].deal_id == deal.deal_id
        }
        assert deal.units_left >= 0
        assert sum(net.values()) + deal.units_left <= deal.units_allocated, "deal oversold"
        per_buyer = Counter[str]()
        for order, units in net.items():
            per_buyer[state.reservations[order].buyer_id] += units
        assert all(units <= deal.per_buyer_cap for units in per_buyer.values()), "per-buyer cap exceeded"
        assert all(deal.bought.get(b, 0) == per_buyer[b] for b in set(deal.bought) | set(per_buyer))


@settings(max_examples=300, deadline=None)
@for_all(
    units=st.integers(1, 30),
    cap=st.integers(1, 3),
    demand=st.lists(st.integers(1, 6), min_size=1, max_size=40),
    data=st.data(),
)
def test_a_flash_deal_of_n_units_confirms_exactly_n_orders_whatever_the_interleaving(
    units: int, cap: int, demand: list[int], data: st.DataObject
) -> None:
    """Buyer ``b`` places ``demand[b]`` one-unit orders at the deal price, some delivered twice;
    the deal's start and end arrive anywhere among them (all orders were placed while it ran)."""
    orders = [
        reserve(f"b{buyer}-o{n}", 1, buyer=f"b{buyer}", deal="deal-1", placed=10 + n)
        for buyer, count in enumerate(demand)
        for n in range(count)
    ]
    duplicates = data.draw(st.lists(st.sampled_from(orders), max_size=10))
    arrivals: list[StockCommand] = data.draw(st.permutations([*orders, *duplicates]))
    opened_at = data.draw(st.integers(0, len(arrivals)))
    closed_at = data.draw(st.integers(opened_at, len(arrivals)))
    arrivals.insert(closed_at, CloseDeal(SKU_ID, "deal-1", "deadline", at(1000), at(1000)))
    arrivals.insert(opened_at, open_deal(units=units, cap=cap, when=0))

    state, history = run(arrivals, [REGISTERED, received(units + 5)])

    confirmed = [e for e in history if isinstance(e, StockReserved)]
    assert len(confirmed) == min(units, sum(min(cap, count) for count in demand))
    assert len({e.order_id for e in confirmed}) == len(confirmed)
    per_buyer = Counter(e.buyer_id for e in confirmed)
    assert max(per_buyer.values(), default=0) <= cap
    answered = {e.order_id for e in history if isinstance(e, StockReserved | StockReservationRejected)}
    assert answered == {o.order_id for o in orders}, "an order was left unanswered"
    assert state.reserved == len(confirmed) <= units
