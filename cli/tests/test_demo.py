"""`shopstream demo-backbone` (the event backbone's round trip) as a user runs it, in a process of
its own: it must finish by itself and report every event delivered exactly once and an identical
rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopstream_cli.main import app

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))


def test_the_demo_moves_every_event_exactly_once_and_rebuilds_identically() -> None:
    result = subprocess.run(
        [SHOPSTREAM, "demo-backbone", "--events", "1200", "--orders", "40", "--json"],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["delivery"] == {
        "sent": 1200,
        "received": 1200,
        "missing": 0,
        "duplicated": 0,
        "keys_out_of_order": 0,
        "exact": True,
    }
    assert summary["published_to_kafka"] == 2400
    assert summary["dead_lettered"] == 1
    projection = summary["projection"]
    assert projection["rebuilt_identical"]
    assert projection["live_checksum"] == projection["rebuilt_checksum"]
    # 1,200 events over 40 orders: the second half are the 600 confirmations, 150 per brand.
    assert [row["confirmed_orders"] for row in projection["brand_sales"]] == [150, 150, 150, 150]


def test_the_demo_refuses_to_keep_its_stores_where_they_would_mix_with_others(tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "orders.sqlite").write_text("someone else's")

    fresh = str(tmp_path / "new")
    for args in (["--keep-data", str(occupied)], ["--store", "postgres", "--keep-data", fresh]):
        result = CliRunner().invoke(app, ["demo", *args])
        assert result.exit_code == 2, result.output
    assert [p.name for p in occupied.iterdir()] == ["orders.sqlite"]
    assert not (tmp_path / "new").exists()
