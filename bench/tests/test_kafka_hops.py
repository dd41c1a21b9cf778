"""Pure helpers of the relay and inbox benchmarks: the exactly-once verdict on a topic and the
row the raw inbox pipeline stores for a message."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from shopstream_bench.benchmarks.inbox import message_row
from shopstream_bench.benchmarks.relay import contract_messages, delivery_errors, headers_id
from shopstream_messaging.cloudevents import decode
from shopstream_messaging.inbox import inbox_stream

pytestmark = pytest.mark.unit


def test_a_topic_holding_each_event_once_has_no_delivery_error() -> None:
    assert +delivery_errors({"a", "b"}, Counter({"a": 1, "b": 1})) == Counter()


def test_missing_doubled_and_foreign_events_are_each_counted() -> None:
    errors = delivery_errors({"a", "b", "c"}, Counter({"a": 3, "b": 1, "x": 1}))

    assert errors == Counter(missing_events=1, duplicate_events=2, unexpected_events=1)


def test_the_raw_row_holds_what_the_event_says() -> None:
    key, value, headers = contract_messages(1)[0]
    event = decode(key, value, headers)

    row = message_row("orders", key, 7, value, headers)

    event_id, stream, version, event_type, data_version, data, metadata, _recorded_at = row
    assert (event_id, stream, version) == (
        headers_id((key, value, headers)),
        inbox_stream("orders", event.key),
        7,
    )
    assert (event_type, data_version) == (event.type, event.dataversion)
    assert orjson.loads(data) == event.data
    assert orjson.loads(metadata)["extra"] == {"source": event.source, "topic": "orders"}
