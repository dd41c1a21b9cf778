"""`shopstream events`: export the event history to JSONL, CSV or Parquet, backfill it to Kafka
for a new subscriber, and generate a large synthetic history.

Every option is checked, and the output path is checked writable, before any store is read; an
error is one line on stderr and exit code 2, and leaves nothing behind. An interrupted export
keeps its checkpoint: the same command with ``--resume`` continues it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shopstream_analytics.backfill import backfill as run_backfill
from shopstream_analytics.export import ExportError, check_output, default_format, export_events
from shopstream_analytics.formats import FORMATS, Format
from shopstream_analytics.history import count_to_scan
from shopstream_analytics.selection import Selection, SelectionError
from shopstream_analytics.sources import DEFAULT_STORE_URL, SERVICES, SourceError, StoreRef, store_refs
from shopstream_analytics.synthetic import generate as run_generate
from shopstream_observability import configure_logging

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="Event history: export to files, backfill to Kafka.")
console = Console()
err_console = Console(stderr=True)

StoreUrl = Annotated[
    str,
    typer.Option(
        "--store-url",
        help="The services' stores; {service} is replaced (sqlite:///…, postgresql://…, kurrentdb://…).",
    ),
]
Services = Annotated[
    list[str] | None,
    typer.Option("--service", help=f"A service to read (repeatable; default all: {', '.join(SERVICES)})."),
]
Types = Annotated[
    list[str] | None, typer.Option("--type", help="An event type to take (repeatable; default all).")
]
StreamPrefix = Annotated[
    str | None, typer.Option("--stream-prefix", help="Only streams starting so (order-, live-, room-, …).")
]
Live = Annotated[str | None, typer.Option("--live", help="Only the events of this live (and of its orders).")]
Since = Annotated[
    str | None, typer.Option("--since", help="occurred_at ≥ this ISO-8601 instant (2025-05-01T20:00:00Z).")
]
Until = Annotated[str | None, typer.Option("--until", help="occurred_at < this ISO-8601 instant.")]
FromPosition = Annotated[
    int | None, typer.Option("--from-position", help="Each store's global position ≥ this.")
]
ToPosition = Annotated[int | None, typer.Option("--to-position", help="Each store's global position ≤ this.")]
IncludeInbox = Annotated[
    bool, typer.Option("--include-inbox", help="Also the inbox copies of other services' events.")
]


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _selection(**options: Any) -> Selection:
    try:
        return Selection.of(**options)
    except SelectionError as error:
        _fail(str(error))


def _refs(store_url: str, services: list[str] | None) -> list[StoreRef]:
    try:
        return store_refs(store_url, services or SERVICES)
    except SourceError as error:
        _fail(str(error))


def _run(work: Callable[[Callable[[int], None]], Coroutine[Any, Any, T]], total: int | None, what: str) -> T:
    """Run ``work`` under a progress bar; known errors become one line and exit code 2."""
    with _bar(what, total) as advance:
        try:
            return asyncio.run(work(advance))
        except (SelectionError, SourceError, ExportError) as error:
            _fail(str(error))


@contextmanager
def _bar(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(what, total=total)
        yield lambda count: progress.advance(task, count)


def _scan_size(refs: list[StoreRef], selection: Selection) -> int:
    try:
        return asyncio.run(count_to_scan(refs, selection))
    except (SelectionError, SourceError) as error:
        _fail(str(error))


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="The output file (a directory with --flatten).")],
    store_url: StoreUrl = DEFAULT_STORE_URL,
    service: Services = None,
    event_type: Types = None,
    stream_prefix: StreamPrefix = None,
    live: Live = None,
    since: Since = None,
    until: Until = None,
    from_position: FromPosition = None,
    to_position: ToPosition = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"{' | '.join(FORMATS)} (default: from the output's suffix)."),
    ] = None,
    flatten: Annotated[
        bool,
        typer.Option("--flatten", help="CSV/Parquet: a file per event type, payload fields as columns."),
    ] = False,
    include_internal: Annotated[
        bool, typer.Option("--include-internal", help="Also internal (non-contract) events, marked internal.")
    ] = False,
    include_inbox: IncludeInbox = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted export of the same options.")
    ] = False,
) -> None:
    """Export CloudEvents of the selected history to JSONL, CSV or Parquet."""
    configure_logging("events", "WARNING")
    selection = _selection(
        types=event_type or (),
        stream_prefix=stream_prefix,
        live_id=live,
        since=since,
        until=until,
        from_position=from_position,
        to_position=to_position,
        include_inbox=include_inbox,
        include_internal=include_internal,
    )
    refs = _refs(store_url, service)
    try:
        chosen: Format = default_format(out) if fmt is None else _format(fmt)
        check_output(out, chosen, flatten)
    except ExportError as error:
        _fail(str(error))
    total = _scan_size(refs, selection)
    try:
        summary = _run(
            lambda advance: export_events(
                refs, selection, out, chosen, resume=resume, progress=advance, flatten=flatten
            ),
            total,
            f"exporting to {out.name}",
        )
    except KeyboardInterrupt:
        err_console.print(f"interrupted: run the same command with --resume to continue {out}")
        raise typer.Exit(130) from None
    resumed = ", resumed" if summary.resumed else ""
    console.print(
        f"exported {summary.exported:,} events to {summary.out} ({summary.format}{resumed}); "
        f"read {summary.scanned:,} store positions",
        highlight=False,
        soft_wrap=True,
    )


def _format(text: str) -> Format:
    for fmt in FORMATS:
        if text.lower() == fmt:
            return fmt
    raise ExportError(f"unknown format {text!r}: choose from {', '.join(FORMATS)}")


@app.command()
def backfill(
    store_url: StoreUrl = DEFAULT_STORE_URL,
    service: Services = None,
    event_type: Types = None,
    stream_prefix: StreamPrefix = None,
    live: Live = None,
    since: Since = None,
    until: Until = None,
    from_position: FromPosition = None,
    to_position: ToPosition = None,
    include_inbox: IncludeInbox = False,
    bootstrap: Annotated[
        str | None,
        typer.Option("--bootstrap", help="Kafka bootstrap servers (default $SHOPSTREAM_KAFKA_BOOTSTRAP)."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="One topic for every event (default: each contract topic).")
    ] = None,
) -> None:
    """Publish the selected history again (same CloudEvents, ids and keys) for a new subscriber."""
    configure_logging("events", "WARNING")
    servers = bootstrap or os.environ.get("SHOPSTREAM_KAFKA_BOOTSTRAP")
    if not servers:
        _fail("no Kafka to publish to: pass --bootstrap host:port (or set SHOPSTREAM_KAFKA_BOOTSTRAP)")
    selection = _selection(
        types=event_type or (),
        stream_prefix=stream_prefix,
        live_id=live,
        since=since,
        until=until,
        from_position=from_position,
        to_position=to_position,
        include_inbox=include_inbox,
    )
    refs = _refs(store_url, service)
    total = _scan_size(refs, selection)
    summary = _run(
        lambda advance: run_backfill(refs, selection, servers, topic=topic, progress=advance),
        total,
        "backfilling",
    )
    per_topic = ", ".join(f"{name}: {count:,}" for name, count in sorted(summary.topics.items()))
    console.print(f"published {summary.published:,} events ({per_topic or 'none'})", highlight=False)


@app.command()
def generate(
    events: Annotated[int, typer.Option("--events", min=1, help="Own events to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same history.")] = 0,
    store_url: StoreUrl = DEFAULT_STORE_URL,
) -> None:
    """Write a synthetic history (lives, chat, orders, commission) into the five services' stores."""
    configure_logging("events", "WARNING")
    refs = _refs(store_url, None)
    summary = _run(
        lambda advance: run_generate(refs, events, seed=seed, progress=advance), events, "generating"
    )
    console.print(
        f"wrote {summary.events:,} events over {len(summary.live_ids)} lives "
        f"(+{summary.inbox_copies:,} inbox copies): "
        + ", ".join(f"{name} {count:,}" for name, count in summary.per_service.items()),
        highlight=False,
    )
