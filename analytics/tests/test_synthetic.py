"""The synthetic history: exactly the events asked, contract-valid, deterministic from its seed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shopstream_analytics.sources import SERVICES, StoreRef, is_inbox_copy, opened, read_range, store_refs
from shopstream_analytics.synthetic import generate
from shopstream_contracts import REGISTRY

pytestmark = pytest.mark.integration

EVENTS = 6_000


async def _history(refs: list[StoreRef]) -> dict[str, list[tuple[Any, ...]]]:
    stores: dict[str, list[tuple[Any, ...]]] = {}
    for ref in refs:
        async with opened(ref) as store:
            stores[ref.service] = [
                (e.event_id, e.stream_id, e.stream_version, e.type, dict(e.data), e.metadata)
                async for page in read_range(store)
                for e in page
            ]
    return stores


async def test_writes_exactly_the_events_asked_valid_and_deterministic(tmp_path: Path) -> None:
    first = store_refs(f"sqlite:///{tmp_path}/a/{{service}}.sqlite")
    summary = await generate(first, EVENTS, seed=7, batch=1_000)
    history = await _history(first)

    own = {name: [e for e in events if not e[1].startswith("inbox:")] for name, events in history.items()}
    assert sum(map(len, own.values())) == summary.events == EVENTS
    assert {name: len(events) for name, events in own.items()} == summary.per_service
    assert sum(len(events) - len(own[name]) for name, events in history.items()) == summary.inbox_copies > 0
    types = Counter(e[3] for events in own.values() for e in events)
    for expected in ("LiveStarted", "AudienceSampled", "MessagePosted", "OrderConfirmed", "OrderRejected"):
        assert any(t.endswith(expected) for t in types), expected
    for name, events in own.items():
        for event_id, _, _, type_, data, _ in events:
            REGISTRY.validate_for_publish(type_, 1, data)
            assert REGISTRY.topic(type_).service == name, (event_id, type_)
    assert len(summary.live_ids) >= 2

    again = store_refs(f"sqlite:///{tmp_path}/b/{{service}}.sqlite")
    await generate(again, EVENTS, seed=7, batch=1_000)
    assert await _history(again) == history  # ids, streams, payloads, times and order: from the seed

    other = store_refs(f"sqlite:///{tmp_path}/c/{{service}}.sqlite", ["live", "chat"])
    with pytest.raises(Exception, match="needs every service"):
        await generate(other, 10)
    assert set(SERVICES) == set(history)


async def test_inbox_copies_sit_in_inbox_streams(tmp_path: Path) -> None:
    refs = store_refs(f"sqlite:///{tmp_path}/{{service}}.sqlite")
    await generate(refs, 2_000, seed=1)
    async with opened(refs[3]) as orders:
        copies = [e async for page in read_range(orders) for e in page if is_inbox_copy(e)]
    assert copies
    assert all(e.type.startswith("shopstream.live.") for e in copies)
