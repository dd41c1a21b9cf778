"""Export: every format read back equals the stores' events; filters; resume after an
interruption gives every event exactly once; nothing is left behind on bad input; memory does
not grow with the history."""

from __future__ import annotations

import asyncio
import csv
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shopstream_analytics.envelope import row, to_cloudevent
from shopstream_analytics.export import (
    ExportError,
    export_events,
    partial_path,
    progress_path,
)
from shopstream_analytics.formats import FORMATS, Format
from shopstream_analytics.history import LiveNotFound
from shopstream_analytics.selection import Selection
from shopstream_analytics.sources import (
    StoredEvent,
    StoreRef,
    is_inbox_copy,
    opened,
    read_range,
    read_range_stored,
    store_refs,
)
from shopstream_analytics.synthetic import generate
from shopstream_eventstore import RecordedEvent

from .history import RecordedHistory

pytestmark = pytest.mark.integration

EVENTS = 4_000


class Stop(Exception):
    """Stands for whatever interrupts an export (Ctrl-C, a crash, a deploy)."""


@pytest.fixture(scope="module")
async def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[StoreRef]:
    refs = store_refs(f"sqlite:///{tmp_path_factory.mktemp('synthetic')}/{{service}}.sqlite")
    await generate(refs, EVENTS, seed=11, batch=1_500)
    return refs


async def store_events(refs: list[StoreRef]) -> list[tuple[str, RecordedEvent]]:
    events: list[tuple[str, RecordedEvent]] = []
    for ref in refs:
        async with opened(ref) as store:
            events += [(ref.service, e) async for page in read_range(store) for e in page]
    return events


async def stored_events(refs: list[StoreRef]) -> list[tuple[str, StoredEvent]]:
    events: list[tuple[str, StoredEvent]] = []
    for ref in refs:
        async with opened(ref) as store:
            events += [(ref.service, e) async for page in read_range_stored(store, page=333) for e in page]
    return events


def assert_same_event(stored: StoredEvent, event: RecordedEvent) -> None:
    """What an export takes from a ``StoredEvent`` equals the decoded read of the same row."""
    assert (
        stored.position,
        stored.event_id,
        stored.stream_id,
        stored.stream_version,
        stored.type,
        stored.data_version,
        stored.recorded_at,
    ) == (
        event.position,
        str(event.event_id),
        event.stream_id,
        event.stream_version,
        event.type,
        event.data_version,
        event.recorded_at,
    )
    assert stored.metadata == event.metadata
    assert stored.metadata.occurred_at.tzinfo is event.metadata.occurred_at.tzinfo
    assert stored.recorded_at.tzinfo is event.recorded_at.tzinfo
    assert orjson.loads(stored.data_text) == stored.data == event.data


def read_back(path: Path, fmt: Format) -> list[dict[str, Any]]:
    """Rows as plain values: ids, positions and payloads, whatever the format."""
    if fmt == "parquet":
        rows = pq.read_table(path).to_pylist()
        return [{**r, "data": orjson.loads(r["data"])} for r in rows]
    if fmt == "jsonl":
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]
    with path.open(newline="") as file:
        return [
            {**r, "position": int(r["position"]), "data": orjson.loads(r["data"])}
            for r in csv.DictReader(file)
        ]


def key(rows: list[dict[str, Any]]) -> list[tuple[str, str, int, str]]:
    return sorted((r["id"], r["service"], int(r["position"]), r["type"]) for r in rows)


def expected(events: list[tuple[str, RecordedEvent]], keep: Callable[[RecordedEvent], bool]) -> list[Any]:
    return sorted(
        (str(e.event_id), service, e.position, e.type)
        for service, e in events
        if keep(e) and not is_inbox_copy(e)
    )


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_format_reads_back_equal_to_the_stores(
    synthetic: list[StoreRef], tmp_path: Path, fmt: Format
) -> None:
    out = tmp_path / f"all.{fmt}"
    summary = await export_events(synthetic, Selection(), out, fmt, page=700)
    rows = read_back(out, fmt)
    events = await store_events(synthetic)
    assert key(rows) == expected(events, lambda e: True)
    assert summary.exported == len(rows) == EVENTS
    by_id = {str(e.event_id): (service, e) for service, e in events if not is_inbox_copy(e)}
    for r in rows[:: len(rows) // 50]:
        service, event = by_id[r["id"]]
        _, cloudevent = to_cloudevent(service, event)
        assert r["data"] == cloudevent.data == event.data
        assert (r["source"], r["subject"], int(r["dataversion"])) == (
            cloudevent.source,
            cloudevent.subject,
            cloudevent.dataversion,
        )
    assert names(tmp_path) == [out.name]  # no partial file, no checkpoint
    # Roughly in time order: the stores are merged by occurred_at.
    if fmt == "parquet":
        schema = pq.read_schema(out)
        assert schema.field("time").type == pa.timestamp("us", tz="UTC")
        assert schema.field("recorded_at").type == pa.timestamp("us", tz="UTC")
        assert schema.field("position").type == pa.int64()
        assert schema.field("internal").type == pa.bool_()


async def test_stored_events_are_the_decoded_events_undecoded(synthetic: list[StoreRef]) -> None:
    decoded, stored = await store_events(synthetic), await stored_events(synthetic)
    assert [(s, e.position) for s, e in stored] == [(s, e.position) for s, e in decoded]
    for (_, raw), (_, event) in zip(stored, decoded, strict=True):
        assert_same_event(raw, event)
        # SQLite holds orjson's text: an export writes the very bytes it wrote before reading raw.
        assert raw.data_text == orjson.dumps(event.data).decode()


async def test_flat_rows_match_the_relay_cloudevents(synthetic: list[StoreRef]) -> None:
    pairs = zip(await stored_events(synthetic), await store_events(synthetic), strict=True)
    for (service, stored), (_, event) in list(pairs)[::97]:
        if is_inbox_copy(event):
            continue
        _, ce = to_cloudevent(service, event)
        flat = row(service, stored)
        assert flat[9:-1] == (
            False,
            service,
            event.stream_id,
            event.stream_version,
            event.position,
            event.recorded_at,
        )
        assert orjson.loads(orjson.dumps(flat[-1])) == ce.data
        assert flat[:9] == (
            ce.id,
            ce.source,
            ce.type,
            ce.specversion,
            ce.time,
            ce.subject,
            ce.dataversion,
            ce.correlationid,
            ce.causationid,
        )


async def test_filters_take_exactly_what_they_name(synthetic: list[StoreRef], tmp_path: Path) -> None:
    events = await store_events(synthetic)
    orders_of = [e for s, e in events if s == "orders" and e.type == "shopstream.orders.OrderPlaced"]
    live = orders_of[0].data["attribution"]["live_id"]
    live_orders = {e.data["order_id"] for e in orders_of if e.data["attribution"]["live_id"] == live}
    times = sorted(e.metadata.occurred_at for _, e in events)
    since, until = times[len(times) // 4], times[len(times) // 2]
    cases: list[tuple[Selection, Callable[[RecordedEvent], bool]]] = [
        (
            Selection.of(types=["shopstream.orders.OrderRejected", "shopstream.live.AudienceSampled"]),
            lambda e: e.type in ("shopstream.orders.OrderRejected", "shopstream.live.AudienceSampled"),
        ),
        (Selection.of(stream_prefix="order-"), lambda e: e.stream_id.startswith("order-")),
        (Selection(since=since, until=until), lambda e: since <= e.metadata.occurred_at < until),
        (Selection.of(from_position=100, to_position=400), lambda e: 100 <= e.position <= 400),
        (
            Selection.of(live_id=live),
            lambda e: (
                e.data.get("live_id") == live
                or e.data.get("attribution", {}).get("live_id") == live
                or e.data.get("order_id") in live_orders
            ),
        ),
    ]
    for n, (selection, keep) in enumerate(cases):
        out = tmp_path / f"{n}.jsonl"
        await export_events(synthetic, selection, out, "jsonl")
        assert key(read_back(out, "jsonl")) == expected(events, keep), selection
    rejected = [r for r in read_back(tmp_path / "4.jsonl", "jsonl") if r["type"].endswith("OrderRejected")]
    assert rejected
    assert all(r["data"]["order_id"] in live_orders for r in rejected)


async def test_an_unknown_live_writes_nothing(synthetic: list[StoreRef], tmp_path: Path) -> None:
    out = tmp_path / "live.parquet"
    out.write_bytes(b"an earlier export")
    with pytest.raises(LiveNotFound, match="liv_nobody"):
        await export_events(synthetic, Selection.of(live_id="liv_nobody"), out, "parquet")
    assert out.read_bytes() == b"an earlier export"
    assert names(tmp_path) == [out.name]


async def test_bad_outputs_are_refused_before_reading(synthetic: list[StoreRef], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        await export_events(synthetic, Selection(), tmp_path / "nowhere" / "x.csv", "csv")
    with pytest.raises(ExportError, match="flatten applies to csv and parquet"):
        await export_events(synthetic, Selection(), tmp_path / "x.jsonl", "jsonl", flatten=True)
    with pytest.raises(ExportError, match="is a directory"):
        await export_events(synthetic, Selection(), tmp_path, "csv")
    missing = store_refs(f"sqlite:///{tmp_path}/none/{{service}}.sqlite", ["orders"])
    with pytest.raises(Exception, match="no event store"):
        await export_events(missing, Selection(), tmp_path / "y.csv", "csv")
    assert names(tmp_path) == []


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def stop_after(count: int) -> Callable[[int], None]:
    seen = 0

    def progress(scanned: int) -> None:
        nonlocal seen
        seen += scanned
        if seen >= count:
            raise Stop

    return progress


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_resumed_export_has_every_event_once(
    synthetic: list[StoreRef], tmp_path: Path, fmt: Format
) -> None:
    out = tmp_path / f"resumed.{fmt}"
    selection = Selection()
    with pytest.raises(Stop):
        await export_events(synthetic, selection, out, fmt, page=300, progress=stop_after(2_500))
    assert not out.exists()
    assert partial_path(out).exists()
    assert progress_path(out).exists()
    with pytest.raises(ExportError, match="another selection"):
        await export_events(synthetic, Selection.of(stream_prefix="order-"), out, fmt, resume=True)
    with pytest.raises(Stop):  # interrupted twice: the second run resumes, then stops again
        await export_events(synthetic, selection, out, fmt, page=300, resume=True, progress=stop_after(600))
    summary = await export_events(synthetic, selection, out, fmt, page=300, resume=True)
    assert summary.resumed
    assert summary.exported == EVENTS
    rows = read_back(out, fmt)
    assert key(rows) == expected(await store_events(synthetic), lambda e: True)
    assert names(tmp_path) == [out.name]


async def test_a_cancelled_export_resumes(synthetic: list[StoreRef], tmp_path: Path) -> None:
    out = tmp_path / "cancelled.jsonl"
    started = asyncio.Event()

    def progress(_: int) -> None:
        started.set()

    task = asyncio.create_task(
        export_events(synthetic, Selection(), out, "jsonl", page=200, progress=progress)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await export_events(synthetic, Selection(), out, "jsonl", page=200, resume=True)
    assert key(read_back(out, "jsonl")) == expected(await store_events(synthetic), lambda e: True)


async def test_a_parquet_file_left_unclosed_is_exported_again(
    synthetic: list[StoreRef], tmp_path: Path
) -> None:
    out = tmp_path / "killed.parquet"
    with pytest.raises(Stop):
        await export_events(synthetic, Selection(), out, "parquet", page=300, progress=stop_after(2_000))
    partial = partial_path(out)
    partial.write_bytes(partial.read_bytes()[:-100])  # as if killed before the footer was written
    summary = await export_events(synthetic, Selection(), out, "parquet", page=300, resume=True)
    assert not summary.resumed
    assert key(read_back(out, "parquet")) == expected(await store_events(synthetic), lambda e: True)


async def test_flatten_writes_a_typed_file_per_type(synthetic: list[StoreRef], tmp_path: Path) -> None:
    out = tmp_path / "flat"
    summary = await export_events(
        synthetic, Selection(include_internal=True), out, "parquet", flatten=True, page=500
    )
    names = {path.name for path in summary.files}
    assert "shopstream.orders.OrderPlaced.v1.parquet" in names
    placed = pq.read_table(out / "shopstream.orders.OrderPlaced.v1.parquet")
    assert placed.schema.field("data.line.unit_price.amount").type == pa.int64()
    assert placed.schema.field("data.attribution.host_ids").type == pa.string()
    assert "data" not in placed.schema.names
    events = await store_events(synthetic)
    placed_events = [e for s, e in events if s == "orders" and e.type == "shopstream.orders.OrderPlaced"]
    amounts = {e.data["order_id"]: e.data["line"]["unit_price"]["amount"] for e in placed_events}
    columns = placed["data.order_id"].to_pylist(), placed["data.line.unit_price.amount"].to_pylist()
    got = dict(zip(*columns, strict=True))
    assert got == amounts
    total = sum(pq.read_metadata(path).num_rows for path in summary.files)
    assert total == summary.exported == EVENTS
    flat_csv = tmp_path / "flat_csv"
    await export_events(synthetic, Selection(), flat_csv, "csv", flatten=True)
    with (flat_csv / "shopstream.orders.OrderPlaced.v1.csv").open(newline="") as file:
        assert len(list(csv.DictReader(file))) == len(placed_events)


async def test_postgres_stores_export_the_same(postgres_dsn: str, tmp_path: Path) -> None:
    refs = store_refs(postgres_dsn)
    await generate(refs, 1_500, seed=5)
    out = tmp_path / "pg.parquet"
    summary = await export_events(refs, Selection(), out, "parquet")
    assert summary.exported == 1_500
    events = await store_events(refs)
    rows = read_back(out, "parquet")
    assert key(rows) == expected(events, lambda e: True)
    # PostgreSQL hands out its jsonb text (its own spacing and key order): the same JSON values.
    stored = await stored_events(refs)
    for (_, raw), (_, event) in zip(stored, events, strict=True):
        assert_same_event(raw, event)
    by_id = {str(e.event_id): e for _, e in events}
    for r in rows:
        event = by_id[r["id"]]
        assert r["data"] == event.data
        assert (r["time"], r["recorded_at"]) == (event.metadata.occurred_at, event.recorded_at)
    jsonl = tmp_path / "pg.jsonl"
    await export_events(refs, Selection(), jsonl, "jsonl")
    assert [r["data"] for r in read_back(jsonl, "jsonl")] == [r["data"] for r in rows]


async def test_memory_does_not_grow_with_the_history(tmp_path: Path) -> None:
    refs = store_refs(f"sqlite:///{tmp_path}/big/{{service}}.sqlite")
    await generate(refs, 16_000, seed=3)
    peaks = []
    for n, share in enumerate((4, 1)):
        async with opened(refs[1]) as chat:
            head = await chat.head_position()
        selection = Selection(to_position=head // share)
        tracemalloc.start()
        summary = await export_events(refs, selection, tmp_path / f"{n}.parquet", "parquet", page=200)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert summary.exported > 3_000
    small, large = peaks
    # Four times the events, the same working set (pages and row groups), give or take caches.
    assert large < small * 1.5, peaks


async def test_a_live_of_the_real_platform_comes_with_its_orders(
    recorded_history: RecordedHistory, tmp_path: Path
) -> None:
    refs = store_refs(recorded_history.store_url_template)
    live, other = recorded_history.live_ids[:2]
    out = tmp_path / "live.parquet"
    await export_events(refs, Selection.of(live_id=live), out, "parquet")
    rows = read_back(out, "parquet")
    placed = {r["data"]["order_id"] for r in rows if r["type"] == "shopstream.orders.OrderPlaced"}
    rejected = [r for r in rows if r["type"] == "shopstream.orders.OrderRejected"]
    reserved = [r for r in rows if r["type"] == "shopstream.catalog.StockReserved"]
    assert placed
    assert rejected
    assert reserved  # the deal sold out: some orders were turned down
    assert all(r["data"]["order_id"] in placed for r in rejected + reserved)
    assert not any(other in orjson.dumps(r["data"]).decode() for r in rows)
    assert {r["service"] for r in rows} == {"live", "chat", "catalog", "orders", "commission"}
