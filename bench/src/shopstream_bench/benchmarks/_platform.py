"""What the whole-platform benchmarks (saga, hotsku) share: the five services as processes on a
Kafka of their own, a live with one SKU on sale set up through the services' HTTP APIs (the
demo's own steps), buyers placing orders over HTTP, and a plain Kafka consumer following the
orders and commission topics — the way another team would — to tell when each order was decided
and when its commission became visible.

Not a benchmark itself (no ``BENCHMARK``): discovery skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psutil
from confluent_kafka import Consumer

from shopstream_cli.platform import Platform
from shopstream_cli.sale import MARKET, Api, SaleError, Tokens, World, _Config, _Phases, _Sale
from shopstream_contracts.commission.v1 import CommissionAccrued
from shopstream_contracts.orders.v1 import OrderConfirmed, OrderPlaced, OrderRejected

from ..context import BenchContext

PLACED = OrderPlaced.contract.type
CONFIRMED = OrderConfirmed.contract.type
REJECTED = OrderRejected.contract.type
ACCRUED = CommissionAccrued.contract.type
_FOLLOWED = frozenset({PLACED, CONFIRMED, REJECTED, ACCRUED})


@asynccontextmanager
async def running_platform(ctx: BenchContext) -> AsyncIterator[Platform]:
    """Kafka and the five services as processes (SQLite stores), with clock control so the
    demo's live set-up can run; stopped whatever happens."""
    platform = Platform(ctx.scratch("platform"), clock_control=True)
    ctx.step("starting Kafka and the five services")
    try:
        await asyncio.to_thread(platform.start)
        yield platform
    finally:
        await asyncio.to_thread(platform.stop)


def bootstrap_of(platform: Platform) -> str:
    if platform.kafka is None:
        raise RuntimeError("the platform is not started")
    return platform.kafka.bootstrap_servers


def service_pids(platform: Platform) -> dict[str, int]:
    """The platform's processes by name: the five services and Kafka."""
    pids = {name: s.proc.pid for name, s in platform.services.items() if s.proc is not None}
    kafka_pid = platform.kafka.pid if platform.kafka is not None else None
    if kafka_pid is not None:
        pids["kafka"] = kafka_pid
    return pids


JIT = "kafka JIT"
"""The broker's compiler threads, counted apart in ``cpu_seconds``: a broker started for the run
compiles its hot paths during the first minutes (JFR during a 30 s steady saga right after start:
C1/C2 compiler threads ≈ 45 % of the broker's CPU), which a long-running production broker
paid once, long ago."""


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far; for Kafka also its JIT
    compiler threads' share (``JIT``, included in ``kafka``)."""
    used = {}
    for name, pid in pids.items():
        process = psutil.Process(pid)
        times = process.cpu_times()
        used[name] = times.user + times.system
        if name == "kafka":
            used[JIT] = sum(t.user_time + t.system_time for t in process.threads() if _compiler(pid, t.id))
    return used


def _compiler(pid: int, thread: int) -> bool:
    """HotSpot names its JIT threads ``C1 CompilerThreadN`` / ``C2 CompilerThreadN``."""
    try:
        with open(f"/proc/{pid}/task/{thread}/comm") as comm:
            return "CompilerThre" in comm.read()
    except OSError:  # the thread ended since it was listed
        return False


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    return {name: psutil.Process(pid).memory_info().rss / 2**20 for name, pid in pids.items()}


@dataclass
class Shop:
    """A live on air selling one SKU with ``units`` in stock, and buyers placing orders on it."""

    api: Api
    world: World
    units: int
    sending: asyncio.Semaphore
    """As many as the client has connections: the orders beyond wait here, in a FIFO that costs
    nothing per waiter (httpx's own pool rescans every waiting request on each release, which
    with thousands waiting makes the load generator the bottleneck)."""
    buyer_pool: int = 100
    _next: int = 0

    @property
    def sku_id(self) -> str:
        return self.world.deal_sku

    @property
    def hosts(self) -> int:
        return len(self.world.hosts)

    @classmethod
    async def open(cls, platform: Platform, client: httpx.AsyncClient, units: int, connections: int) -> Shop:
        """The demo's set-up (brand, product, stock, commission agreement with two co-hosts, a
        live on air), driven through the services' HTTP APIs."""
        urls = {name: platform.url(name) for name in platform.services}
        api = Api(urls, client)
        world = World.new(Tokens())
        config = _Config(
            buyers=0,
            deal_units=units,
            per_buyer_cap=1,
            double_clickers=0,
            over_cap=0,
            split_over_cap=0,
            cancels=0,
            deal_stock=units,
            list_stock=1,
        )
        sale = _Sale(api, world, config, _Phases(lambda _: None, None))
        await sale.set_up_catalog()
        await sale.sign_agreement()
        await sale.go_live()
        if sale.watcher is not None:  # the demo's viewer following the chat feed: not needed here
            sale.watcher.cancel()
            await asyncio.gather(sale.watcher, return_exceptions=True)
        return cls(api, world, units, asyncio.Semaphore(connections))

    def key(self) -> tuple[str, str]:
        """A fresh (buyer, Idempotency-Key): every call is a new order."""
        n = self._next
        self._next += 1
        return self.world.buyer(n % self.buyer_pool), f"bench-{n}-{self.world.run}"

    async def order(self, buyer: str, key: str) -> tuple[str, int]:
        """POST one order of one unit; its id and the HTTP status (201 new, 200 a repeat)."""
        headers = {**self.world.as_viewer(buyer), "Idempotency-Key": key}
        body = {
            "sku_id": self.sku_id,
            "quantity": 1,
            "market": MARKET,
            "live_id": self.world.live_id,
            "payment_plan": {"method": "pix", "installments": 1},
        }
        async with self.sending:
            reply = await self.api.send("orders", "POST", "/orders", headers, body=body, retry_for=120)
        if reply.status_code not in (200, 201):
            raise SaleError(f"POST /orders → {reply.status_code}: {reply.text[:300]}")
        return str(reply.json()["order_id"]), reply.status_code

    async def stock(self) -> dict[str, Any]:
        stock: dict[str, Any] = await self.api.get(
            "catalog", f"/skus/{self.sku_id}/stock", self.world.as_staff()
        )
        return stock


def http_client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    # No pool timeout: under open-loop load requests queue for a connection, and that wait is
    # part of the latency measured, not an error.
    return httpx.AsyncClient(timeout=httpx.Timeout(120.0, pool=None), limits=limits)


@dataclass
class Ledger:
    """What the followed topics said, deduplicated by CloudEvents id (Kafka delivery is
    at-least-once: a redelivered event is not a duplicate; two events for one fact are)."""

    placed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    confirmed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    confirmed_units: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    accruals: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    accrued_hosts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def apply(self, ce_type: str, ce_id: str, data: dict[str, Any]) -> str:
        order_id = str(data["order_id"])
        if ce_type == PLACED:
            self.placed[order_id].add(ce_id)
        elif ce_type == CONFIRMED:
            self.confirmed[order_id].add(ce_id)
            self.confirmed_units[order_id] = int(data["line"]["quantity"])
        elif ce_type == REJECTED:
            self.rejected[order_id].add(ce_id)
        else:
            influencer = str(data["influencer_id"])
            self.accruals[(order_id, influencer)].add(ce_id)
            self.accrued_hosts[order_id].add(influencer)
        return order_id

    def decided(self, order_id: str) -> bool:
        return order_id in self.confirmed or order_id in self.rejected

    def duplicates(self) -> dict[str, int]:
        """Facts recorded more than once: two OrderPlaced for one order, two confirmations, two
        accruals for one (order, host)."""
        return {
            "duplicate_placed": sum(len(ids) - 1 for ids in self.placed.values()),
            "duplicate_decisions": sum(len(ids) - 1 for ids in self.confirmed.values())
            + sum(len(ids) - 1 for ids in self.rejected.values())
            + len(self.confirmed.keys() & self.rejected.keys()),
            "duplicate_accruals": sum(len(ids) - 1 for ids in self.accruals.values()),
        }


class Follower:
    """A plain confluent-kafka consumer (a thread) on the orders and commission topics, from
    their beginning; the event loop is told of each batch and wakes whoever waits on an order."""

    def __init__(self, bootstrap: str, group: str, hosts: int) -> None:
        self.ledger = Ledger()
        self._hosts = hosts
        self._bootstrap = bootstrap
        self._group = group
        self._decided: dict[str, asyncio.Future[None]] = {}
        self._accrued: dict[str, asyncio.Future[None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    async def __aenter__(self) -> Follower:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._consume, name="bench-follower", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    async def decided(self, order_id: str) -> None:
        """Once the order is confirmed or rejected (on the orders topic)."""
        if not self.ledger.decided(order_id):
            await self._wait(self._decided, order_id)

    async def accrued(self, order_id: str) -> None:
        """Once every host's CommissionAccrued for the order is on the commission topic."""
        if len(self.ledger.accrued_hosts.get(order_id, ())) < self._hosts:
            await self._wait(self._accrued, order_id)

    async def settle(self, order_ids: Iterable[str], *, accrued: bool, timeout: float) -> None:
        """Wait (bounded) until every order is decided — and, with ``accrued``, has its
        commission when confirmed; what is still missing then is counted by the caller."""
        waits = [self.decided(o) for o in order_ids]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*waits)
                if accrued:
                    await asyncio.gather(*(self.accrued(o) for o in order_ids if o in self.ledger.confirmed))

    async def _wait(self, waiters: dict[str, asyncio.Future[None]], order_id: str) -> None:
        if self._error is not None:
            raise RuntimeError("the topic follower failed") from self._error
        future = waiters.get(order_id)
        if future is None:
            future = waiters[order_id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(future)

    def _apply(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        ledger = self.ledger
        for ce_type, ce_id, data in batch:
            order_id = ledger.apply(ce_type, ce_id, data)
            if ce_type in (CONFIRMED, REJECTED):
                _wake(self._decided, order_id)
            elif ce_type == ACCRUED and len(ledger.accrued_hosts[order_id]) >= self._hosts:
                _wake(self._accrued, order_id)

    def _consume(self) -> None:
        assert self._loop is not None
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": self._group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        try:
            consumer.subscribe([OrderPlaced.contract.topic.name, CommissionAccrued.contract.topic.name])
            while not self._stop.is_set():
                batch = []
                for message in consumer.consume(1000, 0.05):
                    if message.error() is not None:
                        continue
                    raw = message.headers() or []
                    pairs = raw.items() if isinstance(raw, dict) else raw
                    headers = {key: _text(value) for key, value in pairs}
                    ce_type = headers.get("ce_type", "")
                    if ce_type in _FOLLOWED:
                        batch.append((ce_type, headers["ce_id"], orjson.loads(message.value() or b"{}")))
                if batch:
                    self._loop.call_soon_threadsafe(self._apply, batch)
        except BaseException as exc:  # reported to the waiters, which would otherwise hang
            self._error = exc
        finally:
            consumer.close()


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else value or ""


def _wake(waiters: dict[str, asyncio.Future[None]], order_id: str) -> None:
    future = waiters.pop(order_id, None)
    if future is not None and not future.done():
        future.set_result(None)


class Sampler:
    """Peak RSS per process, sampled every ``interval`` seconds while it runs."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._sample()

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self._interval)  # a sampling period, not a synchronisation

    def _sample(self) -> None:
        for name, mb in rss_mb(self.pids).items():
            self.peak[name] = max(self.peak[name], mb)
