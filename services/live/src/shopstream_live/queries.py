"""Reads of the ``lives`` projection: what the HTTP API answers, the tickers scan and the policy
resolves. Views are pydantic models, so they are also the API's documented response schemas."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shopstream_contracts import Money
from shopstream_contracts.live.v1 import LiveBrand, ShowcaseItem
from shopstream_processing import ReadModelDb, Row, Statement

from .projections import parse_ts, ts

LiveStatus = Literal["scheduled", "live", "ended", "cancelled"]


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_ts(value)


class PinView(BaseModel):
    product_id: str
    brand_id: str
    sku_id: str | None
    pinned_at: datetime


class DealView(BaseModel):
    deal_id: str
    live_id: str
    brand_id: str
    product_id: str
    sku_id: str
    deal_price: Money
    units: int
    per_buyer_cap: int
    duration_ms: int
    started_at: datetime
    ends_at: datetime
    live_offset_ms: int
    active: bool = Field(description="Running now: not ended and before its deadline.")
    end_reason: str | None
    ended_at: datetime | None
    ended_by: str | None
    units_reserved: int = Field(description="Units the catalog holds for orders at the deal price.")
    units_left: int = Field(description="Deal units still unreserved, as last reported by the catalog.")


class TermsView(BaseModel):
    terms_id: str
    brand_id: str | None
    max_installments: int
    interest_free: bool
    min_installment: Money | None
    valid_until: datetime | None
    offered_by: str
    offered_at: datetime
    live_offset_ms: int
    active: bool = Field(description="Usable now: the live is on air and the offer has not lapsed.")


class AudienceView(BaseModel):
    windows: int = Field(description="Audience windows recorded so far.")
    concurrent_viewers: int = Field(description="Viewers connected at the end of the last window.")
    peak_concurrent_viewers: int = Field(description="Most viewers connected at once, over the whole live.")
    joins: int
    likes: int
    last_window_end: datetime | None


class LiveView(BaseModel):
    live_id: str
    title: str
    description: str | None
    status: LiveStatus
    scheduled_start_at: datetime
    host_ids: list[str]
    brands: list[LiveBrand]
    showcase: list[ShowcaseItem]
    scheduled_by: str
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    pin: PinView | None
    active_deals: list[DealView]
    payment_terms: list[TermsView]
    audience: AudienceView


class LiveSummary(BaseModel):
    live_id: str
    title: str
    status: LiveStatus
    scheduled_start_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    host_ids: list[str]
    brand_ids: list[str]
    peak_concurrent_viewers: int


class TimelineEntry(BaseModel):
    position: int = Field(description="Order of the event in the live's history; resume after it.")
    type: str = Field(description="The event type's short name, e.g. ProductPinned.")
    occurred_at: datetime
    live_offset_ms: int | None = Field(description="Milliseconds since the live started, if it had.")
    data: dict[str, Any] = Field(description="The event's public data, less the fields above and live_id.")


_LIVE_COLUMNS = (
    "live_id, title, description, status, scheduled_start_at, host_ids, brands, showcase, scheduled_by, "
    "scheduled_at, started_at, ended_at, cancelled_at, cancel_reason, pin_product_id, pin_brand_id, "
    "pin_sku_id, pinned_at, audience_windows, audience_concurrent, audience_peak, audience_joins, "
    "audience_likes, last_window_end"
)
_DEAL_COLUMNS = (
    "deal_id, live_id, brand_id, product_id, sku_id, price_amount, price_currency, units, per_buyer_cap, "
    "duration_ms, started_at, ends_at, live_offset_ms, status, end_reason, ended_at, ended_by, "
    "units_reserved, units_left"
)
_TERMS_COLUMNS = (
    "terms_id, brand_id, max_installments, interest_free, min_installment_amount, min_installment_currency, "
    "valid_until, offered_by, offered_at, live_offset_ms"
)

_TERMS_OF_LIVE = (
    f"SELECT {_TERMS_COLUMNS} FROM payment_terms WHERE live_id = $1 ORDER BY offered_at, terms_id"
)


def _deals_of_live(*, active_only: bool) -> str:
    # Past its deadline a deal is over, even before the clock-driven end is recorded.
    active = "AND status = 'active' AND ends_at > $2 " if active_only else ""
    return f"SELECT {_DEAL_COLUMNS} FROM deals WHERE live_id = $1 {active}ORDER BY started_at, deal_id"


async def live(db: ReadModelDb, live_id: str, now: datetime) -> LiveView | None:
    lives, deals, terms = await db.read(
        [
            Statement(f"SELECT {_LIVE_COLUMNS} FROM lives WHERE live_id = $1", (live_id,)),
            Statement(
                _deals_of_live(active_only=True),
                (live_id, ts(now)),
            ),
            Statement(
                _TERMS_OF_LIVE,
                (live_id,),
            ),
        ]
    )
    if not lives:
        return None
    row = lives[0]
    status: LiveStatus = row[3]
    return LiveView(
        live_id=row[0],
        title=row[1],
        description=row[2],
        status=status,
        scheduled_start_at=parse_ts(row[4]),
        host_ids=json.loads(row[5]),
        brands=[LiveBrand.model_validate(brand) for brand in json.loads(row[6])],
        showcase=[ShowcaseItem.model_validate(item) for item in json.loads(row[7])],
        scheduled_by=row[8],
        scheduled_at=parse_ts(row[9]),
        started_at=_time(row[10]),
        ended_at=_time(row[11]),
        cancelled_at=_time(row[12]),
        cancel_reason=row[13],
        pin=None
        if row[14] is None
        else PinView(product_id=row[14], brand_id=row[15], sku_id=row[16], pinned_at=parse_ts(row[17])),
        active_deals=[_deal(deal, now) for deal in deals],
        payment_terms=[_terms(t, status, now) for t in terms],
        audience=AudienceView(
            windows=row[18],
            concurrent_viewers=row[19],
            peak_concurrent_viewers=row[20],
            joins=row[21],
            likes=row[22],
            last_window_end=_time(row[23]),
        ),
    )


def _deal(row: Row, now: datetime) -> DealView:
    ends_at = parse_ts(row[11])
    return DealView(
        deal_id=row[0],
        live_id=row[1],
        brand_id=row[2],
        product_id=row[3],
        sku_id=row[4],
        deal_price=Money(amount=row[5], currency=row[6]),
        units=row[7],
        per_buyer_cap=row[8],
        duration_ms=row[9],
        started_at=parse_ts(row[10]),
        ends_at=ends_at,
        live_offset_ms=row[12],
        active=row[13] == "active" and ends_at > now,
        end_reason=row[14],
        ended_at=_time(row[15]),
        ended_by=row[16],
        units_reserved=row[17],
        units_left=row[18],
    )


def _terms(row: Row, live_status: str, now: datetime) -> TermsView:
    valid_until = _time(row[6])
    return TermsView(
        terms_id=row[0],
        brand_id=row[1],
        max_installments=row[2],
        interest_free=bool(row[3]),
        min_installment=None if row[4] is None else Money(amount=row[4], currency=row[5]),
        valid_until=valid_until,
        offered_by=row[7],
        offered_at=parse_ts(row[8]),
        live_offset_ms=row[9],
        active=live_status == "live" and (valid_until is None or valid_until > now),
    )


async def lives(
    db: ReadModelDb,
    *,
    status: LiveStatus | None = None,
    host_id: str | None = None,
    brand_id: str | None = None,
    limit: int = 50,
) -> list[LiveSummary]:
    conditions: list[str] = []
    args: list[Any] = []
    if status is not None:
        args.append(status)
        conditions.append(f"status = ${len(args)}")
    if host_id is not None:
        args.append(host_id)
        conditions.append(f"live_id IN (SELECT live_id FROM live_hosts WHERE host_id = ${len(args)})")
    if brand_id is not None:
        args.append(brand_id)
        conditions.append(f"live_id IN (SELECT live_id FROM live_brands WHERE brand_id = ${len(args)})")
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    args.append(limit)
    rows = await db.fetch(
        "SELECT live_id, title, status, scheduled_start_at, started_at, ended_at, host_ids, brands, "
        f"audience_peak FROM lives {where}ORDER BY scheduled_start_at DESC, live_id LIMIT ${len(args)}",
        *args,
    )
    return [
        LiveSummary(
            live_id=row[0],
            title=row[1],
            status=row[2],
            scheduled_start_at=parse_ts(row[3]),
            started_at=_time(row[4]),
            ended_at=_time(row[5]),
            host_ids=json.loads(row[6]),
            brand_ids=[brand["brand_id"] for brand in json.loads(row[7])],
            peak_concurrent_viewers=row[8],
        )
        for row in rows
    ]


async def deals(db: ReadModelDb, live_id: str, now: datetime, *, active_only: bool) -> list[DealView]:
    args: tuple[Any, ...] = (live_id, ts(now)) if active_only else (live_id,)
    rows = await db.fetch(_deals_of_live(active_only=active_only), *args)
    return [_deal(row, now) for row in rows]


async def deal(db: ReadModelDb, live_id: str, deal_id: str, now: datetime) -> DealView | None:
    rows = await db.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE deal_id = $1 AND live_id = $2", deal_id, live_id
    )
    return _deal(rows[0], now) if rows else None


async def payment_terms(db: ReadModelDb, live_id: str, now: datetime) -> list[TermsView]:
    status_rows, rows = await db.read(
        [
            Statement("SELECT status FROM lives WHERE live_id = $1", (live_id,)),
            Statement(
                _TERMS_OF_LIVE,
                (live_id,),
            ),
        ]
    )
    status = status_rows[0][0] if status_rows else "unknown"
    return [_terms(row, status, now) for row in rows]


async def timeline(
    db: ReadModelDb, live_id: str, *, after: int = 0, limit: int = 100, event_type: str | None = None
) -> list[TimelineEntry]:
    type_filter = "AND event_type = $4 " if event_type else ""
    args: tuple[Any, ...] = (live_id, after, limit, event_type) if event_type else (live_id, after, limit)
    rows = await db.fetch(
        "SELECT position, event_type, occurred_at, live_offset_ms, data FROM timeline "
        f"WHERE live_id = $1 AND position > $2 {type_filter}ORDER BY position LIMIT $3",
        *args,
    )
    return [
        TimelineEntry(
            position=row[0],
            type=row[1],
            occurred_at=parse_ts(row[2]),
            live_offset_ms=row[3],
            data=json.loads(row[4]),
        )
        for row in rows
    ]


async def exists(db: ReadModelDb, live_id: str) -> bool:
    return bool(await db.fetch("SELECT 1 FROM lives WHERE live_id = $1", live_id))


async def live_of_deal(db: ReadModelDb, deal_id: str) -> str | None:
    rows = await db.fetch("SELECT live_id FROM deals WHERE deal_id = $1", deal_id)
    return str(rows[0][0]) if rows else None


async def lives_with_due_deals(db: ReadModelDb, now: datetime) -> list[str]:
    rows = await db.fetch(
        "SELECT DISTINCT live_id FROM deals WHERE status = 'active' AND ends_at <= $1 ORDER BY live_id",
        ts(now),
    )
    return [str(row[0]) for row in rows]


class AudienceTarget(BaseModel):
    """What the audience tally needs to know about a live."""

    live_id: str
    status: LiveStatus
    started_at: datetime | None
    ended_at: datetime | None
    last_window_end: datetime | None


_TARGET_COLUMNS = "live_id, status, started_at, ended_at, last_window_end"


def _target(row: Row) -> AudienceTarget:
    return AudienceTarget(
        live_id=row[0],
        status=row[1],
        started_at=_time(row[2]),
        ended_at=_time(row[3]),
        last_window_end=_time(row[4]),
    )


async def audience_targets(db: ReadModelDb, live_ids: list[str]) -> list[AudienceTarget]:
    """Every live on air, plus those of ``live_ids`` (lives with an open tally) whatever their status."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(live_ids) + 1))
    extra = f" OR live_id IN ({placeholders})" if live_ids else ""
    rows = await db.fetch(
        f"SELECT {_TARGET_COLUMNS} FROM lives WHERE status = 'live'{extra} ORDER BY live_id", *live_ids
    )
    return [_target(row) for row in rows]


async def audience_target(db: ReadModelDb, live_id: str) -> AudienceTarget | None:
    rows = await db.fetch(f"SELECT {_TARGET_COLUMNS} FROM lives WHERE live_id = $1", live_id)
    return _target(rows[0]) if rows else None
