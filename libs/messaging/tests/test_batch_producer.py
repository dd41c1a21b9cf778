"""The batch producer hears about failures only (no report per delivered message), so it must
still turn a message the broker refused into a failed batch, and a clean batch into success."""

from __future__ import annotations

import uuid

import pytest

from shopstream_infra import create_topics
from shopstream_messaging.kafka import BatchProducer, DeliveryFailed, OutgoingMessage, producer_config
from shopstream_testing.topics import read_topic

pytestmark = pytest.mark.integration


def message(topic: str, n: int, size: int = 10) -> OutgoingMessage:
    return OutgoingMessage(topic, f"k{n}".encode(), b"x" * size, [("n", str(n).encode())])


async def test_an_acknowledged_batch_is_all_on_the_topic_in_order(kafka_bootstrap: str) -> None:
    topic = f"test.batch.{uuid.uuid4().hex}"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    producer = BatchProducer(producer_config(kafka_bootstrap))
    try:
        await producer.send([message(topic, n) for n in range(500)])
    finally:
        producer.close()

    numbers = [r.headers["n"] for r in read_topic(kafka_bootstrap, topic)]
    assert numbers == [str(n).encode() for n in range(500)]


async def test_a_message_the_broker_refuses_fails_the_batch(kafka_bootstrap: str) -> None:
    topic = f"test.batch.{uuid.uuid4().hex}"
    create_topics(kafka_bootstrap, [topic], partitions=1, config={"max.message.bytes": "2000"})
    producer = BatchProducer(producer_config(kafka_bootstrap, **{"compression.type": "none"}))
    try:
        with pytest.raises(DeliveryFailed, match=r"of 2 messages failed: .*MSG_SIZE_TOO_LARGE"):
            await producer.send([message(topic, 0), message(topic, 1, size=50_000)])
        await producer.send([message(topic, 2)])  # a later clean batch is not blamed for it
    finally:
        producer.close()
