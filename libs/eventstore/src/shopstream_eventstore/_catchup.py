"""Catch-up subscription shared by the SQL adapters.

Global positions become readable in commit order (each adapter guarantees it), so following
the store is "read after the last position seen, then wait for more": it can neither skip nor
repeat. Waiting is woken by an in-process signal from this store's own appends, by a backend
notification where one exists, and otherwise by a short poll, so appends made by another
process are seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar


class _Positioned(Protocol):
    @property
    def position(self) -> int: ...


E = TypeVar("E", bound=_Positioned)


class AppendSignal:
    """A generation counter: waiters compare against the generation they saw before reading,
    so an append that lands between their read and their wait is never missed."""

    def __init__(self) -> None:
        self._generation = 0
        self._changed = asyncio.Event()

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        self._generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_past(self, generation: int, timeout: float) -> None:
        if self._generation != generation:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


async def follow(
    read_all: Callable[[int, int], Awaitable[list[E]]],
    signal: AppendSignal,
    after_position: int,
    batch_size: int,
    poll_interval: float,
) -> AsyncIterator[list[E]]:
    position = after_position
    while True:
        seen = signal.generation
        batch = await read_all(position, batch_size)
        if batch:
            position = batch[-1].position
            yield batch
            continue
        await signal.wait_past(seen, poll_interval)
