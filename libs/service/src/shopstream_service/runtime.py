"""One service process: HTTP API, outbox relay, inbox, projections, policies and tickers, all
on one event loop over the service's own store.

A service describes itself with a ``ServiceSpec`` (built in its ``bootstrap.py``, the only
place that reads configuration); ``ServiceRuntime`` opens the store named by the settings,
wires everything and runs it until SIGTERM, when it stops accepting requests, cancels the
background work and closes the store. Every piece is restartable from its checkpoint, so a
kill -9 at any moment loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import uvloop
from fastapi import APIRouter

from shopstream_contracts import REGISTRY
from shopstream_eventstore import EventStore
from shopstream_messaging.pipeline import run_inbox, run_relay
from shopstream_observability import configure_logging, get_logger
from shopstream_processing import (
    IssuedCommand,
    Policy,
    PolicyRunner,
    Projection,
    ProjectionRunner,
    ReadModelDb,
)

from .auth import TokenVerifier
from .clock import Clock, ControlledClock, SystemClock
from .commands import CommandHandler
from .domain import InternalEvent
from .events import EventCatalog
from .http import ProjectionLagging, create_app
from .settings import ServiceSettings

log = get_logger(__name__)

STOP_TIMEOUT = 15.0
"""Seconds background work gets to end once cancelled on stop."""

PolicyHandler = Callable[[IssuedCommand[Any]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PolicyBinding:
    policy: Policy[Any]
    handle: PolicyHandler


@dataclass(frozen=True, slots=True)
class Ticker:
    """Clock-driven work (a deal's deadline, a holdback's end): ``tick`` runs every ``interval``
    seconds and must be idempotent (it issues commands with deterministic ids)."""

    name: str
    interval: float
    tick: Callable[[ServiceContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    routers: Sequence[APIRouter] = ()
    consumes: Sequence[str] = ()
    """Kafka topics whose events the inbox stores in this service's own store."""
    internal_events: Sequence[type[InternalEvent]] = ()
    projections: Sequence[Projection] = ()
    policies: Callable[[ServiceContext], Sequence[PolicyBinding]] = lambda _: ()
    tickers: Sequence[Ticker] = ()


@dataclass
class ServiceContext:
    """What an API route, a policy handler or a ticker of the service works with."""

    name: str
    settings: ServiceSettings
    store: EventStore
    readmodel: ReadModelDb
    handler: CommandHandler
    clock: Clock
    catalog: EventCatalog
    token_verifier: TokenVerifier
    projections: dict[str, ProjectionRunner] = field(default_factory=dict)
    policies: dict[str, PolicyRunner[Any]] = field(default_factory=dict)
    kafka_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _caught_up: set[str] = field(default_factory=set)

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Read-your-writes: return once every projection has applied the store up to ``position``;
        ``ProjectionLagging`` (HTTP 503) when one has not within ``timeout``."""
        if position <= 0:
            return
        try:
            await asyncio.gather(
                *(runner.wait_until(position, timeout) for runner in self.projections.values())
            )
        except TimeoutError:
            raise ProjectionLagging(position, timeout) from None

    async def readiness(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        try:
            head = await self.store.head_position()
            checks["store"] = {"ok": True, "head": head}
        except Exception as exc:
            return {"store": {"ok": False, "error": str(exc)}}
        checks["kafka"] = {"ok": self.kafka_ready.is_set()}
        for name, runner in self.projections.items():
            lag = head - runner.position
            if lag <= 0:
                self._caught_up.add(name)
            # Ready once loaded and caught up after start; a busy projection a few events behind
            # stays ready.
            ok = runner.loaded.is_set() and name in self._caught_up and runner.failures == 0
            checks[f"projection:{name}"] = {"ok": ok, "lag": lag, "failures": runner.failures}
        for name, policy in self.policies.items():
            checks[f"policy:{name}"] = {"ok": policy.failures == 0, "failures": policy.failures}
        return checks


async def open_stores(
    url: str, service: str, readmodel_url: str | None = None
) -> tuple[EventStore, ReadModelDb]:
    """The event store a URL names and the read-model database for its projections.

    ``sqlite:///<path>`` and ``postgresql://…`` hold both (a schema per service on PostgreSQL);
    ``kurrentdb://…`` holds only events (streams prefixed by the service name), so its read
    models need ``readmodel_url`` (PostgreSQL or SQLite).
    """
    if url.startswith("sqlite:///"):
        from shopstream_eventstore.sqlite import SqliteEventStore

        store: EventStore = await SqliteEventStore.open(url.removeprefix("sqlite:///"))
    elif url.startswith(("postgresql://", "postgres://")):
        from shopstream_eventstore.postgres import PostgresEventStore

        store = await PostgresEventStore.open(url, service)
    elif url.startswith(("kurrentdb://", "kurrentdb+discover://", "esdb://", "esdb+discover://")):
        from shopstream_eventstore.kurrentdb import KurrentDBEventStore

        if readmodel_url is None:
            raise ValueError("a KurrentDB store holds only events: set SHOPSTREAM_READMODEL_URL too")
        store = await KurrentDBEventStore.open(url, prefix=service)
    else:
        raise ValueError(
            f"unsupported store URL {url!r}: use sqlite:///<path>, postgresql://… or kurrentdb://…"
        )
    return store, await open_readmodel(readmodel_url or url, service)


async def open_readmodel(url: str, service: str) -> ReadModelDb:
    if url.startswith("sqlite:///"):
        from shopstream_processing.sqlite import SqliteReadModel

        return await SqliteReadModel.open(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from shopstream_processing.postgres import PostgresReadModel

        return await PostgresReadModel.open(url, f"{service}_read")
    raise ValueError(f"unsupported read-model URL {url!r}: use sqlite:///<path> or postgresql://…")


class ServiceRuntime:
    def __init__(self, spec: ServiceSpec, settings: ServiceSettings, clock: Clock | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.clock = clock or (ControlledClock() if settings.clock_control else SystemClock())
        self._tasks: list[asyncio.Task[Any]] = []
        self._server: uvicorn.Server | None = None
        self.context: ServiceContext | None = None

    async def start(self) -> ServiceContext:
        spec, settings = self.spec, self.settings
        store, readmodel = await open_stores(
            settings.store_url_for(spec.name), spec.name, settings.readmodel_url_for(spec.name)
        )
        catalog = EventCatalog(spec.internal_events)
        context = ServiceContext(
            name=spec.name,
            settings=settings,
            store=store,
            readmodel=readmodel,
            handler=CommandHandler(store, catalog, self.clock, service=spec.name),
            clock=self.clock,
            catalog=catalog,
            token_verifier=TokenVerifier(
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                secret=settings.jwt_secret,
                public_key=settings.jwt_public_key,
            ),
        )
        self.context = context
        for projection in spec.projections:
            context.projections[projection.name] = ProjectionRunner(
                store, readmodel, projection, service=spec.name
            )
        for binding in spec.policies(context):
            context.policies[binding.policy.name] = PolicyRunner(
                store, binding.policy, binding.handle, service=spec.name
            )

        self._spawn("relay", run_relay(store, settings.kafka_bootstrap, spec.name, REGISTRY))
        if spec.consumes:
            self._spawn(
                "inbox",
                run_inbox(
                    store,
                    settings.kafka_bootstrap,
                    spec.name,
                    REGISTRY,
                    spec.consumes,
                    group_id=settings.consumer_group,
                    started=context.kafka_ready,
                ),
            )
        else:
            context.kafka_ready.set()
        for name, runner in context.projections.items():
            self._spawn(f"projection:{name}", runner.run())
        for name, policy in context.policies.items():
            self._spawn(f"policy:{name}", policy.run())
        for ticker in spec.tickers:
            self._spawn(f"ticker:{ticker.name}", self._tick(ticker, context))
        # Serve only once every projection has its tables and every policy its checkpoint.
        runners = [*context.projections.values(), *context.policies.values()]
        await asyncio.gather(*(runner.wait_loaded(60) for runner in runners))

        # What start-up built (modules, models, the app) lives as long as the process: keep it out
        # of the collector's generations so its passes scan only the objects work creates.
        gc.freeze()
        app = create_app(spec.name, context, list(spec.routers))
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        serving = self._spawn("http", self._server.serve())
        while not self._server.started:
            if serving.done():
                serving.result()
                raise RuntimeError(f"{spec.name}: the HTTP server stopped while starting")
            await asyncio.sleep(0.02)
        log.info("service.started", service=spec.name, port=settings.http_port)
        return context

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in reversed(self._tasks):
            task.cancel()
        if self._tasks:
            # Bounded: a task that ignores its cancellation must not keep the stores open (and
            # the process alive) forever; name it so the log says what hung.
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            if stuck:
                log.error("service.stop_tasks_stuck", tasks=sorted(task.get_name() for task in stuck))
        self._tasks.clear()
        if self.context is not None:
            await self.context.readmodel.close()
            await self.context.store.close()
            self.context = None

    async def run_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def _spawn(self, name: str, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(job, name=f"{self.spec.name}:{name}")
        task.add_done_callback(self._report_exit)
        self._tasks.append(task)
        return task

    @staticmethod
    def _report_exit(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("service.task_failed", task=task.get_name(), exc_info=task.exception())

    async def _tick(self, ticker: Ticker, context: ServiceContext) -> None:
        while True:
            await asyncio.sleep(ticker.interval)
            try:
                await ticker.tick(context)
            except Exception:
                # The next tick retries: tick work is idempotent by construction.
                log.exception("service.tick_failed", ticker=ticker.name)


def main(build: Callable[[ServiceSettings], ServiceSpec]) -> None:
    """Entry point of ``python -m shopstream_<service>``."""
    settings = ServiceSettings()
    spec = build(settings)
    configure_logging(spec.name, settings.log_level)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(ServiceRuntime(spec, settings).run_until_signalled())
