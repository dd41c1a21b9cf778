"""Read models of the live service, built from its own store (its events and the inbox's).

One projection, ``lives``, with the tables every query reads:
- ``lives``: one row per live (lifecycle, hosts, brands, showcase, current pin, audience summary);
  ``live_hosts`` and ``live_brands`` index lives by host and by brand;
- ``deals``: flash deals, with the units the catalog has reserved for each (from its
  ``StockReserved`` / ``StockReleased``);
- ``payment_terms``: the terms offered on each live;
- ``timeline``: every event of a live in stream order with its ``live_offset_ms``.

Times are stored as fixed-width UTC text (``ts``) so that comparing text compares instants on
both SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shopstream_contracts import REGISTRY
from shopstream_contracts.catalog.v1 import StockReleased, StockReserved
from shopstream_contracts.live.v1 import (
    AudienceSampled,
    FlashDealEnded,
    FlashDealStarted,
    LiveCancelled,
    LiveEnded,
    LiveRescheduled,
    LiveScheduled,
    LiveStarted,
    PaymentTermsOffered,
    ProductPinned,
    ProductUnpinned,
)
from shopstream_eventstore import RecordedEvent
from shopstream_processing import Statement, Table, TableNames

LIVES = "lives"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def ts(moment: datetime) -> str:
    """An instant as sortable text: always UTC, always microseconds."""
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


TABLES = (
    Table(
        "lives",
        "live_id text PRIMARY KEY, title text NOT NULL, description text, status text NOT NULL, "
        "scheduled_start_at text NOT NULL, host_ids text NOT NULL, brands text NOT NULL, "
        "showcase text NOT NULL, scheduled_by text NOT NULL, scheduled_at text NOT NULL, "
        "started_at text, started_by text, ended_at text, ended_by text, "
        "cancelled_at text, cancelled_by text, cancel_reason text, "
        "pin_product_id text, pin_brand_id text, pin_sku_id text, pinned_at text, "
        "audience_windows bigint NOT NULL, audience_concurrent bigint NOT NULL, "
        "audience_peak bigint NOT NULL, audience_joins bigint NOT NULL, audience_likes bigint NOT NULL, "
        "last_window_end text",
        indexes=("status, scheduled_start_at",),
    ),
    Table("live_hosts", "host_id text NOT NULL, live_id text NOT NULL, PRIMARY KEY (host_id, live_id)"),
    Table(
        "live_brands",
        "brand_id text NOT NULL, live_id text NOT NULL, agreement_id text NOT NULL, "
        "PRIMARY KEY (brand_id, live_id)",
    ),
    Table(
        "deals",
        "deal_id text PRIMARY KEY, live_id text NOT NULL, brand_id text NOT NULL, product_id text NOT NULL, "
        "sku_id text NOT NULL, price_amount bigint NOT NULL, price_currency text NOT NULL, "
        "units bigint NOT NULL, per_buyer_cap bigint NOT NULL, duration_ms bigint NOT NULL, "
        "started_at text NOT NULL, ends_at text NOT NULL, started_by text NOT NULL, "
        "live_offset_ms bigint NOT NULL, status text NOT NULL, end_reason text, ended_at text, "
        "ended_by text, units_reserved bigint NOT NULL, units_left bigint NOT NULL",
        indexes=("live_id, started_at", "status, ends_at"),
    ),
    Table(
        "payment_terms",
        "terms_id text PRIMARY KEY, live_id text NOT NULL, brand_id text, "
        "max_installments integer NOT NULL, interest_free boolean NOT NULL, "
        "min_installment_amount bigint, min_installment_currency text, valid_until text, "
        "offered_by text NOT NULL, offered_at text NOT NULL, live_offset_ms bigint NOT NULL",
        indexes=("live_id, offered_at",),
    ),
    Table(
        "timeline",
        "live_id text NOT NULL, position bigint NOT NULL, event_type text NOT NULL, "
        "occurred_at text NOT NULL, live_offset_ms bigint, data text NOT NULL, "
        "PRIMARY KEY (live_id, position)",
    ),
)

LiveEvent = (
    LiveScheduled
    | LiveRescheduled
    | LiveCancelled
    | LiveStarted
    | LiveEnded
    | ProductPinned
    | ProductUnpinned
    | FlashDealStarted
    | FlashDealEnded
    | PaymentTermsOffered
    | AudienceSampled
)
_LIVE_EVENTS = (
    LiveScheduled,
    LiveRescheduled,
    LiveCancelled,
    LiveStarted,
    LiveEnded,
    ProductPinned,
    ProductUnpinned,
    FlashDealStarted,
    FlashDealEnded,
    PaymentTermsOffered,
    AudienceSampled,
)
_Apply = Callable[[Any, TableNames], list[Statement]]


class LivesProjection:
    name = LIVES
    version = 1
    tables = TABLES

    def __init__(self) -> None:
        self._handlers: dict[str, _Apply] = {
            LiveScheduled.contract.type: _scheduled,
            LiveRescheduled.contract.type: _rescheduled,
            LiveCancelled.contract.type: _cancelled,
            LiveStarted.contract.type: _started,
            LiveEnded.contract.type: _ended,
            ProductPinned.contract.type: _pinned,
            ProductUnpinned.contract.type: _unpinned,
            FlashDealStarted.contract.type: _deal_started,
            FlashDealEnded.contract.type: _deal_ended,
            PaymentTermsOffered.contract.type: _terms_offered,
            AudienceSampled.contract.type: _audience_sampled,
            StockReserved.contract.type: _stock_reserved,
            StockReleased.contract.type: _stock_released,
        }

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        statements: list[Statement] = []
        for recorded in events:
            handler = self._handlers.get(recorded.type)
            if handler is None:
                continue
            event = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
            statements += handler(event, tables)
            if isinstance(event, _LIVE_EVENTS):
                statements.append(_timeline(event, recorded.position, tables))
        return statements


def _timeline(event: LiveEvent, position: int, tables: TableNames) -> Statement:
    data = event.to_data()
    for key in ("live_id", "occurred_at", "live_offset_ms"):
        data.pop(key, None)
    return _insert(
        tables["timeline"],
        live_id=event.live_id,
        position=position,
        event_type=event.contract.type.rpartition(".")[2],
        occurred_at=ts(event.occurred_at),
        live_offset_ms=getattr(event, "live_offset_ms", None),
        data=_json(data),
    )


def _insert(table: str, **columns: Any) -> Statement:
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return Statement(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", tuple(columns.values())
    )


def _update(table: str, key: str, key_value: str, **columns: Any) -> Statement:
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    return Statement(f"UPDATE {table} SET {assignments} WHERE {key} = $1", (key_value, *columns.values()))


def _scheduled(event: LiveScheduled, tables: TableNames) -> list[Statement]:
    live = _insert(
        tables["lives"],
        live_id=event.live_id,
        title=event.title,
        description=event.description,
        status="scheduled",
        scheduled_start_at=ts(event.scheduled_start_at),
        host_ids=_json(event.host_ids),
        brands=_json([brand.model_dump(mode="json") for brand in event.brands]),
        showcase=_json([item.model_dump(mode="json") for item in event.showcase]),
        scheduled_by=event.scheduled_by,
        scheduled_at=ts(event.occurred_at),
        audience_windows=0,
        audience_concurrent=0,
        audience_peak=0,
        audience_joins=0,
        audience_likes=0,
    )
    hosts = [_insert(tables["live_hosts"], host_id=host, live_id=event.live_id) for host in event.host_ids]
    brands = [
        _insert(
            tables["live_brands"],
            brand_id=brand.brand_id,
            live_id=event.live_id,
            agreement_id=brand.agreement_id,
        )
        for brand in event.brands
    ]
    return [live, *hosts, *brands]


def _rescheduled(event: LiveRescheduled, tables: TableNames) -> list[Statement]:
    return [
        _update(tables["lives"], "live_id", event.live_id, scheduled_start_at=ts(event.scheduled_start_at))
    ]


def _cancelled(event: LiveCancelled, tables: TableNames) -> list[Statement]:
    return [
        _update(
            tables["lives"],
            "live_id",
            event.live_id,
            status="cancelled",
            cancelled_at=ts(event.occurred_at),
            cancelled_by=event.cancelled_by,
            cancel_reason=event.reason,
        )
    ]


def _started(event: LiveStarted, tables: TableNames) -> list[Statement]:
    return [
        _update(
            tables["lives"],
            "live_id",
            event.live_id,
            status="live",
            started_at=ts(event.occurred_at),
            started_by=event.started_by,
        )
    ]


def _ended(event: LiveEnded, tables: TableNames) -> list[Statement]:
    return [
        _update(
            tables["lives"],
            "live_id",
            event.live_id,
            status="ended",
            ended_at=ts(event.occurred_at),
            ended_by=event.ended_by,
        )
    ]


def _pinned(event: ProductPinned, tables: TableNames) -> list[Statement]:
    return [
        _update(
            tables["lives"],
            "live_id",
            event.live_id,
            pin_product_id=event.product_id,
            pin_brand_id=event.brand_id,
            pin_sku_id=event.sku_id,
            pinned_at=ts(event.occurred_at),
        )
    ]


def _unpinned(event: ProductUnpinned, tables: TableNames) -> list[Statement]:
    return [
        _update(
            tables["lives"],
            "live_id",
            event.live_id,
            pin_product_id=None,
            pin_brand_id=None,
            pin_sku_id=None,
            pinned_at=None,
        )
    ]


def _deal_started(event: FlashDealStarted, tables: TableNames) -> list[Statement]:
    return [
        _insert(
            tables["deals"],
            deal_id=event.deal_id,
            live_id=event.live_id,
            brand_id=event.brand_id,
            product_id=event.product_id,
            sku_id=event.sku_id,
            price_amount=event.deal_price.amount,
            price_currency=event.deal_price.currency,
            units=event.units,
            per_buyer_cap=event.per_buyer_cap,
            duration_ms=event.duration_ms,
            started_at=ts(event.occurred_at),
            ends_at=ts(event.ends_at),
            started_by=event.started_by,
            live_offset_ms=event.live_offset_ms,
            status="active",
            units_reserved=0,
            units_left=event.units,
        )
    ]


def _deal_ended(event: FlashDealEnded, tables: TableNames) -> list[Statement]:
    return [
        _update(
            tables["deals"],
            "deal_id",
            event.deal_id,
            status="ended",
            end_reason=event.reason,
            ended_at=ts(event.occurred_at),
            ended_by=event.ended_by,
        )
    ]


def _terms_offered(event: PaymentTermsOffered, tables: TableNames) -> list[Statement]:
    minimum = event.min_installment
    return [
        _insert(
            tables["payment_terms"],
            terms_id=event.terms_id,
            live_id=event.live_id,
            brand_id=event.brand_id,
            max_installments=event.max_installments,
            interest_free=event.interest_free,
            min_installment_amount=None if minimum is None else minimum.amount,
            min_installment_currency=None if minimum is None else minimum.currency,
            valid_until=None if event.valid_until is None else ts(event.valid_until),
            offered_by=event.offered_by,
            offered_at=ts(event.occurred_at),
            live_offset_ms=event.live_offset_ms,
        )
    ]


def _audience_sampled(event: AudienceSampled, tables: TableNames) -> list[Statement]:
    lives = tables["lives"]
    return [
        Statement(
            f"UPDATE {lives} SET audience_windows = audience_windows + 1, audience_concurrent = $2, "
            "audience_peak = CASE WHEN audience_peak < $3 THEN $3 ELSE audience_peak END, "
            "audience_joins = audience_joins + $4, audience_likes = audience_likes + $5, "
            "last_window_end = $6 WHERE live_id = $1",
            (
                event.live_id,
                event.concurrent_viewers,
                event.peak_concurrent_viewers,
                event.joins,
                event.likes,
                ts(event.window_end),
            ),
        )
    ]


def _stock_reserved(event: StockReserved, tables: TableNames) -> list[Statement]:
    if event.deal_id is None:
        return []
    # A deal the catalog knows but this service never started (another platform's) matches no row.
    return [
        Statement(
            f"UPDATE {tables['deals']} SET units_reserved = units_reserved + $2, "
            "units_left = COALESCE($3, units_left) WHERE deal_id = $1",
            (event.deal_id, event.quantity, event.deal_units_left),
        )
    ]


def _stock_released(event: StockReleased, tables: TableNames) -> list[Statement]:
    if event.deal_id is None:
        return []
    # units_left stays the catalog's figure as of its last reservation: whether released units
    # go back to a running deal is the catalog's rule, not something to guess here.
    return [
        Statement(
            f"UPDATE {tables['deals']} SET units_reserved = units_reserved - $2 WHERE deal_id = $1",
            (event.deal_id, event.quantity),
        )
    ]
