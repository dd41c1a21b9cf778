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
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import Producer
from prometheus_client import REGISTRY as METRICS
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopstream_contracts import DEADLETTER_TOPIC, REGISTRY
from shopstream_eventstore import AppendRequest, EventStore
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_infra import KafkaNode, create_topics
from shopstream_messaging.pipeline import run_inbox, run_relay
from shopstream_messaging.reconcile import compare, read_everything
from shopstream_observability import configure_logging
from shopstream_testing.contract_events import order_events

ORDERS_TOPIC = REGISTRY.topic("shopstream.orders.OrderPlaced").name

console = Console()


def demo(
    events: Annotated[int, typer.Option(help="How many order events to move.")] = 20_000,
    orders: Annotated[int, typer.Option(help="How many orders (Kafka keys) they belong to.")] = 500,
) -> None:
    """Run the event backbone end to end on a real Kafka broker and print what happened."""
    configure_logging("demo", "WARNING")
    asyncio.run(_demo(events, orders))


async def _demo(count: int, keys: int) -> None:
    with tempfile.TemporaryDirectory(prefix="shopstream-demo-") as workdir:
        work = Path(workdir)
        node = KafkaNode(work / "kafka", ephemeral=True)
        with console.status("Starting Apache Kafka (KRaft, one node)…"):
            started = time.monotonic()
            node.start()
            create_topics(node.bootstrap_servers, [ORDERS_TOPIC, DEADLETTER_TOPIC], partitions=6)
        console.print(f"Kafka up at [bold]{node.bootstrap_servers}[/] in {time.monotonic() - started:.1f}s")
        try:
            await _round_trip(node.bootstrap_servers, work, count, keys)
        finally:
            node.stop()


async def _round_trip(bootstrap: str, work: Path, count: int, keys: int) -> None:
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
            await _progress("relay ⇒ Kafka ⇒ inbox", count, lambda: _stored(target))
            facts["deliver_seconds"] = time.monotonic() - started

            await _cancel(relay)
            await source.save_checkpoint("relay", 0)
            relay = asyncio.create_task(run_relay(source, bootstrap, "orders", REGISTRY))
            await _progress("the same events again", 2 * count, _handled_by_inbox)
            await _cancel(relay)

            _send_poison(bootstrap)
            await _progress("a poison message", 1, _dead_lettered)
            facts["dead_lettered"] = await _dead_lettered()

        report = compare(await read_everything(source), await read_everything(target), key_field="order_id")
    finally:
        await source.close()
        await target.close()
    _print(count, facts, asdict(report) | {"exact": report.exact})
    if not report.exact:
        raise typer.Exit(1)


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


async def _progress(label: str, total: int, done: Callable[[], Awaitable[int]], timeout: float = 180) -> None:
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


def _print(count: int, facts: dict[str, Any], report: dict[str, Any]) -> None:
    table = Table(title="Backbone round trip", show_header=False)
    table.add_row("events appended to orders", f"{count:,}")
    seconds = facts["deliver_seconds"]
    table.add_row("delivered to commission in", f"{seconds:.2f}s ({count / seconds:,.0f}/s)")
    published = _metric("shopstream_relay_published_total", service="orders", topic=ORDERS_TOPIC)
    table.add_row("published to Kafka (everything twice)", f"{published:,}")
    table.add_row("stored by the inbox", f"{report['received']:,}")
    table.add_row("missing", str(report["missing"]))
    table.add_row("duplicated", str(report["duplicated"]))
    table.add_row("orders out of order", str(report["keys_out_of_order"]))
    table.add_row("dead-lettered (the poison message)", f"{facts['dead_lettered']:,}")
    table.add_row("exactly once, in order", "[green]yes[/]" if report["exact"] else "[red]NO[/]")
    console.print(table)
