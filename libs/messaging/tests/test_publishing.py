"""The relay's publishing rule from stored rows sends exactly what the decoded rule, encoded, sends.

Run over real SQLite and PostgreSQL stores holding every contract event type, so that a stored
form the raw path misreads (PostgreSQL's jsonb text, a non-UTC time, a missing causation id)
fails here rather than on another team's consumer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from shopstream_contracts import REGISTRY
from shopstream_eventstore import AppendRequest, EventMetadata, EventStore, NewEvent, RecordedEvent
from shopstream_eventstore.postgres import PostgresEventStore
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_infra import repo_root
from shopstream_messaging.cloudevents import decode, encode, wire_time
from shopstream_messaging.publishing import contract_messages, contract_publication
from shopstream_testing.contract_events import contract_event

T0 = datetime(2026, 11, 25, 21, 3, 10, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
NEWFOUNDLAND = timezone(timedelta(hours=-3, minutes=-30))


def every_contract_event() -> list[NewEvent]:
    root = repo_root()
    assert root is not None
    events = []
    for n, folder in enumerate(sorted((root / "contracts" / "golden").iterdir())):
        moment = T0 + timedelta(seconds=n)
        event = contract_event(folder.name, f"key_{n:03d}", moment, correlation_id=f"corr-{n}")
        if n % 3 == 1:  # some with a causation id, some in another zone, some whole seconds
            meta = EventMetadata(moment.astimezone(CET), f"corr-{n}", f"cause-{n}")
            event = NewEvent(event.event_id, event.type, event.data, meta, event.data_version)
        elif n % 3 == 2:
            meta = EventMetadata(moment.replace(microsecond=0), None, None)
            event = NewEvent(event.event_id, event.type, event.data, meta, event.data_version)
        events.append(event)
    return events


async def same_messages(store: EventStore) -> int:
    """Compare both rules over the store's events for every service; return how many were public."""
    events = every_contract_event()
    internal = NewEvent(uuid.uuid4(), "shopstream.orders.SomethingInternal", {"x": 1}, EventMetadata(T0))
    await store.append_many([AppendRequest(f"s-{e.event_id}", [e]) for e in [*events, internal]])
    decoded = await store.read_all(0, limit=1000)
    raw = await store.read_all_raw(0, limit=1000)
    assert len(raw) == len(decoded) == len(events) + 1
    public = 0
    for service in ("catalog", "chat", "commission", "live", "orders"):
        old_rule, new_rule = contract_publication(REGISTRY, service), contract_messages(REGISTRY, service)
        for before, after in zip(decoded, raw, strict=True):
            publication, message = old_rule(before), new_rule(after)
            if publication is None:
                assert message is None, after.type
                continue
            public += 1
            assert message is not None
            key, value, headers = encode(publication[1])
            assert (message.topic, message.key, message.headers) == (publication[0], key, headers)
            assert orjson.loads(message.value) == orjson.loads(value)
            # Another team's consumer reads it back as the same CloudEvent.
            assert decode(message.key, message.value, message.headers) == decode(key, value, headers)
    return public


async def test_sqlite_rows_publish_byte_for_byte_what_decoded_events_did(tmp_path: Path) -> None:
    store = await SqliteEventStore.open(tmp_path / "orders.sqlite")
    try:
        assert await same_messages(store) == len(every_contract_event())
        for before, after in zip(await store.read_all(), await store.read_all_raw(), strict=True):
            if (message := contract_messages(REGISTRY, before.type.split(".")[1])(after)) is not None:
                assert message.value == orjson.dumps(dict(before.data))
    finally:
        await store.close()


async def test_postgres_rows_publish_the_same_cloud_events(postgres_dsn: str) -> None:
    store = await PostgresEventStore.open(postgres_dsn, "orders")
    try:
        assert await same_messages(store) == len(every_contract_event())
    finally:
        await store.close()


@pytest.mark.parametrize(
    "moment",
    [T0, T0.replace(microsecond=0), T0.astimezone(CET), T0.astimezone(NEWFOUNDLAND)],
)
def test_wire_time_of_a_stored_time_is_what_encode_writes(moment: datetime) -> None:
    expected = dict(encode_headers_of(moment))["ce_time"].decode()
    assert wire_time(moment.isoformat()) == expected
    assert expected.endswith("Z")


def encode_headers_of(moment: datetime) -> list[tuple[str, bytes]]:
    event = contract_event("shopstream.orders.OrderPlaced", "ord_1", moment)
    recorded = RecordedEvent(
        event.event_id, "order-ord_1", 0, 1, event.type, 1, event.data, EventMetadata(moment), T0
    )
    publication = contract_publication(REGISTRY, "orders")(recorded)
    assert publication is not None
    return encode(publication[1])[2]
