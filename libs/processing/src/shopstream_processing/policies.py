"""Policies: an event in the local store ⇒ command(s), each with an id derived from the event.

The command id is ``uuid5(namespace, "<policy>/<event id>/<n>")``, so processing an event again
(after a crash, a restart or a deliberate replay) issues the same command ids, and the command
handler, which appends its events under ids derived from the command id, makes the second
attempt a no-op in the event store. The policy's checkpoint is saved only after every command
of the batch returned, i.e. after their effects are durable: at-least-once dispatch plus
idempotent handling is an exactly-once effect.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID, uuid5

from shopstream_eventstore import EventMetadata, EventStore, RecordedEvent
from shopstream_observability import event_context
from shopstream_observability.metrics import BATCH_SECONDS, POLICY_LAG

from .supervision import Backoff, EventProcessingFailed, FollowingRunner, Supervisor

POLICY_NAMESPACE = UUID("6f1c0e52-8a4b-5d0e-9a37-3f2c1b7d9e10")
"""Fixed forever: changing it would make every replayed command look new."""

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


def command_id(policy: str, event_id: UUID, index: int = 0) -> UUID:
    """The id of the ``index``-th command ``policy`` issues for the event ``event_id``."""
    return uuid5(POLICY_NAMESPACE, f"{policy}/{event_id}/{index}")


class Policy(Protocol[C_co]):
    @property
    def name(self) -> str:
        """Stable forever: it names the checkpoint and seeds every command id."""
        ...

    def react(self, event: RecordedEvent) -> Sequence[C_co]:
        """The commands this event calls for, in a stable order (the order numbers the ids).
        Pure: no I/O, no clock; most events call for none."""
        ...


@dataclass(frozen=True, slots=True)
class IssuedCommand(Generic[C]):
    command: C
    command_id: UUID
    cause: RecordedEvent

    def event_id(self, index: int = 0) -> UUID:
        """The id of the handler's ``index``-th resulting event: the command id itself for the
        first, so a command with one event is deduplicated by the store on that id."""
        return self.command_id if index == 0 else uuid5(self.command_id, str(index))

    def metadata(self, occurred_at: datetime) -> EventMetadata:
        """Metadata for the resulting events: caused by the event, in its correlation."""
        cause = self.cause
        return EventMetadata(
            occurred_at=occurred_at,
            correlation_id=cause.metadata.correlation_id or str(cause.event_id),
            causation_id=str(cause.event_id),
        )


CommandHandler = Callable[[IssuedCommand[C]], Awaitable[object]]
"""Executes a command and returns once its effect is durable. It must be idempotent by command
id (append under ``issued.event_id(n)``), and a business refusal is an event, not an exception:
an exception means "not done, try again"."""


class PolicyRunner(FollowingRunner, Generic[C]):
    def __init__(
        self,
        store: EventStore,
        policy: Policy[C],
        handle: CommandHandler[C],
        *,
        service: str,
        batch_size: int = 100,
        backoff: Backoff | None = None,
    ) -> None:
        self._checkpoint = f"policy:{policy.name}"
        super().__init__(store, Supervisor(service, self._checkpoint, backoff or Backoff()))
        self._policy = policy
        self._handle = handle
        self._service = service
        self._batch_size = batch_size

    async def _follow(self) -> None:
        position = await self._store.get_checkpoint(self._checkpoint)
        self._progress.advance(position)
        self.loaded.set()
        async for batch in self._store.subscribe(position, self._batch_size):
            started = time.perf_counter()
            for event in batch:
                await self._react(event)
            await self._store.save_checkpoint(self._checkpoint, batch[-1].position)
            self._progress.advance(batch[-1].position)
            self._supervisor.succeeded()
            BATCH_SECONDS.labels(self._service, "policy").observe(time.perf_counter() - started)
            POLICY_LAG.labels(self._service, self._policy.name).set(await self.lag())

    async def _react(self, event: RecordedEvent) -> None:
        meta = event.metadata
        with event_context(
            str(event.event_id), meta.correlation_id, meta.causation_id, policy=self._policy.name
        ):
            try:
                for index, command in enumerate(self._policy.react(event)):
                    await self._handle(
                        IssuedCommand(command, command_id(self._policy.name, event.event_id, index), event)
                    )
            except Exception as exc:
                raise EventProcessingFailed(self._checkpoint, event) from exc
