"""Reports over the event history: the live black-box recorder."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shopstream_analytics.chart import draw_timeline
from shopstream_analytics.report import LiveReport, ReportError, Row, live_report, write_csv
from shopstream_analytics.sources import DEFAULT_STORE_URL, SourceError, store_refs

app = typer.Typer(no_args_is_help=True, help="Reports over the event history: the live black-box recorder.")

StoreUrl = Annotated[
    str,
    typer.Option(
        "--store-url",
        help="The services' stores; {service} is replaced by each service's name.",
    ),
]

_SHOWN = (
    ("min", "minute"),
    ("UTC", "label"),
    ("viewers", "viewers"),
    ("peak", "peak_viewers"),
    ("chat", "messages"),
    ("questions", "questions"),
    ("pins", "pins"),
    ("deals", "deals_started"),
    ("placed", "placed"),
    ("confirmed", "confirmed"),
    ("rejected", "rejected"),
    ("cancelled", "cancelled"),
    ("units", "units"),
    ("buyers", "buyers"),
    ("GMV", "gmv"),
    ("net", "net"),
    ("commission", "commission_accrued"),
    ("reversed", "commission_reversed"),
)


def fail(message: str) -> typer.Exit:
    """One clear line on stderr and exit code 2 (what bad input gets)."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def writable(path: Path | None, option: str) -> Path | None:
    """``path`` if a file can be written there (its folder exists and is writable), checked before
    any work so that a bad path fails first and writes nothing."""
    if path is None:
        return None
    folder = path.parent
    if path.is_dir():
        raise fail(f"{option} {path}: is a folder, not a file")
    if not folder.is_dir():
        raise fail(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise fail(f"{option} {path}: not writable")
    return path


@app.command("live")
def live(
    live_id: Annotated[str, typer.Argument(help="The live (liv_…).")],
    store_url: StoreUrl = DEFAULT_STORE_URL,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also save the timeline as CSV here.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Also draw the timeline as a PNG here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """A live's per-minute timeline from its events: viewers, chat, pins, deals, orders, GMV, units,
    buyers, conversion and commission."""
    csv_path, png_path = writable(csv, "--csv"), writable(png, "--png")
    try:
        report = asyncio.run(live_report(store_refs(store_url), live_id))
    except (ReportError, SourceError) as error:
        raise fail(str(error)) from None
    try:
        if png_path is not None:
            draw_timeline(report, png_path)
        if csv_path is not None:
            write_csv(report, csv_path)
    except OSError as error:
        raise fail(f"cannot write {error.filename}: {error.strerror}") from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # piped or captured: a table that does not wrap
    console.print(timeline_table(report))
    console.print(summary(report), highlight=False)
    for path in (p for p in (csv_path, png_path) if p is not None):
        console.print(f"saved {path}", highlight=False)


def timeline_table(report: LiveReport) -> Table:
    currency = f" ({report.currency})" if report.currency else ""
    table = Table(
        title=f"{report.title} · {report.live_id} · started {report.started_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    for header, _ in _SHOWN:
        money = header in ("GMV", "net", "commission", "reversed")
        table.add_column(
            header + (currency if money else ""), justify="left" if header == "minute" else "right"
        )
    for row in report.rows():
        table.add_row(*(_cell(row, name) for _, name in _SHOWN), end_section=row.minute is None)
    return table


def _cell(row: Row, name: str) -> str:
    value = getattr(row, name)
    return "" if value is None else str(value)


def summary(report: LiveReport) -> str:
    totals = report.totals
    conversion = "n/a (no viewers sampled)" if report.conversion is None else f"{report.conversion:.2%}"
    hosts = ", ".join(
        f"{h.influencer_id} accrued {h.accrued} reversed {h.reversed} released {h.released}"
        for h in report.commission_by_host
    )
    reasons = ", ".join(f"{reason} {count}" for reason, count in report.rejected_by_reason.items())
    lines = [
        f"orders: {totals.placed} placed, {totals.confirmed} confirmed, {totals.rejected} rejected"
        + (f" ({reasons})" if reasons else "")
        + f", {totals.cancelled} cancelled, {totals.refunds} refunds",
        f"GMV {totals.gmv} · net {totals.net} {report.currency or ''} (minor units) · {totals.units} units"
        f" · {totals.buyers} buyers / {report.peak_viewers} peak viewers = conversion {conversion}",
        f"commission: accrued {totals.commission_accrued} · reversed {totals.commission_reversed}"
        f" · released {totals.commission_released}" + (f" ({hosts})" if hosts else ""),
    ]
    return "\n".join(lines)
