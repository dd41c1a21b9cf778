"""`shopstream infra` end to end, as a user runs it: separate processes, detached servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from shopstream_infra import broker_answers_metadata
from shopstream_infra.procs import pid_alive

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    # pytest's tmp dirs are 0700 under root, so this also exercises the /var/tmp fallback for PostgreSQL.
    yield tmp_path
    subprocess.run([SHOPSTREAM, "infra", "down", "--purge"], env=_env(tmp_path), check=False)


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "SHOPSTREAM_STATE": str(state), "COLUMNS": "200"}


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPSTREAM, "infra", *args],
        env=_env(state),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_up_status_down_cycle(state_dir: Path) -> None:
    first = _cli(state_dir, "up")
    assert first.returncode == 0, first.stderr
    recorded = json.loads((state_dir / "infra.json").read_text())
    kafka_pid, pg_pid = recorded["kafka"]["pid"], recorded["postgres"]["pid"]
    bootstrap = f"127.0.0.1:{recorded['kafka']['port']}"
    dsn = f"postgresql://postgres@127.0.0.1:{recorded['postgres']['port']}/postgres"

    # The servers outlive the command that started them.
    assert broker_answers_metadata(bootstrap)
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()

    second = _cli(state_dir, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    again = json.loads((state_dir / "infra.json").read_text())
    assert (again["kafka"]["pid"], again["postgres"]["pid"]) == (kafka_pid, pg_pid)

    status = _cli(state_dir, "status", "--env")
    assert status.returncode == 0
    assert f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}" in status.stdout

    assert _cli(state_dir, "down").returncode == 0
    assert not pid_alive(kafka_pid)
    assert not pid_alive(pg_pid)
    assert _cli(state_dir, "status").returncode == 1
    assert _cli(state_dir, "down").returncode == 0  # idempotent
