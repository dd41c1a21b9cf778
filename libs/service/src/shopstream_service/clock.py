"""The injected clock. Deciders never read time; handlers and tickers ask a ``Clock``.

``ControlledClock`` lets tests and the demo move time (a flash deal's deadline, a commission
holdback) without waiting; a service exposes it only when ``clock_control`` is configured.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ControlledClock:
    """The system clock shifted by an offset that only moves forward."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("time only moves forward")
        self.offset += by
        return self.now()
