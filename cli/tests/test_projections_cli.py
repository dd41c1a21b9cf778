"""`shopstream projections` as an analyst runs it, over a commission store of real contract events
whose live ledger projection was built by the projection runner: list, rebuild (verified equal, or
exit 1 with the differing rows when the live tables were tampered with), as-of by position and by
instant, and bad input — one clear line, exit code 2, nothing written."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from subprocess import PIPE

import pytest
from typer.testing import CliRunner

from shopstream_cli.main import app
from shopstream_commission.projections import LedgerProjection
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_processing import ProjectionRunner, Statement
from shopstream_processing.sqlite import SqliteReadModel
from shopstream_testing.contract_events import contract_event

pytestmark = pytest.mark.integration

SHOPSTREAM = str(Path(sys.executable).with_name("shopstream"))
ACCRUED = "shopstream.commission.CommissionAccrued"
BATCHES = 3
PER_BATCH = 10


def amount(n: int) -> int:
    return 100 + n


async def record(path: Path) -> datetime:
    """Three appends of ten accruals each, and the live ledger projection over them; returns an
    instant between the first and the second append."""
    store = await SqliteEventStore.open(path)
    db = await SqliteReadModel.open(path)
    try:
        between = datetime.now(UTC)
        for batch in range(BATCHES):
            if batch == 1:
                between = datetime.now(UTC)
            for n in range(batch * PER_BATCH, (batch + 1) * PER_BATCH):
                event = contract_event(
                    ACCRUED,
                    "usr_ana",
                    datetime(2026, 11, 25, 21, 0, tzinfo=UTC),
                    accrual_id=f"acc_{n:03d}",
                    order_id=f"ord_{n:03d}",
                    amount={"amount": amount(n), "currency": "BRL"},
                )
                await store.append(f"account-usr_ana-{n}", [event])
        await ProjectionRunner(store, db, LedgerProjection(), service="commission").rebuild()
    finally:
        await db.close()
        await store.close()
    return between


@pytest.fixture
def history(tmp_path: Path) -> tuple[str, datetime]:
    data = tmp_path / "data"
    data.mkdir()
    between = asyncio.run(record(data / "commission.sqlite"))
    return f"sqlite:///{data}/{{service}}.sqlite", between


def shopstream(*args: str) -> tuple[int, str, str]:
    """The command in a process of its own, as an analyst runs it."""
    (done,) = in_parallel([list(args)])
    return done


def in_process(args: list[str]) -> tuple[int, str, str]:
    """For commands that stop before any logging is configured (a configured logger would keep
    writing to the runner's closed streams after it)."""
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def in_parallel(commands: list[list[str]]) -> list[tuple[int, str, str]]:
    env = {**os.environ, "COLUMNS": "200"}
    running = [
        subprocess.Popen([SHOPSTREAM, *c], env=env, stdout=PIPE, stderr=PIPE, text=True) for c in commands
    ]
    outputs = [p.communicate(timeout=120) for p in running]
    return [(p.returncode, out, err) for p, (out, err) in zip(running, outputs, strict=True)]


def fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_list_names_every_service_projection() -> None:
    code, out, _ = in_process(["projections", "list"])
    assert code == 0
    for name in ("lives", "chat-feed", "stock", "orders", "ledger", "agreements"):
        assert f" {name} " in out
    code, out, _ = in_process(["projections", "list", "commission"])
    assert code == 0
    assert "ledger" in out
    assert "stock" not in out


def test_rebuild_verifies_equal_and_reports_tampered_rows(history: tuple[str, datetime]) -> None:
    url, _ = history
    code, out, _ = shopstream(
        "projections", "rebuild", "commission", "--verify", "--store-url", url, "--json"
    )
    assert code == 0, out
    rebuilt = {r["projection"]: r for r in json.loads(out)}
    assert set(rebuilt) == {"agreements", "ledger"}
    ledger = rebuilt["ledger"]
    assert ledger["position"] == BATCHES * PER_BATCH
    assert ledger["before"]["digest"] == ledger["after"]["digest"]
    assert ledger["comparison"]["differences"] == []

    # Someone edits the live ledger behind the projection's back.
    path = Path(url.removeprefix("sqlite:///").replace("{service}", "commission"))
    asyncio.run(_tamper(path))
    code, out, _ = shopstream(
        "projections", "rebuild", "commission", "ledger", "--verify", "--store-url", url
    )
    assert code == 1, out
    assert "DIFFERENT" in out
    assert "commission_accruals" in out
    assert "acc_007" in out  # the tampered row, on both sides
    # The rebuild replaced the tampered tables: verified again, they are equal.
    code, out, _ = shopstream(
        "projections", "rebuild", "commission", "ledger", "--verify", "--store-url", url
    )
    assert code == 0, out
    assert "identical" in out


async def _tamper(path: Path) -> None:
    db = await SqliteReadModel.open(path)
    try:
        ((generation,),) = await db.fetch(
            "SELECT generation FROM projection_generations WHERE projection = 'ledger' AND serving = 1"
        )
        table = f"commission_accruals__g{generation}"
        await db.transaction([Statement(f"UPDATE {table} SET amount = 1 WHERE accrual_id = 'acc_007'")])
    finally:
        await db.close()


def test_as_of_a_position_or_an_instant_builds_a_separate_file(
    history: tuple[str, datetime], tmp_path: Path
) -> None:
    url, between = history
    target = tmp_path / "ledger-then.sqlite"
    total = "SELECT count(*) AS accruals, sum(amount) AS total FROM commission_accruals"
    live = fingerprint(tmp_path / "data")
    first = sum(amount(n) for n in range(PER_BATCH))
    code, out, _ = shopstream(
        "projections", "as-of", "commission", "ledger", "--position", str(PER_BATCH),
        "--target", str(target), "--query", total, "--store-url", url, "--json",
    )  # fmt: skip
    assert code == 0, out
    built = json.loads(out)
    assert (built["position"], built["events"]) == (PER_BATCH, PER_BATCH)
    assert built["results"][total] == [{"accruals": PER_BATCH, "total": first}]
    code, out, _ = shopstream(
        "projections", "as-of", "commission", "ledger", "--at", between.isoformat(),
        "--target", str(target), "--query", total, "--store-url", url,
    )  # fmt: skip
    assert code == 0, out
    assert f"position {PER_BATCH}" in out
    assert f"{first}" in out
    assert fingerprint(tmp_path / "data") == live


REFUSED_ON_SIGHT = [
    (["rebuild", "nowhere"], "unknown service 'nowhere'"),
    (["rebuild", "commission", "stock"], "commission has no projection 'stock'"),
    (["as-of", "commission", "ledger", "--at", "yesterday-ish", "--target", "{tmp}/x"], "not an ISO 8601"),
    (["as-of", "commission", "ledger", "--target", "{tmp}/x"], "either --at or --position"),
]
"""Refused while the arguments are read (in-process: nothing has configured logging yet)."""
REFUSED_AT_THE_STORE = [
    (["rebuild", "orders"], "no event store"),
    (["as-of", "commission", "ledger", "--position", "1", "--target", "{live}"], "live store"),
    (["as-of", "commission", "ledger", "--position", "1", "--target", "{tmp}/no/x"], "not a directory"),
    (["as-of", "commission", "ledger", "--position", "99", "--target", "{tmp}/x"], "not in the store"),
]


def test_bad_input_is_one_clear_error_and_writes_nothing(
    history: tuple[str, datetime], tmp_path: Path
) -> None:
    url, _ = history
    live = url.removeprefix("sqlite:///").replace("{service}", "commission")
    before = fingerprint(tmp_path / "data"), sorted(p.name for p in tmp_path.iterdir())

    def command(args: list[str]) -> list[str]:
        filled = (a.replace("{tmp}", str(tmp_path)).replace("{live}", live) for a in args)
        return ["projections", *filled, "--store-url", url]

    outcomes = [in_process(command(args)) for args, _ in REFUSED_ON_SIGHT]
    outcomes += in_parallel([command(args) for args, _ in REFUSED_AT_THE_STORE])
    for (code, out, err), (args, error) in zip(
        outcomes, REFUSED_ON_SIGHT + REFUSED_AT_THE_STORE, strict=True
    ):
        assert code == 2, (args, out, err)
        assert error in " ".join((out + err).split()), args
    assert (fingerprint(tmp_path / "data"), sorted(p.name for p in tmp_path.iterdir())) == before
