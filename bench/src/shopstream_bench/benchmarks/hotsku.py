"""The hot SKU: a famous host pins one product and far more buyers than units hit it at once —
20,000 orders in 2 seconds (open loop) on one SKU with 1,000 units, all five services as
processes, HTTP in. Every reservation is decided on the one stock stream of that SKU.

What must hold: exactly as many orders confirmed as there are units (never one more, never one
fewer while buyers are still waiting), every accepted order decided, nothing decided twice. What
is measured: the decision latency, from each order's scheduled start to its OrderConfirmed or
OrderRejected on the orders topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..context import BenchContext
from ..figures import Figure, Target
from ..measure import open_loop, percentile
from ..registry import Benchmark
from ._platform import Follower, Shop, bootstrap_of, http_client, running_platform

CONNECTIONS = 256


@dataclass(frozen=True)
class Sizes:
    orders: int
    seconds: float
    units: int
    timeout: float


async def run(ctx: BenchContext) -> list[Figure]:
    sizes = ctx.size(
        smoke=Sizes(orders=200, seconds=1.0, units=10, timeout=60),
        # Quick keeps the offered rate (10,000/s) and the orders-to-units ratio (20:1) with a
        # twentieth of the orders: the 20,000 take minutes to decide at this machine's rate.
        quick=Sizes(orders=1_000, seconds=0.1, units=50, timeout=600),
        full=Sizes(orders=20_000, seconds=2.0, units=1_000, timeout=1_800),
    )
    p99s: list[float] = []
    p50s: list[float] = []
    achieved: list[float] = []
    checks: dict[str, int | bool] = {}
    async with (
        running_platform(ctx) as platform,
        http_client(CONNECTIONS) as client,
        Follower(bootstrap_of(platform), ctx.unique("bench-hotsku"), hosts=0) as follower,
    ):
        for repeat in range(ctx.repeats):
            # A fresh SKU each repeat: the same rush on the same starting stock.
            shop = await Shop.open(platform, client, connections=CONNECTIONS, units=sizes.units)
            ctx.step(
                f"repeat {repeat + 1}/{ctx.repeats}: {sizes.orders:,} orders in {sizes.seconds:g} s "
                f"on {sizes.units:,} units"
            )
            accepted: list[str] = []
            result = await open_loop(
                sizes.orders / sizes.seconds,
                sizes.orders,
                _decision(shop, follower, accepted, sizes.timeout),
            )
            await follower.settle(accepted, accrued=False, timeout=sizes.timeout)
            p99s.append(1000 * percentile(result.latencies, 99))
            p50s.append(1000 * percentile(result.latencies, 50))
            achieved.append(result.achieved_rate)
            checks = _merge(checks, await _checks(shop, follower, accepted, result.errors))
    return [
        Figure(
            benchmark="hotsku",
            name="hot SKU p99 decision, HTTP accept ⇒ OrderConfirmed/OrderRejected",
            unit="ms",
            samples=p99s,
            targets=[
                Target("at_most", 100, "p99 decision (HTTP accept ⇒ OrderConfirmed/OrderRejected) ≤ 100 ms")
            ],
            checks=checks,
            notes=_notes(sizes, achieved, p50s),
        )
    ]


def _notes(sizes: Sizes, achieved: list[float], p50s: list[float]) -> str:
    offered = sizes.orders / sizes.seconds
    ratio = offered / max(1.0, max(achieved))
    return (
        f"{sizes.orders:,} orders in {sizes.seconds:g} s on {sizes.units:,} units: offered {offered:,.0f} "
        f"orders/s, decided {min(achieved):,.0f}–{max(achieved):,.0f} orders/s, p50 {min(p50s):,.0f}–"
        f"{max(p50s):,.0f} ms. The allocation is exact (checks) and the stock stream is not the limit: "
        "with the command handler's cache of folded states a reservation costs ~0.4 ms of CPU whatever "
        "the stream's length (measured on the catalog's stock decider over SQLite: without it 3.7 ms at "
        "500 events, 34 ms at 2,000, growing linearly, i.e. quadratic over a rush), and the folded "
        "state and the cached event ids are persistent maps (before, each reservation copied every "
        "earlier one's entry: the ids' frozenset alone ~0.5 ms a command at 30,000 events; the stock "
        "decider 63 µs an order at 10,000, now ~10-16 µs flat). The latency is "
        f"queueing: orders arrive ~{ratio:.0f}× faster than the platform decides them (see the saga's notes: "
        "HTTP ingest of the orders service and CPU per order), so the last ones wait ≈ orders ÷ decision "
        "rate. What would move it: the saga's levers, and above all admission control at the edge "
        "(answer 429 or sold-out from a cached stock figure once the units are gone instead of "
        "queueing every order through the saga)."
    )


def _decision(
    shop: Shop, follower: Follower, accepted: list[str], timeout: float
) -> Callable[[int], Awaitable[None]]:
    async def call(_: int) -> None:
        buyer, key = shop.key()
        order_id, _status = await shop.order(buyer, key)
        accepted.append(order_id)
        async with asyncio.timeout(timeout):
            await follower.decided(order_id)

    return call


async def _checks(shop: Shop, follower: Follower, accepted: list[str], errors: int) -> dict[str, int | bool]:
    ledger = follower.ledger
    orders = set(accepted)
    confirmed = orders & ledger.confirmed.keys()
    units = sum(ledger.confirmed_units[o] for o in confirmed)
    stock = await shop.stock()
    duplicates = ledger.duplicates()
    return {
        "orders": len(orders),
        "confirmed_units": units,
        "exactly_all_units_sold": units == shop.units,
        "oversold_units": max(0, units - shop.units)
        + max(0, -int(stock["available"]))
        + max(0, int(stock["reserved"]) - int(stock["on_hand"])),
        "missing_confirmations": max(0, shop.units - units) if len(orders) >= shop.units else 0,
        "missing_decisions": sum(1 for o in orders if not ledger.decided(o)),
        "duplicate_orders": len(accepted) - len(orders),
        "duplicate_placed": duplicates["duplicate_placed"],
        "duplicate_decisions": duplicates["duplicate_decisions"],
        "errors": errors,
    }


def _merge(total: dict[str, int | bool], run: dict[str, int | bool]) -> dict[str, int | bool]:
    """Checks over every repeat: counts add up, a fact holds only if it held every time."""
    merged = dict(run)
    for name, value in total.items():
        if isinstance(value, bool):
            merged[name] = value and bool(run[name])
        elif isinstance(value, int):
            merged[name] = value + int(run[name])
    return merged


BENCHMARK = Benchmark(
    name="hotsku",
    title="hot SKU: 20,000 orders in 2 s on one SKU with 1,000 units",
    run=run,
    order=80,
)
