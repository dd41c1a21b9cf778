"""``shopstream-bench``: run the benchmarks and write the results file."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from .context import BenchContext, Profile
from .registry import discover
from .results import write_results
from .runner import run_all, select

app = typer.Typer(no_args_is_help=True, help="Shopstream benchmarks against raw baselines.")


@app.command("list")
def list_benchmarks() -> None:
    """The benchmarks, in the order they run."""
    for benchmark in discover():
        typer.echo(f"{benchmark.name:14} {benchmark.title}")


@app.command()
def run(
    profile: Annotated[str, typer.Option(help="smoke (seconds), quick (< 10 min) or full.")] = "quick",
    only: Annotated[list[str] | None, typer.Option(help="Run only these benchmarks (repeatable).")] = None,
    out: Annotated[Path, typer.Option(help="Where the results file goes.")] = Path("bench/results"),
) -> None:
    """Run the benchmarks on real Kafka and real stores; write ``<date>-<host>.json`` and ``.md``."""
    if profile not in ("smoke", "quick", "full"):
        raise typer.BadParameter("smoke, quick or full", param_hint="--profile")
    try:
        benchmarks = select(only or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from None
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="shopstream-bench-") as workdir:
        context = BenchContext(profile=_profile(profile), workdir=Path(workdir))
        try:
            figures, errors = asyncio.run(run_all(context, benchmarks))
        finally:
            context.close()
    json_path, md_path = write_results(out, profile, figures, errors, started, only or ())
    typer.echo(md_path.read_text())
    typer.echo(f"results: {json_path} and {md_path}")
    if errors or any(figure.failed_checks() for figure in figures):
        raise typer.Exit(1)


def _profile(name: str) -> Profile:
    return "smoke" if name == "smoke" else "quick" if name == "quick" else "full"
