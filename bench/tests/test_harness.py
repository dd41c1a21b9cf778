"""The harness core: figures and their verdicts, percentiles, open-loop load and the results file.
No timing is asserted beyond what holds on any machine (arrivals are never early)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopstream_bench.figures import Figure, Stats, Target
from shopstream_bench.measure import open_loop, percentile
from shopstream_bench.results import markdown, write_results

pytestmark = pytest.mark.unit


def figure(**overrides: object) -> Figure:
    fields: dict[str, object] = {
        "benchmark": "store",
        "name": "SQLite batched append",
        "unit": "events/s",
        "samples": [30.0, 10.0, 20.0],
        "baseline": "raw batched INSERT",
        "baseline_samples": [40.0, 50.0, 60.0],
        "targets": [Target("ratio_at_least", 0.6, "≥ 0.6 × raw")],
    }
    fields.update(overrides)
    return Figure(**fields)  # type: ignore[arg-type]


def test_stats_are_median_min_max_of_the_samples() -> None:
    assert Stats.of([3.0, 1.0, 2.0, 10.0]) == Stats(2.5, 1.0, 10.0, (3.0, 1.0, 2.0, 10.0))
    with pytest.raises(ValueError, match="at least one sample"):
        Stats.of([])


def test_ratio_is_median_over_baseline_median() -> None:
    assert figure().ratio == pytest.approx(20.0 / 50.0)
    assert figure(baseline=None, baseline_samples=()).ratio is None
    assert figure(baseline_samples=[0.0]).ratio is None


@pytest.mark.parametrize(
    ("target", "value", "ratio", "met"),
    [
        (Target("ratio_at_least", 0.6, ""), 1.0, 0.6, True),
        (Target("ratio_at_least", 0.6, ""), 1e9, 0.59, False),
        (Target("ratio_at_most", 1.2, ""), 1e9, 1.2, True),
        (Target("ratio_at_most", 1.2, ""), 0.0, 1.21, False),
        (Target("at_least", 100_000, ""), 100_000, 0.0, True),
        (Target("at_least", 100_000, ""), 99_999, 9.0, False),
        (Target("at_most", 250, ""), 250, 9.0, True),
        (Target("at_most", 250, ""), 251, 0.0, False),
        (Target("ratio_at_least", 0.6, ""), 1.0, None, None),
    ],
)
def test_a_target_judges_the_ratio_or_the_value(
    target: Target, value: float, ratio: float | None, met: bool | None
) -> None:
    assert target.met(value, ratio) is met


def test_verdicts_use_the_medians() -> None:
    (verdict,) = figure().verdicts()
    assert verdict[1] is False  # 20 / 50 = 0.4 < 0.6
    (verdict,) = figure(samples=[30.0, 40.0, 35.0]).verdicts()
    assert verdict[1] is True  # 35 / 50 = 0.7


def test_failed_checks_are_false_booleans_and_nonzero_counts_of_the_zero_words() -> None:
    checks = {
        "delivered_all": False,
        "in_order": True,
        "duplicate_events": 2,
        "missing_events": 0,
        "mismatched_checksums": 1,
        "oversold_units": 0,
        "events_read": 5,  # a plain count, not a failure
    }
    assert sorted(figure(checks=checks).failed_checks()) == [
        "delivered_all",
        "duplicate_events",
        "mismatched_checksums",
    ]
    assert figure(checks={"errors": 0, "ok": True}).failed_checks() == []


def test_percentile_is_an_observed_value_by_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


async def test_open_loop_starts_calls_on_schedule_without_waiting_for_earlier_ones() -> None:
    loop = asyncio.get_running_loop()
    started: list[float] = []
    release = asyncio.Event()

    async def call(i: int) -> None:
        started.append(loop.time())
        if i == 0:
            await release.wait()  # the first call hangs until the last one has started
        if i == 9:
            release.set()

    begin = loop.time()
    result = await open_loop(rate=200.0, count=10, call=call)

    assert len(started) == 10
    assert result.errors == 0
    # Arrivals are never early: call i starts no sooner than i / rate after the start.
    assert all(at - begin >= i / 200.0 - 1e-3 for i, at in enumerate(started))
    # The hanging first call did not hold back the others, and its latency includes the wait.
    assert max(result.latencies) >= started[-1] - started[0] - 1e-3
    assert result.offered_rate == 200.0
    assert result.achieved_rate > 0


async def test_open_loop_counts_errors_and_times_only_successes() -> None:
    async def call(i: int) -> None:
        if i % 3 == 0:
            raise RuntimeError("refused")

    result = await open_loop(rate=1000.0, count=9, call=call)

    assert result.errors == 3
    assert len(result.latencies) == 6


def test_the_markdown_shows_every_figure_with_its_baseline_ratio_targets_and_notes() -> None:
    figures = [
        figure(notes="bottleneck: fsync"),
        figure(name="p99 latency", unit="ms", samples=[1.5], baseline=None, baseline_samples=(), targets=()),
        figure(name="checked", checks={"duplicate_events": 1}),
    ]
    document = {
        "started": "2026-01-02T03:04:05+00:00",
        "profile": "quick",
        "machine": {"host": "box", "cores": 2},
        "figures": [f.to_json() for f in figures],
        "errors": {"relay": "RuntimeError: boom"},
    }
    text = markdown(document)
    for shown in figures:
        assert shown.name in text
    assert "raw batched INSERT: 50.0" in text
    assert "| 0.4 |" in text
    assert "≥ 0.6 × raw ❌" in text
    assert "bottleneck: fsync" in text
    assert "❌ duplicate_events" in text
    assert "RuntimeError: boom" in text
    assert "| cores | 2 |" in text


def test_the_results_file_round_trips_through_json(tmp_path: Path) -> None:
    shown = figure(checks={"missing_events": 0, "in_order": True}, notes="why")
    json_path, md_path = write_results(tmp_path, "smoke", [shown], {}, datetime(2026, 1, 2, tzinfo=UTC))

    document = json.loads(json_path.read_text())
    (stored,) = document["figures"]
    assert stored == json.loads(json.dumps(shown.to_json()))
    assert stored["value"] == {"median": 20.0, "min": 10.0, "max": 30.0, "samples": [30.0, 10.0, 20.0]}
    assert stored["baseline"]["name"] == "raw batched INSERT"
    assert stored["ratio"] == pytest.approx(0.4)
    assert stored["targets"][0]["met"] is False
    assert document["profile"] == "smoke"
    assert document["machine"]["cores"]
    assert md_path.read_text() == markdown(document)
    assert not list(tmp_path.glob("*.tmp"))
