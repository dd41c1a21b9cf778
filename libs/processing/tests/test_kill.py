"""kill -9 a real runner process mid-stream, again and again, while events keep coming: the
result must equal an uninterrupted run (projection) and every command must act once (policy)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from shopstream_processing import ProjectionRunner

from .conftest import Backend
from .stockdemo import StockProjection, expected_stock
from .test_policies import assert_one_reservation_per_order, place_orders, reservations
from .test_projections import append_stock, caught_up, everything, running, stock_rows

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WORKER = Path(__file__).with_name("stockdemo.py")
KILLS = 8
KILL_JITTER = random.Random(20261125)


class Worker:
    """``stockdemo.py`` as a child process; its ``position N`` lines are followed as they come."""

    def __init__(self, mode: str, target: Sequence[str], log: Path) -> None:
        self.args = [str(WORKER), mode, *target]
        self.log = log
        self.position = -1
        self._moved = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.position = -1
        with self.log.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.args,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._reader = asyncio.create_task(self._follow(self._proc))

    async def _follow(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            self.position = int(line.split()[1])
            self._moved.set()
            self._moved = asyncio.Event()

    async def reach(self, position: int, timeout: float = 60) -> int:
        """Wait until this incarnation reports a checkpoint at or past ``position``."""
        try:
            async with asyncio.timeout(timeout):
                while self.position < position:
                    assert self._reader is not None
                    if self._reader.done():
                        raise AssertionError(f"worker exited:\n{self.log.read_text()[-3000:]}")
                    moved = asyncio.create_task(self._moved.wait())
                    await asyncio.wait([self._reader, moved], return_when=asyncio.FIRST_COMPLETED)
                    moved.cancel()
        except TimeoutError:
            raise AssertionError(
                f"worker stuck at {self.position}:\n{self.log.read_text()[-3000:]}"
            ) from None
        return self.position

    async def kill9_soon(self) -> None:
        """SIGKILL a few milliseconds from now: a random point of the runner's cycle (reading,
        applying, committing, between two commits) rather than always right after a commit."""
        await asyncio.sleep(KILL_JITTER.uniform(0, 0.02))
        await self.kill9()

    async def kill9(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.wait()
        if self._reader is not None:
            await self._reader


@asynccontextmanager
async def worker(mode: str, backend: Backend, log: Path) -> AsyncIterator[Worker]:
    child = Worker(mode, backend.worker_target, log)
    try:
        yield child
    finally:
        await child.kill9()


async def test_projection_killed_mid_stream_equals_an_uninterrupted_run(
    backend: Backend, tmp_path: Path
) -> None:
    store = backend.store
    await append_stock(store, 1500, seed=10, per_append=3)
    async with worker("projection", backend, tmp_path / "worker.log") as child:
        appending = asyncio.create_task(append_stock(store, 1500, seed=11, per_append=3))
        killed_at = 0
        for _ in range(KILLS):
            await child.start()
            killed_at = await child.reach(killed_at + 100)
            await child.kill9_soon()
        await appending
        await child.start()
        await child.reach(await store.head_position())
        await child.kill9()

    db = await backend.db()
    killed = await ProjectionRunner(store, db, StockProjection(), service="test").checksum()
    assert await stock_rows(db) == expected_stock(await everything(store))
    uninterrupted = ProjectionRunner(
        store, await backend.db("uninterrupted"), StockProjection(), service="test"
    )
    async with running(uninterrupted):
        await caught_up(uninterrupted, store)
    assert await uninterrupted.checksum() == killed


async def test_policy_killed_mid_stream_acts_once_per_event(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    await place_orders(store, 600, seed=12)
    async with worker("policy", backend, tmp_path / "worker.log") as child:
        placing = asyncio.create_task(place_orders(store, 300, seed=13))
        killed_at = 0
        for _ in range(KILLS):
            await child.start()
            killed_at = await child.reach(killed_at + 50)
            await child.kill9_soon()
        orders = await placing
        await child.start()
        await child.reach(orders[-1].position)
        await child.kill9()
    assert_one_reservation_per_order(orders, await reservations(store))
