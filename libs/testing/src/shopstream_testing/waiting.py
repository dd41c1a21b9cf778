"""Wait for a condition with a deadline, instead of sleeping a fixed time and hoping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline; an AssertionError, so pytest reports a failure."""


def _timeout_error(
    message: str | None, timeout: float, last: object, error: BaseException | None
) -> WaitTimeout:
    what = message or "condition"
    detail = f"last error: {error!r}" if error is not None else f"last value: {last!r}"
    return WaitTimeout(f"{what} not met within {timeout:g}s ({detail})")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Call `predicate` until it returns something truthy, and return that; WaitTimeout after `timeout` s.

    Exceptions listed in `ignore` count as "not yet" (e.g. ConnectionRefusedError while a server starts).
    The predicate is always tried once more at the deadline, so a slow last interval cannot cause a miss.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        expired = time.monotonic() >= deadline
        try:
            value = predicate()
        except ignore as exc:
            error = exc
        else:
            error = None
            if value:
                return value
            last = value
        if expired:
            raise _timeout_error(message, timeout, last, error)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


@overload
async def wait_until_async(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
    ignore: tuple[type[Exception], ...] = (),
) -> T: ...


@overload
async def wait_until_async(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
    ignore: tuple[type[Exception], ...] = (),
) -> T: ...


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """`wait_until` for async code: the predicate may be sync or async; the event loop keeps running."""
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        expired = time.monotonic() >= deadline
        try:
            result = predicate()
            value = await result if inspect.isawaitable(result) else result
        except ignore as exc:
            error = exc
        else:
            error = None
            if value:
                return value
            last = value
        if expired:
            raise _timeout_error(message, timeout, last, error)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
