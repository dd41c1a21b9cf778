"""`shopstream events` as an analyst runs it: generate a history, export it (resumed too), and
bad input — one clear line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shopstream_analytics.export import export_events, partial_path, progress_path
from shopstream_analytics.selection import Selection
from shopstream_analytics.sources import store_refs
from shopstream_cli.main import app

pytestmark = pytest.mark.integration

EVENTS = 2_500


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('events-cli')}/{{service}}.sqlite"
    result = CliRunner().invoke(
        app, ["events", "generate", "--events", str(EVENTS), "--seed", "4", "--store-url", url]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {EVENTS:,} events" in result.output
    return url


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["events", *args])
    return result.exit_code, result.stdout, result.stderr


def test_export_writes_the_format_its_name_says(stores: str, tmp_path: Path) -> None:
    out = tmp_path / "all.parquet"
    code, stdout, _ = run("export", str(out), "--store-url", stores)
    assert code == 0
    assert f"exported {EVENTS:,} events" in stdout
    assert pq.read_metadata(out).num_rows == EVENTS
    orders = tmp_path / "orders.data"
    code, stdout, _ = run(
        "export", str(orders), "--store-url", stores, "--service", "orders", "--format", "csv",
        "--type", "shopstream.orders.OrderPlaced", "--type", "shopstream.orders.OrderRejected",
    )  # fmt: skip
    assert code == 0, stdout
    header, *lines = orders.read_text().splitlines()
    assert header.startswith("id,source,type,")
    assert lines
    assert all(",shopstream.orders.Order" in line for line in lines)


def test_an_interrupted_export_is_resumed(stores: str, tmp_path: Path) -> None:
    out = tmp_path / "resumed.jsonl"

    scanned = 0

    def stop(count: int) -> None:
        nonlocal scanned
        scanned += count
        if scanned > EVENTS // 2:
            raise Stop

    with pytest.raises(Stop):
        asyncio.run(export_events(store_refs(stores), Selection(), out, "jsonl", page=100, progress=stop))
    assert progress_path(out).exists()
    code, stdout, _ = run("export", str(out), "--store-url", stores, "--resume")
    assert code == 0
    assert "(jsonl, resumed)" in stdout, stdout
    assert len(out.read_bytes().splitlines()) == EVENTS
    assert not partial_path(out).exists()
    assert not progress_path(out).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--live", "liv_nobody"], "no event names live 'liv_nobody'"),
        (["--since", "last tuesday"], "is not an ISO-8601 instant"),
        (["--since", "2025-01-07T00:00:00"], "has no UTC offset"),
        (["--since", "2025-01-08T00:00:00Z", "--until", "2025-01-07T00:00:00Z"], "empty time range"),
        (["--from-position", "9", "--to-position", "3"], "empty position range"),
        (["--service", "billing"], "unknown service(s) ['billing']"),
        (["--format", "xlsx"], "unknown format 'xlsx'"),
        (["--flatten"], "flatten applies to csv and parquet"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    stores: str, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = run("export", str(out), "--store-url", stores, *args)
    assert code == 2, stdout + stderr
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_and_missing_stores_are_refused(stores: str, tmp_path: Path) -> None:
    code, _, stderr = run("export", str(tmp_path / "missing" / "out.csv"), "--store-url", stores)
    assert code == 2
    assert "does not exist" in stderr
    code, _, stderr = run("export", str(tmp_path / "out.txt"), "--store-url", stores)
    assert code == 2
    assert "cannot tell the format" in stderr
    code, _, stderr = run(
        "export", str(tmp_path / "out.csv"), "--store-url", f"sqlite:///{tmp_path}/{{service}}.db"
    )
    assert code == 2
    assert "no event store" in stderr
    assert list(tmp_path.iterdir()) == []


def test_backfill_needs_a_kafka(stores: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPSTREAM_KAFKA_BOOTSTRAP", raising=False)
    code, _, stderr = run("backfill", "--store-url", stores)
    assert code == 2
    assert "no Kafka to publish to" in stderr
