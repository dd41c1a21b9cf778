"""Rules every model of the public catalogue follows."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from pydantic import AwareDatetime, BaseModel

from shopstream_contracts import REGISTRY, Event
from shopstream_contracts.catalogue import SERVICE_MODULES
from shopstream_contracts.generate import event_schema

pytestmark = pytest.mark.unit

DESIGN_CATALOGUE = {
    "live": [
        "LiveScheduled",
        "LiveStarted",
        "LiveEnded",
        "LiveCancelled",
        "ProductPinned",
        "ProductUnpinned",
        "FlashDealStarted",
        "FlashDealEnded",
        "PaymentTermsOffered",
        "AudienceSampled",
    ],
    "chat": [
        "ChatRoomOpened",
        "MessagePosted",
        "MessageBlocked",
        "MessageRemoved",
        "QuestionAsked",
        "QuestionAnswered",
        "ParticipantMuted",
        "SlowModeChanged",
        "ChatRoomClosed",
    ],
    "catalog": [
        "BrandOnboarded",
        "ProductCreated",
        "ListPriceSet",
        "StockReceived",
        "StockAdjusted",
        "StockReserved",
        "StockReservationRejected",
        "StockReleased",
    ],
    "orders": ["OrderPlaced", "OrderConfirmed", "OrderRejected", "OrderCancelled", "OrderRefunded"],
    "commission": [
        "CommissionAgreementSigned",
        "CommissionAccrued",
        "CommissionReleased",
        "CommissionReversed",
        "StatementIssued",
    ],
}

# Events that happen while a live is on air: they place themselves on its timeline.
DURING_LIVE = {
    "shopstream.live.LiveEnded",
    "shopstream.live.ProductPinned",
    "shopstream.live.ProductUnpinned",
    "shopstream.live.FlashDealStarted",
    "shopstream.live.FlashDealEnded",
    "shopstream.live.PaymentTermsOffered",
    "shopstream.live.AudienceSampled",
} | {f"shopstream.chat.{name}" for name in DESIGN_CATALOGUE["chat"]}

ALL_VERSIONS = [REGISTRY.model(c.type, c.version) for c in REGISTRY.contracts()]


def ids(models: list[type[Event]]) -> list[str]:
    return [f"{m.contract.type}.v{m.contract.version}" for m in models]


def test_the_design_catalogue_is_complete() -> None:
    expected = {
        f"shopstream.{service}.{name}" for service, names in DESIGN_CATALOGUE.items() for name in names
    }

    assert expected <= set(REGISTRY.types())


def test_every_event_model_of_a_service_module_is_registered() -> None:
    for module in SERVICE_MODULES:
        declared = {
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Event) and obj is not Event
        }
        assert declared == set(module.EVENTS), module.__name__


def test_one_topic_per_service_and_aggregate() -> None:
    names = [topic.name for topic in REGISTRY.topics()]

    assert names == sorted(set(names))
    assert all(name.count(".") == 2 and name.startswith("shopstream.") for name in names)
    assert {"shopstream.orders.order", "shopstream.live.session"} <= set(names)


def nested_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        stack: list[Any] = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from nested_models(annotation)
            stack.extend(get_args(annotation))


@pytest.mark.parametrize("model", ALL_VERSIONS, ids=ids(ALL_VERSIONS))
def test_every_model_and_field_is_documented(model: type[Event]) -> None:
    for nested in nested_models(model):
        assert (nested.__doc__ or "").strip(), f"{nested.__name__} has no docstring"
        undocumented = [name for name, field in nested.model_fields.items() if not field.description]
        assert not undocumented, f"{nested.__name__}: fields without description: {undocumented}"


@pytest.mark.parametrize("model", ALL_VERSIONS, ids=ids(ALL_VERSIONS))
def test_every_event_carries_its_key_and_an_occurred_at_instant(model: type[Event]) -> None:
    fields = model.model_fields

    assert fields[model.contract.topic.key].is_required()
    assert fields["occurred_at"].annotation is AwareDatetime
    assert fields["occurred_at"].is_required()


@pytest.mark.parametrize("event_type", sorted(DURING_LIVE))
def test_events_during_a_live_carry_their_offset(event_type: str) -> None:
    field = REGISTRY.latest(event_type).model_fields.get("live_offset_ms")

    assert field is not None
    assert field.is_required()


def schema_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from schema_nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from schema_nodes(item)


@pytest.mark.parametrize("model", ALL_VERSIONS, ids=ids(ALL_VERSIONS))
def test_no_event_has_a_float(model: type[Event]) -> None:
    types = {node.get("type") for node in schema_nodes(event_schema(model))}

    assert "number" not in types
