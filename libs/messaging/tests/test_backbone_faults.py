"""Faults with real processes: kill -9 the relay or the inbox mid-stream, stop Kafka while
events keep being appended, deliver everything twice, inject poison messages. After each, the
target store holds every event exactly once, in per-key order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shopstream_contracts import DEADLETTER_TOPIC
from shopstream_eventstore import AppendRequest, EventStore
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_infra import KafkaNode, create_topics
from shopstream_messaging.cloudevents import CloudEvent, encode
from shopstream_messaging.inbox import INBOX_PREFIX
from shopstream_messaging.reconcile import compare, read_everything
from shopstream_testing.contract_events import contract_event, order_events
from shopstream_testing.plugin import KafkaNodeFactory
from shopstream_testing.processes import ChildProcess, child_processes
from shopstream_testing.topics import group_lag, read_topic
from shopstream_testing.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.faults

ORDERS = "shopstream.orders.order"


@dataclass
class Pipeline:
    node: KafkaNode
    workdir: Path
    children: list[ChildProcess]
    group: str

    @property
    def bootstrap(self) -> str:
        return self.node.bootstrap_servers

    @property
    def source_path(self) -> Path:
        return self.workdir / "orders.sqlite"

    @property
    def target_path(self) -> Path:
        return self.workdir / "commission.sqlite"

    def relay(self, batch: int = 100) -> ChildProcess:
        return self._child(
            "relay", "relay", "--sqlite", str(self.source_path), "--service", "orders", "--batch", str(batch)
        )

    def inbox(self, batch: int = 200) -> ChildProcess:
        return self._child(
            "inbox", "inbox", "--sqlite", str(self.target_path), "--service", "commission",
            "--topic", ORDERS, "--group", self.group, "--batch", str(batch),
        )  # fmt: skip

    def _child(self, name: str, *args: str) -> ChildProcess:
        child = ChildProcess(
            ["-m", "shopstream_testing.pipeline_proc", *args, "--bootstrap", self.bootstrap],
            self.workdir / f"{name}.log",
        )
        self.children.append(child)
        return child.start()


@pytest.fixture
def pipeline(tmp_path: Path, kafka_node_factory: KafkaNodeFactory) -> Iterator[Pipeline]:
    """A relay and an inbox on a Kafka node of the test's own, so no other test's events share
    the contract topic."""
    node = kafka_node_factory()
    create_topics(node.bootstrap_servers, [ORDERS, DEADLETTER_TOPIC], partitions=6)
    with child_processes() as children:
        yield Pipeline(node, tmp_path, children, group=f"commission-{uuid.uuid4().hex[:8]}")


async def fill(store: EventStore, count: int, keys: int, *, first: int = 0) -> None:
    events = list(order_events(first + count, keys))[first:]
    for start in range(0, len(events), 500):
        await store.append_many([AppendRequest(s, [e]) for s, e in events[start : start + 500]])


async def inbox_count(path: Path) -> int:
    store = await SqliteEventStore.open(path)
    try:
        return sum(1 for e in await read_everything(store) if e.stream_id.startswith(INBOX_PREFIX))
    finally:
        await store.close()


async def assert_exactly_once(pipeline: Pipeline, source: EventStore, expected: int) -> None:
    await wait_until_async(
        lambda: _at_least(pipeline.target_path, expected),
        timeout=120,
        interval=0.25,
        message=f"{expected} events in the target store",
    )
    target = await SqliteEventStore.open(pipeline.target_path)
    try:
        report = compare(await read_everything(source), await read_everything(target), key_field="order_id")
    finally:
        await target.close()
    assert report.exact, report
    assert report.received == expected


async def _at_least(path: Path, expected: int) -> bool:
    return await inbox_count(path) >= expected


async def test_kill_9_the_relay_mid_stream_and_restart_it(pipeline: Pipeline) -> None:
    source = await SqliteEventStore.open(pipeline.source_path)
    await fill(source, 10_000, keys=300)
    head = await source.head_position()
    pipeline.inbox()
    relay = pipeline.relay(batch=50)
    await wait_until_async(
        lambda: _checkpoint_past(source, 1000), timeout=60, message="relay published 1,000 events"
    )
    relay.kill9()
    checkpoint = await source.get_checkpoint("relay")
    assert 0 < checkpoint < head, "the kill did not land mid-stream"
    relay.start()
    await assert_exactly_once(pipeline, source, 10_000)
    await source.close()


async def test_kill_9_the_inbox_mid_stream_and_restart_it(pipeline: Pipeline) -> None:
    source = await SqliteEventStore.open(pipeline.source_path)
    await fill(source, 10_000, keys=300)
    pipeline.relay(batch=1000)
    inbox = pipeline.inbox(batch=50)
    await wait_until_async(
        lambda: _at_least(pipeline.target_path, 1500), timeout=60, message="inbox stored 1,500 events"
    )
    inbox.kill9()
    stored = await inbox_count(pipeline.target_path)
    assert 0 < stored < 10_000, "the kill did not land mid-stream"
    pipeline.inbox(batch=50)
    await assert_exactly_once(pipeline, source, 10_000)
    await source.close()


async def test_kafka_down_while_events_keep_being_appended(pipeline: Pipeline) -> None:
    node = pipeline.node
    source = await SqliteEventStore.open(pipeline.source_path)
    await fill(source, 2000, keys=100)
    pipeline.relay(batch=200)
    pipeline.inbox(batch=200)
    await wait_until_async(lambda: _at_least(pipeline.target_path, 2000), timeout=60, message="first 2,000")

    node.stop()
    appended = 2000
    outage_ends = time.monotonic() + 5.0
    while time.monotonic() < outage_ends:
        await fill(source, 250, keys=100, first=appended)
        appended += 250
    assert await inbox_count(pipeline.target_path) == 2000, "events moved while Kafka was down?"
    node.start()

    await assert_exactly_once(pipeline, source, appended)
    await source.close()


async def test_the_same_events_delivered_twice_are_stored_once(pipeline: Pipeline) -> None:
    source = await SqliteEventStore.open(pipeline.source_path)
    await fill(source, 3000, keys=100)
    relay = pipeline.relay(batch=500)
    pipeline.inbox()
    await assert_exactly_once(pipeline, source, 3000)

    # Replay the whole outbox: every event is published a second time with the same ce_id.
    relay.terminate()
    await source.save_checkpoint("relay", 0)
    relay.start()
    wait_until(lambda: len(read_topic(pipeline.bootstrap, ORDERS)) >= 6000, timeout=60, message="republished")
    wait_until(
        lambda: group_lag(pipeline.bootstrap, pipeline.group, ORDERS) == 0, timeout=60, message="consumed"
    )
    ids_on_topic = [r.headers["ce_id"] for r in read_topic(pipeline.bootstrap, ORDERS)]
    assert len(ids_on_topic) >= 6000
    assert len(set(ids_on_topic)) == 3000
    await assert_exactly_once(pipeline, source, 3000)
    await source.close()


def _poison(bootstrap: str) -> dict[str, str]:
    """Produce poison messages between good ones on one key; return ce_id ⇒ expected reason."""
    producer = Producer({"bootstrap.servers": bootstrap})
    key = "ord_poison"
    good = contract_event("shopstream.orders.OrderPlaced", key, _now())

    def cloud(
        event_type: str, data: dict[str, object], version: int = 1, event_id: str | None = None
    ) -> CloudEvent:
        return CloudEvent(
            id=event_id or str(uuid.uuid4()), source="/shopstream/orders", type=event_type, time=_now(),
            subject=key, data=data, dataversion=version, key=key,
        )  # fmt: skip

    def send(event: CloudEvent, *, value: bytes | None = None, drop: str | None = None) -> None:
        k, v, headers = encode(event)
        producer.produce(ORDERS, key=k, value=value if value is not None else v,
                         headers=[h for h in headers if h[0] != drop])  # fmt: skip

    expected: dict[str, str] = {}
    placed = dict(good.data)
    send(cloud(good.type, placed, event_id=str(good.event_id)))
    bad = cloud(good.type, placed)
    send(bad, value=b"{not json")
    expected[bad.id] = "JSON"
    bad = cloud(good.type, placed)
    send(bad, drop="ce_type")
    expected[bad.id] = "ce_type"
    bad = cloud("shopstream.orders.OrderTeleported", placed)
    send(bad)
    expected[bad.id] = "unknown event type"
    bad = cloud(good.type, {**placed, "total": {"amount": "lots", "currency": "BRL"}})
    send(bad)
    expected[bad.id] = "total.amount"
    bad = cloud(good.type, placed, version=7)
    send(bad)
    expected[bad.id] = "unknown version 7"
    bad = cloud(good.type, placed, event_id="not-a-uuid")
    send(bad)
    expected[bad.id] = "not a UUID"
    after = contract_event("shopstream.orders.OrderConfirmed", key, _now())
    send(cloud(after.type, dict(after.data), event_id=str(after.event_id)))
    producer.flush(30)
    return expected


def _now() -> datetime:
    return datetime.now(UTC)


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_partition_flows(
    pipeline: Pipeline,
) -> None:
    expected = _poison(pipeline.bootstrap)
    pipeline.inbox()
    await wait_until_async(lambda: _at_least(pipeline.target_path, 2), timeout=60, message="both good events")
    wait_until(
        lambda: group_lag(pipeline.bootstrap, pipeline.group, ORDERS) == 0, timeout=60, message="consumed"
    )
    letters = read_topic(pipeline.bootstrap, DEADLETTER_TOPIC)
    reasons = {r.headers["ce_id"].decode(): r.headers["dl_reason"].decode() for r in letters}
    assert set(reasons) == set(expected)
    for event_id, fragment in expected.items():
        assert fragment in reasons[event_id], (fragment, reasons[event_id])
    for letter in letters:
        assert letter.headers["dl_topic"] == ORDERS.encode()
        assert letter.headers["dl_consumer"] == pipeline.group.encode()
        assert letter.key == b"ord_poison"
    assert await inbox_count(pipeline.target_path) == 2


async def _checkpoint_past(store: EventStore, position: int) -> bool:
    return await store.get_checkpoint("relay") >= position
