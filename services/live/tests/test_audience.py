"""The windowed audience tally: heartbeats in, one window out per period, checked against a
brute-force model of who was connected when; and its windows are what the decider accepts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream_contracts.live.v1 import AudienceSampled, LiveBrand, LiveEnded, LiveScheduled, LiveStarted
from shopstream_live.audience import AudienceTally, AudienceWindow
from shopstream_live.commands import RecordAudienceSample
from shopstream_live.domain import LiveDecider
from shopstream_service.domain import DomainEvent, fold

pytestmark = pytest.mark.unit

START = datetime(2025, 5, 1, 20, 0, 20, tzinfo=UTC)
"""Twenty seconds into a minute: the first window is shorter than the others."""
WINDOW = timedelta(seconds=60)
TTL = timedelta(seconds=30)


def s(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def tally() -> AudienceTally:
    return AudienceTally(START, window=WINDOW, presence_ttl=TTL)


def test_the_first_window_runs_from_the_start_to_the_next_minute_then_windows_are_a_minute() -> None:
    audience = tally()
    assert audience.heartbeat("v1", s(1)) == []
    (first,) = audience.heartbeat("v2", s(40))
    assert first == AudienceWindow(START, s(40), 0, 1, 1, 0)  # v1 left at 31s
    assert [(w.window_start, w.window_end) for w in audience.close_until(s(160))] == [
        (s(40), s(100)),
        (s(100), s(160)),
    ]


def test_a_window_counts_joins_likes_peak_and_who_is_still_connected_at_its_end() -> None:
    audience = tally()
    audience.heartbeat("v1", s(0), likes=3)
    audience.heartbeat("v2", s(5))
    audience.heartbeat("v1", s(20), likes=2)  # still connected: no new join
    audience.heartbeat("v3", s(34))  # v2 left at 35 (5 + ttl): three were connected at 34
    (window,) = audience.close_until(s(40))
    assert window == AudienceWindow(
        START, s(40), concurrent_viewers=2, peak_concurrent_viewers=3, joins=3, likes=5
    )


def test_a_viewer_who_comes_back_after_the_ttl_joins_again() -> None:
    audience = tally()
    audience.heartbeat("v1", s(0))
    audience.heartbeat("v1", s(30))  # exactly at expiry: the earlier presence is over
    (window,) = audience.close_until(s(40))
    assert (window.joins, window.concurrent_viewers) == (2, 1)


def test_a_window_with_nobody_is_still_a_window_and_its_peak_starts_from_who_was_there() -> None:
    audience = tally()
    audience.heartbeat("v1", s(35))
    first, second, third = audience.close_until(s(160))
    assert (first.concurrent_viewers, first.peak_concurrent_viewers) == (1, 1)
    assert (second.concurrent_viewers, second.peak_concurrent_viewers, second.joins) == (0, 1, 0)
    assert (third.concurrent_viewers, third.peak_concurrent_viewers) == (0, 0)


def test_the_final_window_closes_at_the_end_of_the_live() -> None:
    audience = tally()
    audience.heartbeat("v1", s(50))
    audience.close_until(s(70))
    assert audience.close_final(s(70)) == AudienceWindow(s(40), s(70), 1, 1, 1, 0)


def test_the_final_window_needs_the_earlier_ones_closed_first() -> None:
    with pytest.raises(ValueError, match="close the windows"):
        tally().close_final(s(100))


def test_nothing_to_close_when_the_live_ends_as_a_window_closes() -> None:
    audience = tally()
    audience.close_until(s(40))
    assert audience.close_final(s(40)) is None


def test_a_heartbeat_stamped_before_the_open_window_counts_in_it() -> None:
    audience = tally()
    audience.close_until(s(40))
    audience.heartbeat("v1", s(39))
    (window,) = audience.close_until(s(100))
    assert (window.window_start, window.joins) == (s(40), 1)


def test_likes_are_never_negative() -> None:
    with pytest.raises(ValueError, match="likes"):
        tally().heartbeat("v1", s(1), likes=-1)


# --- against a brute-force model ------------------------------------------------------------

Beat = tuple[str, datetime, int]


def _connected(beats: list[Beat], at: datetime, *, including_at: bool) -> set[str]:
    """Who is connected at ``at``, counting heartbeats stamped at ``at`` only if asked."""
    return {
        viewer
        for viewer, when, _ in beats
        if (when < at or (including_at and when == at)) and at < when + TTL
    }


def _model(beats: list[Beat], window: AudienceWindow) -> AudienceWindow:
    inside = [b for b in beats if window.window_start <= b[1] < window.window_end]
    instants = [window.window_start] + [when for _, when, _ in inside]
    joins = 0
    for index, (viewer, when, _) in enumerate(beats):
        if window.window_start <= when < window.window_end:
            earlier = beats[:index]
            joins += all(not (v == viewer and w + TTL > when) for v, w, _ in earlier)
    return AudienceWindow(
        window.window_start,
        window.window_end,
        concurrent_viewers=len(_connected(beats, window.window_end, including_at=False)),
        peak_concurrent_viewers=max(len(_connected(beats, t, including_at=True)) for t in instants),
        joins=joins,
        likes=sum(likes for _, _, likes in inside),
    )


beats_strategy = st.lists(
    st.tuples(st.sampled_from(["v1", "v2", "v3", "v4", "v5"]), st.integers(0, 50_000), st.integers(0, 5)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(beats_strategy, st.integers(1, 60_000))
def test_every_window_matches_who_was_really_connected(raw: list[tuple[str, int, int]], tail_ms: int) -> None:
    audience = tally()
    beats: list[Beat] = []
    windows: list[AudienceWindow] = []
    at = START
    for viewer, step_ms, likes in raw:
        at += timedelta(milliseconds=step_ms)
        beats.append((viewer, at, likes))
        windows += audience.heartbeat(viewer, at, likes)
    end = at + timedelta(milliseconds=tail_ms)
    windows += audience.close_until(end)
    final = audience.close_final(end)
    windows += [final] if final else []

    assert windows == [_model(beats, window) for window in windows]
    assert [w.window_start for w in windows[1:]] == [w.window_end for w in windows[:-1]]
    assert all(w.window_end - w.window_start <= WINDOW for w in windows)
    for before, after in itertools.pairwise(windows):
        assert after.peak_concurrent_viewers >= before.concurrent_viewers
    assert sum(w.likes for w in windows) == sum(likes for _, _, likes in beats)


@settings(max_examples=100, deadline=None)
@given(beats_strategy, st.integers(1, 60_000))
def test_the_decider_accepts_every_window_the_tally_closes(
    raw: list[tuple[str, int, int]], tail_ms: int
) -> None:
    decider = LiveDecider()
    history: list[DomainEvent] = [
        LiveScheduled(
            live_id="liv_1",
            title="t",
            scheduled_start_at=START,
            host_ids=["ana"],
            brands=[LiveBrand(brand_id="glow", agreement_id="agr")],
            scheduled_by="ana",
            occurred_at=START - timedelta(days=1),
        ),
        LiveStarted(live_id="liv_1", started_by="ana", occurred_at=START),
    ]
    audience = tally()
    at = START

    def record(window: AudienceWindow, now: datetime) -> None:
        command = RecordAudienceSample(
            "liv_1",
            window.window_start,
            window.window_end,
            window.concurrent_viewers,
            window.peak_concurrent_viewers,
            now,
            joins=window.joins,
            likes=window.likes,
        )
        history.extend(decider.decide(command, fold(decider, history)))

    for viewer, step_ms, likes in raw:
        at += timedelta(milliseconds=step_ms)
        for window in audience.heartbeat(viewer, at, likes):
            record(window, at)
    end = at + timedelta(milliseconds=tail_ms)
    for window in audience.close_until(end):
        record(window, end)
    history.append(
        LiveEnded(
            live_id="liv_1",
            ended_by="ana",
            live_offset_ms=(end - START) // timedelta(milliseconds=1),
            occurred_at=end,
        )
    )
    final = audience.close_final(end)
    if final is not None:
        record(final, end)

    sampled = [e for e in history if isinstance(e, AudienceSampled)]
    assert sampled
    assert sampled[0].window_start == START
    assert sampled[-1].window_end == end
