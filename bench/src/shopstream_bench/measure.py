"""Timing helpers shared by the benchmarks: percentiles, repeated runs and open-loop load."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by the nearest-rank method: an observed value, never an
    interpolation between two."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._start


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    latencies: list[float]
    """Seconds from each request's *scheduled* start to its completion."""
    errors: int
    offered_rate: float
    achieved_rate: float
    """Completions per second over the whole run (scheduled window plus draining)."""


async def open_loop(
    rate: float,
    count: int,
    call: Callable[[int], Awaitable[None]],
    *,
    max_in_flight: int = 10_000,
) -> OpenLoopResult:
    """Start ``call(i)`` at fixed arrival times (``i / rate`` seconds after the start) whatever
    the earlier calls are doing, and time each from its scheduled start, so a slow system cannot
    hide its tail by slowing the load down (coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    in_flight = asyncio.Semaphore(max_in_flight)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(i)
        except Exception:
            errors += 1
        else:
            latencies.append(loop.time() - scheduled)
        finally:
            in_flight.release()

    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the arrivals, not synchronising on an outcome
        await in_flight.acquire()
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    return OpenLoopResult(latencies, errors, rate, len(latencies) / elapsed if elapsed > 0 else 0.0)
