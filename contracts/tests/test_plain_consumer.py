"""The example consumer of docs/subscribing.md, run as another team would run it, on real Kafka."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from shopstream_contracts import REGISTRY
from shopstream_messaging.cloudevents import CloudEvent, encode

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "docs" / "examples" / "plain_consumer.py"
SCHEMAS = REPO_ROOT / "contracts" / "schemas"

Golden = Callable[..., dict[str, Any]]


def cloud_event(event_type: str, data: dict[str, Any], second: int) -> CloudEvent:
    topic = REGISTRY.topic(event_type)
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=topic.source,
        type=event_type,
        time=datetime(2025, 5, 1, 20, 25, second, tzinfo=UTC),
        subject=data[topic.key],
        data=data,
        dataversion=1,
        key=data[topic.key],
        correlationid="sale-42",
    )


def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1) for name in names]
    ).values():
        future.result(timeout=30)


def produce(bootstrap: str, messages: list[tuple[str, CloudEvent]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for topic, event in messages:
        key, value, headers = encode(event)
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
    if producer.flush(30) != 0:
        raise KafkaException("messages still undelivered after 30 s")
    assert failures == []


def test_it_prints_each_valid_event_exactly_once(kafka_bootstrap: str, golden: Golden) -> None:
    run = uuid.uuid4().hex[:8]
    orders_topic, stock_topic = f"plain-consumer-{run}.orders", f"plain-consumer-{run}.stock"
    create_topics(kafka_bootstrap, [orders_topic, stock_topic])
    placed = cloud_event("shopstream.orders.OrderPlaced", golden("shopstream.orders.OrderPlaced"), 14)
    confirmed = cloud_event(
        "shopstream.orders.OrderConfirmed", golden("shopstream.orders.OrderConfirmed"), 15
    )
    reserved = cloud_event("shopstream.catalog.StockReserved", golden("shopstream.catalog.StockReserved"), 14)
    refund = golden("shopstream.orders.OrderRefunded")
    invalid = cloud_event(
        "shopstream.orders.OrderRefunded", {**refund, "amount": {"amount": 89.9, "currency": "BRL"}}, 16
    )
    # The duplicate and the invalid event come before `confirmed` in the same partition, so once
    # the consumer has printed `confirmed` it has necessarily seen (and dropped) both.
    produce(
        kafka_bootstrap,
        [
            (orders_topic, placed),
            (orders_topic, placed),
            (orders_topic, invalid),
            (orders_topic, confirmed),
            (stock_topic, reserved),
        ],
    )

    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--bootstrap",
            kafka_bootstrap,
            "--group",
            f"plain-consumer-{run}",
            "--schemas",
            str(SCHEMAS),
            "--max-events",
            "3",
            "--idle-timeout",
            "60",
            orders_topic,
            stock_topic,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    by_id = {line["id"]: line for line in printed}
    assert len(printed) == len(by_id) == 3
    assert set(by_id) == {placed.id, confirmed.id, reserved.id}
    assert [line["id"] for line in printed if line["topic"] == orders_topic] == [placed.id, confirmed.id]
    for event in (placed, confirmed, reserved):
        line = by_id[event.id]
        assert line["type"] == event.type
        assert line["dataversion"] == 1
        assert line["key"] == line["subject"] == event.key
        assert line["source"] == event.source
        assert line["correlationid"] == "sale-42"
        assert line["causationid"] is None
        assert datetime.fromisoformat(line["time"]) == event.time
        assert line["data"] == event.data
    assert f"duplicate {orders_topic}[0]@1: {placed.id}" in result.stderr
    assert (
        f"skipped {orders_topic}[0]@2: shopstream.orders.OrderRefunded v1 invalid at amount/amount"
        in result.stderr
    )
