from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopstream_messaging.cloudevents import CloudEvent, UndecodableMessage, decode, encode

pytestmark = pytest.mark.unit

SAO_PAULO = timezone(timedelta(hours=-3))


def make_event(**overrides: Any) -> CloudEvent:
    fields: dict[str, Any] = {
        "id": "0196a1f2-7c3e-7d41-9a53-5be0c2f1a001",
        "source": "/shopstream/orders",
        "type": "shopstream.orders.OrderPlaced",
        "time": datetime(2025, 5, 1, 17, 25, 14, 840000, tzinfo=SAO_PAULO),
        "subject": "ord_01HZX4R7TB",
        "data": {
            "order_id": "ord_01HZX4R7TB",
            "total": {"amount": 17980, "currency": "BRL"},
            "note": "ação ✓",
        },
        "dataversion": 1,
        "key": "ord_01HZX4R7TB",
        "correlationid": "sale-42",
        "causationid": "cmd-7",
    }
    fields.update(overrides)
    return CloudEvent(**fields)


def valid_message() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return encode(make_event())


def test_encode_produces_binary_mode_headers_compact_json_and_the_aggregate_key() -> None:
    key, value, headers = encode(make_event())

    assert key == b"ord_01HZX4R7TB"
    assert (
        value
        == '{"order_id":"ord_01HZX4R7TB","total":{"amount":17980,"currency":"BRL"},"note":"ação ✓"}'.encode()
    )
    assert headers == [
        ("ce_id", b"0196a1f2-7c3e-7d41-9a53-5be0c2f1a001"),
        ("ce_source", b"/shopstream/orders"),
        ("ce_type", b"shopstream.orders.OrderPlaced"),
        ("ce_specversion", b"1.0"),
        ("ce_time", b"2025-05-01T20:25:14.840000Z"),
        ("ce_subject", b"ord_01HZX4R7TB"),
        ("content-type", b"application/json"),
        ("dataversion", b"1"),
        ("correlationid", b"sale-42"),
        ("causationid", b"cmd-7"),
    ]


def test_encode_omits_absent_optional_headers() -> None:
    _, _, headers = encode(make_event(correlationid=None, causationid=None))

    names = [name for name, _ in headers]
    assert "correlationid" not in names
    assert "causationid" not in names
    assert len(names) == 8


def test_decode_returns_the_encoded_event_with_time_in_utc() -> None:
    event = make_event()

    decoded = decode(*encode(event))

    assert decoded == event
    assert decoded.time.tzinfo is UTC
    assert decoded.time == datetime(2025, 5, 1, 20, 25, 14, 840000, tzinfo=UTC)


def test_a_naive_time_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_event(time=datetime(2025, 5, 1, 20, 0))


@pytest.mark.parametrize("as_str", [False, True], ids=["bytes", "str"])
@pytest.mark.parametrize("as_mapping", [False, True], ids=["pairs", "mapping"])
def test_decode_accepts_either_client_representation(as_mapping: bool, as_str: bool) -> None:
    key, value, headers = valid_message()
    pairs: list[tuple[str, bytes | str]] = [(n, v.decode() if as_str else v) for n, v in headers]
    given_key: bytes | str = key.decode() if as_str else key
    given_value: bytes | str = value.decode() if as_str else value

    decoded = decode(given_key, given_value, dict(pairs) if as_mapping else pairs)

    assert decoded == make_event()


def test_decode_ignores_unknown_and_null_headers() -> None:
    key, value, headers = valid_message()
    extra: list[tuple[str, bytes | None]] = [
        ("traceparent", b"00-abc-def-01"),
        ("traceparent", b"x"),
        ("causationid", None),
    ]
    without_causation: list[tuple[str, bytes | None]] = [(n, v) for n, v in headers if n != "causationid"]

    decoded = decode(key, value, without_causation + extra)

    assert decoded == make_event(causationid=None)


def test_content_type_parameters_are_accepted() -> None:
    key, value, headers = valid_message()
    headers = [(n, b"application/json; charset=utf-8" if n == "content-type" else v) for n, v in headers]

    assert decode(key, value, headers).datacontenttype == "application/json"


def replace_header(headers: list[tuple[str, bytes]], name: str, raw: bytes) -> list[tuple[str, bytes]]:
    return [(n, raw if n == name else v) for n, v in headers]


REQUIRED = [
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_specversion",
    "ce_time",
    "ce_subject",
    "content-type",
    "dataversion",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_each_missing_required_header_is_named(name: str) -> None:
    key, value, headers = valid_message()

    with pytest.raises(UndecodableMessage) as caught:
        decode(key, value, [(n, v) for n, v in headers if n != name])

    assert caught.value.reason == f"missing header {name}"


@pytest.mark.parametrize("name", REQUIRED)
def test_each_empty_required_header_is_named(name: str) -> None:
    key, value, headers = valid_message()

    with pytest.raises(UndecodableMessage) as caught:
        decode(key, value, replace_header(headers, name, b""))

    assert caught.value.reason == f"empty header {name}"


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("ce_specversion", b"0.3", "unsupported ce_specversion '0.3' (expected '1.0')"),
        (
            "content-type",
            b"application/avro",
            "unsupported content-type 'application/avro' (expected 'application/json')",
        ),
        ("ce_time", b"yesterday", "ce_time 'yesterday' is not an RFC 3339 timestamp"),
        ("ce_time", b"2025-05-01T20:25:14", "ce_time '2025-05-01T20:25:14' has no UTC offset"),
        ("dataversion", b"0", "dataversion '0' is not a positive integer"),
        ("dataversion", b"-1", "dataversion '-1' is not a positive integer"),
        ("dataversion", b"1.0", "dataversion '1.0' is not a positive integer"),
        ("dataversion", b" 2", "dataversion ' 2' is not a positive integer"),
        ("dataversion", "２".encode(), "dataversion '２' is not a positive integer"),
        ("ce_id", b"\xff\xfe", "header ce_id is not valid UTF-8"),
    ],
)
def test_bad_header_values_are_explained(name: str, raw: bytes, reason: str) -> None:
    key, value, headers = valid_message()

    with pytest.raises(UndecodableMessage) as caught:
        decode(key, value, replace_header(headers, name, raw))

    assert caught.value.reason == reason


def test_a_duplicated_known_header_is_refused() -> None:
    key, value, headers = valid_message()

    with pytest.raises(UndecodableMessage, match=r"^duplicate header ce_type$"):
        decode(key, value, [*headers, ("ce_type", b"shopstream.orders.OrderCancelled")])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "value is empty (a tombstone), expected a JSON object"),
        (b"[1, 2]", "value is JSON list, expected a JSON object"),
        (b'"text"', "value is JSON str, expected a JSON object"),
    ],
)
def test_a_value_that_is_not_a_json_object_is_refused(value: bytes | None, reason: str) -> None:
    key, _, headers = valid_message()

    with pytest.raises(UndecodableMessage) as caught:
        decode(key, value, headers)

    assert caught.value.reason == reason


def test_a_value_that_is_not_json_is_refused() -> None:
    key, _, headers = valid_message()

    with pytest.raises(UndecodableMessage, match=r"^value is not valid JSON: "):
        decode(key, b'{"order_id": ', headers)


@pytest.mark.parametrize(
    ("key", "reason"), [(None, "missing key"), (b"", "empty key"), (b"\xc3", "key is not valid UTF-8")]
)
def test_a_missing_or_broken_key_is_refused(key: bytes | None, reason: str) -> None:
    _, value, headers = valid_message()

    with pytest.raises(UndecodableMessage) as caught:
        decode(key, value, headers)

    assert caught.value.reason == reason


def test_a_message_without_headers_is_refused() -> None:
    key, value, _ = valid_message()

    with pytest.raises(UndecodableMessage, match=r"^message has no headers$"):
        decode(key, value, None)


ids = st.text(min_size=1, max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, SAO_PAULO, timezone(timedelta(hours=5, minutes=45))]),
)


@given(
    event_id=ids,
    source=ids,
    event_type=ids,
    time=times,
    subject=ids,
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=6),
    dataversion=st.integers(min_value=1, max_value=2**31),
    key=ids,
    correlationid=st.none() | ids,
    causationid=st.none() | ids,
)
def test_any_event_survives_a_round_trip(
    event_id: str,
    source: str,
    event_type: str,
    time: datetime,
    subject: str,
    data: dict[str, Any],
    dataversion: int,
    key: str,
    correlationid: str | None,
    causationid: str | None,
) -> None:
    event = CloudEvent(
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        subject=subject,
        data=data,
        dataversion=dataversion,
        key=key,
        correlationid=correlationid,
        causationid=causationid,
    )

    decoded = decode(*encode(event))

    assert decoded == event
    assert decoded.time.tzinfo is UTC
