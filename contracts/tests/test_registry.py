"""The registry and the upcasting mechanism, proven on a test-local v1 ⇒ v2 ⇒ v3 chain.

The public catalogue has only version 1 of everything, so the chain lives here:
v1 has ``price_cents`` and ``customer_name``; v2 turns the price into Money; v3 splits the name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import Field

from shopstream_contracts import (
    Event,
    EventContract,
    InvalidEventData,
    Money,
    Registry,
    Topic,
    UnknownEventType,
    UnknownEventVersion,
    UpcastFailed,
)
from shopstream_contracts.base import ContractModel, Id, OccurredAt

pytestmark = pytest.mark.unit

THING = Topic(service="testing", aggregate="thing", key="thing_id", description="Test-only aggregate.")
OTHER = Topic(service="testing", aggregate="other", key="thing_id", description="Another test-only topic.")
TYPE = "shopstream.testing.ThingSold"


class ThingSoldV1(Event):
    """v1."""

    contract: ClassVar[EventContract] = EventContract(type=TYPE, version=1, topic=THING)
    thing_id: Id = Field(description="key")
    price_cents: int = Field(description="price in BRL cents")
    customer_name: str = Field(description="full name")
    occurred_at: OccurredAt


class ThingSoldV2(Event):
    """v2: the price is Money."""

    contract: ClassVar[EventContract] = EventContract(type=TYPE, version=2, topic=THING)
    thing_id: Id = Field(description="key")
    price: Money = Field(description="price")
    customer_name: str = Field(description="full name")
    occurred_at: OccurredAt


class Customer(ContractModel):
    """A customer's name, split."""

    first_name: str = Field(description="first")
    last_name: str = Field(description="last")


class ThingSoldV3(Event):
    """v3: the customer's name is split."""

    contract: ClassVar[EventContract] = EventContract(type=TYPE, version=3, topic=THING)
    thing_id: Id = Field(description="key")
    price: Money = Field(description="price")
    customer: Customer = Field(description="who bought")
    gift: bool = Field(default=False, description="optional field added to v3 without a new version")
    occurred_at: OccurredAt


def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    upcast = {key: value for key, value in data.items() if key != "price_cents"}
    return {**upcast, "price": {"amount": data["price_cents"], "currency": "BRL"}}


def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data["customer_name"].partition(" ")
    upcast = {key: value for key, value in data.items() if key != "customer_name"}
    return {**upcast, "customer": {"first_name": first, "last_name": last}}


def chain() -> Registry:
    registry = Registry()
    registry.register(ThingSoldV3, ThingSoldV1, ThingSoldV2)
    registry.register_upcaster(TYPE, 2, v2_to_v3)
    registry.register_upcaster(TYPE, 1, v1_to_v2)
    registry.verify()
    return registry


V1 = {
    "thing_id": "t-1",
    "price_cents": 12990,
    "customer_name": "Ana Lima",
    "occurred_at": "2025-05-01T20:00:00Z",
}
V2 = {
    "thing_id": "t-1",
    "price": {"amount": 12990, "currency": "BRL"},
    "customer_name": "Ana Lima",
    "occurred_at": "2025-05-01T20:00:00Z",
}
V3 = {
    "thing_id": "t-1",
    "price": {"amount": 12990, "currency": "BRL"},
    "customer": {"first_name": "Ana", "last_name": "Lima"},
    "gift": False,
    "occurred_at": "2025-05-01T20:00:00Z",
}


@pytest.mark.parametrize(("version", "data"), [(1, V1), (2, V2), (3, V3)])
def test_every_version_decodes_to_the_latest_model(version: int, data: dict[str, Any]) -> None:
    event = chain().decode(TYPE, version, data)

    assert isinstance(event, ThingSoldV3)
    assert event.to_data() == V3


def test_decoding_is_tolerant_at_the_source_version_before_upcasting() -> None:
    newer_v1 = {**V1, "loyalty_points": 12}

    assert chain().decode(TYPE, 1, newer_v1).to_data() == V3


def test_decoding_reports_invalid_data_against_its_own_version() -> None:
    with pytest.raises(InvalidEventData, match=r"^invalid shopstream.testing.ThingSold v1: price_cents: "):
        chain().decode(TYPE, 1, {**V1, "price_cents": "a lot"})


def test_a_failing_upcaster_is_reported_with_its_step() -> None:
    registry = Registry()
    registry.register(ThingSoldV1, ThingSoldV2)
    registry.register_upcaster(TYPE, 1, lambda data: {**data, "price": data["no_such_field"]})

    with pytest.raises(
        UpcastFailed, match=r"^upcasting shopstream.testing.ThingSold v1 to v2 failed: KeyError"
    ):
        registry.decode(TYPE, 1, V1)


def test_publishing_validates_strictly_against_exactly_the_given_version() -> None:
    registry = chain()

    assert type(registry.validate_for_publish(TYPE, 1, V1)) is ThingSoldV1
    with pytest.raises(InvalidEventData, match="loyalty_points: Extra inputs are not permitted"):
        registry.validate_for_publish(TYPE, 3, {**V3, "loyalty_points": 12})


def test_unknown_types_and_versions_are_errors() -> None:
    registry = chain()

    with pytest.raises(UnknownEventType, match=r"^unknown event type 'shopstream\.testing\.Nope'$"):
        registry.decode("shopstream.testing.Nope", 1, V1)
    with pytest.raises(
        UnknownEventVersion, match=r"unknown version 4 of shopstream.testing.ThingSold \(known: \[1, 2, 3\]\)"
    ):
        registry.decode(TYPE, 4, V3)


def test_lookups() -> None:
    registry = chain()

    assert registry.types() == [TYPE]
    assert [(c.type, c.version) for c in registry.contracts()] == [(TYPE, 1), (TYPE, 2), (TYPE, 3)]
    assert registry.latest(TYPE) is ThingSoldV3
    assert registry.model(TYPE, 2) is ThingSoldV2
    assert registry.topic(TYPE) == THING
    assert registry.topics() == [THING]
    assert THING.name == "shopstream.testing.thing"
    assert THING.source == "/shopstream/testing"


def test_verify_requires_every_upcaster_of_the_chain() -> None:
    registry = Registry()
    registry.register(ThingSoldV1, ThingSoldV2, ThingSoldV3)
    registry.register_upcaster(TYPE, 1, v1_to_v2)

    with pytest.raises(ValueError, match=r"upcasters missing for \[\('shopstream.testing.ThingSold', 2\)\]"):
        registry.verify()


def test_verify_refuses_gaps_in_versions_and_stray_upcasters() -> None:
    gap = Registry()
    gap.register(ThingSoldV1, ThingSoldV3)
    with pytest.raises(ValueError, match=r"versions must be 1..3, got \[1, 3\]"):
        gap.verify()

    stray = Registry()
    stray.register(ThingSoldV1)
    stray.register_upcaster(TYPE, 1, v1_to_v2)
    with pytest.raises(ValueError, match="without a target version"):
        stray.verify()


def test_a_version_is_registered_once_and_an_upcaster_once() -> None:
    registry = chain()

    with pytest.raises(ValueError, match="already registered"):
        registry.register(ThingSoldV1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_upcaster(TYPE, 1, v1_to_v2)


def test_every_version_of_a_type_stays_on_one_topic() -> None:
    class MovedV2(Event):
        """v2 on another topic."""

        contract: ClassVar[EventContract] = EventContract(type=TYPE, version=2, topic=OTHER)
        thing_id: Id = Field(description="key")

    registry = Registry()
    registry.register(ThingSoldV1)

    with pytest.raises(ValueError, match="every version must use one topic"):
        registry.register(MovedV2)


def test_the_key_field_must_be_a_required_string() -> None:
    class OptionalKey(Event):
        """The key may be missing."""

        contract: ClassVar[EventContract] = EventContract(
            type="shopstream.testing.Bad", version=1, topic=THING
        )
        thing_id: str | None = Field(default=None, description="key")

    class NoKey(Event):
        """No key at all."""

        contract: ClassVar[EventContract] = EventContract(
            type="shopstream.testing.Bad", version=1, topic=THING
        )
        other_id: str = Field(description="not the key")

    for model in (OptionalKey, NoKey):
        with pytest.raises(ValueError, match="key field 'thing_id' must be a required str"):
            Registry().register(model)


@pytest.mark.parametrize(
    ("event_type", "version", "message"),
    [
        ("shopstream.orders.ThingSold", 1, "must be 'shopstream.testing.<EventName>'"),
        ("shopstream.testing.thingSold", 1, "must be 'shopstream.testing.<EventName>'"),
        ("testing.ThingSold", 1, "must be 'shopstream.testing.<EventName>'"),
        ("shopstream_contracts.testing.ThingSold", 1, "must be 'shopstream.testing.<EventName>'"),
        (TYPE, 0, "versions start at 1"),
    ],
)
def test_event_names_are_explicit_and_versions_start_at_one(
    event_type: str, version: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EventContract(type=event_type, version=version, topic=THING)


def test_topic_names_follow_service_and_aggregate() -> None:
    with pytest.raises(ValueError, match="lower-case words"):
        Topic(service="Orders", aggregate="order", key="order_id", description="")
