"""The timeline chart: a PNG drawn from a report, written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopstream_analytics.chart import draw_timeline
from shopstream_analytics.report import build_report

from .test_report import LIVE, history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.unit


def test_the_timeline_is_drawn_as_a_png_replacing_the_previous_one(tmp_path: Path) -> None:
    target = tmp_path / "live.png"
    target.write_bytes(b"an older chart")
    assert draw_timeline(build_report(LIVE, history()), target) == target
    drawn = target.read_bytes()
    assert drawn.startswith(PNG_SIGNATURE)
    assert len(drawn) > 10_000  # two panels, shaded pin and deal: not an empty canvas
    assert [p.name for p in tmp_path.iterdir()] == ["live.png"]  # no temporary file left


def test_a_live_without_sales_or_audience_is_still_drawn(tmp_path: Path) -> None:
    quiet = [e for e in history() if e.contract.type.startswith("shopstream.live.Live")]
    report = build_report(LIVE, quiet)
    assert report.currency is None
    assert draw_timeline(report, tmp_path / "quiet.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_chart_that_cannot_be_written_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        draw_timeline(build_report(LIVE, history()), tmp_path / "missing" / "live.png")
    blocked = tmp_path / "a-folder.png"
    blocked.mkdir()
    with pytest.raises(IsADirectoryError):
        draw_timeline(build_report(LIVE, history()), blocked)
    assert [p.name for p in tmp_path.iterdir()] == ["a-folder.png"]
    assert list(blocked.iterdir()) == []
