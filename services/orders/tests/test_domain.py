"""The order decider, given/when/then: every command path and every refusal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from shopstream_contracts import Money
from shopstream_contracts.orders.v1 import (
    Attribution,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    PaymentPlan,
)
from shopstream_orders.commands import (
    Actor,
    CancelOrder,
    ConfirmOrder,
    OrderCommand,
    OrderRequest,
    PlaceOrder,
    Quote,
    RefundOrder,
    RejectOrder,
    ShipOrder,
)
from shopstream_orders.domain import Order, OrderDecider, OrderState, units_refund
from shopstream_orders.events import OrderShipped
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound, fold

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
ORDER = "ord-1"
BUYER = "usr_buyer"
BRAND = "brd_glow"
BUYER_ACTOR = Actor(BUYER)
STAFF = Actor("usr_glow_ops", brands=frozenset({BRAND}))
ADMIN = Actor("usr_admin", is_admin=True)
STRANGER = Actor("usr_other")
OTHER_STAFF = Actor("usr_other_ops", brands=frozenset({"brd_other"}))
REQUEST = OrderRequest(sku_id="sku_serum", quantity=3, market="BR", live_id="liv_1", payment_method="card")

decider = OrderDecider()


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


def a_quote(quantity: int = 3, unit: int = 3333) -> Quote:
    total = brl(unit * quantity)
    return Quote(
        market="BR",
        line=OrderLine(
            product_id="prd_serum",
            sku_id="sku_serum",
            brand_id=BRAND,
            quantity=quantity,
            unit_price=brl(unit),
            list_price=brl(4990),
            line_total=total,
        ),
        attribution=Attribution(
            channel="live",
            live_id="liv_1",
            brand_id=BRAND,
            agreement_id="agr_1",
            host_ids=["usr_ana", "usr_bia"],
            price_source="flash_deal",
            flash_deal_id="deal_1",
            live_offset_ms=60_000,
        ),
        payment_plan=PaymentPlan(method="card", installments=1, interest_free=True),
        total=total,
    )


def place(request: OrderRequest = REQUEST, quote: Quote | None = None, buyer: str = BUYER) -> PlaceOrder:
    return PlaceOrder(ORDER, buyer, request, quote or a_quote(request.quantity), T0)


def placed(quantity: int = 3, unit: int = 3333) -> OrderPlaced:
    request = OrderRequest(
        sku_id="sku_serum", quantity=quantity, market="BR", live_id="liv_1", payment_method="card"
    )
    (event,) = decider.decide(place(request, a_quote(quantity, unit)), None)
    assert isinstance(event, OrderPlaced)
    return event


def confirmed(event: OrderPlaced | None = None) -> list[DomainEvent]:
    event = event or placed()
    return [event, *decider.decide(ConfirmOrder(event.order_id, "res_1", T0), fold(decider, [event]))]


def refunded(refund_id: str, amount: int, quantity: int = 0) -> OrderRefunded:
    events = confirmed()
    (event,) = decider.decide(
        RefundOrder(ORDER, refund_id, STAFF, quantity, amount, None, T0), fold(decider, events)
    )
    assert isinstance(event, OrderRefunded)
    return event


def given(*history: DomainEvent | list[DomainEvent]) -> OrderState:
    flat: list[DomainEvent] = []
    for item in history:
        flat.extend(item if isinstance(item, list) else [item])
    return fold(decider, flat)


def when(state: OrderState, command: OrderCommand) -> Sequence[DomainEvent]:
    return decider.decide(command, state)


def refuses(
    state: OrderState, command: OrderCommand, code: str, kind: type[DomainError] = DomainError
) -> None:
    with pytest.raises(kind) as refusal:
        when(state, command)
    assert refusal.value.code == code


def cancel(actor: Actor = BUYER_ACTOR) -> CancelOrder:
    return CancelOrder(ORDER, actor, "changed my mind", T0 + timedelta(hours=1))


def refund(
    amount: int | None, quantity: int = 0, refund_id: str = "rfd_1", actor: Actor = STAFF
) -> RefundOrder:
    return RefundOrder(ORDER, refund_id, actor, quantity, amount, "damaged", T0 + timedelta(days=2))


def ship(actor: Actor = STAFF) -> ShipOrder:
    return ShipOrder(ORDER, actor, T0 + timedelta(days=1))


# -- placing ---------------------------------------------------------------------------------


def test_placing_a_new_order_records_the_quote_as_is() -> None:
    quote = a_quote()
    (event,) = when(None, place(quote=quote))
    assert event == OrderPlaced(
        order_id=ORDER,
        buyer_id=BUYER,
        market="BR",
        line=quote.line,
        attribution=quote.attribution,
        payment_plan=quote.payment_plan,
        total=quote.total,
        occurred_at=T0,
    )


def test_placing_the_same_request_again_changes_nothing() -> None:
    # Even if the price changed meanwhile: the order placed first stands.
    assert when(given(placed()), place(quote=a_quote(unit=4990))) == []


def test_placing_a_different_request_under_the_same_key_is_refused() -> None:
    other = OrderRequest(sku_id="sku_serum", quantity=1, market="BR", live_id="liv_1", payment_method="card")
    refuses(given(placed()), place(other), "idempotency_key_reused")


def test_another_buyer_cannot_reuse_an_order_id() -> None:
    refuses(given(placed()), place(buyer="usr_intruder"), "idempotency_key_reused")


# -- the saga answers --------------------------------------------------------------------------


def test_a_reservation_confirms_a_placed_order_with_a_self_contained_event() -> None:
    event = placed()
    at = T0 + timedelta(seconds=1)
    assert when(given(event), ConfirmOrder(ORDER, "res_1", at)) == [
        OrderConfirmed(
            order_id=ORDER,
            buyer_id=BUYER,
            reservation_id="res_1",
            market="BR",
            line=event.line,
            attribution=event.attribution,
            total=event.total,
            occurred_at=at,
        )
    ]


def test_a_rejected_reservation_rejects_a_placed_order_with_its_reason() -> None:
    command = RejectOrder(ORDER, "deal_cap_reached", "all 40 units are gone", T0)
    assert when(given(placed()), command) == [
        OrderRejected(
            order_id=ORDER,
            buyer_id=BUYER,
            reason="deal_cap_reached",
            detail="all 40 units are gone",
            occurred_at=T0,
        )
    ]


@pytest.mark.parametrize(
    "command",
    [ConfirmOrder(ORDER, "res_2", T0), RejectOrder(ORDER, "sold_out", None, T0)],
    ids=["confirm", "reject"],
)
def test_saga_answers_after_the_first_are_ignored(command: OrderCommand) -> None:
    rejected = [placed(), *when(given(placed()), RejectOrder(ORDER, "sold_out", None, T0))]
    assert when(given(confirmed()), command) == []
    assert when(given(rejected), command) == []
    assert when(None, command) == []


# -- cancelling --------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [BUYER_ACTOR, STAFF, ADMIN], ids=["buyer", "brand", "admin"])
def test_a_confirmed_order_is_cancelled_with_its_whole_total_and_units(actor: Actor) -> None:
    assert when(given(confirmed()), cancel(actor)) == [
        OrderCancelled(
            order_id=ORDER,
            buyer_id=BUYER,
            brand_id=BRAND,
            sku_id="sku_serum",
            quantity=3,
            refund=brl(9999),
            cancelled_by=actor.user_id,
            reason="changed my mind",
            occurred_at=T0 + timedelta(hours=1),
        )
    ]


@pytest.mark.parametrize("actor", [STRANGER, OTHER_STAFF], ids=["stranger", "other_brand"])
def test_only_the_buyer_the_brand_or_an_admin_may_cancel(actor: Actor) -> None:
    refuses(given(confirmed()), cancel(actor), "not_your_order", Forbidden)


def test_cancelling_twice_changes_nothing() -> None:
    state = given(confirmed())
    assert when(given(confirmed(), *when(state, cancel())), cancel()) == []


def test_cancelling_an_unknown_order_is_not_found() -> None:
    refuses(None, cancel(), "order_not_found", NotFound)


def test_cancelling_needs_a_confirmed_order() -> None:
    refuses(given(placed()), cancel(), "order_not_confirmed")
    rejected = when(given(placed()), RejectOrder(ORDER, "sold_out", None, T0))
    refuses(given(placed(), *rejected), cancel(), "order_rejected")


def test_a_shipped_order_cannot_be_cancelled() -> None:
    shipped = when(given(confirmed()), ship())
    refuses(given(confirmed(), *shipped), cancel(), "order_shipped")


def test_a_refunded_order_cannot_be_cancelled() -> None:
    refuses(given(confirmed(), refunded("rfd_1", 100)), cancel(), "order_refunded")


# -- shipping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [STAFF, ADMIN], ids=["brand", "admin"])
def test_the_brand_or_an_admin_ships_a_confirmed_order(actor: Actor) -> None:
    at = T0 + timedelta(days=1)
    assert when(given(confirmed()), ship(actor)) == [
        OrderShipped(order_id=ORDER, shipped_by=actor.user_id, occurred_at=at)
    ]


@pytest.mark.parametrize("actor", [BUYER_ACTOR, OTHER_STAFF], ids=["buyer", "other_brand"])
def test_only_the_brand_or_an_admin_may_ship(actor: Actor) -> None:
    refuses(given(confirmed()), ship(actor), "not_brand_staff", Forbidden)


def test_shipping_twice_changes_nothing() -> None:
    shipped = when(given(confirmed()), ship())
    assert when(given(confirmed(), *shipped), ship()) == []


def test_shipping_needs_a_live_sale() -> None:
    refuses(None, ship(), "order_not_found", NotFound)
    refuses(given(placed()), ship(), "order_not_confirmed")
    cancelled = when(given(confirmed()), cancel())
    refuses(given(confirmed(), *cancelled), ship(), "order_cancelled")
    refuses(given(confirmed(), refunded("rfd_1", 9999)), ship(), "order_refunded")


# -- refunding ---------------------------------------------------------------------------------


def test_a_partial_refund_by_amount_returns_money_only() -> None:
    (event,) = when(given(confirmed()), refund(1000))
    assert isinstance(event, OrderRefunded)
    assert (event.amount, event.quantity, event.total_refunded, event.order_total) == (
        brl(1000),
        0,
        brl(1000),
        brl(9999),
    )
    assert not event.fully_refunded
    assert (event.refunded_by, event.sku_id, event.brand_id, event.buyer_id) == (
        STAFF.user_id,
        "sku_serum",
        BRAND,
        BUYER,
    )


def test_refunds_accumulate_and_the_last_cent_makes_the_order_refunded() -> None:
    first = refunded("rfd_1", 9000)
    state = given(confirmed(), first)
    (last,) = when(state, refund(999, refund_id="rfd_2"))
    assert isinstance(last, OrderRefunded)
    assert (last.total_refunded, last.fully_refunded) == (brl(9999), True)
    after = given(confirmed(), first, last)
    assert isinstance(after, Order)
    assert (after.status, after.refunded) == ("refunded", 9999)


def uneven(total: int, quantity: int) -> OrderPlaced:
    """An order whose total is not a multiple of its quantity (a rounded discount, say)."""
    line = a_quote(quantity).line.model_copy(update={"line_total": brl(total)})
    (event,) = when(
        None, place(quote=Quote("BR", line, a_quote().attribution, a_quote().payment_plan, brl(total)))
    )
    assert isinstance(event, OrderPlaced)
    return event


def test_a_refund_by_units_is_their_pro_rata_share_floored_cumulatively() -> None:
    # 10000 over 3 units: 3333, 3333, 3334 — the last unit carries the remainder.
    history: list[DomainEvent] = confirmed(uneven(10_000, 3))
    amounts = []
    for n in range(3):
        (step,) = when(given(history), refund(None, quantity=1, refund_id=f"rfd_{n}"))
        assert isinstance(step, OrderRefunded)
        amounts.append(step.amount.amount)
        history.append(step)
    assert amounts == [3333, 3333, 3334]
    state = given(history)
    assert isinstance(state, Order)
    assert (state.status, state.refunded, state.returned_units) == ("refunded", 10_000, 3)


def test_units_refund_splits_an_uneven_total_to_the_cent() -> None:
    assert [units_refund(10000, 3, k, 1) for k in range(3)] == [3333, 3333, 3334]


def test_a_units_refund_is_capped_by_what_is_left_to_refund() -> None:
    (event,) = when(given(confirmed(), refunded("rfd_1", 9000)), refund(None, quantity=1, refund_id="rfd_2"))
    assert isinstance(event, OrderRefunded)
    assert (event.amount, event.quantity, event.fully_refunded) == (brl(999), 1, True)


def test_units_and_an_explicit_amount_go_together() -> None:
    (event,) = when(given(confirmed()), refund(500, quantity=2))
    assert isinstance(event, OrderRefunded)
    assert (event.amount, event.quantity) == (brl(500), 2)


def test_a_shipped_order_can_still_be_refunded() -> None:
    shipped = when(given(confirmed()), ship())
    assert len(when(given(confirmed(), *shipped), refund(100))) == 1


def test_the_same_refund_again_changes_nothing_and_a_different_one_is_refused() -> None:
    state = given(confirmed(), refunded("rfd_1", 100, quantity=1))
    assert when(state, refund(100, quantity=1)) == []
    assert when(state, refund(None, quantity=1)) == []
    refuses(state, refund(200, quantity=1), "idempotency_key_reused")
    refuses(state, refund(100, quantity=2), "idempotency_key_reused")


def test_never_more_than_paid_in_total() -> None:
    refuses(given(confirmed()), refund(10_000), "refund_exceeds_paid", Invalid)
    refuses(
        given(confirmed(), refunded("rfd_1", 9000)), refund(1000, refund_id="rfd_2"), "refund_exceeds_paid"
    )
    refuses(given(confirmed(), refunded("rfd_1", 9999)), refund(1, refund_id="rfd_2"), "order_fully_refunded")


def test_never_more_units_than_ordered() -> None:
    refuses(given(confirmed()), refund(None, quantity=4), "refund_quantity_exceeds_order", Invalid)
    state = given(confirmed(), refunded("rfd_1", 100, quantity=3))
    refuses(state, refund(None, quantity=1, refund_id="rfd_2"), "refund_quantity_exceeds_order", Invalid)


@pytest.mark.parametrize(
    ("amount", "quantity", "code"),
    [
        (None, 0, "empty_refund"),
        (0, 0, "invalid_amount"),
        (-5, 1, "invalid_amount"),
        (10, -1, "invalid_quantity"),
    ],
)
def test_malformed_refunds_are_invalid(amount: int | None, quantity: int, code: str) -> None:
    refuses(given(confirmed()), refund(amount, quantity), code, Invalid)


def test_a_free_order_has_nothing_to_refund() -> None:
    free = placed(quantity=3, unit=0)
    refuses(given(confirmed(free)), refund(None, quantity=1), "order_fully_refunded")


def test_units_worth_less_than_a_cent_need_an_explicit_amount() -> None:
    # A 2-cent order of 3 units: the first unit is worth ⌊2/3⌋ = 0 cents.
    refuses(given(confirmed(uneven(2, 3))), refund(None, quantity=1), "refund_amount_zero", Invalid)


@pytest.mark.parametrize(
    "actor", [BUYER_ACTOR, OTHER_STAFF, STRANGER], ids=["buyer", "other_brand", "stranger"]
)
def test_only_the_brand_or_an_admin_may_refund(actor: Actor) -> None:
    refuses(given(confirmed()), refund(100, actor=actor), "not_brand_staff", Forbidden)


def test_admin_may_refund() -> None:
    assert len(when(given(confirmed()), refund(100, actor=ADMIN))) == 1


def test_refunding_needs_a_sale_that_was_not_cancelled() -> None:
    refuses(None, refund(100), "order_not_found", NotFound)
    refuses(given(placed()), refund(100), "order_not_confirmed")
    rejected = when(given(placed()), RejectOrder(ORDER, "sold_out", None, T0))
    refuses(given(placed(), *rejected), refund(100), "order_rejected")
    cancelled = when(given(confirmed()), cancel())
    refuses(given(confirmed(), *cancelled), refund(100), "order_cancelled")


# -- invariants --------------------------------------------------------------------------------

# An amount is absolute, "the rest" give or take a few cents (the edge that matters), or left to
# the returned units; units may be too many or negative.
refund_amounts = st.one_of(
    st.none(),
    st.tuples(st.just("absolute"), st.integers(-10, 12_000)),
    st.tuples(st.just("rest"), st.integers(-2, 2)),
)
refund_attempts = st.lists(st.tuples(refund_amounts, st.integers(-1, 5)), max_size=12)


@for_all(quantity=st.integers(1, 4), unit=st.integers(0, 5000), attempts=refund_attempts)
def test_accepted_refunds_never_exceed_the_total_nor_the_units(
    quantity: int, unit: int, attempts: list[tuple[tuple[str, int] | None, int]]
) -> None:
    history = confirmed(placed(quantity, unit))
    total = unit * quantity
    refunded_so_far = returned = 0
    for n, (spec, units) in enumerate(attempts):
        amount = None if spec is None else spec[1] + (total - refunded_so_far if spec[0] == "rest" else 0)
        try:
            events = when(given(history), refund(amount, units, refund_id=f"rfd_{n}"))
        except DomainError:
            continue
        (event,) = events
        assert isinstance(event, OrderRefunded)
        refunded_so_far += event.amount.amount
        returned += event.quantity
        assert event.amount.amount >= 1
        assert event.total_refunded.amount == refunded_so_far
        assert event.fully_refunded == (refunded_so_far == total)
        history.append(event)
        assert refunded_so_far <= total
        assert returned <= quantity
    state = given(history)
    assert isinstance(state, Order)
    assert (state.refunded, state.returned_units) == (refunded_so_far, returned)


@for_all(
    total=st.integers(0, 10**12),
    steps=st.lists(st.integers(1, 7), min_size=1, max_size=10),
)
def test_refunding_every_unit_in_any_steps_refunds_exactly_the_total(total: int, steps: list[int]) -> None:
    quantity = sum(steps)
    returned = 0
    parts = []
    for step in steps:
        parts.append(units_refund(total, quantity, returned, step))
        returned += step
    assert sum(parts) == total
    for step, part in zip(steps, parts, strict=True):
        # Each part is within one minor unit of its exact share.
        assert abs(part * quantity - total * step) < quantity


@for_all(
    quantity=st.integers(1, 5),
    market=st.sampled_from(["BR", "US"]),
    live_id=st.sampled_from([None, "liv_1"]),
    installments=st.integers(1, 3),
)
def test_a_second_placement_is_a_no_op_exactly_when_the_request_is_the_same(
    quantity: int, market: str, live_id: str | None, installments: int
) -> None:
    second = OrderRequest("sku_serum", quantity, market, live_id, "card", installments)
    state = given(placed())
    if second == REQUEST:
        assert when(state, place(second)) == []
    else:
        refuses(state, place(second, a_quote()), "idempotency_key_reused")
