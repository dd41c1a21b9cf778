"""A real Kafka node: starts, answers metadata, moves messages, and survives stop/kill + restart."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer

from shopstream_infra import InfraError, KafkaNode, broker_answers_metadata, create_topics
from shopstream_testing.plugin import KafkaNodeFactory
from shopstream_testing.waiting import wait_until

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, values: list[str], producer: Producer | None = None) -> None:
    producer = producer or Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for value in values:
        producer.produce(topic, key=value.encode(), value=value.encode(), on_delivery=delivered)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert not failures


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[str] = []

    def got_all() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.append(bytes(msg.value() or b"").decode())
        return len(seen) >= expected

    try:
        wait_until(got_all, timeout=30, interval=0, message=f"{expected} messages from {topic}")
    finally:
        consumer.close()
    return seen


def test_broker_answers_metadata_and_round_trips_a_message(kafka_bootstrap: str) -> None:
    assert kafka_bootstrap.startswith("127.0.0.1:")
    assert broker_answers_metadata(kafka_bootstrap)
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, [topic], partitions=3)
    create_topics(kafka_bootstrap, [topic], partitions=3)  # existing topics are left alone

    _produce(kafka_bootstrap, topic, ["hello", "world"])

    assert sorted(_consume_all(kafka_bootstrap, topic, 2)) == ["hello", "world"]


def test_restart_on_the_same_address_keeps_data(kafka_node_factory: KafkaNodeFactory) -> None:
    node: KafkaNode = kafka_node_factory()
    address = node.bootstrap_servers
    node.create_topics(["durable"], partitions=2)
    # One producer for the whole test: it must find the broker again at the same address.
    producer = Producer(
        {
            "bootstrap.servers": address,
            "enable.idempotence": True,
            "acks": "all",
            "reconnect.backoff.max.ms": 500,
        }
    )
    _produce(address, "durable", ["before-stop"], producer)

    node.stop()
    assert not node.is_running()
    assert not broker_answers_metadata(address, timeout=0.5)
    node.start()
    assert node.bootstrap_servers == address
    _produce(address, "durable", ["after-stop"], producer)

    node.kill()  # a crash: no controlled shutdown, log recovery on the next start
    node.start()
    _produce(address, "durable", ["after-kill"], producer)

    assert sorted(_consume_all(address, "durable", 3)) == ["after-kill", "after-stop", "before-stop"]


def test_start_failure_reports_the_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    node = KafkaNode(
        tmp_path_factory.mktemp("bad-kafka"), config={"num.io.threads": "not-a-number"}, ephemeral=True
    )
    with pytest.raises(InfraError, match=r"num.io.threads: Not a number"):
        node.start(timeout=60)
    assert not node.is_running()
