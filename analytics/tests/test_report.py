"""The live report: its minute buckets and figures on hand-built events, then on the recorded
history of the demo's sale, against the demo's own report and a DuckDB recomputation over the
Parquet export."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shopstream_analytics.export import export_events
from shopstream_analytics.report import LiveReport, ReportError, build_report, live_report
from shopstream_analytics.selection import Selection
from shopstream_analytics.sources import store_refs
from shopstream_contracts import REGISTRY, Event

from .history import RecordedHistory

GOLDEN = Path(__file__).resolve().parents[2] / "contracts" / "golden"
LIVE = "liv_report"
T0 = datetime(2025, 5, 1, 20, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def event(name: str, **changes: Any) -> Event:
    """A golden payload of ``shopstream.<name>`` with ``changes`` (nested dicts merged one level)."""
    data = json.loads((GOLDEN / f"shopstream.{name}" / "v1.json").read_text())
    for key, value in changes.items():
        data[key] = (
            {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        )
    return REGISTRY.decode(f"shopstream.{name}", 1, data)


def order(kind: str, order_id: str, seconds: float, live: str = LIVE, **changes: Any) -> Event:
    extra: dict[str, Any] = {"order_id": order_id, "occurred_at": at(seconds), **changes}
    if kind in ("OrderPlaced", "OrderConfirmed"):
        extra["attribution"] = {"live_id": live, **extra.get("attribution", {})}
    return event(f"orders.{kind}", **extra)


def confirmed(order_id: str, seconds: float, amount: int, buyer: str, quantity: int = 1) -> Event:
    money = {"amount": amount, "currency": "BRL"}
    return order(
        "OrderConfirmed",
        order_id,
        seconds,
        buyer_id=buyer,
        total=money,
        line={"quantity": quantity, "line_total": money},
    )


def history(end_s: float = 150.0) -> list[Event]:
    """A live of 2.5 minutes, with the event kinds the report counts and some it must ignore."""
    return [
        event("live.LiveScheduled", live_id=LIVE, occurred_at=at(-600)),
        event("live.LiveStarted", live_id=LIVE, occurred_at=at(0)),
        event("live.LiveStarted", live_id="liv_other", occurred_at=at(1)),
        event("chat.MessagePosted", live_id=LIVE, occurred_at=at(5)),
        event("chat.MessagePosted", live_id="liv_other", occurred_at=at(6)),
        event("chat.QuestionAsked", live_id=LIVE, occurred_at=at(59.999)),
        event("chat.MessageBlocked", live_id=LIVE, occurred_at=at(60)),
        event("live.ProductPinned", live_id=LIVE, product_id="prd_a", occurred_at=at(61)),
        event("live.FlashDealStarted", live_id=LIVE, deal_id="deal_a", occurred_at=at(62)),
        order("OrderPlaced", "ord_1", 63),
        order("OrderPlaced", "ord_2", 63.5),
        order("OrderPlaced", "ord_3", 64),
        order("OrderPlaced", "ord_x", 64, live="liv_other"),
        confirmed("ord_1", 65, 10_000, "usr_b1", quantity=2),
        confirmed("ord_2", 66, 5_000, "usr_b1"),
        order("OrderRejected", "ord_3", 66, reason="sold_out"),
        order("OrderRejected", "ord_x", 66, reason="sold_out"),
        event("live.FlashDealEnded", live_id=LIVE, deal_id="deal_a", reason="sold_out", occurred_at=at(70)),
        order("OrderCancelled", "ord_2", 125, refund={"amount": 5_000, "currency": "BRL"}, quantity=1),
        event("live.ProductUnpinned", live_id=LIVE, product_id="prd_a", occurred_at=at(130)),
        event("live.LiveEnded", live_id=LIVE, occurred_at=at(end_s)),
        # The last audience window is closed a week later, when the live service's clock moves on.
        event(
            "live.AudienceSampled",
            live_id=LIVE,
            window_start=at(120),
            window_end=at(end_s),
            concurrent_viewers=3,
            peak_concurrent_viewers=8,
            occurred_at=at(7 * 86_400),
        ),
        order("OrderRefunded", "ord_1", 3_600, amount={"amount": 2_500, "currency": "BRL"}, quantity=1),
        event(
            "commission.CommissionAccrued",
            live_id=LIVE,
            accrual_id="acc_1",
            amount={"amount": 1_200},
            occurred_at=at(65.5),
        ),
        event("commission.CommissionAccrued", live_id="liv_other", accrual_id="acc_x", occurred_at=at(66)),
        event(
            "commission.CommissionReversed", accrual_id="acc_1", amount={"amount": 300}, occurred_at=at(3_601)
        ),
        event("commission.CommissionReversed", accrual_id="acc_x", occurred_at=at(3_601)),
        event(
            "commission.CommissionReleased",
            accrual_id="acc_1",
            amount={"amount": 900},
            occurred_at=at(9 * 86_400),
        ),
    ]


@pytest.mark.unit
def test_events_fall_in_the_minute_of_their_occurred_at_and_after_the_end_in_the_after_row() -> None:
    report = build_report(LIVE, history())
    minutes = [
        (r.minute, r.label, r.messages, r.questions, r.blocked, r.pins, r.placed) for r in report.minutes
    ]
    assert minutes == [(0, "20:00", 1, 1, 0, 0, 0), (1, "20:01", 0, 0, 1, 1, 3), (2, "20:02", 0, 0, 0, 0, 0)]
    first, second, third = report.minutes
    assert (second.confirmed, second.rejected, second.units, second.buyers, second.gmv) == (
        2,
        1,
        3,
        1,
        15_000,
    )
    assert (third.cancelled, third.cancelled_amount, third.units_returned, third.net) == (1, 5_000, 1, -5_000)
    # The audience sample counts in the window's last minute, not when it was closed.
    assert (third.viewers, third.peak_viewers, first.viewers) == (3, 8, None)
    after = report.after
    assert (after.refunds, after.refunded_amount, after.commission_reversed, after.commission_released) == (
        1,
        2_500,
        300,
        900,
    )
    assert report.rejected_by_reason == {"sold_out": 1}


@pytest.mark.unit
def test_totals_add_up_every_row_with_gmv_gross_and_net_and_conversion_over_peak_viewers() -> None:
    report = build_report(LIVE, history())
    totals = report.totals
    assert (totals.placed, totals.confirmed, totals.rejected, totals.cancelled, totals.refunds) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert (totals.gmv, totals.cancelled_amount, totals.refunded_amount, totals.net) == (
        15_000,
        5_000,
        2_500,
        7_500,
    )
    assert (totals.commission_accrued, totals.commission_reversed, totals.commission_released) == (
        1_200,
        300,
        900,
    )
    assert totals.buyers == 1  # two orders, one buyer
    assert (report.peak_viewers, report.conversion) == (8, 0.125)
    for name in ("messages", "placed", "confirmed", "gmv", "net", "commission_accrued"):
        assert getattr(totals, name) == sum(getattr(row, name) for row in [*report.minutes, report.after])
    assert [(w.kind, w.start_s, w.end_s) for w in (*report.pins, *report.deals)] == [
        ("pin", 61.0, 130.0),
        ("deal", 62.0, 70.0),
    ]
    assert report.currency == "BRL"
    assert [(h.accrued, h.reversed, h.released) for h in report.commission_by_host] == [(1_200, 300, 900)]


@pytest.mark.unit
def test_a_live_still_on_air_runs_to_its_last_minute_and_nothing_is_after() -> None:
    events = [e for e in history() if e.contract.type != "shopstream.live.LiveEnded"]
    report = build_report(LIVE, events)
    assert report.ended_at is None
    assert report.minutes[-1].minute == (9 * 86_400) // 60  # the release, by the commission clock
    assert report.after.commission_released == 0
    assert report.totals.gmv == 15_000


@pytest.mark.unit
@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "unknown live 'liv_report'"),
        ([event("live.LiveScheduled", live_id=LIVE)], "has not started"),
        ([event("live.LiveScheduled", live_id=LIVE), event("live.LiveCancelled", live_id=LIVE)], "cancelled"),
    ],
)
def test_a_live_that_cannot_be_reported_is_a_clear_error(events: list[Event], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        build_report(LIVE, events)


@pytest.mark.unit
def test_sales_in_two_currencies_are_refused_rather_than_summed() -> None:
    usd = order("OrderConfirmed", "ord_usd", 80, total={"amount": 700, "currency": "USD"})
    with pytest.raises(ReportError, match="several currencies"):
        build_report(LIVE, [*history(), usd])


@pytest.mark.integration
def test_an_unknown_live_in_real_stores_is_a_report_error(recorded_history: RecordedHistory) -> None:
    with pytest.raises(ReportError, match="unknown live 'liv_nobody'"):
        asyncio.run(live_report(store_refs(recorded_history.store_url_template), "liv_nobody"))


@pytest.mark.integration
def test_the_live_report_matches_the_demo_report_of_every_recorded_live(
    recorded_history: RecordedHistory,
) -> None:
    refs = store_refs(recorded_history.store_url_template)
    for sale in recorded_history.reports:
        report = asyncio.run(live_report(refs, sale.ids.live_id))
        totals = report.totals
        orders = sale.orders
        assert (totals.placed, totals.confirmed, totals.rejected, totals.cancelled) == (
            orders.orders,
            orders.confirmed,
            orders.rejected,
            orders.cancelled,
        )
        assert report.rejected_by_reason == orders.rejected_by_reason
        assert (totals.gmv, totals.cancelled_amount + totals.refunded_amount, totals.net) == (
            orders.gmv,
            orders.refunded,
            orders.net,
        )
        assert dict(report.units_by_sku) == {units.sku_id: units.units_sold for units in sale.units}
        assert totals.units_returned == sum(units.units_returned for units in sale.units)
        hosts = {h.influencer_id: (h.accrued, h.reversed, h.released) for h in sale.commission.hosts}
        assert {
            h.influencer_id: (h.accrued, h.reversed, h.released) for h in report.commission_by_host
        } == hosts
        assert totals.commission_accrued == sale.commission.commission_of_sales
        chat = sale.chat
        blocked = chat.blocked_banned_word + chat.blocked_slow_mode + chat.blocked_muted
        assert (report.peak_viewers, totals.messages, totals.blocked, totals.removed, totals.questions) == (
            sale.live.peak_concurrent_viewers,
            chat.messages,
            blocked,
            chat.removed,
            chat.questions,
        )
        assert report.ended_at is not None
        assert len(report.minutes) >= 2  # the demo's live lasts over a minute
        assert [w.kind for w in (*report.pins, *report.deals)] == ["pin", "deal"]


GMV_PER_MINUTE = """
WITH events AS (SELECT type, time, data FROM read_parquet($path)),
lives AS (
    SELECT data->>'$.live_id' AS live_id,
           max(time) FILTER (WHERE type = 'shopstream.live.LiveStarted') AS started,
           max(time) FILTER (WHERE type = 'shopstream.live.LiveEnded') AS ended
    FROM events WHERE type IN ('shopstream.live.LiveStarted', 'shopstream.live.LiveEnded') GROUP BY 1
)
SELECT l.live_id,
       CASE WHEN o.time > l.ended THEN NULL
            ELSE greatest(0, (epoch_us(o.time) - epoch_us(l.started)) // 60000000) END AS minute,
       count(*) AS orders,
       sum(CAST(o.data->>'$.total.amount' AS BIGINT)) AS gmv
FROM events o JOIN lives l ON l.live_id = o.data->>'$.attribution.live_id'
WHERE o.type = 'shopstream.orders.OrderConfirmed'
GROUP BY ALL ORDER BY ALL
"""


@pytest.mark.integration
def test_duckdb_over_the_parquet_export_finds_the_same_gmv_per_minute(
    recorded_history: RecordedHistory, tmp_path: Path
) -> None:
    refs = store_refs(recorded_history.store_url_template)
    out = tmp_path / "sales.parquet"
    types = frozenset(
        {"shopstream.live.LiveStarted", "shopstream.live.LiveEnded", "shopstream.orders.OrderConfirmed"}
    )
    asyncio.run(export_events(refs, Selection(types=types), out, "parquet"))
    found = duckdb.execute(GMV_PER_MINUTE, {"path": str(out)}).fetchall()
    expected = []
    for live_id in sorted(recorded_history.live_ids):
        report: LiveReport = asyncio.run(live_report(refs, live_id))
        rows = [r for r in [*report.minutes, report.after] if r.confirmed]
        expected += [(live_id, r.minute, r.confirmed, r.gmv) for r in rows]
    assert sorted(found, key=repr) == sorted(expected, key=repr)
    assert sum(gmv for *_, gmv in found) == sum(sale.orders.gmv for sale in recorded_history.reports)
