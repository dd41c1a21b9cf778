"""The event-store conformance suite: the contract every adapter must keep."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from shopstream_eventstore import (
    AppendRequest,
    AppendResult,
    DuplicateEventId,
    EventMetadata,
    EventStore,
    NewEvent,
    RawEvent,
    RecordedEvent,
    StreamState,
    WrongExpectedVersion,
)

pytestmark = pytest.mark.conformance

StoreFactory = Callable[[], Awaitable[EventStore]]

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def event(n: int = 0, *, type_: str = "shopstream.test.Happened", **data: object) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        type=type_,
        data={"n": n, **data},
        metadata=EventMetadata(occurred_at=T0 + timedelta(milliseconds=n)),
    )


def stream(name: str = "order") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def collect(store: EventStore, after: int, count: int, timeout: float = 30.0) -> list[RecordedEvent]:
    """Follow the store's subscription until ``count`` events arrived (or fail at the deadline)."""
    seen: list[RecordedEvent] = []

    async def run() -> None:
        async for batch in store.subscribe(after, batch_size=97):
            seen.extend(batch)
            if len(seen) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return seen


# -- expected versions -------------------------------------------------------------------------


async def test_append_to_a_new_stream_starts_at_version_zero(store: EventStore) -> None:
    sid = stream()
    result = await store.append(sid, [event(1), event(2)], StreamState.NO_STREAM)
    assert result.next_expected_version == 1
    assert not result.duplicate
    recorded = await store.read_stream(sid)
    assert [e.stream_version for e in recorded] == [0, 1]
    assert [e.data["n"] for e in recorded] == [1, 2]
    assert recorded[-1].position == result.position
    assert recorded[0].position < recorded[1].position
    assert await store.stream_version(sid) == 1


async def test_exact_expected_version_appends_and_a_stale_one_conflicts(store: EventStore) -> None:
    sid = stream()
    await store.append(sid, [event(1)], StreamState.NO_STREAM)
    ok = await store.append(sid, [event(2)], 0)
    assert ok.next_expected_version == 1
    with pytest.raises(WrongExpectedVersion) as conflict:
        await store.append(sid, [event(3)], 0)
    assert conflict.value.stream_id == sid
    assert conflict.value.actual == 1
    assert conflict.value.expected == 0
    assert [e.data["n"] for e in await store.read_stream(sid)] == [1, 2]


async def test_stream_states_no_stream_exists_and_any(store: EventStore) -> None:
    sid = stream()
    with pytest.raises(WrongExpectedVersion) as missing:
        await store.append(sid, [event(1)], StreamState.EXISTS)
    assert missing.value.actual is None
    with pytest.raises(WrongExpectedVersion):
        await store.append(sid, [event(1)], 5)
    await store.append(sid, [event(1)], StreamState.NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append(sid, [event(2)], StreamState.NO_STREAM)
    await store.append(sid, [event(2)], StreamState.EXISTS)
    await store.append(sid, [event(3)], StreamState.ANY)
    assert [e.stream_version for e in await store.read_stream(sid)] == [0, 1, 2]


async def test_concurrent_writers_to_one_stream_exactly_one_wins_each_version(
    store_factory: StoreFactory,
) -> None:
    stores = [await store_factory(), await store_factory()]
    sid = stream("hot-sku")
    await stores[0].append(sid, [event(-1)], StreamState.NO_STREAM)
    wins: list[tuple[int, int]] = []

    async def writer(writer_id: int) -> None:
        store = stores[writer_id % 2]
        for _ in range(12):
            version = await store.stream_version(sid)
            assert version is not None
            try:
                await store.append(sid, [event(writer_id)], version)
            except WrongExpectedVersion:
                continue
            wins.append((version + 1, writer_id))

    await asyncio.gather(*(writer(i) for i in range(8)))
    recorded = await stores[0].read_stream(sid)
    versions = [v for v, _ in wins]
    assert len(versions) == len(set(versions)), "two writers won the same version"
    assert sorted(versions) == list(range(1, len(recorded)))
    assert [e.stream_version for e in recorded] == list(range(len(recorded)))
    by_version = dict(wins)
    assert all(e.data["n"] == by_version[e.stream_version] for e in recorded[1:])


# -- idempotency -------------------------------------------------------------------------------


async def test_reappending_the_same_event_ids_is_a_no_op(store: EventStore) -> None:
    sid = stream()
    batch = [event(1), event(2)]
    first = await store.append(sid, batch, StreamState.NO_STREAM)
    again = await store.append(sid, batch, StreamState.NO_STREAM)
    assert again.duplicate
    assert again.next_expected_version == first.next_expected_version
    assert again.position == first.position
    also = await store.append(sid, batch, StreamState.ANY)
    assert also.duplicate
    assert len(await store.read_stream(sid)) == 2


async def test_an_event_id_cannot_be_stored_twice_in_another_way(store: EventStore) -> None:
    sid, other = stream(), stream()
    stored = event(1)
    await store.append(sid, [stored])
    with pytest.raises(DuplicateEventId):
        await store.append(other, [stored])
    with pytest.raises(DuplicateEventId):
        await store.append(sid, [stored, event(2)])
    twice = event(3)
    with pytest.raises(DuplicateEventId):
        await store.append(stream(), [twice, twice])
    assert len(await store.read_stream(sid)) == 1
    assert await store.read_stream(other) == []


async def test_append_many_is_all_or_nothing(store: EventStore) -> None:
    existing = stream()
    await store.append(existing, [event(0)], StreamState.NO_STREAM)
    fresh = stream()
    with pytest.raises(WrongExpectedVersion):
        await store.append_many(
            [
                AppendRequest(fresh, [event(1)], StreamState.NO_STREAM),
                AppendRequest(existing, [event(2)], StreamState.NO_STREAM),
            ]
        )
    assert await store.read_stream(fresh) == []
    results = await store.append_many(
        [AppendRequest(fresh, [event(1)], StreamState.NO_STREAM), AppendRequest(existing, [event(2)], 0)]
    )
    assert [r.next_expected_version for r in results] == [0, 1]
    assert results[0].position < results[1].position


async def test_concurrent_appends_fail_alone(store: EventStore) -> None:
    """Group commit must not let one caller's conflict fail the callers it was grouped with."""
    taken = stream()
    await store.append(taken, [event(0)], StreamState.NO_STREAM)
    outcomes = await asyncio.gather(
        *(store.append(stream(), [event(i)], StreamState.NO_STREAM) for i in range(20)),
        store.append(taken, [event(99)], StreamState.NO_STREAM),
        return_exceptions=True,
    )
    assert isinstance(outcomes[-1], WrongExpectedVersion)
    assert all(not isinstance(o, BaseException) for o in outcomes[:-1])


# -- reading -----------------------------------------------------------------------------------


async def test_reads_of_a_missing_stream(store: EventStore) -> None:
    sid = stream("missing")
    assert await store.read_stream(sid) == []
    assert await store.stream_version(sid) is None


async def test_read_stream_from_a_version(store: EventStore) -> None:
    sid = stream()
    await store.append(sid, [event(i) for i in range(5)])
    assert [e.stream_version for e in await store.read_stream(sid, from_version=3)] == [3, 4]


async def test_metadata_and_payload_round_trip(store: EventStore) -> None:
    sid = stream("ünïcödé-流-🛒")
    occurred = datetime(2026, 11, 25, 21, 3, 10, 123456, tzinfo=timezone(timedelta(hours=-3)))
    new = NewEvent(
        event_id=uuid.uuid4(),
        type="shopstream.chat.MessagePosted",
        data={
            "text": "Olá! 今日は 🎉 — “quoted” \\ back\\slash",
            "price": {"amount": 12990, "currency": "BRL"},
            "nested": {"list": [1, 2.5, None, True, "x"]},
            "big": 2**53 + 1,
        },
        metadata=EventMetadata(
            occurred_at=occurred,
            correlation_id="corr-1",
            causation_id="cause-1",
            extra={"source": "test"},
        ),
        data_version=3,
    )
    await store.append(sid, [new])
    (got,) = await store.read_stream(sid)
    assert got.event_id == new.event_id
    assert got.stream_id == sid
    assert got.type == new.type
    assert got.data_version == 3
    assert dict(got.data) == new.data
    assert got.metadata.occurred_at == occurred
    assert got.metadata.occurred_at.utcoffset() == timedelta(0)
    assert got.metadata.correlation_id == "corr-1"
    assert got.metadata.causation_id == "cause-1"
    assert dict(got.metadata.extra) == {"source": "test"}
    assert got.recorded_at.tzinfo is not None


async def test_large_events(store: EventStore) -> None:
    sid = stream()
    blob = "".join(random.choices("abcdefghijklmnopqrstuvwxyzé🛒", k=1_000_000))
    await store.append(sid, [event(1, blob=blob), event(2, blob=blob[:10])])
    got = await store.read_stream(sid)
    assert got[0].data["blob"] == blob
    assert got[1].data["blob"] == blob[:10]


# -- global order and subscriptions --------------------------------------------------------------


async def test_read_all_is_in_commit_order_and_pages(store: EventStore) -> None:
    start = await store.head_position()
    sids = [stream() for _ in range(3)]
    for i in range(30):
        await store.append(sids[i % 3], [event(i)])
    page1 = await store.read_all(start, limit=20)
    page2 = await store.read_all(page1[-1].position, limit=20)
    got = page1 + page2
    assert [e.data["n"] for e in got] == list(range(30))
    positions = [e.position for e in got]
    assert positions == sorted(set(positions))
    assert await store.head_position() == positions[-1]


async def test_global_order_has_no_gaps_under_concurrent_writers(store_factory: StoreFactory) -> None:
    """A follower that saves the last position it saw must never miss an event committed later at
    a lower position (the classic SQL event-store gap)."""
    writers = [await store_factory(), await store_factory()]
    follower = await store_factory()
    start = await follower.head_position()
    total = 16 * 40
    seen: list[RecordedEvent] = []
    done = asyncio.Event()

    async def write(i: int) -> None:
        store = writers[i % 2]
        for n in range(40):
            await store.append(stream(f"w{i}"), [event(n)])

    async def follow() -> None:
        checkpoint = start
        while not (done.is_set() and len(seen) >= total):
            batch = await follower.read_all(checkpoint, limit=50)
            if batch:
                seen.extend(batch)
                checkpoint = batch[-1].position
            elif done.is_set():
                break

    reader = asyncio.create_task(follow())
    await asyncio.gather(*(write(i) for i in range(16)))
    done.set()
    await asyncio.wait_for(reader, 30)
    everything = await follower.read_all(start, limit=total + 10)
    assert len(everything) == total
    assert [e.event_id for e in seen] == [e.event_id for e in everything]


async def test_subscription_catches_up_then_goes_live_without_gap_or_repeat(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    other_process = await store_factory()
    start = await store.head_position()
    for i in range(300):
        await store.append(stream("before"), [event(i)])

    async def keep_writing() -> None:
        for i in range(300, 900):
            await (store if i % 2 else other_process).append(stream("during"), [event(i)])

    subscriber = asyncio.create_task(collect(store, start, 900))
    await keep_writing()
    got = await subscriber
    assert len(got) == 900
    assert [e.event_id for e in got] == [e.event_id for e in await store.read_all(start, limit=1000)]


async def test_raw_reads_hold_the_same_events_as_decoded_ones(store: EventStore) -> None:
    start = await store.head_position()
    sid = stream()
    meta = EventMetadata(
        occurred_at=datetime(2026, 11, 25, 21, 3, 10, tzinfo=timezone(timedelta(hours=1))),
        correlation_id="corr-1",
        causation_id="cause-1",
        extra={"tenant": "t1"},
    )
    nested = NewEvent(uuid.uuid4(), "shopstream.test.Nested", {"é": [1, 2.5, None], "o": {"k": "v"}}, meta, 3)
    await store.append(sid, [event(1), nested, event(2)])
    decoded = await store.read_all(start, limit=10)
    raw = await store.read_all_raw(start, limit=10)
    assert all(isinstance(r, RawEvent) for r in raw)
    assert [_decoded(r) for r in raw] == [
        (
            e.position,
            str(e.event_id),
            e.stream_id,
            e.stream_version,
            e.type,
            e.data_version,
            dict(e.data),
            e.recorded_at,
        )
        for e in decoded
    ]
    assert all(r.recorded_at.tzinfo is UTC for r in raw)
    stored_meta = orjson.loads(raw[1].metadata)
    assert datetime.fromisoformat(stored_meta["occurred_at"]) == meta.occurred_at
    assert (stored_meta["correlation_id"], stored_meta["causation_id"], stored_meta["extra"]) == (
        "corr-1",
        "cause-1",
        {"tenant": "t1"},
    )
    assert "causation_id" not in orjson.loads(raw[0].metadata)
    assert await store.read_all_raw(raw[0].position, limit=1) == raw[1:2]


async def test_raw_subscription_follows_like_the_decoded_one(store: EventStore) -> None:
    start = await store.head_position()
    sid = stream()
    await store.append(sid, [event(i) for i in range(5)])
    seen: list[RawEvent] = []

    async def run() -> None:
        async for batch in store.subscribe_raw(start, batch_size=2):
            seen.extend(batch)
            if len(seen) >= 8:
                return

    follower = asyncio.create_task(asyncio.wait_for(run(), 30))
    await store.append(sid, [event(i) for i in range(5, 8)])
    await follower
    assert [orjson.loads(r.data)["n"] for r in seen] == list(range(8))
    assert [r.position for r in seen] == [e.position for e in await store.read_all(start, limit=20)]


def _decoded(raw: RawEvent) -> tuple[object, ...]:
    return (*raw[:6], orjson.loads(raw.data), raw.recorded_at)


async def test_subscription_from_a_checkpoint_starts_right_after_it(store: EventStore) -> None:
    sid = stream()
    await store.append(sid, [event(i) for i in range(10)])
    recorded = await store.read_stream(sid)
    got = await collect(store, recorded[4].position, 5)
    assert [e.data["n"] for e in got] == [5, 6, 7, 8, 9]


async def test_checkpoints_are_durable_across_instances(store_factory: StoreFactory) -> None:
    one = await store_factory()
    name = f"relay-{uuid.uuid4().hex[:6]}"
    assert await one.get_checkpoint(name) == 0
    await one.save_checkpoint(name, 42)
    await one.save_checkpoint(name, 43)
    two = await store_factory()
    assert await two.get_checkpoint(name) == 43


# -- group commit ------------------------------------------------------------------------------


async def test_a_retry_racing_its_original_is_answered_as_a_retry(store: EventStore) -> None:
    sid = stream()
    batch = [event(1), event(2)]
    first, second = await asyncio.gather(store.append(sid, batch), store.append(sid, batch))
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert (first.next_expected_version, first.position) == (second.next_expected_version, second.position)
    assert len(await store.read_stream(sid)) == 2


async def test_a_failed_append_leaves_no_trace_for_the_appends_grouped_with_it(store: EventStore) -> None:
    taken, fresh = stream(), stream()
    await store.append(taken, [event(0)], StreamState.NO_STREAM)
    failed, *rest = await asyncio.gather(
        store.append_many(
            [
                AppendRequest(fresh, [event(1)], StreamState.NO_STREAM),
                AppendRequest(taken, [event(2)], StreamState.NO_STREAM),
            ]
        ),
        store.append(fresh, [event(3)], StreamState.NO_STREAM),
        store.append(taken, [event(4)], 0),
        return_exceptions=True,
    )
    assert isinstance(failed, WrongExpectedVersion)
    assert [(r.stream_id, r.next_expected_version) for r in rest if isinstance(r, AppendResult)] == [
        (fresh, 0),
        (taken, 1),
    ]
    assert [e.data["n"] for e in await store.read_stream(fresh)] == [3]
    assert [e.data["n"] for e in await store.read_stream(taken)] == [0, 4]


# -- append_each -------------------------------------------------------------------------------


async def test_append_each_decides_every_request_alone(store: EventStore) -> None:
    taken, fresh, other = stream(), stream(), stream()
    await store.append(taken, [event(0)])
    assert await store.append_each([]) == []
    outcomes = await store.append_each(
        [
            AppendRequest(fresh, [event(1)], StreamState.NO_STREAM),
            AppendRequest(taken, [event(2)], StreamState.NO_STREAM),
            AppendRequest(fresh, [event(3), event(4)], 0),
            AppendRequest(other, [event(5)]),
        ]
    )
    assert isinstance(outcomes[1], WrongExpectedVersion)
    results = [o for o in outcomes if isinstance(o, AppendResult)]
    assert [(r.stream_id, r.next_expected_version, r.duplicate) for r in results] == [
        (fresh, 0, False),
        (fresh, 2, False),
        (other, 0, False),
    ]
    assert [r.position for r in results] == sorted(r.position for r in results)
    assert [e.data["n"] for e in await store.read_stream(fresh)] == [1, 3, 4]
    assert [e.data["n"] for e in await store.read_stream(taken)] == [0]
    assert [e.data["n"] for e in await store.read_stream(other)] == [5]


async def test_append_each_answers_stored_ids_as_append_does(store: EventStore) -> None:
    home, elsewhere = stream(), stream()
    first, second = event(1), event(2)
    written = await store.append(home, [first, second])
    fresh = event(3)
    outcomes = await store.append_each(
        [
            AppendRequest(home, [first, second]),
            AppendRequest(elsewhere, [first]),
            AppendRequest(home, [fresh]),
        ]
    )
    retry, moved, appended = outcomes
    assert isinstance(retry, AppendResult)
    assert retry.duplicate
    assert (retry.next_expected_version, retry.position) == (written.next_expected_version, written.position)
    assert isinstance(moved, DuplicateEventId)
    assert moved.event_id == first.event_id
    assert isinstance(appended, AppendResult)
    assert not appended.duplicate
    assert appended.next_expected_version == 2
    stored = [e.event_id for e in await store.read_stream(home)]
    assert stored == [first.event_id, second.event_id, fresh.event_id]
    assert await store.read_stream(elsewhere) == []


async def test_append_each_decides_an_id_reused_in_the_call_after_its_first_use(store: EventStore) -> None:
    home, elsewhere = stream(), stream()
    once, other = event(1), event(2)
    outcomes = await store.append_each(
        [
            AppendRequest(home, [once]),
            AppendRequest(home, [other]),
            AppendRequest(home, [once]),
            AppendRequest(elsewhere, [once]),
        ]
    )
    original, appended, again, moved = outcomes
    assert isinstance(original, AppendResult)
    assert not original.duplicate
    assert isinstance(appended, AppendResult)
    assert appended.next_expected_version == 1
    assert isinstance(again, AppendResult)
    assert again.duplicate
    assert (again.next_expected_version, again.position) == (0, original.position)
    assert isinstance(moved, DuplicateEventId)
    assert moved.event_id == once.event_id
    assert [e.event_id for e in await store.read_stream(home)] == [once.event_id, other.event_id]
    assert await store.read_stream(elsewhere) == []
