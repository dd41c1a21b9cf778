"""The inbox's batch handling against a real SQLite store, without Kafka: what is stored, dropped
as a duplicate, dead-lettered, and what makes a batch fail (so it is redelivered)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shopstream_contracts import REGISTRY
from shopstream_eventstore import (
    AppendRequest,
    AppendResult,
    EventStoreError,
    StoreUnavailable,
)
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_messaging.cloudevents import CloudEvent, encode
from shopstream_messaging.inbox import Inbox, contract_acceptor, inbox_stream
from shopstream_messaging.kafka import OutgoingMessage
from shopstream_testing.contract_events import contract_event

pytestmark = pytest.mark.integration

TOPIC = "shopstream.orders.order"


class Message:
    """A received Kafka message, as much of it as the inbox reads."""

    def __init__(self, offset: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._offset, self._key, self._value, self._headers = offset, key, value, headers

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)

    def reasons(self) -> dict[str, str]:
        return {dict(m.headers)["ce_id"].decode(): dict(m.headers)["dl_reason"].decode() for m in self.sent}


def cloud_event(key: str, n: int, *, event_id: str | None = None, **data: Any) -> CloudEvent:
    at = datetime(2026, 11, 25, 20, 0, n, tzinfo=UTC)
    event = contract_event("shopstream.orders.OrderPlaced", key, at)
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source="/shopstream/orders",
        type=event.type,
        time=at,
        subject=key,
        data={**event.data, **data},
        dataversion=1,
        key=key,
        correlationid=key,
    )


def message(offset: int, event: CloudEvent, *, value: bytes | None = None) -> Message:
    key, encoded, headers = encode(event)
    return Message(offset, key, encoded if value is None else value, headers)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    store = await SqliteEventStore.open(tmp_path / "inbox.sqlite")
    yield store
    await store.close()


def inbox(store: SqliteEventStore, dead_letters: DeadLetters) -> Inbox:
    return Inbox(
        store, contract_acceptor(REGISTRY), dead_letters, service="commission", consumer_group="commission"
    )


async def stored_ids(store: SqliteEventStore, key: str) -> list[str]:
    return [str(e.event_id) for e in await store.read_stream(inbox_stream(TOPIC, key))]


async def test_a_batch_is_stored_in_order_at_each_events_own_version(store: SqliteEventStore) -> None:
    letters = DeadLetters()
    events = [cloud_event("ord_a", 0), cloud_event("ord_b", 1), cloud_event("ord_a", 2)]
    await inbox(store, letters).handle([message(n, e) for n, e in enumerate(events)])
    assert letters.sent == []
    assert await stored_ids(store, "ord_a") == [events[0].id, events[2].id]
    assert await stored_ids(store, "ord_b") == [events[1].id]
    (first, *_) = await store.read_stream(inbox_stream(TOPIC, "ord_a"))
    assert first.data == events[0].data
    assert first.data_version == 1
    assert first.metadata.occurred_at == events[0].time
    assert first.metadata.correlation_id == "ord_a"
    assert first.metadata.extra == {"source": "/shopstream/orders", "topic": TOPIC}


async def test_redelivered_and_repeated_events_are_stored_once(store: SqliteEventStore) -> None:
    letters = DeadLetters()
    handler = inbox(store, letters)
    events = [cloud_event("ord_a", n) for n in range(3)]
    await handler.handle([message(n, e) for n, e in enumerate(events[:2])])
    # A redelivery overlapping what is stored, with a copy of one event inside the batch itself.
    again = [message(0, events[0]), message(1, events[1]), message(2, events[2]), message(3, events[2])]
    await handler.handle(again)
    assert letters.sent == []
    assert await stored_ids(store, "ord_a") == [e.id for e in events]
    assert await store.head_position() == 3


async def test_an_id_held_under_another_stream_is_dead_lettered_alone(store: SqliteEventStore) -> None:
    letters = DeadLetters()
    taken = cloud_event("ord_a", 0)
    moved = cloud_event("ord_b", 1, event_id=taken.id)
    after = cloud_event("ord_b", 2)
    await inbox(store, letters).handle([message(0, taken), message(1, moved), message(2, after)])
    assert list(letters.reasons()) == [taken.id]
    assert "already stored in stream" in letters.reasons()[taken.id]
    assert await stored_ids(store, "ord_a") == [taken.id]
    assert await stored_ids(store, "ord_b") == [after.id]


async def test_bad_messages_are_dead_lettered_and_the_rest_stored(store: SqliteEventStore) -> None:
    letters = DeadLetters()
    good = cloud_event("ord_a", 0)
    not_json = cloud_event("ord_a", 1)
    invalid = cloud_event("ord_a", 2, total={"amount": "lots", "currency": "BRL"})
    not_uuid = cloud_event("ord_a", 3, event_id="not-a-uuid")
    batch = [
        message(0, good),
        message(1, not_json, value=b"{not json"),
        message(2, invalid),
        message(3, not_uuid),
    ]
    await inbox(store, letters).handle(batch)
    reasons = letters.reasons()
    assert set(reasons) == {not_json.id, invalid.id, not_uuid.id}
    assert "JSON" in reasons[not_json.id]
    assert "total.amount" in reasons[invalid.id]
    assert "not a UUID" in reasons[not_uuid.id]
    assert await stored_ids(store, "ord_a") == [good.id]


class UnavailableStore(SqliteEventStore):
    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        raise StoreUnavailable("the disk is gone")

    async def append_each(self, requests: Sequence[AppendRequest]) -> list[AppendResult | EventStoreError]:
        raise StoreUnavailable("the disk is gone")


async def test_a_store_that_cannot_write_fails_the_whole_batch(tmp_path: Path) -> None:
    store = await UnavailableStore.open(tmp_path / "inbox.sqlite")
    letters = DeadLetters()
    with pytest.raises(StoreUnavailable):
        await inbox(store, letters).handle([message(0, cloud_event("ord_a", 0))])
    assert letters.sent == []
    await store.close()
