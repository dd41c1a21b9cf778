"""The inbox: Kafka ⇒ the service's own event store, exactly once in effect.

Each received integration event is appended to the local store under its ``ce_id`` (the store
drops an id it already holds), and the Kafka offset is committed only after that append is
durable: a crash re-delivers, the store deduplicates. Projections and policies then read only
the local store, so a service's whole state can be rebuilt from it alone.

A message that cannot be decoded or is not a known contract event goes to the dead-letter
topic with the reason in its headers, and the batch goes on: one bad message never blocks a
partition. Only the store being unavailable stops progress, and then the batch is redelivered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Message, TopicPartition
from faststream.confluent import KafkaBroker
from faststream.confluent.annotations import Consumer, KafkaMessage
from faststream.middlewares import AckPolicy

from shopstream_contracts.errors import ContractError
from shopstream_contracts.registry import Registry
from shopstream_contracts.topics import DEADLETTER_TOPIC
from shopstream_eventstore import (
    AppendRequest,
    AppendResult,
    DuplicateEventId,
    EventMetadata,
    EventStore,
    NewEvent,
    StreamState,
)
from shopstream_observability import get_logger
from shopstream_observability.metrics import CONSUMER_LAG, DEAD_LETTERS, INBOX_RECEIVED

from .cloudevents import CloudEvent, UndecodableMessage, decode
from .kafka import BatchProducer, OutgoingMessage

log = get_logger(__name__)


class Rejected(Exception):
    """A decoded CloudEvent that this service must not store (unknown type, invalid data)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


Accept = Callable[[CloudEvent], None]
"""Raises ``Rejected`` for an event that is not a valid contract event."""


class RawMessage(Protocol):
    """The parts of a Kafka message the inbox reads (confluent-kafka's ``Message`` has them)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...


def contract_acceptor(registry: Registry) -> Accept:
    """Accept exactly the events the published contract can decode (upcasting included).

    The event is stored as received, at its own version: readers upcast on read, so history
    keeps what was actually said."""

    def accept(event: CloudEvent) -> None:
        try:
            registry.decode(event.type, event.dataversion, event.data)
        except ContractError as exc:
            raise Rejected(str(exc)) from None

    return accept


INBOX_PREFIX = "inbox:"


def inbox_stream(topic: str, key: str) -> str:
    """Received events live in streams of their own, per topic and key, apart from the service's
    own aggregates."""
    return f"{INBOX_PREFIX}{topic}:{key}"


class Inbox:
    def __init__(
        self,
        store: EventStore,
        accept: Accept,
        dead_letters: BatchProducer,
        *,
        service: str,
        consumer_group: str,
        dead_letter_topic: str = DEADLETTER_TOPIC,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self._store = store
        self._accept = accept
        self._dead_letters = dead_letters
        self._group = consumer_group
        self._dlq = dead_letter_topic
        self._clock = clock

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Store a batch durably (or dead-letter its bad messages). Returning means the batch's
        offsets may be committed; raising means none of it may be."""
        received: list[RawMessage] = []
        requests: list[AppendRequest] = []
        rejected: list[tuple[RawMessage, str]] = []
        for message in messages:
            try:
                requests.append(self._to_append(message))
            except (UndecodableMessage, Rejected) as exc:
                rejected.append((message, str(exc)))
            else:
                received.append(message)
        refused = await self._append(received, requests) if requests else []
        if rejected or refused:
            await self._dead_letter(rejected + refused)
        INBOX_RECEIVED.labels(self.service, "stored").inc(len(received) - len(refused))
        INBOX_RECEIVED.labels(self.service, "dead_lettered").inc(len(rejected) + len(refused))

    def _to_append(self, message: RawMessage) -> AppendRequest:
        event = decode(message.key(), message.value(), message.headers() or [])
        self._accept(event)
        try:
            event_id = uuid.UUID(event.id)
        except ValueError:
            raise Rejected(f"ce_id {event.id!r} is not a UUID") from None
        extra = {"source": event.source, "topic": message.topic() or ""}
        new = NewEvent(
            event_id=event_id,
            type=event.type,
            data=event.data,
            data_version=event.dataversion,
            metadata=EventMetadata(
                occurred_at=event.time,
                correlation_id=event.correlationid,
                causation_id=event.causationid,
                extra=extra,
            ),
        )
        return AppendRequest(inbox_stream(message.topic() or "", event.key), [new], StreamState.ANY)

    async def _append(
        self, received: list[RawMessage], requests: list[AppendRequest]
    ) -> list[tuple[RawMessage, str]]:
        """Append the batch: an id already stored in its own stream (a redelivery, or a copy
        earlier in the batch) is dropped as a duplicate, an id stored under another stream is
        refused (dead-lettered) alone. ``StoreUnavailable`` raises: nothing of the batch may be
        committed then."""
        try:
            # The common case, and the cheapest for the store: the batch as one unit, in which
            # a redelivered event is answered as a retry.
            await self._store.append_many(requests)
            return []
        except DuplicateEventId:
            pass
        # Rare: an id twice in the batch, or held under another stream. Decided request by
        # request, still in one transaction (two with copies in the batch), not one per message.
        outcomes = await self._store.append_each(requests)
        return [
            (message, str(outcome))
            for message, outcome in zip(received, outcomes, strict=True)
            if not isinstance(outcome, AppendResult)
        ]

    async def _dead_letter(self, rejected: list[tuple[RawMessage, str]]) -> None:
        failed_at = self._clock().isoformat().encode()
        letters = []
        for message, reason in rejected:
            source_topic = message.topic() or ""
            log.warning("inbox.dead_letter", topic=source_topic, offset=message.offset(), reason=reason)
            DEAD_LETTERS.labels(self.service, source_topic, reason.split(":")[0][:60]).inc()
            headers = [
                *(message.headers() or []),
                ("dl_reason", reason.encode()),
                ("dl_consumer", self._group.encode()),
                ("dl_topic", source_topic.encode()),
                ("dl_partition", str(message.partition()).encode()),
                ("dl_offset", str(message.offset()).encode()),
                ("dl_time", failed_at),
            ]
            letters.append(OutgoingMessage(self._dlq, message.key() or b"", message.value() or b"", headers))
        await self._dead_letters.send(letters)


def subscribe_inbox(
    broker: KafkaBroker,
    inbox: Inbox,
    topics: Sequence[str],
    *,
    group_id: str,
    max_records: int = 1000,
) -> Any:
    """Attach the inbox to a FastStream broker as a batch subscriber that acknowledges (commits)
    only after the batch is stored, and rewinds (nack) when storing failed."""

    async def on_batch(msg: KafkaMessage, consumer: Consumer) -> None:
        raw = msg.raw_message
        batch = raw if isinstance(raw, tuple) else (raw,)
        await inbox.handle(batch)
        _report_lag(inbox.service, consumer.consumer, batch)

    return broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # The inbox decodes the CloudEvent itself; FastStream must not reject a malformed body
        # before the inbox can dead-letter it.
        decoder=_raw_body,
    )(on_batch)


async def _raw_body(msg: Any) -> Any:
    return msg.body


def _report_lag(service: str, consumer: ConfluentConsumer, batch: Sequence[Message]) -> None:
    """Lag per partition after this batch, from the high watermark the client already holds
    (``cached=True``: no broker round trip on the hot path)."""
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is not None and partition is not None and offset is not None:
            last[(topic, partition)] = offset
    for (topic, partition), offset in last.items():
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        if high >= 0:
            CONSUMER_LAG.labels(service, topic, str(partition)).set(max(high - offset - 1, 0))
