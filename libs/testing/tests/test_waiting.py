from __future__ import annotations

import itertools

import pytest

from shopstream_testing.waiting import WaitTimeout, wait_until, wait_until_async

pytestmark = pytest.mark.unit


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "done", timeout=1, interval=0) == "done"


def test_times_out_with_the_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"queue drained not met within 0.05s \(last value: 0\)"):
        wait_until(lambda: 0, timeout=0.05, interval=0.01, message="queue drained")


def test_ignored_errors_count_as_not_yet() -> None:
    calls = itertools.count()

    def flaky() -> bool:
        if next(calls) < 2:
            raise ConnectionRefusedError
        return True

    assert wait_until(flaky, timeout=1, interval=0, ignore=(ConnectionRefusedError,))
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, timeout=1)


async def test_async_accepts_sync_and_async_predicates() -> None:
    counter = itertools.count()

    async def reached() -> int:
        return max(0, next(counter) - 2)

    assert await wait_until_async(reached, timeout=1, interval=0) == 1
    assert await wait_until_async(lambda: "sync", timeout=1) == "sync"

    async def refused() -> bool:
        raise ConnectionRefusedError

    with pytest.raises(WaitTimeout, match="last error: ConnectionRefusedError"):
        await wait_until_async(refused, timeout=0.05, interval=0.01, ignore=(ConnectionRefusedError,))
