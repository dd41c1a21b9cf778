"""Kafka plumbing shared by the relay and the inbox: producer settings and a batch producer
that reports delivery per batch.

The relay produces with confluent-kafka directly rather than through FastStream's publisher:
it must know that a whole batch was acknowledged before it moves its checkpoint, and waiting
on one future per message would cost more than the produce itself at relay rates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a producer that never loses, duplicates or reorders what it was given
    while it lives: idempotence implies acks=all and in-order retries per partition."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        # Wait for the broker as long as it takes: an outage is waited out, not turned into
        # lost messages. The caller's checkpoint, not a timeout, bounds what is in flight.
        "message.timeout.ms": 0,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200000,
        # librdkafka's own lines go through Python logging, so they come out as JSON like ours.
        "logger": logging.getLogger("shopstream.kafka"),
    }
    config.update(overrides)
    return config


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class DeliveryFailed(Exception):
    """At least one message of a batch was not acknowledged; the batch must be sent again."""


class BatchProducer:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self._producer = Producer(dict(config))
        self._closing = False

    async def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Produce ``messages`` in order and return once the broker acknowledged every one."""
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        def produce_and_flush() -> None:
            for message in messages:
                while True:
                    try:
                        self._producer.produce(
                            message.topic,
                            value=message.value,
                            key=message.key,
                            headers=list(message.headers),
                            on_delivery=on_delivery,
                        )
                        break
                    except BufferError:
                        # The local queue is full: let deliveries drain it, then go on.
                        self._producer.poll(0.1)
            while self._producer.flush(0.5) > 0 and not self._closing:
                pass

        await asyncio.get_running_loop().run_in_executor(None, produce_and_flush)
        if self._closing:
            raise DeliveryFailed("the producer was closed before every message was acknowledged")
        if errors:
            raise DeliveryFailed(f"{len(errors)} of {len(messages)} messages failed: {errors[0]}")

    def close(self) -> None:
        # Unblocks a send that is waiting out an outage; what it had not delivered is sent again
        # by the next process from the unmoved checkpoint.
        self._closing = True
        self._producer.flush(1)
