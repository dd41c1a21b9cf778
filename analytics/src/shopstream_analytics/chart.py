"""The live report drawn as a PNG: viewers above, GMV and orders per minute below, pins and flash
deals shaded on the shared time axis (minutes since the live started).

Drawn with matplotlib's Agg canvas on a figure of its own (no pyplot, no global state), written to
a temporary file next to the target and renamed, so a failed drawing never leaves half a PNG.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .report import LiveReport, Window, atomically

_SHADES = {"pin": "tab:purple", "deal": "tab:orange"}


def draw_timeline(report: LiveReport, path: Path) -> Path:
    """Draw ``report`` into the PNG file ``path`` (replaced if it exists); returns ``path``."""
    figure = Figure(figsize=(11, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    viewers_axes, sales_axes = figure.subplots(2, 1, sharex=True, height_ratios=(1, 1.4))
    rows = report.minutes
    end = len(rows)
    # Steps from each minute's start, the last one held to the end of the axis.
    edges = [*range(end), end]

    def steps(values: list[int]) -> list[int]:
        return [*values, values[-1]]

    viewers_axes.step(
        edges, steps([row.peak_viewers or 0 for row in rows]), where="post", label="peak viewers"
    )
    viewers_axes.step(
        edges, steps([row.viewers or 0 for row in rows]), where="post", linestyle="--", label="viewers"
    )
    viewers_axes.set_ylabel("viewers")
    viewers_axes.set_title(_title(report))

    currency = report.currency or "no sales"
    sales_axes.bar(
        range(end), [row.gmv for row in rows], width=0.9, align="edge", color="tab:green", label="GMV"
    )
    sales_axes.set_ylabel(f"GMV ({currency}, minor units)")
    sales_axes.set_xlabel(f"minutes since the live started ({report.started_at:%Y-%m-%d %H:%M:%S} UTC)")
    orders_axes = sales_axes.twinx()
    orders_axes.step(
        edges, steps([row.confirmed for row in rows]), where="post", color="tab:blue", label="confirmed"
    )
    orders_axes.step(
        edges,
        steps([row.rejected for row in rows]),
        where="post",
        linestyle=":",
        color="tab:red",
        label="rejected",
    )
    orders_axes.set_ylabel("orders per minute")

    windows = [*report.pins, *report.deals]
    _shade(viewers_axes, windows, end, labelled=True)
    _shade(sales_axes, windows, end, labelled=False)
    for axes in (viewers_axes, sales_axes):
        axes.set_xlim(0, end)
    _legend(viewers_axes)
    _legend(sales_axes, orders_axes)
    _save(figure, path)
    return path


def _title(report: LiveReport) -> str:
    conversion = "n/a" if report.conversion is None else f"{report.conversion:.2%}"
    return (
        f"{report.title or report.live_id} — {report.totals.confirmed} orders, "
        f"GMV {report.totals.gmv} {report.currency or ''}, conversion {conversion}"
    )


def _shade(axes: Axes, windows: list[Window], end: int, *, labelled: bool) -> None:
    """Each pin or deal as a shaded span from its start to its end (to the axis end if open),
    at least a sliver wide so that a deal sold out in a second still shows."""
    for window in windows:
        start = window.start_s / 60
        stop = end if window.end_s is None else max(window.end_s / 60, start + end / 200)
        label = f"{window.kind}: {window.label}" if labelled else None
        axes.axvspan(start, stop, color=_SHADES[window.kind], alpha=0.3, label=label)


def _legend(*axes: Axes) -> None:
    handles, labels = [], []
    for each in axes:
        more_handles, more_labels = each.get_legend_handles_labels()
        handles += more_handles
        labels += more_labels
    unique = dict(zip(labels, handles, strict=True))
    axes[0].legend(list(unique.values()), list(unique), loc="upper left", fontsize="small")


def _save(figure: Figure, path: Path) -> None:
    with atomically(path) as stream:
        figure.savefig(stream, format="png")
