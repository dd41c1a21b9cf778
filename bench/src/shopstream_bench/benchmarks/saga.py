"""The sale saga end to end, all five services as processes, HTTP in: OrderPlaced ⇒ StockReserved
⇒ OrderConfirmed ⇒ CommissionAccrued visible on the commission topic.

Each repeat measures (a) the maximum sustained rate — a burst of orders sent as fast as the
connection pool allows, timed until the commission of the last one is on Kafka — and (b) the
latency at 70 % of that rate under open-loop load, from each order's scheduled start to its last
CommissionAccrued. Over the same run it measures what the saga costs: CPU seconds per confirmed
order over every process (five services and Kafka), idle and peak RSS per service.

There is no raw equivalent of a saga; as context the throughput figure carries the rate at which
the same client gets answers from a trivial endpoint of one service (``GET /healthz``) — the HTTP
ceiling every order has to pass under.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from ..context import BenchContext
from ..figures import Figure, Target
from ..measure import Stopwatch, open_loop, percentile
from ..registry import Benchmark
from ._platform import (
    JIT,
    Follower,
    Sampler,
    Shop,
    bootstrap_of,
    cpu_seconds,
    http_client,
    rss_mb,
    running_platform,
    service_pids,
)

CONNECTIONS = 256
DOUBLE_CLICK_EVERY = 25
"""Every so many burst orders the buyer double-clicks: the same key sent twice at once."""
IDLE_RSS_MB = 150


@dataclass(frozen=True)
class Sizes:
    burst: int
    steady_seconds: float
    healthz_seconds: float
    timeout: float


@dataclass
class Run:
    """Every order the run placed (by key) and what each key was answered."""

    answers: dict[str, set[str]]

    def accepted(self) -> set[str]:
        return {order_id for ids in self.answers.values() for order_id in ids}


@dataclass
class Measured:
    """One run's samples (one per repeat) and what the processes used."""

    rates: list[float] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    offered: list[float] = field(default_factory=list)
    cpu_per_order: list[float] = field(default_factory=list)
    cpu_split: dict[str, float] = field(default_factory=dict)
    """Mean CPU milliseconds per order of each process."""
    errors: int = 0
    load: list[float] = field(default_factory=list)
    """The machine's 1-minute load average after each repeat (other work on the cores)."""

    def add_cpu(self, used: dict[str, float], orders: int, repeats: int) -> None:
        """``used``: CPU seconds per process, and the broker's JIT share (part of Kafka's)."""
        self.cpu_per_order.append(1000 * sum(v for name, v in used.items() if name != JIT) / orders)
        for name, seconds in used.items():
            self.cpu_split[name] = self.cpu_split.get(name, 0.0) + 1000 * seconds / orders / repeats


async def run(ctx: BenchContext) -> list[Figure]:
    sizes = ctx.size(
        smoke=Sizes(burst=40, steady_seconds=1.0, healthz_seconds=0.5, timeout=60),
        quick=Sizes(burst=400, steady_seconds=6.0, healthz_seconds=2.0, timeout=300),
        full=Sizes(burst=3_000, steady_seconds=20.0, healthz_seconds=3.0, timeout=600),
    )
    m = Measured()
    run_ = Run({})
    async with running_platform(ctx) as platform, http_client(CONNECTIONS) as client:
        # Enough stock that every order of the run is confirmed: a saga, not a sell-out.
        steady_max = int(2_000 * sizes.steady_seconds)
        shop = await Shop.open(
            platform,
            client,
            connections=CONNECTIONS,
            units=ctx.repeats * (sizes.burst + steady_max) + sizes.burst // 2 + 100,
        )
        pids = service_pids(platform)
        idle = rss_mb(pids)
        async with (
            Follower(bootstrap_of(platform), ctx.unique("bench-saga"), shop.hosts) as follower,
            Sampler(pids) as sampler,
        ):
            # Unmeasured: the broker and the services were just started, and the first orders
            # pay for their JIT, caches and connections; the repeats measure a warm platform.
            ctx.step(f"warm-up: {sizes.burst // 2} orders")
            await _burst(shop, follower, run_, sizes.burst // 2, sizes.timeout)
            for repeat in range(ctx.repeats):
                ctx.step(f"repeat {repeat + 1}/{ctx.repeats}: raw GET /healthz, then {sizes.burst} orders")
                m.healthz.append(await _healthz_rate(client, platform.url("orders"), sizes.healthz_seconds))
                before = cpu_seconds(pids)
                rate = await _burst(shop, follower, run_, sizes.burst, sizes.timeout)
                after = cpu_seconds(pids)
                m.rates.append(rate)
                m.add_cpu({name: after[name] - before[name] for name in after}, sizes.burst, ctx.repeats)
                target_rate = 0.7 * rate
                count = max(10, int(target_rate * sizes.steady_seconds))
                ctx.step(f"repeat {repeat + 1}: {count} orders open loop at {target_rate:,.1f}/s")
                result = await open_loop(
                    target_rate, count, _steady_call(shop, follower, run_, sizes.timeout)
                )
                m.errors += result.errors
                m.offered.append(target_rate)
                m.p99s.append(1000 * percentile(result.latencies, 99))
                m.p50s.append(1000 * percentile(result.latencies, 50))
                m.load.append(os.getloadavg()[0])
            await follower.settle(run_.accepted(), accrued=True, timeout=sizes.timeout)
            checks = await _checks(shop, follower, run_, m.errors)
        after_rss = rss_mb(pids)
    return [
        Figure(
            benchmark="saga",
            name="saga throughput, HTTP ⇒ CommissionAccrued visible",
            unit="orders/s",
            samples=m.rates,
            baseline="raw HTTP GET /healthz of one service, same client",
            baseline_samples=m.healthz,
            targets=[Target("at_least", 1_000, "≥ 1,000 orders/s sustained")],
            checks=checks,
            notes=_throughput_notes(m),
        ),
        Figure(
            benchmark="saga",
            name="saga p99 at 70 % of max rate, HTTP accept ⇒ CommissionAccrued visible",
            unit="ms",
            samples=m.p99s,
            targets=[Target("at_most", 250, "p99 ≤ 250 ms at 70 % of the max rate")],
            checks=checks,
            notes=_latency_notes(m),
        ),
        Figure(
            benchmark="saga",
            name="CPU per confirmed order, 5 services + Kafka",
            unit="ms CPU/order",
            samples=m.cpu_per_order,
            notes="per process (ms/order, mean): " + _split(m.cpu_split),
        ),
        *(
            Figure(
                benchmark="saga",
                name=f"idle RSS, {name}",
                unit="MB",
                samples=[idle[name]],
                targets=[Target("at_most", IDLE_RSS_MB, f"≤ {IDLE_RSS_MB} MB per service at idle")],
                notes=f"peak during the run {sampler.peak[name]:,.0f} MB; after it {after_rss[name]:,.0f} MB",
            )
            for name in pids
            if name != "kafka"
        ),
    ]


async def _healthz_rate(client: httpx.AsyncClient, url: str, seconds: float) -> float:
    """Answers per second from ``GET /healthz`` with every connection of the pool busy."""
    done = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def worker() -> None:
        nonlocal done
        while loop.time() < deadline:
            (await client.get(f"{url}/healthz")).raise_for_status()
            done += 1

    with Stopwatch() as watch:
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return done / watch.seconds


async def _complete(follower: Follower, order_id: str) -> None:
    """Until the order is decided and, when confirmed, every host's accrual is visible."""
    await follower.decided(order_id)
    if order_id in follower.ledger.confirmed:
        await follower.accrued(order_id)


async def _burst(shop: Shop, follower: Follower, run: Run, count: int, timeout: float) -> float:
    """Orders as fast as the pool sends them (a tenth-of-a-pool of them double-clicked); the
    rate is the count over the time until the last one's commission is visible."""

    async def one(n: int) -> None:
        buyer, key = shop.key()
        clicks = 2 if n % DOUBLE_CLICK_EVERY == 0 else 1
        replies = await asyncio.gather(*(shop.order(buyer, key) for _ in range(clicks)))
        ids = run.answers.setdefault(key, set())
        ids.update(order_id for order_id, _ in replies)
        await asyncio.gather(*(_complete(follower, order_id) for order_id in ids))

    with Stopwatch() as watch:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(one(n) for n in range(count)))
    return count / watch.seconds


def _steady_call(
    shop: Shop, follower: Follower, run: Run, timeout: float
) -> Callable[[int], Awaitable[None]]:
    async def call(_: int) -> None:
        buyer, key = shop.key()
        order_id, _status = await shop.order(buyer, key)
        run.answers.setdefault(key, set()).add(order_id)
        async with asyncio.timeout(timeout):
            await _complete(follower, order_id)

    return call


async def _checks(shop: Shop, follower: Follower, run: Run, errors: int) -> dict[str, object]:
    ledger = follower.ledger
    accepted = run.accepted()
    confirmed = accepted & ledger.confirmed.keys()
    confirmed_units = sum(ledger.confirmed_units[o] for o in confirmed)
    stock = await shop.stock()
    oversold = (
        max(0, confirmed_units - shop.units)
        + max(0, -int(stock["available"]))
        + max(0, int(stock["reserved"]) - int(stock["on_hand"]))
    )
    return {
        "orders": len(accepted),
        "confirmed": len(confirmed),
        "oversold_units": oversold,
        "duplicate_orders": sum(len(ids) - 1 for ids in run.answers.values())
        + len(ledger.placed.keys() - accepted),
        **ledger.duplicates(),
        "missing_placed": len(accepted - ledger.placed.keys()),
        "missing_decisions": sum(1 for o in accepted if not ledger.decided(o)),
        "missing_accruals": sum(1 for o in confirmed if len(ledger.accrued_hosts.get(o, ())) < shop.hosts),
        "unexpected_rejections": len(accepted & ledger.rejected.keys()),
        "errors": errors,
    }


def _split(per_process: dict[str, float]) -> str:
    jit = per_process.get(JIT)
    return ", ".join(
        f"{name} {ms:.1f}" + (f" (of which JIT compilation {jit:.1f})" if name == "kafka" and jit else "")
        for name, ms in sorted(per_process.items(), key=lambda i: -i[1])
        if name != JIT
    )


def _throughput_notes(m: Measured) -> str:
    """The gap to 1,000 orders/s and where it comes from, from what this run measured plus the
    profile of the services taken while developing it (py-spy record/dump during a burst)."""
    cpu = statistics.median(m.cpu_per_order)
    cores = os.cpu_count() or 1
    return (
        f"Every order costs {cpu:.1f} ms of CPU summed over the processes ({_split(m.cpu_split)}), so "
        f"{cores} cores cannot carry more than ≈ {1000 * cores / cpu:,.0f} orders/s even perfectly "
        f"parallel; 1,000/s needs ≤ {cores:.0f} ms of CPU per order. Machine load average during the run "
        f"{min(m.load):.1f}–{max(m.load):.1f} on {cores} cores (other work shares them). Profile (py-spy "
        "record/dump of each service during a burst): relay, inbox, policy and projection lags stay "
        "within a few events, i.e. orders queue at the HTTP ingest, not in the saga; the orders event "
        "loop is idle ~90 % of the time (epoll) while each POST /orders goes through ~8 thread hand-offs "
        "(two stream reads and two read-model queries on single reader threads, the single SQLite "
        "writer, then a wait for every projection to apply it: read-your-writes); the event-store "
        "writer and the read-model writer, two connections on one SQLite file, were caught waiting on "
        "each other's write lock (BEGIN IMMEDIATE / COMMIT under SQLite's sleeping busy handler). "
        "Kafka's share includes its JIT compilation (the broker is started for the run and still "
        "compiling after the warm-up; JFR during a 30 s steady run right after start: C1/C2 compiler "
        "threads ≈ 45 % of its CPU), which a long-running broker paid long ago. What would move it: "
        "policies that decide a batch of events and append once per batch (libs/processing runs one "
        "command and one durable append per event, three serial stages on the saga path), and more "
        "cores: every stage is one single-threaded Python process. Tried without gain: read models in "
        "their own SQLite file (SHOPSTREAM_READMODEL_URL; back to back on the quiet machine 64/64/59 "
        "vs 73/64/83 orders/s over three bursts). Already done: a cache of folded stream states in the "
        "command handler, persistent maps for the hot streams' states (a SKU's reservations, a host's "
        "ledger, a stream's event ids: O(1) per event instead of a copy of every earlier one), the "
        "relay publishing stored rows, and uvloop + httptools + a pure-ASGI middleware in the service "
        "kit (about 30 -> 60 orders/s, the earlier figure on a busier box)."
    )


def _latency_notes(m: Measured) -> str:
    return (
        f"open loop at {statistics.median(m.offered):,.1f} orders/s offered (70 % of the burst rate), "
        f"p50 {statistics.median(m.p50s):,.0f} ms. The path is four appends in three services and "
        "three Kafka hops (orders ⇒ catalog ⇒ orders ⇒ commission), each hop a relay batch, an inbox "
        "batch and a serial policy step; on a loaded 2-core machine each hand-off also waits for a core."
    )


BENCHMARK = Benchmark(
    name="saga",
    title="the sale saga end to end: five services as processes, HTTP in, commission out",
    run=run,
    order=70,
)
