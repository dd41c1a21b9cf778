"""Group commit: concurrent appends share one transaction (and one fsync).

Every unit (one ``append``, one ``append_many``, or each request of one ``append_each``) is
decided on its own (``_planning``), so a conflict fails that unit alone while the others commit
together. A store with 64 concurrent writers therefore pays for a handful of commits instead of
64, and an ``append_each`` of 1,000 requests for one.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ._catchup import AppendSignal
from .errors import DuplicateEventId, EventStoreError, WrongExpectedVersion
from .model import AppendRequest, AppendResult, ExpectedVersion, NewEvent, StreamState


@dataclass(slots=True, eq=False)
class PendingUnit:
    requests: Sequence[AppendRequest]
    results: list[AppendResult] | None = None
    error: BaseException | None = None


@dataclass(slots=True, eq=False)
class _Submission:
    """What one caller submitted: one unit (``append``, ``append_many``) or one per request
    (``append_each``), and one future for all of them, set once every unit is decided."""

    units: list[PendingUnit]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


WriteGroup = Callable[[list[PendingUnit]], Awaitable[list[PendingUnit]]]
"""Writes a group in one transaction, filling each unit's ``results`` or ``error``, and returns
the units it deferred to the next group (neither written nor failed). If it raises, nothing of
the group was committed."""


class GroupCommitter:
    def __init__(self, write_group: WriteGroup, max_group: int = 256) -> None:
        self._write_group = write_group
        self._max_group = max_group
        """Submissions (callers) per group; one submission may hold many units."""
        self._queue: asyncio.Queue[_Submission] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.on_commit: Callable[[], None] = lambda: None

    async def submit(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """One unit: every request is written or none is."""
        unit = PendingUnit(requests)
        await self._submit([unit])
        if unit.error is not None:
            raise unit.error
        assert unit.results is not None
        return unit.results

    async def submit_each(self, requests: Sequence[AppendRequest]) -> list[PendingUnit]:
        """One unit per request, decided one by one and written in the same group when they can
        be: each returned unit holds its ``results`` or its ``error``."""
        units = [PendingUnit((request,)) for request in requests]
        await self._submit(units)
        return units

    async def _submit(self, units: list[PendingUnit]) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="event-store-group-commit")
        submission = _Submission(units)
        await self._queue.put(submission)
        await submission.done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        deferred: list[PendingUnit] = []
        waiting: list[_Submission] = []
        """The submissions that own ``deferred`` units (and units decided already)."""
        while True:
            fresh = [] if deferred else [await self._queue.get()]
            while len(waiting) + len(fresh) < self._max_group and not self._queue.empty():
                fresh.append(self._queue.get_nowait())
            submissions = waiting + fresh
            # Deferred units lead the group in their order, then every fresh unit in its order.
            group = deferred + [unit for submission in fresh for unit in submission.units]
            try:
                deferred = await self._write_group(group)
            except BaseException as exc:
                deferred, waiting = [], []
                for submission in submissions:
                    if not submission.done.done():
                        submission.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.on_commit()
            if deferred:
                undecided = set(deferred)
                waiting = [s for s in submissions if not undecided.isdisjoint(s.units)]
            else:
                waiting = []
            for submission in submissions:
                if submission not in waiting and not submission.done.done():
                    submission.done.set_result(None)


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

    async def append_each(self, requests: Sequence[AppendRequest]) -> list[AppendResult | EventStoreError]:
        if not requests:
            return []
        units = await self._committer.submit_each(requests)
        outcomes: list[AppendResult | EventStoreError] = []
        for unit in units:
            if unit.error is not None:
                if not isinstance(unit.error, WrongExpectedVersion | DuplicateEventId):
                    raise unit.error
                outcomes.append(unit.error)
            else:
                assert unit.results is not None
                outcomes.append(unit.results[0])
        return outcomes

    @abstractmethod
    async def _write_group(self, group: list[PendingUnit]) -> list[PendingUnit]: ...
