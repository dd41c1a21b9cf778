"""The audience of one live, tallied per time window from viewers' heartbeats.

Viewers' players send a heartbeat every few seconds (with the likes tapped since the last one).
Storing each of those would be one event per tap; instead this tally folds them into one
``AudienceWindow`` per window, which the service records as ``AudienceSampled``.

A viewer counts as connected from a heartbeat at ``h`` until ``h + presence_ttl`` (exclusive),
extended by every further heartbeat; a heartbeat from a viewer who is not connected is a join.
Per window ``[start, end)``:

- ``concurrent_viewers``: viewers connected at ``end`` (a heartbeat at ``end`` belongs to the
  next window);
- ``peak_concurrent_viewers``: most viewers connected at any instant of the window, hence never
  below the closing ``concurrent_viewers`` nor below the opening count;
- ``joins`` and ``likes``: those that happened within the window.

Windows are aligned on multiples of ``window`` since the Unix epoch (so windows of different
lives line up), except the first, which starts when the tally opens (the live's start).
Pure: times come in with each call, nothing reads a clock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AudienceWindow:
    window_start: datetime
    window_end: datetime
    concurrent_viewers: int
    peak_concurrent_viewers: int
    joins: int
    likes: int


class AudienceTally:
    def __init__(self, opened_at: datetime, *, window: timedelta, presence_ttl: timedelta) -> None:
        if window <= timedelta(0) or presence_ttl <= timedelta(0):
            raise ValueError("window and presence_ttl must be positive")
        self._window = window
        self._ttl = presence_ttl
        self._present_until: dict[str, datetime] = {}
        # Expiry times, possibly stale (a later heartbeat moved the viewer's expiry): an entry
        # counts only if it still matches _present_until, which keeps each heartbeat O(log n).
        self._expiries: list[tuple[datetime, str]] = []
        self._start = opened_at
        self._end = self._boundary_after(opened_at)
        self._peak = 0
        self._joins = 0
        self._likes = 0

    @property
    def window_start(self) -> datetime:
        """Start of the window still open."""
        return self._start

    @property
    def connected(self) -> int:
        return len(self._present_until)

    def heartbeat(self, viewer_id: str, at: datetime, likes: int = 0) -> list[AudienceWindow]:
        """Counts the viewer as connected from ``at``; returns the windows that closed before it."""
        if likes < 0:
            raise ValueError("likes cannot be negative")
        # A heartbeat stamped before the open window (a clock stepping back) counts in it.
        at = max(at, self._start)
        closed = self.close_until(at)
        self._expire(at)
        if viewer_id not in self._present_until:
            self._joins += 1
            self._peak = max(self._peak, len(self._present_until) + 1)
        until = at + self._ttl
        self._present_until[viewer_id] = until
        heapq.heappush(self._expiries, (until, viewer_id))
        self._likes += likes
        return closed

    def close_until(self, at: datetime) -> list[AudienceWindow]:
        """Closes every window that ended at or before ``at``, oldest first."""
        closed: list[AudienceWindow] = []
        while self._end <= at:
            closed.append(self._close(self._end))
            self._end = self._boundary_after(self._start)
        return closed

    def close_final(self, ended_at: datetime) -> AudienceWindow | None:
        """Closes the open window early at ``ended_at`` (the live's end), if it has begun by then.
        The windows that ended before ``ended_at`` must have been closed already."""
        if ended_at <= self._start:
            return None
        if ended_at > self._end:
            raise ValueError("close the windows that ended before the final one first")
        return self._close(ended_at)

    def _close(self, end: datetime) -> AudienceWindow:
        self._expire(end)
        window = AudienceWindow(
            window_start=self._start,
            window_end=end,
            concurrent_viewers=len(self._present_until),
            peak_concurrent_viewers=self._peak,
            joins=self._joins,
            likes=self._likes,
        )
        self._start = end
        self._peak = len(self._present_until)
        self._joins = 0
        self._likes = 0
        return window

    def _expire(self, at: datetime) -> None:
        while self._expiries and self._expiries[0][0] <= at:
            until, viewer_id = heapq.heappop(self._expiries)
            if self._present_until.get(viewer_id) == until:
                del self._present_until[viewer_id]

    def _boundary_after(self, at: datetime) -> datetime:
        return _EPOCH + ((at - _EPOCH) // self._window + 1) * self._window


class AudienceBoard:
    """The tallies of the lives this process counts, and the windows they closed that are not
    recorded yet (a window stays pending until its ``AudienceSampled`` is stored).

    The tallies live in memory: heartbeats for one live must reach one process (route them by
    live id), and a restarted process starts counting afresh instead of inventing an audience
    for the time nobody counted.
    """

    def __init__(self, *, window: timedelta, presence_ttl: timedelta) -> None:
        self._window = window
        self._ttl = presence_ttl
        self._tallies: dict[str, AudienceTally] = {}
        self._pending: dict[str, list[AudienceWindow]] = {}

    def live_ids(self) -> list[str]:
        return sorted(self._tallies.keys() | self._pending.keys())

    def open(
        self, live_id: str, *, started_at: datetime, last_window_end: datetime | None, now: datetime
    ) -> None:
        """Starts counting a live on air, from where its recorded windows stop (or its start),
        unless that is more than a window ago: then from ``now``."""
        if live_id in self._tallies:
            return
        opened = max(started_at, last_window_end or started_at)
        if now - opened > self._window:
            opened = now
        self._tallies[live_id] = AudienceTally(opened, window=self._window, presence_ttl=self._ttl)
        self._pending.setdefault(live_id, [])

    def heartbeat(self, live_id: str, viewer_id: str, at: datetime, likes: int = 0) -> None:
        self._pending[live_id] += self._tallies[live_id].heartbeat(viewer_id, at, likes)

    def close_until(self, now: datetime) -> None:
        for live_id, tally in self._tallies.items():
            self._pending[live_id] += tally.close_until(now)

    def end(self, live_id: str, ended_at: datetime) -> None:
        """Closes a live's last windows at its end and stops counting it."""
        tally = self._tallies.pop(live_id, None)
        if tally is None:
            return
        closed = tally.close_until(ended_at)
        final = tally.close_final(ended_at)
        self._pending[live_id] += [*closed, *([final] if final else [])]

    def pending(self) -> list[tuple[str, AudienceWindow]]:
        """Closed windows not recorded yet, oldest first per live."""
        return [(live_id, window) for live_id, windows in self._pending.items() for window in windows]

    def recorded(self, live_id: str, window: AudienceWindow) -> None:
        windows = self._pending[live_id]
        windows.remove(window)
        if not windows and live_id not in self._tallies:
            del self._pending[live_id]
