"""The selection: parsing of user input, every criterion, and tying events to a live."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shopstream_analytics.selection import LiveTracker, Selection, SelectionError, parse_instant
from shopstream_analytics.sources import StoredEvent
from shopstream_eventstore import EventMetadata, RawEvent, RecordedEvent

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)


def recorded(
    type_: str = "shopstream.orders.OrderPlaced",
    stream: str = "order-ord_1",
    at: datetime = T0,
    data: dict[str, Any] | None = None,
) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=stream,
        stream_version=0,
        position=1,
        type=type_,
        data_version=1,
        data=data or {},
        metadata=EventMetadata(occurred_at=at),
        recorded_at=at,
    )


def test_instants_need_an_offset_and_a_valid_form() -> None:
    assert parse_instant("2025-05-01T20:00:00Z") == T0
    assert parse_instant("2025-05-01T22:00:00+02:00") == T0
    with pytest.raises(SelectionError, match=r"no UTC offset.*2025-05-01T00:00:00Z"):
        parse_instant("2025-05-01", "since")
    with pytest.raises(SelectionError, match="not an ISO-8601 instant"):
        parse_instant("yesterday at nine", "until")


def test_reversed_or_empty_ranges_are_refused() -> None:
    with pytest.raises(SelectionError, match="empty time range"):
        Selection.of(since="2025-05-01T21:00:00Z", until="2025-05-01T20:00:00Z")
    with pytest.raises(SelectionError, match="empty time range"):
        Selection.of(since="2025-05-01T20:00:00Z", until="2025-05-01T20:00:00Z")
    with pytest.raises(SelectionError, match="empty position range"):
        Selection.of(from_position=10, to_position=9)
    with pytest.raises(SelectionError, match="positions start at 1"):
        Selection.of(from_position=0)
    with pytest.raises(SelectionError, match="live id is empty"):
        Selection.of(live_id=" ")


def test_stored_events_are_selected_as_the_decoded_ones() -> None:
    raw = RawEvent(
        7,
        "0193a247-4500-7d66-a39c-f291ea90a8f0",
        "order-ord_1",
        2,
        "shopstream.orders.OrderPlaced",
        1,
        '{"order_id": "ord_1", "attribution": {"live_id": "liv_1"}}',
        '{"occurred_at": "2025-05-01T22:00:00+02:00", "correlation_id": "cor_1", "extra": {"a": "b"}}',
        T0,
    )
    stored = StoredEvent(raw)
    meta = stored.metadata
    assert (meta.occurred_at, meta.correlation_id, meta.causation_id, meta.extra) == (
        T0,
        "cor_1",
        None,
        {"a": "b"},
    )
    assert stored.metadata.occurred_at.tzinfo is UTC
    assert stored.data == {"order_id": "ord_1", "attribution": {"live_id": "liv_1"}}
    assert stored.data_text == raw.data
    event = recorded(at=T0, data=dict(stored.data))
    for selection in (
        Selection(),
        Selection(since=T0),
        Selection(until=T0),
        Selection.of(stream_prefix="order-"),
        Selection.of(types=["shopstream.live.LiveStarted"]),
    ):
        assert selection.takes(stored) == selection.takes(event), selection
    assert LiveTracker("liv_1").belongs(stored.data)


def test_time_range_is_half_open_on_occurred_at() -> None:
    selection = Selection(since=T0, until=T0 + timedelta(minutes=1))
    assert selection.takes(recorded(at=T0))
    assert selection.takes(recorded(at=T0 + timedelta(seconds=59)))
    assert not selection.takes(recorded(at=T0 + timedelta(minutes=1)))
    assert not selection.takes(recorded(at=T0 - timedelta(microseconds=1)))


def test_types_streams_inbox_copies_and_internal_events() -> None:
    placed = recorded()
    assert Selection().takes(placed)
    assert Selection(types=frozenset({"shopstream.orders.OrderPlaced"})).takes(placed)
    assert not Selection(types=frozenset({"shopstream.orders.OrderConfirmed"})).takes(placed)
    assert Selection(stream_prefix="order-").takes(placed)
    assert not Selection(stream_prefix="live-").takes(placed)
    copy = recorded(stream="inbox:shopstream.orders.order:ord_1")
    assert not Selection().takes(copy)
    assert Selection(include_inbox=True).takes(copy)
    internal = recorded(type_="shopstream.orders.internal.OrderShipped")
    assert not Selection().takes(internal)
    assert Selection(include_internal=True).takes(internal)
    assert Selection().after == 0
    assert Selection(from_position=5).after == 4


def test_a_live_takes_its_events_and_those_of_its_orders() -> None:
    tracker = LiveTracker("liv_1")
    assert not tracker.belongs({"order_id": "ord_1"})  # before anything ties it to the live
    assert tracker.belongs({"live_id": "liv_1", "room_id": "room_1"})
    assert tracker.belongs({"order_id": "ord_1", "attribution": {"live_id": "liv_1"}})
    assert tracker.belongs({"order_id": "ord_1", "reason": "deal_cap_reached"})
    assert not tracker.belongs({"order_id": "ord_2", "attribution": {"live_id": "liv_2"}})
    assert not tracker.belongs({"order_id": "ord_2"})
    assert not tracker.belongs({"live_id": "liv_2"})
    restored = LiveTracker.restore("liv_1", tracker.state())
    assert restored.mentioned
    assert restored.orders == {"ord_1"}
    assert not LiveTracker("liv_9").mentioned
