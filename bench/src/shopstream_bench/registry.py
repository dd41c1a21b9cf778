"""Benchmarks are discovered, not listed: every module of ``shopstream_bench.benchmarks`` defines
``BENCHMARK``, so adding one never touches a shared file."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from . import benchmarks
from .context import BenchContext
from .figures import Figure


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    """Short and unique: ``store``, ``relay``, ``saga``…"""
    title: str
    run: Callable[[BenchContext], Awaitable[Sequence[Figure]]]
    order: int = 100
    """Cheap, isolated benchmarks first; the whole-platform ones last."""


def discover() -> list[Benchmark]:
    found: list[Benchmark] = []
    for module_info in pkgutil.iter_modules(benchmarks.__path__):
        module = importlib.import_module(f"{benchmarks.__name__}.{module_info.name}")
        benchmark = getattr(module, "BENCHMARK", None)
        if isinstance(benchmark, Benchmark):
            found.append(benchmark)
    names = [b.name for b in found]
    if len(names) != len(set(names)):
        raise RuntimeError(f"benchmark names are not unique: {sorted(names)}")
    return sorted(found, key=lambda b: (b.order, b.name))
