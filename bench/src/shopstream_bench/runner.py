"""Run the discovered benchmarks in one context and collect their figures; a benchmark that
raises is reported as failed (with its error) and the others still run."""

from __future__ import annotations

import traceback
from collections.abc import Sequence

from .context import BenchContext
from .figures import Figure
from .registry import Benchmark, discover


def select(only: Sequence[str] = ()) -> list[Benchmark]:
    benchmarks = discover()
    if not only:
        return benchmarks
    known = {b.name for b in benchmarks}
    unknown = sorted(set(only) - known)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    return [b for b in benchmarks if b.name in only]


async def run_all(
    context: BenchContext, benchmarks: Sequence[Benchmark]
) -> tuple[list[Figure], dict[str, str]]:
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    for benchmark in benchmarks:
        context.console.rule(f"{benchmark.name}: {benchmark.title} ({context.profile})")
        try:
            produced = list(await benchmark.run(context))
        except Exception as exc:
            context.console.print(traceback.format_exc())
            errors[benchmark.name] = f"{type(exc).__name__}: {exc}"
            continue
        for figure in produced:
            context.console.log(_summary(figure))
        figures.extend(produced)
    return figures, errors


def _summary(figure: Figure) -> str:
    ratio = "" if figure.ratio is None else f" = {figure.ratio:.2f} × {figure.baseline}"
    failed = figure.failed_checks()
    return f"{figure.name}: {figure.stats.median:,.1f} {figure.unit}{ratio}" + (
        f"  CHECKS FAILED: {failed}" if failed else ""
    )
