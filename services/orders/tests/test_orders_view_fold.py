"""The orders view's fast fold (raw JSON, canonical payloads read without pydantic, an order placed
and updated in one batch written as one row) against the per-event pydantic fold it replaced:
the same rows, byte for byte, for any batch split, from recorded or raw events, whatever the
payloads look like (extra fields, missing defaults, other time zones, non-ASCII text)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shopstream_contracts import REGISTRY, Event
from shopstream_contracts.orders.v1 import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
)
from shopstream_eventstore import AppendRequest, EventMetadata, NewEvent, RecordedEvent
from shopstream_eventstore._serialization import raw
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_orders.commands import CancelOrder, ConfirmOrder, RefundOrder, RejectOrder
from shopstream_orders.events import OrderShipped
from shopstream_orders.projections import ORDER_COLUMNS, OrdersView
from shopstream_processing import ProjectionRunner, Row, Statement, TableNames
from shopstream_processing.readmodel import sqlite_sql
from shopstream_processing.sqlite import SqliteReadModel

from .test_projections import STAFF, T0, a_placed_order, history

pytestmark = pytest.mark.unit

TABLES = {"orders": "orders", "order_refunds": "order_refunds"}


# -- the fold this view had before its fast path: one pydantic decode and one statement per event --


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def reference(events: Sequence[RecordedEvent], t: TableNames) -> list[Statement]:
    statements: list[Statement] = []
    for recorded in events:
        if recorded.type == OrderShipped.type_name:
            shipped = OrderShipped.model_validate(recorded.data)
            statements.append(
                Statement(
                    f"UPDATE {t['orders']} SET shipped = 1, updated_at = $2 WHERE order_id = $1",
                    (shipped.order_id, shipped.occurred_at.isoformat()),
                )
            )
        elif recorded.type.startswith("shopstream.orders."):
            event = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
            statements += _reference_fold(event, recorded.position, t)
    return statements


def _reference_fold(event: Event, position: int, t: TableNames) -> list[Statement]:
    orders = t["orders"]
    match event:
        case OrderPlaced():
            return [
                Statement(
                    f"INSERT INTO {orders} ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                    "$10, 'placed', NULL, NULL, NULL, 0, 0, 0, NULL, NULL, $11, $12, $12) "
                    "ON CONFLICT (order_id) DO NOTHING",
                    (
                        event.order_id,
                        position,
                        event.buyer_id,
                        event.line.brand_id,
                        event.attribution.live_id,
                        event.attribution.flash_deal_id,
                        event.line.sku_id,
                        event.line.quantity,
                        event.total.currency,
                        event.total.amount,
                        _dumps(event.to_data()),
                        event.occurred_at.isoformat(),
                    ),
                )
            ]
        case OrderConfirmed():
            return [
                Statement(
                    f"UPDATE {orders} SET status = 'confirmed', reservation_id = $2, updated_at = $3 "
                    "WHERE order_id = $1",
                    (event.order_id, event.reservation_id, event.occurred_at.isoformat()),
                )
            ]
        case OrderRejected():
            return [
                Statement(
                    f"UPDATE {orders} SET status = 'rejected', reason = $2, detail = $3, updated_at = $4 "
                    "WHERE order_id = $1",
                    (event.order_id, event.reason, event.detail, event.occurred_at.isoformat()),
                )
            ]
        case OrderCancelled():
            return [
                Statement(
                    f"UPDATE {orders} SET status = 'cancelled', refunded = $2, returned_units = $3, "
                    "cancelled_by = $4, cancel_reason = $5, updated_at = $6 WHERE order_id = $1",
                    (
                        event.order_id,
                        event.refund.amount,
                        event.quantity,
                        event.cancelled_by,
                        event.reason,
                        event.occurred_at.isoformat(),
                    ),
                )
            ]
        case OrderRefunded():
            return [
                Statement(
                    f"UPDATE {orders} SET status = CASE WHEN $2 = 1 THEN 'refunded' ELSE status END, "
                    "refunded = $3, returned_units = returned_units + $4, updated_at = $5 "
                    "WHERE order_id = $1",
                    (
                        event.order_id,
                        int(event.fully_refunded),
                        event.total_refunded.amount,
                        event.quantity,
                        event.occurred_at.isoformat(),
                    ),
                ),
                Statement(
                    f"INSERT INTO {t['order_refunds']} (refund_id, order_id, seq, amount, currency, "
                    "quantity, refunded_by, reason, occurred_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (refund_id) DO NOTHING",
                    (
                        event.refund_id,
                        event.order_id,
                        position,
                        event.amount.amount,
                        event.amount.currency,
                        event.quantity,
                        event.refunded_by,
                        event.reason,
                        event.occurred_at.isoformat(),
                    ),
                ),
            ]
    return []


# -- histories ------------------------------------------------------------------------------------


def payload(event: Event | OrderShipped) -> tuple[str, dict[str, Any]]:
    kind = event.contract.type if isinstance(event, Event) else OrderShipped.type_name
    return kind, event.to_data()


def varied() -> list[tuple[str, dict[str, Any]]]:
    """Canonical histories, then the same kinds of events in every other valid form."""
    events = [
        payload(e)
        for e in [
            *history(
                ConfirmOrder("ord_1", "res_1", T0),
                RefundOrder("ord_1", "rfd_1", STAFF, 1, None, "damaged", T0 + timedelta(days=1)),
                RefundOrder("ord_1", "rfd_2", STAFF, 0, 6666, None, T0 + timedelta(days=2)),
                placed=a_placed_order(order_id="ord_1", quantity=3, unit=3333),
            ),
            OrderShipped(order_id="ord_1", shipped_by="usr_ops", occurred_at=T0 + timedelta(days=3)),
            *history(RejectOrder("ord_2", "sold_out", "não há estoque", T0), placed=a_placed_order("ord_2")),
            *history(
                ConfirmOrder("ord_3", "res_3", T0),
                CancelOrder("ord_3", STAFF, "changed mind", T0 + timedelta(hours=1)),
                placed=a_placed_order("ord_3"),
            ),
            *history(ConfirmOrder("ord_4", "res_4", T0), placed=a_placed_order("ord_4")),
        ]
    ]
    placed = dict(events[0][1])
    odd: list[tuple[str, dict[str, Any]]] = []
    # A newer producer's extra fields, at the top and nested: ignored.
    extra = {**placed, "order_id": "ord_x1", "coupon": "X", "line": {**placed["line"], "gift": True}}
    odd.append(("shopstream.orders.OrderPlaced", extra))
    # Defaults left out: filled in.
    attribution = {
        k: v for k, v in placed["attribution"].items() if k not in ("live_id", "flash_deal_id", "host_ids")
    }
    odd.append(
        ("shopstream.orders.OrderPlaced", {**placed, "order_id": "ord_x2", "attribution": attribution})
    )
    # Another time zone, and zero microseconds written out: normalised.
    odd.append(
        (
            "shopstream.orders.OrderPlaced",
            {**placed, "order_id": "ord_x3", "occurred_at": "2025-05-01T22:00:00+02:00"},
        )
    )
    odd.append(
        (
            "shopstream.orders.OrderPlaced",
            {**placed, "order_id": "ord_x4", "occurred_at": "2025-05-01T20:00:00.000000Z"},
        )
    )
    odd.append(
        (
            "shopstream.orders.OrderPlaced",
            {**placed, "order_id": "ord_x5", "occurred_at": "2025-05-01T20:00:00.5Z"},
        )
    )
    confirmed = next(data for kind, data in events if kind.endswith("OrderConfirmed"))
    for n, at in enumerate(
        ["2025-05-01T23:00:00+03:00", "2025-05-01T20:00:00.000000Z", "2025-05-01T20:00:00Z"]
    ):
        odd.append(
            (
                "shopstream.orders.OrderConfirmed",
                {**confirmed, "order_id": f"ord_x{n + 1}", "occurred_at": at},
            )
        )
    odd.append(
        (
            OrderShipped.type_name,
            {"order_id": "ord_x1", "shipped_by": "usr_ops", "occurred_at": "2025-05-02T10:00:00+05:30"},
        )
    )
    # Updates of an order placed long before, and of one never placed.
    odd.append(
        (
            "shopstream.orders.OrderConfirmed",
            {**confirmed, "order_id": "ord_4", "reservation_id": "res_again"},
        )
    )
    odd.append(("shopstream.orders.OrderConfirmed", {**confirmed, "order_id": "ord_nobody"}))
    # Placed twice: the second one changes nothing, the updates apply to the first.
    odd.append(("shopstream.orders.OrderPlaced", {**placed, "order_id": "ord_x2", "buyer_id": "usr_other"}))
    return events + odd


def recorded(events: Sequence[tuple[str, dict[str, Any]]]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            event_id=uuid.uuid4(),
            stream_id="s",
            stream_version=0,
            position=n + 1,
            type=kind,
            data_version=1,
            data=data,
            metadata=EventMetadata(occurred_at=T0),
            recorded_at=T0,
        )
        for n, (kind, data) in enumerate(events)
    ]


def fold(
    events: Sequence[Any], batch: int, apply: Callable[[Sequence[Any], TableNames], Sequence[Statement]]
) -> dict[str, list[Row]]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for table in OrdersView.tables:
        conn.execute(f"CREATE TABLE {table.name} ({table.columns})")
    for start in range(0, len(events), batch):
        conn.execute("BEGIN")
        for statement in apply(events[start : start + batch], TABLES):
            conn.execute(sqlite_sql(statement.sql), statement.args)
        conn.execute("COMMIT")
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def test_the_fast_fold_gives_the_rows_of_the_pydantic_fold_for_any_batches() -> None:
    events = recorded(varied())
    expected = fold(events, 1, reference)
    assert len(expected["orders"]) == 9
    assert len(expected["order_refunds"]) == 2
    view = OrdersView()
    raws = [raw(event) for event in events]  # as a store hands them out
    for batch in (1, 2, 3, 5, 8, 1000):
        assert fold(events, batch, view.apply) == expected, batch
        assert fold(raws, batch, view.apply_raw) == expected, batch


def test_a_payload_of_an_older_version_is_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    # With OrderConfirmed at v2, a stored v1 payload takes the decode-and-upcast path.
    from shopstream_orders import projections

    monkeypatch.setitem(projections._LATEST, "shopstream.orders.OrderConfirmed", 2)
    seen: list[int] = []

    def decode(kind: str, version: int, data: Any) -> Event:
        seen.append(version)
        return REGISTRY.model(kind, version).read(data)

    monkeypatch.setattr(REGISTRY, "decode", decode)
    events = recorded(varied())
    assert fold(events, 1000, OrdersView().apply) == fold(events, 1, reference)
    assert seen
    assert set(seen) == {1}


async def test_a_folded_order_that_already_exists_is_applied_event_by_event(tmp_path: Path) -> None:
    """An order placed again after its row exists: the folded INSERT fails the batch, and the
    runner's one-event-per-transaction retry gives the per-event rows."""
    first, again = (
        a_placed_order("ord_1").to_data(),
        {**a_placed_order("ord_1").to_data(), "buyer_id": "usr_b"},
    )
    confirmed = next(e for e in history(ConfirmOrder("ord_1", "res_1", T0)) if isinstance(e, OrderConfirmed))

    def new(kind: str, data: dict[str, Any]) -> NewEvent:
        return NewEvent(uuid.uuid4(), kind, data, EventMetadata(T0))

    store = await SqliteEventStore.open(tmp_path / "orders.sqlite")
    db = await SqliteReadModel.open(tmp_path / "orders.sqlite")
    try:
        await store.append_many([AppendRequest("a", [new("shopstream.orders.OrderPlaced", first)])])
        runner = ProjectionRunner(store, db, OrdersView(), service="orders")
        await runner.rebuild()
        await store.append_many(
            [
                AppendRequest(
                    "b",
                    [
                        new("shopstream.orders.OrderPlaced", again),
                        new("shopstream.orders.OrderConfirmed", confirmed.to_data()),
                    ],
                )
            ]
        )
        await runner.rebuild()  # the new generation folds all three in one page: no conflict
        rows = await db.fetch("SELECT order_id, buyer_id, status FROM orders")
        assert rows == [("ord_1", first["buyer_id"], "confirmed")]
        # The live runner applies the last two in one batch on top of the first one's row.
        db2 = await SqliteReadModel.open(tmp_path / "live.sqlite")
        try:
            live = ProjectionRunner(store, db2, OrdersView(), service="orders")
            generation = await live._load()
            await live._apply(generation, await store.read_all_raw(0, 1))
            await live._apply(generation, await store.read_all_raw(1, 10))
            rows = await db2.fetch("SELECT order_id, buyer_id, status FROM orders")
            assert rows == [("ord_1", first["buyer_id"], "confirmed")]
        finally:
            await db2.close()
    finally:
        await db.close()
        await store.close()


def test_times_are_read_like_pydantic_reads_them() -> None:
    from shopstream_orders.projections import _utc_iso

    confirmed = next(e for e in history(ConfirmOrder("ord_1", "res_1", T0)) if isinstance(e, OrderConfirmed))
    for text in ["2025-05-01T20:25:14.840000Z", "2025-05-01T20:25:14Z", "0999-01-01T00:00:00.000001Z"]:
        read = OrderConfirmed.read({**confirmed.to_data(), "occurred_at": text})
        assert read.to_data()["occurred_at"] == text
        assert _utc_iso(text) == read.occurred_at.isoformat()
    not_canonical: list[object] = [
        "2025-05-01T20:25:14.000000Z",
        "2025-05-01T20:25:14+00:00",
        "2025-02-30T00:00:00Z",
        "2025-05-01T20:25:14.84Z",
        "2025-05-01 20:25:14Z",
        5,
    ]
    for value in not_canonical:
        assert _utc_iso(value) is None


def test_apply_never_folds_so_one_transaction_per_batch_is_enough() -> None:
    """Time travel folds ``apply``'s statements with no event-by-event retry: an order placed
    again after its row exists must not fail there."""
    placed = a_placed_order("ord_1").to_data()
    confirmed = next(e for e in history(ConfirmOrder("ord_1", "res_1", T0)) if isinstance(e, OrderConfirmed))
    events = recorded(
        [
            ("shopstream.orders.OrderPlaced", {**placed, "order_id": "ord_0"}),
            ("shopstream.orders.OrderPlaced", placed),
            ("shopstream.orders.OrderPlaced", {**placed, "buyer_id": "usr_b"}),
            ("shopstream.orders.OrderConfirmed", confirmed.to_data()),
        ]
    )
    assert fold(events, 2, OrdersView().apply) == fold(events, 1, reference)
    with pytest.raises(sqlite3.IntegrityError):
        fold([raw(event) for event in events], 2, OrdersView().apply_raw)
