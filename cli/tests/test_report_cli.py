"""`shopstream report live` and `shopstream whatif commission` as a user runs them, on a small
history written into real SQLite stores (the figures themselves are checked against the demo's
own report in the analytics tests): the table, CSV and PNG; bad input is one line, exit 2, and
no file written."""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shopstream_analytics.sources import SERVICES
from shopstream_cli.main import app
from shopstream_eventstore import EventMetadata, NewEvent
from shopstream_eventstore.sqlite import SqliteEventStore

pytestmark = pytest.mark.integration

runner = CliRunner()
GOLDEN = Path(__file__).resolve().parents[2] / "contracts" / "golden"
T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
LIVE, AGREEMENT, BRAND = "liv_cli", "agr_cli", "brd_cli"
HOSTS = ("usr_ana_cli", "usr_bia_cli")


@dataclass(frozen=True)
class Sale:
    """What the small history holds, as the demo's report would say it."""

    live_id: str = LIVE
    confirmed: int = 2
    gmv: int = 15_000
    net: int = 10_000
    host_ids: tuple[str, ...] = HOSTS
    brand_id: str = BRAND


@dataclass(frozen=True)
class History:
    store_url_template: str
    sale: Sale = Sale()

    @property
    def live_ids(self) -> list[str]:
        return [self.sale.live_id]


def _event(name: str, seconds: float, **changes: Any) -> tuple[str, dict[str, Any]]:
    data = json.loads((GOLDEN / f"shopstream.{name}" / "v1.json").read_text())
    for key, value in changes.items():
        data[key] = (
            {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        )
    data["occurred_at"] = (T0 + timedelta(seconds=seconds)).isoformat()
    return f"shopstream.{name}", data


def _sale_events() -> list[tuple[str, dict[str, Any]]]:
    hosts = list(HOSTS)
    attribution = {"live_id": LIVE, "brand_id": BRAND, "agreement_id": AGREEMENT, "host_ids": hosts}

    def confirmed(order_id: str, seconds: float, amount: int) -> tuple[str, dict[str, Any]]:
        money = {"amount": amount, "currency": "BRL"}
        line = {"quantity": 1, "line_total": money, "brand_id": BRAND}
        return _event(
            "orders.OrderConfirmed",
            seconds,
            order_id=order_id,
            total=money,
            line=line,
            attribution=attribution,
        )

    shares = [{"influencer_id": HOSTS[0], "share_bps": 6000}, {"influencer_id": HOSTS[1], "share_bps": 4000}]
    return [
        _event(
            "commission.CommissionAgreementSigned",
            -900,
            agreement_id=AGREEMENT,
            agreement_version=1,
            brand_id=BRAND,
            influencer_id=HOSTS[0],
            rate_bps=1250,
            holdback_days=7,
            cohost_shares=shares,
            effective_from=(T0 - timedelta(days=1)).isoformat(),
        ),
        _event("live.LiveScheduled", -600, live_id=LIVE),
        _event("live.LiveStarted", 0, live_id=LIVE),
        _event("orders.OrderPlaced", 60, order_id="ord_1", attribution=attribution),
        _event("orders.OrderPlaced", 61, order_id="ord_2", attribution=attribution),
        confirmed("ord_1", 65, 10_000),
        confirmed("ord_2", 66, 5_000),
        _event("orders.OrderCancelled", 90, order_id="ord_2", refund={"amount": 5_000, "currency": "BRL"}),
        _event("live.LiveEnded", 130, live_id=LIVE),
    ]


async def _write(template: str) -> None:
    by_service: dict[str, list[NewEvent]] = {}
    for type_, data in _sale_events():
        occurred = datetime.fromisoformat(data["occurred_at"])
        new = NewEvent(uuid.uuid4(), type_, data, EventMetadata(occurred_at=occurred))
        by_service.setdefault(type_.split(".")[1], []).append(new)
    for service in SERVICES:
        store = await SqliteEventStore.open(
            Path(template.replace("{service}", service).removeprefix("sqlite:///"))
        )
        try:
            for new in by_service.get(service, []):
                await store.append(f"{service}-{new.event_id}", [new])
        finally:
            await store.close()


@pytest.fixture(scope="module")
def recorded_history(tmp_path_factory: pytest.TempPathFactory) -> History:
    folder = tmp_path_factory.mktemp("stores")
    template = f"sqlite:///{folder}/{{service}}.sqlite"
    asyncio.run(_write(template))
    return History(template)


def test_the_live_report_prints_its_table_and_saves_csv_and_png(
    recorded_history: History, tmp_path: Path
) -> None:
    sale = recorded_history.sale
    table, chart = tmp_path / "live.csv", tmp_path / "live.png"
    result = runner.invoke(
        app,
        [
            "report",
            "live",
            sale.live_id,
            "--store-url",
            recorded_history.store_url_template,
            "--csv",
            str(table),
            "--png",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{sale.confirmed} confirmed" in result.output
    assert f"GMV {sale.gmv} · net {sale.net} BRL" in result.output
    rows = list(csv.DictReader(table.open()))
    assert [row["label"] for row in rows][-2:] == ["after", "total"]
    assert int(rows[-1]["gmv"]) == sale.gmv
    assert sum(int(row["confirmed"]) for row in rows[:-1]) == sale.confirmed
    assert chart.read_bytes().startswith(b"\x89PNG")
    as_json = runner.invoke(
        app,
        ["report", "live", sale.live_id, "--store-url", recorded_history.store_url_template, "--json"],
    )
    document = json.loads(as_json.stdout)
    assert document["timeline"][-1]["gmv"] == sale.gmv
    assert document["timeline"][:-1] == [
        {k: (int(v) if v.lstrip("-").isdigit() else v or None) for k, v in row.items()} for row in rows[:-1]
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["report", "live", "liv_nobody"], "unknown live 'liv_nobody'"),
        (["report", "live", "{live}", "--csv", "{tmp}/missing/live.csv"], "does not exist"),
        (["report", "live", "{live}", "--png", "{tmp}"], "is a folder"),
        (
            [
                "whatif",
                "commission",
                "--since",
                "yesterday",
                "--until",
                "2030-01-01T00:00:00Z",
                "--rate-bps",
                "1000",
            ],
            "not an ISO-8601 instant",
        ),
        (
            [
                "whatif",
                "commission",
                "--since",
                "2030-01-01T00:00:00",
                "--until",
                "2031-01-01T00:00:00Z",
                "--rate-bps",
                "1000",
            ],
            "no UTC offset",
        ),
        (
            ["whatif", "commission", "--live", "{live}", "--rate-bps", "1000", "--tier", "lots:1200"],
            "FROM is an amount",
        ),
        (["whatif", "commission", "--live", "{live}", "--rate-bps", "0"], "a rate is between 1 and 10000"),
        (["whatif", "commission", "--rate-bps", "1000"], "choose what to replay"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_no_file(
    recorded_history: History, tmp_path: Path, arguments: list[str], message: str
) -> None:
    live = recorded_history.live_ids[0]
    filled = [a.format(live=live, tmp=tmp_path) for a in arguments]
    # A valid --csv next to the bad input: it must not be written either.
    extra = ["--csv", str(tmp_path / "ok.csv")] if filled[0] == "report" and "--csv" not in filled else []
    result = runner.invoke(app, [*filled, *extra, "--store-url", recorded_history.store_url_template])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert list(tmp_path.iterdir()) == []


def test_what_if_prints_actual_against_proposed_per_influencer_and_brand(
    recorded_history: History,
) -> None:
    sale = recorded_history.sale
    result = runner.invoke(
        app,
        [
            "whatif",
            "commission",
            "--live",
            sale.live_id,
            "--rate-bps",
            "1000",
            "--tier",
            "100000:1500",
            "--store-url",
            recorded_history.store_url_template,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Nothing was written." in result.output
    for party in (*sale.host_ids, sale.brand_id):
        assert party in result.output
