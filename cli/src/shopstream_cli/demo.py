"""`shopstream demo`: the event backbone end to end, on real infrastructure, narrated.

Until the five services exist, the demo is the backbone's round trip: an `orders` event store
is filled with contract events, its relay publishes them to a real Kafka broker started for
the demo, and a `commission` inbox stores them in its own event store. Then it does what
production will do to it: delivers everything a second time, slips in a poison message, and
reconciles the two stores event by event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import Producer
from prometheus_client import REGISTRY as METRICS
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as Table_

from shopstream_contracts import DEADLETTER_TOPIC, REGISTRY
from shopstream_contracts.orders.v1 import OrderConfirmed
from shopstream_eventstore import AppendRequest, EventStore, RecordedEvent
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_infra import KafkaNode, create_topics
from shopstream_messaging.pipeline import run_inbox, run_relay
from shopstream_messaging.reconcile import compare, read_everything
from shopstream_observability import configure_logging
from shopstream_processing import ProjectionRunner, RebuildResult, Row, Statement, Table, TableNames
from shopstream_processing.sqlite import SqliteReadModel
from shopstream_testing.contract_events import order_events

ORDERS_TOPIC = REGISTRY.topic("shopstream.orders.OrderPlaced").name
CONFIRMED = OrderConfirmed.contract.type
PUBLISHED = "shopstream_relay_published_total"


def demo(
    events: Annotated[int, typer.Option(help="How many order events to move.")] = 20_000,
    orders: Annotated[int, typer.Option(help="How many orders (Kafka keys) they belong to.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Run the event backbone end to end on a real Kafka broker and print what happened."""
    configure_logging("demo", "WARNING")
    # With --json, stdout carries only the JSON object; the narration goes to stderr.
    console = Console(stderr=as_json)
    summary = asyncio.run(_demo(console, events, orders))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print(console, summary)
    if not (summary["delivery"]["exact"] and summary["projection"]["rebuilt_identical"]):
        raise typer.Exit(1)


async def _demo(console: Console, count: int, keys: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shopstream-demo-") as workdir:
        work = Path(workdir)
        node = KafkaNode(work / "kafka", ephemeral=True)
        with console.status("Starting Apache Kafka (KRaft, one node)…"):
            started = time.monotonic()
            node.start()
            create_topics(node.bootstrap_servers, [ORDERS_TOPIC, DEADLETTER_TOPIC], partitions=6)
        console.print(f"Kafka up at [bold]{node.bootstrap_servers}[/] in {time.monotonic() - started:.1f}s")
        try:
            return await _round_trip(console, node.bootstrap_servers, work, count, keys)
        finally:
            node.stop()


async def _round_trip(console: Console, bootstrap: str, work: Path, count: int, keys: int) -> dict[str, Any]:
    source = await SqliteEventStore.open(work / "orders.sqlite")
    target = await SqliteEventStore.open(work / "commission.sqlite")
    facts: dict[str, Any] = {}
    try:
        started = time.monotonic()
        requests = [AppendRequest(stream, [event]) for stream, event in order_events(count, keys)]
        for first in range(0, len(requests), 1000):
            await source.append_many(requests[first : first + 1000])
        facts["append_seconds"] = time.monotonic() - started
        console.print(
            f"Appended {count:,} contract events over {keys:,} orders to the [bold]orders[/] store "
            f"({count / facts['append_seconds']:,.0f} events/s, durable SQLite WAL)"
        )

        async with _running(run_inbox(target, bootstrap, "commission", REGISTRY, [ORDERS_TOPIC])):
            relay = asyncio.create_task(run_relay(source, bootstrap, "orders", REGISTRY))
            started = time.monotonic()
            await _progress(console, "relay ⇒ Kafka ⇒ inbox", count, lambda: _stored(target))
            facts["deliver_seconds"] = time.monotonic() - started

            await _cancel(relay)
            await source.save_checkpoint("relay", 0)
            relay = asyncio.create_task(run_relay(source, bootstrap, "orders", REGISTRY))
            await _progress(console, "the same events again", 2 * count, _handled_by_inbox)
            await _cancel(relay)

            _send_poison(bootstrap)
            await _progress(console, "a poison message", 1, _dead_lettered)

        report = compare(await read_everything(source), await read_everything(target), key_field="order_id")
        sales, rebuild = await _project(target, work / "commission.sqlite")
    finally:
        await source.close()
        await target.close()
    assert rebuild.previous is not None
    assert rebuild.rebuilt is not None
    return {
        "events_appended": count,
        "orders": keys,
        "append_events_per_second": round(count / facts["append_seconds"]),
        "deliver_seconds": round(facts["deliver_seconds"], 3),
        "published_to_kafka": _metric(PUBLISHED, service="orders", topic=ORDERS_TOPIC),
        "dead_lettered": await _dead_lettered(),
        "delivery": asdict(report) | {"exact": report.exact},
        "projection": {
            "brand_sales": [
                {"brand_id": brand, "currency": currency, "confirmed_orders": orders, "gmv_minor": gmv}
                for brand, currency, orders, gmv in sales
            ],
            "rebuilt_generation": rebuild.generation,
            "position": rebuild.position,
            "live_checksum": rebuild.previous.digest,
            "rebuilt_checksum": rebuild.rebuilt.digest,
            "rebuilt_identical": rebuild.previous == rebuild.rebuilt,
        },
    }


class BrandSales:
    """Confirmed orders and GMV per brand, folded from the inbox: what commission will build on."""

    name = "brand_sales"
    version = 1
    tables = (
        Table(
            "brand_sales",
            "brand_id text NOT NULL, currency text NOT NULL, orders bigint NOT NULL, gmv bigint NOT NULL, "
            "PRIMARY KEY (brand_id, currency)",
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        table = tables["brand_sales"]
        upsert = (
            f"INSERT INTO {table} (brand_id, currency, orders, gmv) VALUES ($1, $2, 1, $3) "
            f"ON CONFLICT (brand_id, currency) DO UPDATE SET orders = {table}.orders + 1, "
            f"gmv = {table}.gmv + excluded.gmv"
        )
        confirmed = [
            REGISTRY.decode(event.type, event.data_version, event.data)
            for event in events
            if event.type == CONFIRMED
        ]
        return [
            Statement(upsert, (order.line.brand_id, order.total.currency, order.total.amount))
            for order in confirmed
            if isinstance(order, OrderConfirmed)
        ]


async def _project(store: EventStore, path: Path) -> tuple[list[Row], RebuildResult]:
    """Build the projection live, then rebuild it from zero and compare the two by checksum."""
    db = await SqliteReadModel.open(path)
    runner = ProjectionRunner(store, db, BrandSales(), service="commission")
    try:
        async with _running(runner.run()):
            await runner.wait_until(await store.head_position(), timeout=60)
            rebuild = await runner.rebuild(verify=True)
        rows = await db.fetch("SELECT brand_id, currency, orders, gmv FROM brand_sales ORDER BY brand_id")
        return rows, rebuild
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def _running(job: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(job)
    try:
        yield
    finally:
        await _cancel(task)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _progress(
    console: Console, label: str, total: int, done: Callable[[], Awaitable[int]], timeout: float = 180
) -> None:
    columns = (TextColumn(f"{label:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(label, total=total)
        while (reached := await done()) < total:
            progress.update(bar, completed=reached)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{label}: {reached} of {total} after {timeout}s")
            await asyncio.sleep(0.2)
        progress.update(bar, completed=total)


async def _stored(store: EventStore) -> int:
    return await store.head_position()


def _metric(name: str, **labels: str) -> int:
    return int(METRICS.get_sample_value(name, labels) or 0)


async def _handled_by_inbox() -> int:
    return _metric("shopstream_inbox_received_total", service="commission", outcome="stored")


async def _dead_lettered() -> int:
    return _metric("shopstream_inbox_received_total", service="commission", outcome="dead_lettered")


def _send_poison(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(ORDERS_TOPIC, key=b"ord_poison", value=b"{not json", headers=[("ce_id", b"poison-1")])
    producer.flush(10)


def _print(console: Console, summary: dict[str, Any]) -> None:
    delivery, projection = summary["delivery"], summary["projection"]
    table = Table_(title="Backbone round trip", show_header=False)
    table.add_row("events appended to orders", f"{summary['events_appended']:,}")
    seconds = summary["deliver_seconds"]
    rate = summary["events_appended"] / seconds
    table.add_row("delivered to commission in", f"{seconds:.2f}s ({rate:,.0f}/s)")
    table.add_row("published to Kafka (everything twice)", f"{summary['published_to_kafka']:,}")
    table.add_row("stored by the inbox", f"{delivery['received']:,}")
    table.add_row("missing", str(delivery["missing"]))
    table.add_row("duplicated", str(delivery["duplicated"]))
    table.add_row("orders out of order", str(delivery["keys_out_of_order"]))
    table.add_row("dead-lettered (the poison message)", f"{summary['dead_lettered']:,}")
    table.add_row("exactly once, in order", "[green]yes[/]" if delivery["exact"] else "[red]NO[/]")
    console.print(table)

    sales = Table_(title="Projection brand_sales, built live in the commission store")
    for column in ("brand", "currency", "confirmed orders", "GMV"):
        sales.add_column(column)
    for row in projection["brand_sales"]:
        gmv = f"{row['gmv_minor'] / 100:,.2f}"
        sales.add_row(row["brand_id"], row["currency"], f"{row['confirmed_orders']:,}", gmv)
    console.print(sales)
    same = "[green]identical[/]" if projection["rebuilt_identical"] else "[red]DIFFERENT[/]"
    console.print(
        f"Rebuilt from position 0 into generation {projection['rebuilt_generation']}: checksum "
        f"{projection['rebuilt_checksum'][:16]}… at position {projection['position']:,}, "
        f"{same} to the live one"
    )
