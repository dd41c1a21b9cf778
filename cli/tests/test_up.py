"""`shopstream up` as a user runs it: the five services come up as their own processes, answer
on the printed URLs, and everything stops when the command is told to."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shopstream_testing.waiting import wait_until

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))


def test_up_starts_the_five_services_and_stops_them(tmp_path: Path) -> None:
    log = tmp_path / "up.out"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [SHOPSTREAM, "up", "--workdir", str(tmp_path / "platform")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "220"},
        )
    try:
        wait_until(
            lambda: "Ctrl-C stops everything" in log.read_text(errors="replace") or up.poll() is not None,
            timeout=180,
            message="shopstream up printed its URLs",
        )
        printed = log.read_text(errors="replace")
        assert up.poll() is None, printed
        urls = dict(
            re.findall(r"│ (live|chat|catalog|orders|commission)\s+│ (http://127\.0\.0\.1:\d+)", printed)
        )
        assert sorted(urls) == ["catalog", "chat", "commission", "live", "orders"], printed
        for url in urls.values():
            assert httpx.get(f"{url}/readyz", timeout=5).json()["ready"] is True
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0
    for url in urls.values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=2)
