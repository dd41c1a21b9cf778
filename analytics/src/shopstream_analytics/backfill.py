"""Backfill a subscriber: publish a selected range of history again, for a team that starts
consuming now. The messages are the ones the relay published: the same CloudEvent (same
``ce_id``), the same key and headers (``to_cloudevent`` + ``cloudevents.encode``), so a consumer
that deduplicates by ``ce_id`` takes each event once however many times it is sent. They go to
each event's contract topic, or all to one ``topic`` (a private topic for that team).

Produced with the relay's settings (idempotent, ``acks=all``) in batches, each acknowledged
before the next is read; a key's events keep their store order. Only public contract events are
published: internal events are not part of any contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopstream_messaging.cloudevents import encode
from shopstream_messaging.kafka import BatchProducer, OutgoingMessage, producer_config

from .envelope import to_cloudevent
from .history import History
from .selection import Selection, SelectionError
from .sources import StoreRef, read_range


@dataclass(frozen=True, slots=True)
class BackfillSummary:
    published: int
    topics: dict[str, int] = field(default_factory=dict)
    """Messages per topic."""
    scanned: int = 0


async def backfill(
    refs: Sequence[StoreRef],
    selection: Selection,
    bootstrap: str,
    *,
    topic: str | None = None,
    progress: Callable[[int], None] | None = None,
    page: int = 5000,
    producer_overrides: Mapping[str, Any] | None = None,
) -> BackfillSummary:
    """Publish the events ``selection`` takes to ``topic`` (default: each one's contract topic)."""
    if selection.include_internal:
        raise SelectionError("internal events are not published: a backfill carries contract events only")
    scanned = 0

    def counted(count: int) -> None:
        nonlocal scanned
        scanned += count
        if progress is not None:
            progress(count)

    producer = BatchProducer(producer_config(bootstrap, **(producer_overrides or {})))
    topics: Counter[str] = Counter()
    try:
        async with History(refs, selection, read_range, page=page, progress=counted) as history:
            batch: list[OutgoingMessage] = []
            async for service, events in history.runs():
                for event in events:
                    contract_topic, cloudevent = to_cloudevent(service, event)
                    if contract_topic is None:
                        continue
                    key, value, headers = encode(cloudevent)
                    batch.append(OutgoingMessage(topic or contract_topic, key, value, headers))
                if len(batch) >= page:
                    await producer.send(batch)
                    topics.update(message.topic for message in batch)
                    batch = []
            if batch:
                await producer.send(batch)
                topics.update(message.topic for message in batch)
    finally:
        producer.close()
    return BackfillSummary(sum(topics.values()), dict(topics), scanned)
