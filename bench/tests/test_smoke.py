"""Every benchmark runs end to end at smoke size and its correctness checks hold. Speed is not
asserted here (that is what the results file is for), only that the harness and each benchmark
work and that what they measured was correct (nothing lost, nothing doubled, nothing oversold)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopstream_bench.context import BenchContext
from shopstream_bench.registry import Benchmark, discover
from shopstream_bench.results import write_results
from shopstream_bench.runner import run_all
from shopstream_infra.postgres import PostgresCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def context(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, postgres_cluster: PostgresCluster
) -> Iterator[BenchContext]:
    context = BenchContext(
        profile="smoke", workdir=tmp_path_factory.mktemp("bench"), external_kafka=kafka_bootstrap
    )
    context._postgres = postgres_cluster
    try:
        yield context
    finally:
        context.close()


@pytest.mark.parametrize("benchmark", discover(), ids=lambda b: b.name)
async def test_benchmark_runs_and_its_checks_hold(
    benchmark: Benchmark, context: BenchContext, tmp_path: Path
) -> None:
    figures, errors = await run_all(context, [benchmark])

    assert errors == {}
    assert figures, f"{benchmark.name} reported no figure"
    for figure in figures:
        assert figure.failed_checks() == [], f"{figure.name}: {figure.checks}"
        assert figure.stats.median > 0, figure.name
        if figure.baseline is not None:
            assert (figure.ratio or 0) > 0, figure.name
    json_path, md_path = write_results(tmp_path, "smoke", figures, errors, datetime.now(UTC))
    assert figure.name in md_path.read_text()
    assert json_path.stat().st_size > 0


def test_every_benchmark_is_discovered_once() -> None:
    names = [b.name for b in discover()]
    assert len(names) == len(set(names))
