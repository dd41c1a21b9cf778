"""Group commit: concurrent appends share one transaction (and one fsync).

Every caller's unit (one ``append`` or one ``append_many``) is decided on its own
(``_planning``), so a conflict fails that caller alone while the others commit together. A
store with 64 concurrent writers therefore pays for a handful of commits instead of 64.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ._catchup import AppendSignal
from .model import AppendRequest, AppendResult, ExpectedVersion, NewEvent, StreamState


@dataclass(slots=True, eq=False)
class PendingUnit:
    requests: Sequence[AppendRequest]
    done: asyncio.Future[list[AppendResult]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    results: list[AppendResult] | None = None
    error: BaseException | None = None


WriteGroup = Callable[[list[PendingUnit]], Awaitable[list[PendingUnit]]]
"""Writes a group in one transaction, filling each unit's ``results`` or ``error``, and returns
the units it deferred to the next group (neither written nor failed). If it raises, nothing of
the group was committed."""


class GroupCommitter:
    def __init__(self, write_group: WriteGroup, max_group: int = 256) -> None:
        self._write_group = write_group
        self._max_group = max_group
        self._queue: asyncio.Queue[PendingUnit] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.on_commit: Callable[[], None] = lambda: None

    async def submit(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="event-store-group-commit")
        unit = PendingUnit(requests)
        await self._queue.put(unit)
        return await unit.done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        deferred: list[PendingUnit] = []
        while True:
            group = deferred or [await self._queue.get()]
            while len(group) < self._max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                deferred = await self._write_group(group)
            except BaseException as exc:
                deferred = []
                for unit in group:
                    if not unit.done.done():
                        unit.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.on_commit()
            for unit in group:
                if unit.done.done() or unit in deferred:
                    continue
                if unit.error is not None:
                    unit.done.set_exception(unit.error)
                else:
                    assert unit.results is not None
                    unit.done.set_result(unit.results)


class GroupCommitStore(ABC):
    """The append half of a SQL store: every append goes through one group committer, whose
    commits wake the store's subscriptions."""

    def __init__(self) -> None:
        self._signal = AppendSignal()
        self._committer = GroupCommitter(self._write_group)
        self._committer.on_commit = self._signal.notify

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        (result,) = await self._committer.submit([AppendRequest(stream_id, events, expected_version)])
        return result

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not requests:
            return []
        return await self._committer.submit(requests)

    @abstractmethod
    async def _write_group(self, group: list[PendingUnit]) -> list[PendingUnit]: ...
