"""`shopstream demo`: a live sale through the five services, and the backbone on its own.

- ``shopstream demo`` (what `make demo` runs) starts the whole platform on this machine — Kafka and
  the five services as separate processes, SQLite stores by default or PostgreSQL — drives a
  scripted live sale through their public HTTP APIs only (:mod:`shopstream_cli.sale`), prints the
  report read back from their projections, and stops everything. It fails (exit code 1) when any
  reconciliation check is not zero.
- ``shopstream demo-backbone`` is the event backbone's round trip on real infrastructure: an
  `orders` event store is filled with contract events, its relay publishes them to a real Kafka
  broker started for the demo, and a `commission` inbox stores them in its own event store. Then
  it does what production will do to it: delivers everything a second time, slips in a poison
  message, and reconciles the two stores event by event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
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

from .platform import Platform, PlatformError, Store
from .sale import SaleError, SaleReport, run_live_sale

ORDERS_TOPIC = REGISTRY.topic("shopstream.orders.OrderPlaced").name
CONFIRMED = OrderConfirmed.contract.type
PUBLISHED = "shopstream_relay_published_total"


def demo(
    store: Annotated[str, typer.Option(help="sqlite (embedded, a file per service) or postgres.")] = "sqlite",
    buyers: Annotated[int, typer.Option(help="Buyers rushing the flash deal.")] = 300,
    deal_units: Annotated[int, typer.Option(help="Units of the flash deal.")] = 30,
    per_buyer_cap: Annotated[int, typer.Option(help="Deal units one buyer may hold.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
    keep_data: Annotated[
        Path | None,
        typer.Option(help="Keep the services' SQLite stores (and logs) in this new directory, for replay."),
    ] = None,
) -> None:
    """Start the platform, drive a live sale through its HTTP APIs, print the reconciled report."""
    if store not in ("sqlite", "postgres"):
        raise typer.BadParameter("use sqlite or postgres", param_hint="--store")
    if keep_data is not None:
        if store != "sqlite":
            raise typer.BadParameter("only SQLite stores are files to keep", param_hint="--keep-data")
        if keep_data.exists() and any(keep_data.iterdir()):
            raise typer.BadParameter(f"{keep_data} is not empty", param_hint="--keep-data")
    chosen: Store = "postgres" if store == "postgres" else "sqlite"
    configure_logging("demo", "WARNING")
    # With --json, stdout carries only the JSON object; the narration goes to stderr.
    console = Console(stderr=as_json)
    try:
        summary, report = _live_sale(console, chosen, buyers, deal_units, per_buyer_cap, keep_data)
    except (PlatformError, SaleError, ValueError) as exc:
        console.print(f"[red]The demo could not finish:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print_sale_report(console, report, summary["store"], summary["platform_start_seconds"])
    if keep_data is not None:
        console.print(
            f"\nThe stores are kept in {keep_data}/data; replay the live with\n"
            f"  shopstream report live {report.ids.live_id} "
            f"--store-url 'sqlite:///{keep_data.resolve()}/data/{{service}}.sqlite'"
        )
    if not report.reconciled:
        raise typer.Exit(1)


def _live_sale(
    console: Console, store: Store, buyers: int, deal_units: int, cap: int, keep_data: Path | None
) -> tuple[dict[str, Any], SaleReport]:
    with _workdir(keep_data) as workdir:
        # Version 1 of chat's banned-word list comes from configuration.
        env = {"SHOPSTREAM_CHAT_BANNED_WORDS": "counterfeit,scam,replica"}
        platform = Platform(Path(workdir), store=store, clock_control=True, env=env)
        try:
            with console.status(
                f"Starting Kafka{', PostgreSQL' if store == 'postgres' else ''} and the five services…"
            ):
                started = time.monotonic()
                platform.start()
                start_seconds = round(time.monotonic() - started, 1)
            console.print(
                f"Platform up in {start_seconds:.1f}s ({store} stores): "
                + ", ".join(f"{name} {service.url}" for name, service in platform.services.items())
            )
            urls = {name: service.url for name, service in platform.services.items()}
            narrate = _narrator(console)
            report = asyncio.run(
                run_live_sale(urls, buyers=buyers, deal_units=deal_units, per_buyer_cap=cap, narrate=narrate)
            )
        finally:
            with console.status("Stopping the platform…"):
                platform.stop()
    return {"store": store, "platform_start_seconds": start_seconds, **report.to_json()}, report


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[str]:
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="shopstream-demo-") as workdir:
            yield workdir
    else:
        keep.mkdir(parents=True, exist_ok=True)
        yield str(keep)


def _narrator(console: Console) -> Callable[[str], None]:
    started = time.monotonic()

    def narrate(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.2f}s[/] {line}")

    return narrate


def _amount(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def print_sale_report(console: Console, report: SaleReport, store: str, start_seconds: float) -> None:
    """The live sale's report as tables."""
    ids, params, orders, deal = report.ids, report.parameters, report.orders, report.deal
    console.print(
        f"\n[bold]Live {ids.live_id}[/] — brand {ids.brand_id}, hosts {', '.join(ids.host_ids)}; "
        f"{params.buyers} buyers for {params.deal_units} deal units at {_amount(params.deal_price)} BRL "
        f"(list {_amount(params.list_price_deal_sku)}), at most {params.per_buyer_cap} per buyer"
    )
    table = Table_(title="Orders", show_header=False)
    table.add_row("order requests (double clicks included)", f"{orders.requests:,}")
    table.add_row("idempotency keys → orders", f"{orders.idempotency_keys:,} → {orders.orders:,}")
    table.add_row("double clicks → orders", f"{orders.double_clicks:,} → {orders.double_click_orders:,}")
    table.add_row("confirmed", f"{orders.confirmed:,}")
    table.add_row("rejected", f"{orders.rejected:,}")
    for reason, count in orders.rejected_by_reason.items():
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("cancelled after confirmation", str(orders.cancelled))
    table.add_row("partially refunded", str(orders.partially_refunded))
    table.add_row("paid in interest-free installments", str(orders.paid_in_installments))
    table.add_row("GMV (confirmed orders)", f"{_amount(orders.gmv)} BRL")
    table.add_row("refunded", f"{_amount(orders.refunded)} BRL")
    table.add_row("net", f"{_amount(orders.net)} BRL")
    console.print(table)

    units = Table_(title="Units")
    for column in ("SKU", "received", "sold", "returned", "on hand", "reserved", "available"):
        units.add_column(column, justify="left" if column == "SKU" else "right")
    for sku in report.units:
        units.add_row(
            sku.label,
            *(str(n) for n in (sku.stock_received, sku.units_sold, sku.units_returned, sku.on_hand)),
            str(sku.reserved),
            str(sku.available),
        )
    console.print(units)
    console.print(
        f"Flash deal: {deal.units_sold} of {deal.units} units sold in {deal.orders_confirmed} orders to "
        f"{deal.buyers} buyers (at most {deal.most_units_one_buyer} each, cap {deal.per_buyer_cap}); "
        f"{deal.units_left} left, ended: {deal.end_reason}"
    )

    commission = report.commission
    hosts = Table_(
        title=f"Commission: agreement {commission.agreement_id}, {commission.rate_bps / 100:g}% "
        f"of sales, {commission.holdback_days}-day holdback (BRL)"
    )
    for column in (
        "host",
        "share",
        "accruals",
        "accrued",
        "reversed",
        "released",
        "held",
        "statement closing",
    ):
        hosts.add_column(column, justify="left" if column == "host" else "right")
    for host in commission.hosts:
        hosts.add_row(
            host.influencer_id,
            f"{host.share_bps / 100:g}%",
            str(host.accruals),
            _amount(host.accrued),
            _amount(host.reversed),
            _amount(host.released),
            _amount(host.held),
            _amount(host.statement_closing),
        )
    console.print(hosts)

    live = report.live
    on_air = Table_(title=f"The live ({live.status})", show_header=False)
    on_air.add_row("on air (by its clock)", f"{live.on_air_seconds:,.1f}s")
    on_air.add_row(
        "showcase products / payment terms offered", f"{live.showcase_products} / {live.payment_terms}"
    )
    on_air.add_row(
        "audience windows, peak viewers, joins, likes",
        f"{live.audience_windows}, {live.peak_concurrent_viewers}, {live.joins}, {live.likes}",
    )
    on_air.add_row("timeline", ", ".join(f"{kind} {n}" for kind, n in live.timeline.items()))
    console.print(on_air)

    chat = report.chat
    room = Table_(title=f"Chat room ({chat.room_status})", show_header=False)
    room.add_row("messages posted", str(chat.messages))
    room.add_row("visible to a late joiner (last N)", str(chat.visible_messages))
    room.add_row(f"blocked: banned word (list v{chat.banned_words_version})", str(chat.blocked_banned_word))
    room.add_row("blocked: slow mode", str(chat.blocked_slow_mode))
    room.add_row("blocked: muted", str(chat.blocked_muted))
    room.add_row("removed by a moderator", str(chat.removed))
    room.add_row("questions / answered", f"{chat.questions} / {chat.answered}")
    room.add_row("mutes", str(chat.mutes))
    room.add_row(
        "live feed (SSE) seen by a viewer",
        ", ".join(f"{kind} {n}" for kind, n in chat.feed_events_seen_live.items()),
    )
    console.print(room)

    checks = Table_(title="Reconciliation (all must be 0)")
    checks.add_column("check")
    checks.add_column("value", justify="right")
    for name, value in report.checks.model_dump().items():
        checks.add_row(name.replace("_", " "), f"[green]{value}[/]" if value == 0 else f"[red]{value}[/]")
    console.print(checks)
    timings = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in report.timings_seconds.items())
    console.print(f"Platform ({store}) started in {start_seconds:.1f}s; sale: {timings}")
    verdict = (
        "[green]reconciled[/]" if report.reconciled else f"[red]NOT reconciled: {report.checks.failing()}[/]"
    )
    console.print(f"The sale {verdict}.")


def demo_backbone(
    events: Annotated[int, typer.Option(help="How many order events to move.")] = 20_000,
    orders: Annotated[int, typer.Option(help="How many orders (Kafka keys) they belong to.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Run the event backbone end to end on a real Kafka broker and print what happened."""
    configure_logging("demo", "WARNING")
    # With --json, stdout carries only the JSON object; the narration goes to stderr.
    console = Console(stderr=as_json)
    summary = asyncio.run(_backbone(console, events, orders))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print_backbone(console, summary)
    if not (summary["delivery"]["exact"] and summary["projection"]["rebuilt_identical"]):
        raise typer.Exit(1)


async def _backbone(console: Console, count: int, keys: int) -> dict[str, Any]:
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


def _print_backbone(console: Console, summary: dict[str, Any]) -> None:
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
