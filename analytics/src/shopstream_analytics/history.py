"""The selected events of one or several stores, as one stream in (roughly) time order.

Each store is read in position order, a page ahead (the next page is fetched while the current
one is processed), and filtered; the stores' streams are merged by ``(occurred_at, service,
position)``. A store's own order is kept as is, so when its events are not in ``occurred_at``
order the merge is only nearly sorted, but every event comes exactly once. Memory is two pages
per store, whatever the length of the history.

``state()`` says, per store, the position up to which everything selected has been handed out:
an export saves it next to its output and a resumed read continues exactly after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic

from shopstream_eventstore import EventStore, RecordedEvent

from .selection import LiveTracker, Selection, SelectionError
from .sources import E, ReadRange, StoreRef, open_store, read_range

Progress = Callable[[int], None]
"""Called with the number of store positions just scanned (selected or not)."""

Run = tuple[str, list[E]]
"""Consecutive events of one service, in the merged order."""


class LiveNotFound(SelectionError):
    """No event of the read range names the live."""


class _Cursor(Generic[E]):
    """One store's selected events not yet handed out."""

    def __init__(
        self,
        ref: StoreRef,
        store: EventStore,
        selection: Selection,
        *,
        after: int,
        start: int,
        until: int,
        tracker: LiveTracker | None,
        page: int,
        progress: Progress | None,
        read: ReadRange[E],
    ) -> None:
        self.ref = ref
        self.after = after
        """Where the whole read began (a resumed read starts later, at ``start``)."""
        self.until = until
        self.scanned = start
        self.tracker = tracker
        self.pending: deque[E] = deque()
        self._selection = selection
        self._progress = progress
        self._pages = read(store, after=start, until=until, page=page)
        self._next: asyncio.Future[Sequence[E] | None] | None = None
        self._done = start >= until

    @property
    def safe(self) -> int:
        """Everything selected up to this position has been handed out."""
        return self.pending[0].position - 1 if self.pending else self.scanned

    def head_key(self) -> tuple[datetime, str, int]:
        first = self.pending[0]
        return first.metadata.occurred_at, self.ref.service, first.position

    async def fill(self) -> None:
        while not self.pending and not self._done:
            page = await self._next_page()
            if page is None:
                self._done = True
                self._report(self.until - self.scanned)
                self.scanned = self.until
                return
            self._take(page)

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            with contextlib.suppress(BaseException):
                await self._next
        if isinstance(self._pages, AsyncGenerator):
            await self._pages.aclose()

    async def _next_page(self) -> Sequence[E] | None:
        pending = self._next or asyncio.ensure_future(anext(self._pages, None))
        self._next = None
        page = await pending
        if page is not None:
            self._next = asyncio.ensure_future(anext(self._pages, None))
        return page

    def _take(self, page: Sequence[E]) -> None:
        takes, tracker = self._selection.takes, self.tracker
        if tracker is None:
            self.pending.extend(event for event in page if takes(event))
        else:
            # The tracker sees every event (inbox copies too): they tie orders to the live.
            self.pending.extend(event for event in page if tracker.belongs(event.data) and takes(event))
        last = page[-1].position
        self._report(last - self.scanned)
        self.scanned = last

    def _report(self, scanned: int) -> None:
        if self._progress is not None and scanned > 0:
            self._progress(scanned)


class History(Generic[E]):
    """Open with ``async with History(refs, selection, read_range) as history``, then iterate
    ``runs()``. ``read`` says how a store is read: ``read_range`` for ``RecordedEvent``s,
    ``sources.read_range_stored`` for ``StoredEvent``s."""

    def __init__(
        self,
        refs: Sequence[StoreRef],
        selection: Selection,
        read: ReadRange[E],
        *,
        resume: Mapping[str, Any] | None = None,
        page: int = 5_000,
        progress: Progress | None = None,
    ) -> None:
        if not refs:
            raise SelectionError("no store to read")
        self._refs = list(refs)
        self._selection = selection
        self._resume = resume or {}
        self._page = page
        self._progress = progress
        self._read = read
        self._stack = contextlib.AsyncExitStack()
        self._cursors: list[_Cursor[E]] = []

    async def __aenter__(self) -> History[E]:
        try:
            for ref in self._refs:
                store = await open_store(ref)
                self._stack.push_async_callback(store.close)
                self._cursors.append(await self._cursor(ref, store))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for cursor in self._cursors:
            await cursor.close()
        await self._stack.aclose()

    @property
    def to_scan(self) -> int:
        """Positions left to scan over every store (the length of a progress bar)."""
        return sum(cursor.until - cursor.scanned for cursor in self._cursors)

    async def runs(self) -> AsyncIterator[Run[E]]:
        """The selected events, merged, in runs of at most one page."""
        heap: list[tuple[tuple[datetime, str, int], int]] = []
        for index, cursor in enumerate(self._cursors):
            await cursor.fill()
            if cursor.pending:
                heap.append((cursor.head_key(), index))
        heapq.heapify(heap)
        while heap:
            _, index = heapq.heappop(heap)
            cursor = self._cursors[index]
            run = self._run(cursor, heap[0][0] if heap else None)
            yield cursor.ref.service, run
            if not cursor.pending:
                await cursor.fill()
            if cursor.pending:
                heapq.heappush(heap, (cursor.head_key(), index))
        self._check_live()

    def state(self) -> dict[str, Any]:
        """Per store: the read range and how far it has been handed out (JSON-able)."""
        return {
            cursor.ref.service: {
                "after": cursor.after,
                "until": cursor.until,
                "position": cursor.safe,
                "live": None if cursor.tracker is None else cursor.tracker.state(),
            }
            for cursor in self._cursors
        }

    async def _cursor(self, ref: StoreRef, store: EventStore) -> _Cursor[E]:
        selection = self._selection
        saved = self._resume.get(ref.service)
        if saved is not None:
            after, until, start = int(saved["after"]), int(saved["until"]), int(saved["position"])
        else:
            head = await store.head_position()
            after = start = selection.after
            until = head if selection.to_position is None else min(head, selection.to_position)
        tracker: LiveTracker | None = None
        if selection.live_id is not None:
            live = None if saved is None else saved.get("live")
            tracker = (
                LiveTracker(selection.live_id)
                if live is None
                else LiveTracker.restore(selection.live_id, live)
            )
        return _Cursor(
            ref,
            store,
            selection,
            after=after,
            start=start,
            until=until,
            tracker=tracker,
            page=self._page,
            progress=self._progress,
            read=self._read,
        )

    def _run(self, cursor: _Cursor[E], bound: tuple[datetime, str, int] | None) -> list[E]:
        pending, limit = cursor.pending, self._page
        if bound is None:
            count = min(len(pending), limit)
            return [pending.popleft() for _ in range(count)]
        run = [pending.popleft()]
        service = cursor.ref.service
        while pending and len(run) < limit:
            head = pending[0]
            if (head.metadata.occurred_at, service, head.position) > bound:
                break
            run.append(pending.popleft())
        return run

    def _check_live(self) -> None:
        live = self._selection.live_id
        if live is not None and not any(c.tracker is not None and c.tracker.mentioned for c in self._cursors):
            stores = ", ".join(cursor.ref.service for cursor in self._cursors)
            raise LiveNotFound(f"no event names live {live!r} (read: {stores})")


async def count_to_scan(refs: Sequence[StoreRef], selection: Selection) -> int:
    """The store positions a read of ``selection`` goes over (a progress bar's length)."""
    history: History[RecordedEvent] = History(refs, selection, read_range)
    async with history:
        return history.to_scan
