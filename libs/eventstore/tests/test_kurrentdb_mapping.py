"""The KurrentDB adapter's pure mapping, and its control flow over an in-memory stand-in.

No KurrentDB server is needed. The stand-in (``FakeKurrentDB``) implements only the client calls
the adapter makes, with the semantics kurrentdbclient documents (inclusive ``read_all``,
exclusive ``subscribe_to_all``, ``WrongCurrentVersionError`` as the batch-append path builds it,
per-stream idempotency by event id). It checks the adapter's logic, not the server: the
conformance suite against a real server (``KURRENTDB_URL``) remains the proof.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import kurrentdbclient as kdb
import orjson
import pytest
from kurrentdbclient.common import construct_filter_include_regex
from kurrentdbclient.exceptions import (
    GrpcError,
    NotFoundError,
    ServiceUnavailableError,
    WrongCurrentVersionError,
)
from kurrentdbclient.v2streams import _current_version_to_expected_revision, _metadata_to_properties

from shopstream_eventstore import (
    AppendRequest,
    AppendResult,
    DuplicateEventId,
    EventMetadata,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    StreamState,
    WrongExpectedVersion,
)
from shopstream_eventstore.kurrentdb import (
    KurrentDBEventStore,
    checkpoint_stream,
    claim_stream,
    conflict_error,
    decode_metadata,
    encode_metadata,
    next_version,
    stream_filter,
    stream_id_of,
    stream_name,
    to_current_version,
    to_new_event,
    to_recorded,
    validate_prefix,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def event(n: int = 0, **extra: str) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        type="shopstream.test.Happened",
        data={"n": n},
        metadata=EventMetadata(occurred_at=T0 + timedelta(milliseconds=n), extra=extra),
    )


def server_filter_matches(prefix: str, name: str) -> bool:
    """What the server does with our filter: the client anchors it, .NET evaluates it."""
    return re.search(construct_filter_include_regex((stream_filter(prefix),)), name) is not None


# -- naming and the server-side filter -----------------------------------------------------------


def test_stream_names_carry_the_prefix_and_map_back() -> None:
    assert stream_name("t1", "order-42") == "t1-order-42"
    assert stream_id_of("t1", "t1-order-42") == "order-42"
    assert stream_id_of("t1", "t12-order-42") is None
    assert stream_id_of("t1", checkpoint_stream("t1", "relay")) is None
    assert stream_id_of("t1", claim_stream("t1", uuid.uuid4())) is None


@pytest.mark.parametrize("prefix", ["", "orders-v2", "a.b", "$sys", "ünï", "a b"])
def test_prefixes_that_could_overlap_or_hit_system_streams_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        validate_prefix(prefix)


def test_filter_selects_exactly_the_prefix_event_streams() -> None:
    prefix = "t1a2"
    for mine in ["t1a2-order-1", "t1a2-ünïcödé-流-🛒", "t1a2-", "t1a2-a\nb", "t1a2-$odd"]:
        assert server_filter_matches(prefix, mine), mine
    others = [
        "t1a2x-order-1",  # another prefix that starts like ours
        "t1a-order-1",
        "xt1a2-order-1",
        checkpoint_stream(prefix, "relay"),
        claim_stream(prefix, uuid.uuid4()),
        "$$t1a2-order-1",  # its stream metadata
        "$et-shopstream.test.Happened",
        "$all",
    ]
    for other in others:
        assert not server_filter_matches(prefix, other), other


def test_internal_streams_are_legal_non_system_names() -> None:
    for name in [checkpoint_stream("t1", "relay"), claim_stream("t1", uuid.uuid4())]:
        assert not name.startswith("$")


# -- expected versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "revision"),
    [
        (StreamState.NO_STREAM, kdb.StreamState.NO_STREAM, -1),
        (StreamState.ANY, kdb.StreamState.ANY, -2),
        (StreamState.EXISTS, kdb.StreamState.EXISTS, -4),
        (0, 0, 0),
        (41, 41, 41),
    ],
)
def test_expected_versions_map_onto_the_client(
    ours: StreamState | int, theirs: kdb.StreamState | int, revision: int
) -> None:
    assert to_current_version(ours) == theirs
    # The multi-stream append encodes the same value for the server.
    assert _current_version_to_expected_revision(to_current_version(ours)) == revision


def test_a_negative_expected_version_is_not_sent() -> None:
    with pytest.raises(ValueError, match="negative"):
        to_current_version(-1)


def test_next_version_is_known_only_for_exact_expectations() -> None:
    assert next_version(StreamState.NO_STREAM, 2) == 1
    assert next_version(4, 3) == 7
    assert next_version(StreamState.ANY, 1) is None
    assert next_version(StreamState.EXISTS, 1) is None


@pytest.mark.parametrize(
    ("expected", "reported", "actual"),
    [
        (0, 1, 1),
        (5, kdb.StreamState.NO_STREAM, None),
        (StreamState.NO_STREAM, 0, 0),
        (StreamState.EXISTS, kdb.StreamState.NO_STREAM, None),
    ],
)
def test_version_conflicts_become_wrong_expected_version(
    expected: StreamState | int, reported: kdb.StreamState | int, actual: int | None
) -> None:
    # Built as the client's batch-append path builds it.
    error = WrongCurrentVersionError(
        "conflict", stream_name="t1-s", actual_version=reported, expected_version=to_current_version(expected)
    )
    mapped = conflict_error("s", expected, error, [uuid.uuid4()])
    assert isinstance(mapped, WrongExpectedVersion)
    assert (mapped.stream_id, mapped.expected, mapped.actual) == ("s", expected, actual)


def test_a_conflict_on_an_unconditional_append_is_a_partial_retry() -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    for expected in [StreamState.ANY, StreamState.EXISTS]:
        error = WrongCurrentVersionError("conflict", stream_name="t1-s", actual_version=3)
        mapped = conflict_error("s", expected, error, ids)
        assert isinstance(mapped, DuplicateEventId)
        assert mapped.event_id == ids[0]


def test_v2_conflicts_report_no_stream_as_minus_one() -> None:
    # The multi-stream append's error detail carries raw revisions; the client maps -1.
    error = WrongCurrentVersionError("conflict", stream_name="t1-s", actual_version=-1, expected_version=0)
    mapped = conflict_error("s", 0, error, [uuid.uuid4()])
    assert isinstance(mapped, WrongExpectedVersion)
    assert mapped.actual is None


# -- metadata and events -------------------------------------------------------------------------


def test_metadata_round_trips_in_utc() -> None:
    occurred = datetime(2026, 11, 25, 21, 3, 10, 123456, tzinfo=timezone(timedelta(hours=-3)))
    new = NewEvent(
        event_id=uuid.uuid4(),
        type="shopstream.chat.MessagePosted",
        data={},
        metadata=EventMetadata(
            occurred_at=occurred,
            correlation_id="corr-1",
            causation_id="cause-1",
            extra={"source": "test", "occurred_at": "not the real one", "ünï": "流"},
        ),
        data_version=3,
    )
    metadata, data_version = decode_metadata(encode_metadata(new), recorded_at=T0)
    assert data_version == 3
    assert metadata.occurred_at == occurred
    assert metadata.occurred_at.utcoffset() == timedelta(0)
    assert metadata.correlation_id == "corr-1"
    assert metadata.causation_id == "cause-1"
    assert dict(metadata.extra) == {"source": "test", "occurred_at": "not the real one", "ünï": "流"}


def test_metadata_is_a_flat_object_of_strings_as_multi_stream_append_requires() -> None:
    new = event(1, source="test")
    doc = orjson.loads(encode_metadata(new))
    assert all(isinstance(value, str) for value in doc.values())
    # The client's own validation for multi_append_to_stream accepts it.
    properties = _metadata_to_properties(to_new_event(new))
    assert properties["data_version"].string_value == "1"


def test_optional_metadata_is_left_out() -> None:
    doc = orjson.loads(encode_metadata(event(1)))
    assert set(doc) == {"occurred_at", "data_version"}


def test_naive_occurrence_times_are_taken_as_utc() -> None:
    naive = NewEvent(uuid.uuid4(), "t", {}, EventMetadata(occurred_at=datetime(2026, 1, 1, 12)))
    metadata, _ = decode_metadata(encode_metadata(naive), recorded_at=T0)
    assert metadata.occurred_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_non_string_extra_values_are_refused() -> None:
    bad = NewEvent(uuid.uuid4(), "t", {}, EventMetadata(occurred_at=T0, extra=cast(Any, {"n": 1})))
    with pytest.raises(TypeError, match="must be a string"):
        encode_metadata(bad)


def test_keys_added_by_the_server_or_tracing_are_ignored() -> None:
    raw = orjson.dumps(
        {
            "occurred_at": T0.isoformat(),
            "data_version": "2",
            "$schema.name": "x",
            "$traceId": "abc",
            "extra.k": "v",
        }
    )
    metadata, data_version = decode_metadata(raw, recorded_at=T0)
    assert (data_version, dict(metadata.extra)) == (2, {"k": "v"})


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"data_version": "x"}'])
def test_foreign_metadata_reads_as_recorded_at_version_one(raw: bytes) -> None:
    metadata, data_version = decode_metadata(raw, recorded_at=T0)
    assert (metadata.occurred_at, data_version, dict(metadata.extra)) == (T0, 1, {})


def _recorded(name: str, new: kdb.NewEvent, *, version: int = 0, position: int = 100) -> kdb.RecordedEvent:
    return kdb.RecordedEvent(
        type=new.type,
        data=new.data,
        metadata=new.metadata,
        content_type=new.content_type,
        id=new.id,
        stream_name=name,
        stream_position=version,
        commit_position=position,
        prepare_position=position,
        recorded_at=T0 + timedelta(seconds=1),
    )


def test_a_recorded_event_maps_back() -> None:
    new = NewEvent(
        uuid.uuid4(),
        "shopstream.orders.OrderPlaced",
        {"big": 2**53 + 1, "text": "Olá 🎉", "nested": {"list": [1, 2.5, None, True]}},
        EventMetadata(occurred_at=T0, correlation_id="c"),
        data_version=2,
    )
    wire = to_new_event(new)
    assert (wire.id, wire.type, wire.content_type) == (new.event_id, new.type, "application/json")
    got = to_recorded("t1", _recorded("t1-order-7", wire, version=3, position=987))
    assert got is not None
    assert (got.event_id, got.stream_id, got.stream_version, got.position) == (
        new.event_id,
        "order-7",
        3,
        987,
    )
    assert (got.type, got.data_version, dict(got.data)) == (new.type, 2, new.data)
    assert got.metadata == new.metadata
    assert got.recorded_at == T0 + timedelta(seconds=1)


def test_system_events_and_foreign_streams_are_skipped() -> None:
    wire = to_new_event(event(1))
    assert to_recorded("t1", _recorded("t2-order", wire)) is None
    tombstone = kdb.NewEvent(type="$streamDeleted", data=b"{}")
    assert to_recorded("t1", _recorded("t1-order", tombstone)) is None


# -- control flow over an in-memory stand-in ---------------------------------------------------------


@dataclass
class FakeKurrentDB:
    """The client calls the adapter makes, over one in-memory log."""

    log: list[kdb.RecordedEvent] = field(default_factory=list)
    streams: dict[str, list[kdb.RecordedEvent]] = field(default_factory=dict)
    multi_append: bool = True
    unavailable: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    subscriptions: list[FakeSubscription] = field(default_factory=list)
    position: int = 1000

    async def _check(self) -> None:
        # Every call is a network round trip: let other tasks run, as a real one would.
        await asyncio.sleep(0)
        if self.unavailable:
            raise ServiceUnavailableError("down")

    def _version(self, name: str) -> int:
        return len(self.streams.get(name, ())) - 1

    def _decide(
        self, name: str, events: Sequence[kdb.NewEvent], expected: int | kdb.StreamState
    ) -> int | None:
        """None to write; a position for an idempotent retry; raises on conflict."""
        current = self._version(name)
        stored = self.streams.get(name, [])

        def conflict() -> WrongCurrentVersionError:
            return WrongCurrentVersionError(
                "conflict",
                stream_name=name,
                actual_version=kdb.StreamState.NO_STREAM if current < 0 else current,
                expected_version=expected,
            )

        if expected is kdb.StreamState.EXISTS:
            if current < 0:
                raise conflict()
            expected = kdb.StreamState.ANY
        if expected is kdb.StreamState.ANY:
            ids = [e.id for e in stored]
            if not events or events[0].id not in ids:
                return None
            start = ids.index(events[0].id)
            if [e.id for e in stored[start : start + len(events)]] != [e.id for e in events]:
                raise conflict()
            return stored[start + len(events) - 1].commit_position
        number = -1 if expected is kdb.StreamState.NO_STREAM else cast(int, expected)
        if number == current:
            return None
        if number > current:
            raise conflict()
        retry = stored[number + 1 : number + 1 + len(events)]
        if [e.id for e in retry] != [e.id for e in events]:
            raise conflict()
        return retry[-1].commit_position

    def _write(self, name: str, events: Sequence[kdb.NewEvent]) -> int:
        stream = self.streams.setdefault(name, [])
        for new in events:
            self.position += 137
            recorded = _recorded(name, new, version=len(stream), position=self.position)
            stream.append(recorded)
            self.log.append(recorded)
        return self.position

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def append_to_stream(
        self, stream_name: str, *, events: Sequence[kdb.NewEvent], current_version: int | kdb.StreamState
    ) -> int:
        await self._check()
        retry = self._decide(stream_name, events, current_version)
        if retry is not None:
            return retry
        position = self._write(stream_name, events)
        await self._notify()
        return position

    async def multi_append_to_stream(self, events: Sequence[kdb.NewEvents]) -> int:
        await self._check()
        if not self.multi_append:
            error = GrpcError("<AioRpcError status = StatusCode.UNIMPLEMENTED>")
            raise error
        batches = [(b.stream_name, list(b.events), b.current_version) for b in events]
        for name, new, expected in batches:
            if self._decide(name, new, expected) is not None:
                raise AssertionError("the stand-in does not model idempotent multi-appends")
        for name, new, _ in batches:
            position = self._write(name, new)
        await self._notify()
        return position

    async def get_stream(
        self,
        stream_name: str,
        *,
        stream_position: int | None = None,
        backwards: bool = False,
        limit: int = sys.maxsize,
    ) -> tuple[kdb.RecordedEvent, ...]:
        await self._check()
        if stream_name not in self.streams:
            raise NotFoundError
        stream = self.streams[stream_name]
        if backwards:
            end = len(stream) - 1 if stream_position is None else stream_position
            return tuple(reversed(stream[max(0, end - limit + 1) : end + 1]))
        start = stream_position or 0
        return tuple(stream[start : start + limit])

    async def get_current_version(self, stream_name: str, timeout: float | None = None) -> Any:
        await self._check()
        version = self._version(stream_name)
        return kdb.StreamState.NO_STREAM if version < 0 else version

    def _matching(self, filter_include: Sequence[str]) -> list[kdb.RecordedEvent]:
        regex = re.compile(construct_filter_include_regex(filter_include))
        return [e for e in self.log if regex.search(e.stream_name)]

    async def read_all(
        self,
        *,
        commit_position: int | None = None,
        filter_include: Sequence[str] = (),
        filter_by_stream_name: bool = False,
        limit: int = sys.maxsize,
    ) -> FakeReadResponse:
        await self._check()
        assert filter_by_stream_name
        start = commit_position or 0
        # Inclusive, as documented for forward reads from a position.
        events = [e for e in self._matching(filter_include) if e.commit_position >= start]
        return FakeReadResponse(events[:limit])

    async def get_commit_position(self, *, filter_include: Sequence[str], filter_by_stream_name: bool) -> int:
        await self._check()
        matching = self._matching(filter_include)
        return matching[-1].commit_position if matching else 0

    async def subscribe_to_all(
        self,
        *,
        commit_position: int | None = None,
        filter_include: Sequence[str] = (),
        filter_by_stream_name: bool = False,
    ) -> FakeSubscription:
        await self._check()
        subscription = FakeSubscription(self, commit_position or 0, filter_include)
        self.subscriptions.append(subscription)
        return subscription

    async def set_stream_metadata(self, stream_name: str, *, metadata: dict[str, Any]) -> None:
        await self._check()
        await self.append_to_stream(
            f"$${stream_name}",
            events=[kdb.NewEvent(type="$metadata", data=orjson.dumps(metadata))],
            current_version=kdb.StreamState.ANY,
        )

    async def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.drop(GrpcError("closed"))


@dataclass
class FakeReadResponse:
    events: list[kdb.RecordedEvent]

    async def __aenter__(self) -> AsyncIterator[kdb.RecordedEvent]:
        async def iterate() -> AsyncIterator[kdb.RecordedEvent]:
            for e in self.events:
                yield e

        return iterate()

    async def __aexit__(self, *args: object) -> None:
        pass


class FakeSubscription:
    def __init__(self, server: FakeKurrentDB, after: int, filter_include: Sequence[str]) -> None:
        self._server = server
        self._after = after  # exclusive, as documented
        self._filter = filter_include
        self._error: BaseException | None = None
        self.stopped = False

    def drop(self, error: BaseException) -> None:
        self._error = error
        asyncio.get_running_loop().create_task(self._server._notify())

    def __aiter__(self) -> FakeSubscription:
        return self

    async def __anext__(self) -> kdb.RecordedEvent:
        async with self._server.changed:
            while True:
                if self._error is not None:
                    raise self._error
                if self.stopped:
                    raise StopAsyncIteration
                ready = [e for e in self._server._matching(self._filter) if e.commit_position > self._after]
                if ready:
                    self._after = ready[0].commit_position
                    return ready[0]
                await self._server.changed.wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def server() -> FakeKurrentDB:
    return FakeKurrentDB()


def store_on(server: FakeKurrentDB, prefix: str = "t1") -> KurrentDBEventStore:
    return KurrentDBEventStore(cast(kdb.AsyncKurrentDBClient, server), prefix)


async def test_exact_retry_is_a_duplicate_with_the_original_result(server: FakeKurrentDB) -> None:
    store = store_on(server)
    batch = [event(1), event(2)]
    first = await store.append("s", batch, StreamState.NO_STREAM)
    assert (first.next_expected_version, first.duplicate) == (1, False)
    expectations: list[StreamState | int] = [StreamState.NO_STREAM, StreamState.ANY, StreamState.EXISTS, 0, 7]
    for expected in expectations:
        again = await store.append("s", batch, expected)
        assert again == AppendResult(
            stream_id="s", next_expected_version=1, position=first.position, duplicate=True
        )
    assert len(await store.read_stream("s")) == 2


async def test_other_overlaps_are_duplicate_event_ids(server: FakeKurrentDB) -> None:
    store = store_on(server)
    stored = event(1)
    await store.append("a", [stored])
    with pytest.raises(DuplicateEventId, match="already stored in stream 'a'"):
        await store.append("b", [stored])
    with pytest.raises(DuplicateEventId, match="mixes stored and new"):
        await store.append("a", [stored, event(2)])
    twice = event(3)
    with pytest.raises(DuplicateEventId, match="twice"):
        await store.append("c", [twice, twice])
    assert await store.read_stream("b") == []
    assert len(await store.read_stream("a")) == 1


async def test_ids_of_a_failed_append_can_be_appended_again(server: FakeKurrentDB) -> None:
    store = store_on(server)
    await store.append("s", [event(0)], StreamState.NO_STREAM)
    retried = event(1)
    with pytest.raises(WrongExpectedVersion) as conflict:
        await store.append("s", [retried], StreamState.NO_STREAM)
    assert conflict.value.actual == 0
    result = await store.append("s", [retried], 0)
    assert (result.next_expected_version, result.duplicate) == (1, False)


async def test_an_id_claimed_by_another_stream_in_flight_is_refused(server: FakeKurrentDB) -> None:
    store = store_on(server)
    taken = event(1)
    await store.append("a", [event(0)], StreamState.NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append("a", [taken], StreamState.NO_STREAM)
    # The claim names 'a' although 'a' never stored it: that append might still be running.
    with pytest.raises(DuplicateEventId, match="has not stored it"):
        await store.append("b", [taken])


async def test_any_and_exists_report_where_the_events_landed(server: FakeKurrentDB) -> None:
    store = store_on(server)
    with pytest.raises(WrongExpectedVersion) as missing:
        await store.append("s", [event(0)], StreamState.EXISTS)
    assert missing.value.actual is None
    await store.append("s", [event(0)])
    result = await store.append("s", [event(1), event(2)], StreamState.EXISTS)
    recorded = await store.read_stream("s")
    assert result.next_expected_version == 2 == recorded[-1].stream_version
    assert result.position == recorded[-1].position


async def test_append_many_needs_multi_stream_append(server: FakeKurrentDB) -> None:
    store = store_on(server)
    await store.append("old", [event(0)], StreamState.NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as conflict:
        await store.append_many(
            [AppendRequest("new", [event(1)], StreamState.NO_STREAM), AppendRequest("old", [event(2)], 5)]
        )
    assert (conflict.value.stream_id, conflict.value.expected, conflict.value.actual) == ("old", 5, 0)
    assert await store.read_stream("new") == []
    results = await store.append_many(
        [AppendRequest("new", [event(1)], StreamState.NO_STREAM), AppendRequest("old", [event(2)], 0)]
    )
    assert [r.next_expected_version for r in results] == [0, 1]
    assert results[0].position < results[1].position
    assert (await store.append_many([AppendRequest("solo", [event(3)])]))[0].next_expected_version == 0

    server.multi_append = False
    old_server = store_on(server, "t2")
    with pytest.raises(NotImplementedError, match=r"25\.1"):
        await old_server.append_many([AppendRequest("x", [event(4)]), AppendRequest("y", [event(5)])])
    with pytest.raises(NotImplementedError, match=r"25\.1"):
        await old_server.append_many([AppendRequest("x", [event(6)]), AppendRequest("y", [event(7)])])
    assert await old_server.read_stream("x") == []


async def test_read_all_pages_after_a_position_within_the_prefix(server: FakeKurrentDB) -> None:
    store, neighbour = store_on(server, "t1"), store_on(server, "t12")
    for i in range(7):
        await store.append(f"s{i % 2}", [event(i)])
        await neighbour.append("s", [event(100 + i)])
    await store.save_checkpoint("relay", 1)
    page1 = await store.read_all(0, limit=4)
    page2 = await store.read_all(page1[-1].position, limit=4)
    assert [e.data["n"] for e in page1 + page2] == list(range(7))
    assert await store.head_position() == page2[-1].position
    assert await store.read_all(page2[-1].position) == []


async def test_checkpoints_keep_only_the_last_position(server: FakeKurrentDB) -> None:
    store = store_on(server)
    assert await store.get_checkpoint("relay") == 0
    await store.save_checkpoint("relay", 42)
    await store.save_checkpoint("relay", 43)
    assert await store_on(server).get_checkpoint("relay") == 43
    meta = server.streams[f"$${checkpoint_stream('t1', 'relay')}"]
    assert [orjson.loads(e.data) for e in meta] == [{"$maxCount": 1}]


async def test_subscription_batches_what_is_available_and_survives_a_drop(server: FakeKurrentDB) -> None:
    store = store_on(server)
    for i in range(5):
        await store.append("s", [event(i)])
    start = (await store.read_all(0, limit=2))[-1].position
    batches: list[list[int]] = []
    seen: list[int] = []
    done = asyncio.Event()

    async def follow() -> None:
        async for batch in store.subscribe(start, batch_size=2):
            batches.append([e.data["n"] for e in batch])
            seen.extend(e.data["n"] for e in batch)
            if len(seen) == 3:
                # Drop the connection under the subscriber: it must resume after n=4.
                server.subscriptions[-1].drop(ServiceUnavailableError("connection reset"))
                await store.append("s", [event(5)])
            if len(seen) == 4:
                done.set()
                return

    await asyncio.wait_for(follow(), 10)
    assert seen == [2, 3, 4, 5]
    assert all(len(b) <= 2 for b in batches)
    assert len(server.subscriptions) == 2


async def test_closing_the_store_ends_its_subscriptions(server: FakeKurrentDB) -> None:
    store = store_on(server)
    await store.append("s", [event(0)])
    received: list[RecordedEvent] = []
    live = asyncio.Event()

    async def follow() -> None:
        async for batch in store.subscribe(0):
            received.extend(batch)
            live.set()

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(live.wait(), 5)
    await store.close()
    with pytest.raises(EventStoreError, match="closed"):
        await asyncio.wait_for(follower, 5)
    with pytest.raises(EventStoreError, match="closed"):
        await store.read_all()


async def test_unavailable_server_is_store_unavailable(server: FakeKurrentDB) -> None:
    store = store_on(server)
    server.unavailable = True
    with pytest.raises(StoreUnavailable):
        await store.append("s", [event(0)])
    with pytest.raises(StoreUnavailable):
        await store.read_all()


async def test_open_refuses_an_unreachable_server() -> None:
    with pytest.raises(StoreUnavailable):
        # Port 1 on loopback: connection refused at once, no server needed.
        await KurrentDBEventStore.open("kurrentdb://127.0.0.1:1?tls=false", prefix="t1", connect_timeout=5)
