"""Backfill: a fresh consumer group gets exactly the selected events, once, as the relay
published them (same ids, keys and headers); sending the range again changes nothing for a
consumer that deduplicates by id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from shopstream_analytics.backfill import backfill
from shopstream_analytics.envelope import to_cloudevent
from shopstream_analytics.selection import Selection, SelectionError
from shopstream_analytics.sources import opened, read_range, store_refs
from shopstream_analytics.synthetic import generate
from shopstream_messaging.cloudevents import decode, encode
from shopstream_testing.topics import group_lag, read_topic

pytestmark = pytest.mark.integration


async def test_a_fresh_group_gets_the_selected_events_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    refs = store_refs(f"sqlite:///{tmp_path}/{{service}}.sqlite", ["orders", "catalog"])
    await generate(store_refs(f"sqlite:///{tmp_path}/{{service}}.sqlite"), 3_000, seed=21)
    selection = Selection.of(stream_prefix="order-", since="2025-01-06T18:30:00Z")
    expected = {}
    for ref in refs:
        async with opened(ref) as store:
            async for page in read_range(store):
                for event in page:
                    if selection.takes(event):
                        expected[str(event.event_id)] = encode(to_cloudevent(ref.service, event)[1])
    assert expected

    topic = f"backfill-{uuid.uuid4().hex[:8]}"
    summary = await backfill(refs, selection, kafka_bootstrap, topic=topic, page=200)
    assert summary.published == len(expected)
    assert summary.topics == {topic: len(expected)}
    records = read_topic(kafka_bootstrap, topic)
    received = {decode(r.key, r.value, r.headers).id: (r.key, r.value) for r in records}
    assert len(records) == len(received) == len(expected)  # once each
    assert received == {event_id: (key, value) for event_id, (key, value, _) in expected.items()}

    await backfill(refs, selection, kafka_bootstrap, topic=topic)
    again = read_topic(kafka_bootstrap, topic)
    ids = [decode(r.key, r.value, r.headers).id for r in again]
    assert len(ids) == 2 * len(expected)
    assert set(ids) == set(expected)  # dedup by id: nothing new


async def test_internal_events_and_unknown_lives_publish_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    refs = store_refs(f"sqlite:///{tmp_path}/{{service}}.sqlite")
    await generate(refs, 500, seed=2)
    with pytest.raises(SelectionError, match="internal events are not published"):
        await backfill(refs, Selection(include_internal=True), kafka_bootstrap, topic="unused")
    topic = f"backfill-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SelectionError, match="liv_nobody"):
        await backfill(refs, Selection.of(live_id="liv_nobody"), kafka_bootstrap, topic=topic)


def reset_to_datetime(bootstrap: str, group: str, topic: str, since: datetime) -> None:
    """The offset reset of docs/analysts/export-and-backfill.md, as documented."""
    since_ms = int(since.timestamp() * 1000)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
    found = probe.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout=10)
    offsets = [
        tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, probe.get_watermark_offsets(tp)[1])
        for tp in found
    ]
    probe.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)])[group].result()


async def test_the_documented_offset_reset_rewinds_a_group(kafka_bootstrap: str, tmp_path: Path) -> None:
    refs = store_refs(f"sqlite:///{tmp_path}/{{service}}.sqlite")
    await generate(refs, 800, seed=4)
    topic, group = f"reset-{uuid.uuid4().hex[:8]}", f"team-{uuid.uuid4().hex[:8]}"
    first = await backfill(refs[:1], Selection(), kafka_bootstrap, topic=topic)
    middle = datetime.now(UTC)
    second = await backfill(refs[1:2], Selection(), kafka_bootstrap, topic=topic)
    end = first.published + second.published
    reset_to_datetime(kafka_bootstrap, group, topic, datetime(2000, 1, 1, tzinfo=UTC))
    assert group_lag(kafka_bootstrap, group, topic) == end
    reset_to_datetime(kafka_bootstrap, group, topic, middle)
    assert group_lag(kafka_bootstrap, group, topic) == second.published
    reset_to_datetime(kafka_bootstrap, group, topic, datetime.now(UTC) + timedelta(hours=1))
    assert group_lag(kafka_bootstrap, group, topic) == 0
