"""Inbox Kafka ⇒ store: our inbox (FastStream batch subscriber, contract check, dedup by ``ce_id``,
offsets committed after the durable append) over N pre-produced CloudEvents, against a raw
pipeline doing the same hops with nothing of ours: a confluent-kafka consumer with the same batch
size inserting rows made straight from each message into an identical SQLite table (WAL,
synchronous=FULL), committing offsets after each insert. Raw consume alone and raw insert alone
(pre-serialised rows) are reported for context: they show which hop bounds the raw pipeline.

Both pipelines are timed from their start (connect, join the group) until the store holds all N.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, Producer

from shopstream_contracts import REGISTRY
from shopstream_eventstore.sqlite import SCHEMA, SqliteEventStore, connect
from shopstream_infra import create_topics
from shopstream_messaging.inbox import inbox_stream
from shopstream_messaging.pipeline import run_inbox
from shopstream_testing.waiting import wait_until_async

from ..context import BenchContext
from ..figures import Figure, Target
from ..registry import Benchmark
from .relay import (
    PARTITIONS,
    Encoded,
    contract_messages,
    delivery_errors,
    headers_id,
    kafka_name,
    produce_all,
    raw_producer_config,
)

BATCH = 1000
"""Records per batch for both pipelines (the inbox's ``max_records``)."""

Headers = Iterable[tuple[str, Any]] | Mapping[str, Any]
Row = tuple[str, str, int, str, int, str, str, str]
"""A row of the events table: event_id, stream_id, stream_version, type, data_version, data,
metadata, recorded_at."""

INSERT = (
    "INSERT INTO events (event_id, stream_id, stream_version, type, data_version, data, metadata, "
    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


NOTES = (
    "Profile (py-spy and per-thread CPU from /proc, quick size, 2 shared cores, quiet machine): ours "
    "spends ~50-55 µs of CPU per event, ~29 µs on the event loop and ~20 µs on the store's writer thread,"
    " and the two run one after the other (a batch is decoded, then appended, then committed), so wall "
    "time follows their sum; the raw pipeline ~8 µs plus one FULL fsync per 1,000-row batch. Event loop "
    "(busy samples): the contract check (pydantic through the registry) ~31 %, about 5-6 µs per event "
    "measured alone and no cheaper from the JSON bytes (model_validate_json costs the same as validating "
    "the dict, so that lever is void); CloudEvent decode ~22 %, half of it orjson parsing the data; "
    "FastStream's parse_batch ~11 %; the hand-over to the group committer ~11 %. Writer thread: the FULL "
    "commit ~1/3, the insert executemany ~1/4, building rows (data and metadata serialised again, ~5 µs) "
    "~1/6, planning ~1/8, results ~1/12. What moved (~0.35 to ~0.36 of the baseline here, +4-10 % "
    "events/s in alternated A/B runs, within this machine's noise): the group committer keeps no "
    "per-unit bookkeeping, and a batch the store refuses part of (an id twice in the batch or held "
    "under another stream) is stored with one append_each (one transaction) instead of one append per "
    "message. Tried and dropped: a planning shortcut for one-event appends (~5-10 % of the planner "
    "alone, not worth a second statement of its rules), a fast decode path for "
    "messages in exactly the relay's form (~2 µs per event, not worth a second copy of the codec's "
    "rules), a lean batch parser skipping FastStream's header dicts "
    "(slower end to end, +2 µs on the loop and +3 µs on the writer in alternated runs, cause not found), "
    "append_each for every batch (1,000 units cost the writer more than one unit of 1,000), appending a "
    "batch in key-disjoint parts to overlap decoding with writing (no gain: the writer's Python half "
    "needs the GIL and each part adds a commit). What is left: validation and JSON parse plus "
    "re-serialisation (~15 µs) are inherent to storing checked contract events as dicts (a store path "
    "taking the received JSON text as is would save the re-serialisation), and only overlapping whole "
    "batches (acknowledging batch N after batch N+1 was decoded) would use the second core. max_records "
    "of 500, 2,000 and 5,000 did not lower the CPU per event (76-83 µs under load for all four sizes)."
)


async def run(ctx: BenchContext) -> list[Figure]:
    count = ctx.size(smoke=2_000, quick=50_000, full=300_000)
    bootstrap = ctx.kafka_bootstrap
    ctx.step(f"inbox: producing {count:,} contract events")
    messages = contract_messages(count)
    topic = kafka_name(ctx, "inbox.events")
    create_topics(bootstrap, [topic], partitions=PARTITIONS)
    await asyncio.to_thread(_produce, bootstrap, topic, messages)
    rows = [message_row(topic, key, n, value, headers) for n, (key, value, headers) in enumerate(messages)]
    ours: list[float] = []
    combined: list[float] = []
    consumed: list[float] = []
    inserted: list[float] = []
    wrong: Counter[str] = Counter()
    expected = {headers_id(m) for m in messages}
    # The pre-made messages and rows are the benchmark's set-up, not the inbox's: keep the
    # collector from walking them again and again, as it would not in a service process.
    gc.freeze()
    try:
        for repeat in range(ctx.repeats):
            ctx.step(f"inbox: repeat {repeat + 1}/{ctx.repeats}")
            path = ctx.scratch("inbox") / "commission.sqlite"
            ours.append(
                count / await inbox_seconds(path, bootstrap, topic, count, kafka_name(ctx, "inbox.group"))
            )
            wrong.update(delivery_errors(expected, Counter(_stored_ids(path))))
            raw_path = ctx.scratch("inbox-raw") / "raw.sqlite"
            combined.append(
                count / await asyncio.to_thread(raw_pipeline_seconds, raw_path, bootstrap, topic, count, ctx)
            )
            consumed.append(
                count / await asyncio.to_thread(raw_consume_seconds, bootstrap, topic, count, ctx)
            )
            insert_path = ctx.scratch("inbox-insert") / "raw.sqlite"
            inserted.append(count / await asyncio.to_thread(raw_insert_seconds, insert_path, rows))
    finally:
        gc.unfreeze()
    figure = Figure(
        benchmark="inbox",
        name="inbox Kafka ⇒ store (SQLite)",
        unit="events/s",
        samples=ours,
        baseline="raw consume + raw batched insert combined",
        baseline_samples=combined,
        targets=(Target("ratio_at_least", 0.6, "≥ 0.6 × raw consume + raw batched insert combined"),),
        checks={
            "events": count,
            "missing_events": wrong["missing_events"],
            "duplicate_events": wrong["duplicate_events"],
            "unexpected_events": wrong["unexpected_events"],
        },
        notes=NOTES,
    )
    return [
        figure,
        Figure(benchmark="inbox", name="raw consume (confluent-kafka)", unit="msgs/s", samples=consumed),
        Figure(benchmark="inbox", name="raw batched insert (SQLite, FULL)", unit="rows/s", samples=inserted),
    ]


def _produce(bootstrap: str, topic: str, messages: Sequence[Encoded]) -> None:
    producer = Producer(raw_producer_config(bootstrap))
    produce_all(producer, topic, messages)
    producer.flush()


async def inbox_seconds(path: Path, bootstrap: str, topic: str, count: int, group: str) -> float:
    """Our inbox into a fresh store, from start until the store holds ``count`` events."""
    store = await SqliteEventStore.open(path)
    started = time.perf_counter()
    task = asyncio.create_task(run_inbox(store, bootstrap, "commission", REGISTRY, [topic], group_id=group))
    try:
        await wait_until_async(lambda: _holds(store, count), timeout=600, interval=0.02, message="inbox done")
        return time.perf_counter() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def _holds(store: SqliteEventStore, count: int) -> bool:
    # Positions of a fresh store with no failed append are 1..n, so the head is the count.
    return await store.head_position() >= count


def raw_consumer(bootstrap: str, topic: str, group: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer


def raw_pipeline_seconds(path: Path, bootstrap: str, topic: str, count: int, ctx: BenchContext) -> float:
    """Raw consume then raw insert, batch by batch, committing offsets after each durable insert."""
    conn = _table(path)
    started = time.perf_counter()
    consumer = raw_consumer(bootstrap, topic, kafka_name(ctx, "inbox.raw-pipeline"))
    try:
        stored = 0
        while stored < count:
            batch = [m for m in consumer.consume(BATCH, 0.1) if m.error() is None]
            if not batch:
                continue
            _insert(conn, [_message_row(m) for m in batch])
            consumer.commit(asynchronous=True)
            stored += len(batch)
        return time.perf_counter() - started
    finally:
        consumer.close()
        conn.close()


def raw_consume_seconds(bootstrap: str, topic: str, count: int, ctx: BenchContext) -> float:
    started = time.perf_counter()
    consumer = raw_consumer(bootstrap, topic, kafka_name(ctx, "inbox.raw-consume"))
    try:
        seen = 0
        while seen < count:
            seen += sum(1 for m in consumer.consume(BATCH, 0.1) if m.error() is None)
        return time.perf_counter() - started
    finally:
        consumer.close()


def raw_insert_seconds(path: Path, rows: Sequence[Row]) -> float:
    conn = _table(path)
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            _insert(conn, rows[start : start + BATCH])
        return time.perf_counter() - started
    finally:
        conn.close()


def _table(path: Path) -> sqlite3.Connection:
    conn = connect(path, "FULL")
    conn.executescript(SCHEMA)
    return conn


def _insert(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, rows)
    conn.execute("COMMIT")


def _message_row(message: Message) -> Row:
    topic, offset = message.topic() or "", message.offset() or 0
    return message_row(topic, message.key() or b"", offset, message.value() or b"", message.headers() or [])


def message_row(topic: str, key: bytes, offset: int, value: bytes, headers: Headers) -> Row:
    """The row an inbox stores for a message, made from its bytes with no validation: what a
    hand-written consumer would do."""
    fields = dict(headers)
    metadata: dict[str, Any] = {"occurred_at": fields["ce_time"].decode()}
    if "correlationid" in fields:
        metadata["correlation_id"] = fields["correlationid"].decode()
    metadata["extra"] = {"source": fields["ce_source"].decode(), "topic": topic}
    return (
        fields["ce_id"].decode(),
        inbox_stream(topic, key.decode()),
        offset,
        fields["ce_type"].decode(),
        int(fields["dataversion"]),
        value.decode(),
        orjson.dumps(metadata).decode(),
        datetime.now(UTC).isoformat(),
    )


def _stored_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]
    finally:
        conn.close()


BENCHMARK = Benchmark(
    name="inbox", title="inbox Kafka ⇒ store vs raw consume + raw insert", run=run, order=50
)
