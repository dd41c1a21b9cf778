"""What projection and policy runners share: progress that can be awaited, and retry with backoff."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shopstream_eventstore import EventStore, RawEvent, RecordedEvent
from shopstream_observability import get_logger
from shopstream_observability.metrics import PROCESSING_FAILURES

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        return min(self.maximum, self.initial * self.factor ** max(0, failures - 1))


class EventProcessingFailed(Exception):
    """A runner could not process this event. Retried forever, never skipped: events in the local
    store are facts, so one that cannot be processed is a bug to fix and deploy, not data to drop."""

    def __init__(self, runner: str, event: RecordedEvent | RawEvent) -> None:
        self.runner = runner
        self.event = event
        super().__init__(
            f"{runner}: event {event.event_id} ({event.type} v{event.data_version}, "
            f"{event.stream_id}@{event.stream_version}, position {event.position}) failed"
        )


class Progress:
    """A checkpoint that callers can wait on (read-your-writes) without polling."""

    def __init__(self) -> None:
        self._position = 0
        self._advanced = asyncio.Event()

    @property
    def position(self) -> int:
        return self._position

    def advance(self, position: int) -> None:
        if position <= self._position:
            return
        self._position = position
        # Waking every waiter with a fresh event per step: each re-checks its own target.
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait_until(self, position: int, timeout: float) -> None:
        """Return once the checkpoint is at or past ``position``; ``TimeoutError`` after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while self._position < position:
                await self._advanced.wait()


class Supervisor:
    """Runs a runner's loop forever: logs every failure loudly, backs off, starts the loop again
    (which re-reads the checkpoint, so nothing is skipped or applied twice)."""

    def __init__(self, service: str, runner: str, backoff: Backoff) -> None:
        self.service = service
        self.runner = runner
        self.backoff = backoff
        self.failures = 0
        self.last_error: BaseException | None = None

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = None

    async def run_forever(self, loop: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop()
            except Exception as exc:
                self.failures += 1
                self.last_error = exc
                PROCESSING_FAILURES.labels(self.service, self.runner).inc()
                delay = self.backoff.delay(self.failures)
                fields: dict[str, Any] = {}
                if isinstance(exc, EventProcessingFailed):
                    event = exc.event
                    fields = {
                        "event_id": str(event.event_id),
                        "event_type": event.type,
                        "stream_id": event.stream_id,
                        "position": event.position,
                    }
                log.error(
                    "processing.failed",
                    runner=self.runner,
                    failures=self.failures,
                    retry_in=delay,
                    exc_info=exc,
                    **fields,
                )
                await asyncio.sleep(delay)


class FollowingRunner(ABC):
    """What every runner that follows the store from a checkpoint offers: progress, health
    and lag, and a ``run`` that never gives up (``_follow`` is restarted after a failure)."""

    def __init__(self, store: EventStore, supervisor: Supervisor) -> None:
        self._store = store
        self._progress = Progress()
        self._supervisor = supervisor
        self.loaded = asyncio.Event()
        """Set once the runner has read its checkpoint (and a projection has its tables): before
        that, readers of its tables may find none."""

    @property
    def position(self) -> int:
        """The checkpoint as this runner last saw it."""
        return self._progress.position

    @property
    def failures(self) -> int:
        """Consecutive failed attempts (0 when healthy): for health checks and alerts."""
        return self._supervisor.failures

    @property
    def last_error(self) -> BaseException | None:
        return self._supervisor.last_error

    async def run(self) -> None:
        """Follow the store forever (until cancelled), retrying failures."""
        await self._supervisor.run_forever(self._follow)

    async def wait_until(self, position: int, timeout: float) -> None:
        """Read-your-writes: return once every event up to ``position`` has taken effect."""
        await self._progress.wait_until(position, timeout)

    async def lag(self) -> int:
        return await self._store.head_position() - self._progress.position

    async def wait_loaded(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self.loaded.wait()

    @abstractmethod
    async def _follow(self) -> None: ...
