"""What a benchmark reports: figures, each with its raw baseline from the same run, the ratio and
the targets it is held to. Plain data, serialised into the results file as it is."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TargetKind = Literal["ratio_at_least", "ratio_at_most", "at_least", "at_most"]


@dataclass(frozen=True, slots=True)
class Stats:
    """Median, min and max over repeated runs (one sample per run)."""

    median: float
    min: float
    max: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("a figure needs at least one sample")
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))


@dataclass(frozen=True, slots=True)
class Target:
    """``ratio_*`` compares ``value / baseline`` (medians); ``at_*`` compares the value itself."""

    kind: TargetKind
    bound: float
    text: str
    """As the issue states it, e.g. ``≥ 0.6 × raw batched insert``."""

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.kind.startswith("ratio") else value
        if subject is None:
            return None
        return subject >= self.bound if self.kind.endswith("at_least") else subject <= self.bound


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure of one benchmark.

    ``samples`` holds one number per repeat (a rate, or a percentile of one run's latencies);
    ``baseline_samples`` the raw baseline's, measured in the same run on the same machine with the
    same payloads. ``checks`` are the correctness facts the run established (``oversold: 0``,
    ``duplicates: 0``, ``delivered_all: True``); the smoke test requires every one to be truthy
    for booleans and zero for ``int`` counts named in ``zero_checks``.
    """

    benchmark: str
    name: str
    unit: str
    samples: Sequence[float]
    baseline: str | None = None
    baseline_samples: Sequence[float] = ()
    targets: Sequence[Target] = ()
    checks: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def stats(self) -> Stats:
        return Stats.of(self.samples)

    @property
    def baseline_stats(self) -> Stats | None:
        return Stats.of(self.baseline_samples) if self.baseline_samples else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline_stats
        if base is None or base.median == 0:
            return None
        return self.stats.median / base.median

    def verdicts(self) -> list[tuple[Target, bool | None]]:
        return [(target, target.met(self.stats.median, self.ratio)) for target in self.targets]

    def failed_checks(self) -> list[str]:
        """Checks that do not hold: a False boolean, or a non-zero count for ``*_count`` style
        checks whose name starts with one of the words of ``ZERO_CHECK_PREFIXES``."""
        failed = []
        for name, value in self.checks.items():
            if isinstance(value, bool):
                if not value:
                    failed.append(name)
            elif isinstance(value, int) and name.startswith(ZERO_CHECK_PREFIXES) and value != 0:
                failed.append(name)
        return failed

    def to_json(self) -> dict[str, Any]:
        base = self.baseline_stats
        return {
            "benchmark": self.benchmark,
            "name": self.name,
            "unit": self.unit,
            "value": _stats_json(self.stats),
            "baseline": None if base is None else {"name": self.baseline, **_stats_json(base)},
            "ratio": self.ratio,
            "targets": [
                {"kind": t.kind, "bound": t.bound, "text": t.text, "met": met} for t, met in self.verdicts()
            ],
            "checks": self.checks,
            "failed_checks": self.failed_checks(),
            "notes": self.notes,
        }


ZERO_CHECK_PREFIXES = ("oversold", "duplicate", "lost", "missing", "errors", "mismatch", "unexpected")
"""Integer checks with these prefixes must be 0 (``oversold_units``, ``duplicate_events``…)."""


def _stats_json(stats: Stats) -> dict[str, Any]:
    return {"median": stats.median, "min": stats.min, "max": stats.max, "samples": list(stats.samples)}
