from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shopstream_contracts import InvalidEventData, Money
from shopstream_contracts.live.v1 import LiveScheduled
from shopstream_contracts.orders.v1 import OrderPlaced

pytestmark = pytest.mark.unit

Golden = Callable[..., dict[str, Any]]


@pytest.fixture
def order_placed(golden: Golden) -> dict[str, Any]:
    return golden("shopstream.orders.OrderPlaced")


def test_money_is_an_integer_of_minor_units_with_an_iso_currency() -> None:
    assert Money(amount=12990, currency="BRL").model_dump() == {"amount": 12990, "currency": "BRL"}


@pytest.mark.parametrize("amount", [129.9, 12990.0, "12990", True])
def test_money_refuses_anything_but_an_integer_amount(amount: Any) -> None:
    with pytest.raises(ValidationError, match="amount"):
        Money.model_validate({"amount": amount, "currency": "BRL"})


@pytest.mark.parametrize("currency", ["brl", "BR", "BRLX", "R$", ""])
def test_money_refuses_a_currency_that_is_not_iso_4217_alphabetic(currency: str) -> None:
    with pytest.raises(ValidationError, match="currency"):
        Money(amount=1, currency=currency)


def test_models_are_frozen(order_placed: dict[str, Any]) -> None:
    event = OrderPlaced.read(order_placed)

    with pytest.raises(ValidationError, match="frozen"):
        event.order_id = "another"


def test_times_are_normalised_to_utc_and_naive_times_refused(order_placed: dict[str, Any]) -> None:
    local = datetime(2025, 5, 1, 17, 25, 14, tzinfo=timezone(timedelta(hours=-3)))
    event = OrderPlaced.validate_for_publish({**order_placed, "occurred_at": local})

    assert event.occurred_at == local
    assert event.occurred_at.tzinfo is UTC
    assert event.to_data()["occurred_at"] == "2025-05-01T20:25:14Z"
    with pytest.raises(InvalidEventData, match="occurred_at"):
        OrderPlaced.validate_for_publish({**order_placed, "occurred_at": "2025-05-01T20:25:14"})


def with_unknown_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The payload as a newer producer might send it: extra fields at several depths."""
    newer = copy.deepcopy(data)
    newer["gift_wrap"] = True
    newer["line"]["unit_price"]["tax_included"] = True
    newer["attribution"]["campaign"] = "mothers-day"
    return newer


def test_producers_refuse_unknown_fields_at_every_depth(order_placed: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventData) as caught:
        OrderPlaced.validate_for_publish(with_unknown_fields(order_placed))

    message = str(caught.value)
    assert message.startswith("invalid shopstream.orders.OrderPlaced v1: ")
    for location in ("gift_wrap", "line.unit_price.tax_included", "attribution.campaign"):
        assert f"{location}: Extra inputs are not permitted" in message


def test_the_constructor_is_strict_too(order_placed: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="gift_wrap"):
        OrderPlaced(**with_unknown_fields(order_placed))


def test_readers_ignore_unknown_fields_at_every_depth(order_placed: dict[str, Any]) -> None:
    event = OrderPlaced.read(with_unknown_fields(order_placed))

    assert event == OrderPlaced.validate_for_publish(order_placed)
    assert event.to_data() == order_placed


def test_readers_ignore_unknown_fields_inside_lists(golden: Golden) -> None:
    data = golden("shopstream.live.LiveScheduled")
    newer = copy.deepcopy(data)
    newer["brands"][0]["brand_tier"] = "gold"
    newer["showcase"][0]["position"] = 1

    assert LiveScheduled.read(newer).to_data() == data
    with pytest.raises(InvalidEventData, match=r"brands\.0\.brand_tier"):
        LiveScheduled.validate_for_publish(newer)


def test_readers_still_enforce_types_and_required_fields(order_placed: dict[str, Any]) -> None:
    broken = copy.deepcopy(order_placed)
    del broken["buyer_id"]
    broken["total"]["amount"] = 179.8

    with pytest.raises(InvalidEventData) as caught:
        OrderPlaced.read(broken)

    assert "buyer_id: Field required" in str(caught.value)
    assert "total.amount: Input should be a valid integer" in str(caught.value)
    assert {tuple(error["loc"]) for error in caught.value.errors} == {("buyer_id",), ("total", "amount")}


def test_the_aggregate_id_is_the_topic_key(order_placed: dict[str, Any]) -> None:
    event = OrderPlaced.read(order_placed)

    assert OrderPlaced.contract.topic.key == "order_id"
    assert event.aggregate_id == order_placed["order_id"]


def test_to_data_is_json_ready_and_round_trips(order_placed: dict[str, Any]) -> None:
    event = OrderPlaced.validate_for_publish(order_placed)

    assert event.to_data() == order_placed
    assert OrderPlaced.validate_for_publish(event.to_data()) == event
