"""Reconcile a consumer's inbox against the producer's store: every event arrived exactly once,
in per-key order. The delivery tests, the fault tests and the demo all judge delivery with it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

from shopstream_eventstore import EventStore, RecordedEvent

from .inbox import INBOX_PREFIX


async def read_everything(store: EventStore, page: int = 5000) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    while batch := await store.read_all(events[-1].position if events else 0, page):
        events.extend(batch)
    return events


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int
    received: int
    missing: int
    duplicated: int
    keys_out_of_order: int

    @property
    def exact(self) -> bool:
        return self.sent == self.received and not (self.missing or self.duplicated or self.keys_out_of_order)


def compare(source: list[RecordedEvent], target: list[RecordedEvent], key_field: str) -> DeliveryReport:
    """Compare the source store's events with the inbox streams of the target store."""
    target = [e for e in target if e.stream_id.startswith(INBOX_PREFIX)]
    sent_ids = {e.event_id for e in source}
    received_ids = [e.event_id for e in target]
    per_key_sent: dict[str, list[UUID]] = defaultdict(list)
    per_key_received: dict[str, list[UUID]] = defaultdict(list)
    for e in source:
        per_key_sent[str(e.data[key_field])].append(e.event_id)
    for e in target:
        per_key_received[str(e.data[key_field])].append(e.event_id)
    out_of_order = sum(1 for key, ids in per_key_sent.items() if per_key_received.get(key) != ids)
    return DeliveryReport(
        sent=len(source),
        received=len(target),
        missing=len(sent_ids - set(received_ids)),
        duplicated=len(received_ids) - len(set(received_ids)),
        keys_out_of_order=out_of_order,
    )
