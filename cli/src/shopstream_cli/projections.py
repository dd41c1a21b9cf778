"""`shopstream projections`: list the services' projections, rebuild them from zero (with
``--verify``: compared with the live ones), and build one as of an instant or a position into a
separate SQLite file to query it.

Every name, time and path is checked before anything is written; an error is one line and exit
code 2. ``rebuild --verify`` exits with 1 when a rebuilt projection differs from the live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine, Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopstream_analytics.catalog import UnknownProjection, projections_of, select
from shopstream_analytics.rebuild import RebuildError, Rebuilt
from shopstream_analytics.rebuild import rebuild as rebuild_service
from shopstream_analytics.sources import DEFAULT_STORE_URL, SERVICES, SourceError, StoreRef, store_refs
from shopstream_analytics.timetravel import TimeTravelError, build_as_of, query
from shopstream_observability import configure_logging
from shopstream_processing import Projection

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="Projections: rebuild from zero, verify, build as of a moment.")

StoreUrl = Annotated[
    str,
    typer.Option(
        "--store-url",
        help="The services' stores; {service} is replaced (sqlite:///…, postgresql://…, kurrentdb://…).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the outcome as one JSON object.")]


@app.command("list")
def list_projections(
    service: Annotated[str | None, typer.Argument(help="One service (all by default).")] = None,
) -> None:
    """The projections each service runs: name, version and tables."""
    services = SERVICES if service is None else (_service(service),)
    table = Table("service", "projection", "version", "tables")
    for name in services:
        for projection in projections_of(name):
            tables = ", ".join(t.name for t in projection.tables)
            table.add_row(name, projection.name, str(projection.version), tables)
    Console().print(table)


@app.command()
def rebuild(
    service: Annotated[str, typer.Argument(help="The service whose read model is rebuilt.")],
    projection: Annotated[list[str] | None, typer.Argument(help="Projections (all by default).")] = None,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Compare the live and the rebuilt projections; exit 1 if they differ."),
    ] = False,
    store_url: StoreUrl = DEFAULT_STORE_URL,
    readmodel_url: Annotated[
        str | None, typer.Option(help="The read model, when not the store's own (needed for KurrentDB).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Rebuild projections from position 0 into fresh tables and swap them in atomically — the
    service may be running."""
    ref = _ref(store_url, service)
    names = [chosen.name for chosen in _projections(service, projection)]
    configure_logging("projections", "ERROR")
    console = Console(stderr=as_json)
    with _bars(console) as progress:
        outcome = _run(rebuild_service(ref, readmodel_url, names, verify=verify, progress=progress))
    if as_json:
        print(json.dumps([asdict(result) for result in outcome], indent=2, default=str))
    else:
        _print_rebuilds(console, outcome, verify)
    if any(result.differs for result in outcome):
        raise typer.Exit(1)


@app.command("as-of")
def as_of(
    service: Annotated[str, typer.Argument(help="The service whose store is replayed.")],
    projection: Annotated[str, typer.Argument(help="The projection to build.")],
    target: Annotated[
        Path, typer.Option(help="A new SQLite file (or an earlier time-travel file, replaced); never live.")
    ],
    at: Annotated[
        str | None,
        typer.Option(help="ISO 8601 instant, e.g. 2026-11-25T21:03:10+00:00 (no zone: local time)."),
    ] = None,
    position: Annotated[int | None, typer.Option(help="A global position of the service's store.")] = None,
    sql: Annotated[
        str | None, typer.Option("--query", help="SQL (SQLite) over the built tables, read-only.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown per table without --query.")] = 20,
    store_url: StoreUrl = DEFAULT_STORE_URL,
    as_json: AsJson = False,
) -> None:
    """Build a projection as it was at an instant (--at) or a position (--position) into a
    separate SQLite file, then print its rows or the result of --query."""
    ref = _ref(store_url, service)
    (chosen,) = _projections(service, [projection])
    if (at is None) == (position is None):
        raise typer.BadParameter("say either --at or --position")
    moment = None if at is None else _instant(at)
    configure_logging("projections", "ERROR")
    console = Console(stderr=as_json)
    with _bars(console) as progress:
        built = _run(build_as_of(ref, chosen, target, at=moment, position=position, progress=progress))
    statements = (
        [(sql, sql)]
        if sql
        else [(name, f"SELECT * FROM {name} LIMIT {max(0, limit)}") for name in built.rows]
    )
    results = {title: _run_query(built.path, statement) for title, statement in statements}
    if as_json:
        summary = {
            **asdict(built),
            "results": {t: [dict(zip(c, r, strict=True)) for r in rows] for t, (c, rows) in results.items()},
        }
        print(json.dumps(summary, indent=2, default=str))
        return
    when = (
        f"{built.as_of.isoformat()} → position {built.position:,}"
        if built.as_of
        else f"position {built.position:,}"
    )
    console.print(
        f"Built [bold]{service}/{built.projection}[/] v{built.version} as of {when} "
        f"({built.events:,} events) into {built.path}: "
        + ", ".join(f"{name} {count:,} rows" for name, count in built.rows.items())
    )
    for title, (columns, rows) in results.items():
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*("NULL" if value is None else str(value) for value in row))
        console.print(table)


# --- input ------------------------------------------------------------------------------------


def _service(service: str) -> str:
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}: choose from {', '.join(SERVICES)}")
    return service


def _ref(store_url: str, service: str) -> StoreRef:
    _service(service)
    try:
        (ref,) = store_refs(store_url, [service])
    except SourceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--store-url") from None
    return ref


def _projections(service: str, names: list[str] | None) -> list[Projection]:
    try:
        return select(service, names)
    except UnknownProjection as exc:
        raise typer.BadParameter(str(exc), param_hint="projection") from None


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint="--at") from None
    # An instant without a zone is the analyst's local time.
    return moment if moment.tzinfo is not None else moment.astimezone()


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run the work; a failure it explains (a bad store, target or projection) is one line, exit 2."""
    try:
        return asyncio.run(work)
    except (SourceError, TimeTravelError, RebuildError, UnknownProjection) as exc:
        Console(stderr=True).print(f"[red]Error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _run_query(path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    try:
        return query(path, sql)
    except TimeTravelError as exc:
        Console(stderr=True).print(f"[red]Error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


# --- output -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _bars(console: Console) -> Iterator[Any]:
    """A progress bar per long read, named by what it reads."""
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        tasks: dict[str, TaskID] = {}

        def update(what: str, reached: int, end: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=max(end, 1))
            bars.update(tasks[what], completed=reached if end else 1, total=max(end, 1))

        yield update


def _print_rebuilds(console: Console, outcome: list[Rebuilt], verify: bool) -> None:
    table = Table(
        "projection", "generation", "position", "checksum before", "checksum after", title="Rebuilt"
    )
    if verify:
        table.add_column("live vs rebuilt")
    for result in outcome:
        row = [
            f"{result.service}/{result.projection} v{result.version}",
            str(result.generation),
            f"{result.position:,}",
            f"{result.before.digest[:12]} @{result.before.position:,}",
            f"{result.after.digest[:12]} @{result.after.position:,}",
        ]
        if verify:
            row.append("[red]DIFFERENT[/]" if result.differs else "[green]identical[/]")
        table.add_row(*row)
    console.print(table)
    for result in outcome:
        comparison = result.comparison
        if comparison is None or not result.differs:
            continue
        console.print(
            f"[bold]{result.service}/{result.projection}[/] at position {comparison.position:,}: live "
            f"{comparison.live[:12]} (v{comparison.live_version}), rebuilt {comparison.rebuilt[:12]} "
            f"(v{result.version})"
        )
        details = Table("table", "live rows", "rebuilt rows", "only live", "only rebuilt", "samples")
        for difference in comparison.differences:
            samples = [f"live {row}" for row in difference.live_samples]
            samples += [f"rebuilt {row}" for row in difference.rebuilt_samples]
            details.add_row(
                difference.table,
                "(no table)" if difference.live_rows is None else str(difference.live_rows),
                "(no table)" if difference.rebuilt_rows is None else str(difference.rebuilt_rows),
                str(difference.only_live),
                str(difference.only_rebuilt),
                "\n".join(samples),
            )
        console.print(details)
