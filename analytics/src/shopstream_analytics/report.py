"""The black-box recorder of a live: a per-minute timeline rebuilt from the platform's events.

One pass over the stores, in the order that makes it a single pass: ``live`` (the live's start
and end fix the minute buckets), ``chat``, ``orders`` (the live's order ids, so that rejections,
cancellations and refunds — which carry no live id — are attributed), then ``commission`` (the
live's accrual ids, for the same reason with reversals and releases). Each service's own events
only; inbox copies are the same events again. Memory is per live: a bucket per minute and the
sets of the live's order ids, accrual ids and buyers — never the events themselves.

Figures, stated once:

- An event falls in the minute ``⌊(occurred_at − LiveStarted.occurred_at) / 1 min⌋`` by its
  emitting service's clock; one dated before the start (another service's clock) counts in minute
  0. Events after ``LiveEnded`` (cancellations, refunds, reversals, releases days later) are
  gathered in one ``after`` row. An audience sample is dated by the last instant of its window
  (``window_end`` is exclusive): the live service may close a window well after it ended.
- GMV (gross) is the sum of ``OrderConfirmed.total`` in the minute the order was confirmed,
  integer minor units of the report's currency. Net is gross minus the money given back
  (``OrderCancelled.refund`` and ``OrderRefunded.amount``) in the minute it was given back.
- Units are the confirmed orders' quantities; returned units are cancelled quantities and units
  returned by refunds. Buyers are distinct buyers with a confirmed order (a minute counts the
  buyers whose first confirmed order is in it). Conversion is buyers / peak concurrent viewers.
- Commission accrued, reversed and released are the commission service's own ledger events for
  the live's orders, by their ``occurred_at``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from shopstream_contracts import REGISTRY, Event
from shopstream_contracts.chat.v1 import (
    MessageBlocked,
    MessagePosted,
    MessageRemoved,
    QuestionAnswered,
    QuestionAsked,
)
from shopstream_contracts.commission.v1 import CommissionAccrued, CommissionReleased, CommissionReversed
from shopstream_contracts.live.v1 import (
    AudienceSampled,
    FlashDealEnded,
    FlashDealStarted,
    LiveCancelled,
    LiveEnded,
    LiveScheduled,
    LiveStarted,
    ProductPinned,
    ProductUnpinned,
)
from shopstream_contracts.orders.v1 import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
)

from .sources import SourceError, StoreRef, is_inbox_copy, opened, read_range

OnAir = (
    AudienceSampled
    | ProductPinned
    | ProductUnpinned
    | FlashDealStarted
    | FlashDealEnded
    | MessagePosted
    | MessageBlocked
    | MessageRemoved
    | QuestionAsked
    | QuestionAnswered
)
"""What happens on air: a live's events other than its lifecycle, and its chat."""

MINUTE = timedelta(minutes=1)
READ_ORDER: tuple[str, ...] = ("live", "chat", "orders", "commission")

COUNTS: tuple[str, ...] = (
    "joins",
    "likes",
    "messages",
    "blocked",
    "removed",
    "questions",
    "answered",
    "pins",
    "unpins",
    "deals_started",
    "deals_ended",
    "placed",
    "confirmed",
    "rejected",
    "cancelled",
    "refunds",
    "units",
    "units_returned",
    "buyers",
)
AMOUNTS: tuple[str, ...] = (
    "gmv",
    "cancelled_amount",
    "refunded_amount",
    "commission_accrued",
    "commission_reversed",
    "commission_released",
)
COLUMNS: tuple[str, ...] = (
    "minute",
    "label",
    "viewers",
    "peak_viewers",
    *COUNTS,
    *AMOUNTS,
    "net",
    "commission_net",
)
"""The columns of a report's table (CSV, JSON): the per-minute figures and the net ones."""

_TYPES: dict[str, type[Event]] = {
    model.contract.type: model
    for model in (
        LiveScheduled,
        LiveStarted,
        LiveEnded,
        LiveCancelled,
        AudienceSampled,
        ProductPinned,
        ProductUnpinned,
        FlashDealStarted,
        FlashDealEnded,
        MessagePosted,
        MessageBlocked,
        MessageRemoved,
        QuestionAsked,
        QuestionAnswered,
        OrderPlaced,
        OrderConfirmed,
        OrderRejected,
        OrderCancelled,
        OrderRefunded,
        CommissionAccrued,
        CommissionReversed,
        CommissionReleased,
    )
}


class ReportError(Exception):
    """The report cannot be made as asked (unknown live, live not started, unreadable store)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One minute of the live (``minute`` from 0), the ``after`` row (minute None) or the totals.
    Money is integer minor units of the report's currency."""

    minute: int | None
    label: str
    viewers: int | None
    """Concurrent viewers at the end of the minute's last audience window; None: no sample."""
    peak_viewers: int | None
    joins: int
    likes: int
    messages: int
    blocked: int
    removed: int
    questions: int
    answered: int
    pins: int
    unpins: int
    deals_started: int
    deals_ended: int
    placed: int
    confirmed: int
    rejected: int
    cancelled: int
    refunds: int
    units: int
    units_returned: int
    buyers: int
    gmv: int
    cancelled_amount: int
    refunded_amount: int
    commission_accrued: int
    commission_reversed: int
    commission_released: int

    @property
    def net(self) -> int:
        """GMV minus the money given back (cancellations and refunds)."""
        return self.gmv - self.cancelled_amount - self.refunded_amount

    @property
    def commission_net(self) -> int:
        return self.commission_accrued - self.commission_reversed


@dataclass(frozen=True, slots=True)
class Window:
    """A pin or a flash deal on the time axis, in seconds since the start; ``end_s`` None: it
    never ended (as far as the history goes)."""

    kind: str
    label: str
    start_s: float
    end_s: float | None


@dataclass(frozen=True, slots=True)
class HostCommission:
    influencer_id: str
    accrued: int
    reversed: int
    released: int


@dataclass(frozen=True, slots=True)
class LiveReport:
    live_id: str
    title: str
    started_at: datetime
    ended_at: datetime | None
    currency: str | None
    """The currency of the money figures; None when nothing was sold."""
    minutes: tuple[Row, ...]
    after: Row
    totals: Row
    pins: tuple[Window, ...]
    deals: tuple[Window, ...]
    rejected_by_reason: Mapping[str, int]
    units_by_sku: Mapping[str, int]
    commission_by_host: tuple[HostCommission, ...]

    @property
    def peak_viewers(self) -> int:
        return self.totals.peak_viewers or 0

    @property
    def conversion(self) -> float | None:
        """Distinct buyers / peak concurrent viewers (None without viewers), to 4 decimals."""
        return round(self.totals.buyers / self.peak_viewers, 4) if self.peak_viewers else None

    def rows(self) -> list[Row]:
        """The minutes, the after row and the totals, in that order (what a table shows)."""
        return [*self.minutes, self.after, self.totals]

    def table(self) -> list[dict[str, int | str | None]]:
        """``rows()`` as records of ``COLUMNS`` (net figures included): the CSV and JSON rows."""
        return [{name: getattr(row, name) for name in COLUMNS} for row in self.rows()]

    def to_json(self) -> dict[str, Any]:
        return {
            "live_id": self.live_id,
            "title": self.title,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "currency": self.currency,
            "peak_viewers": self.peak_viewers,
            "buyers": self.totals.buyers,
            "conversion": self.conversion,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "units_by_sku": dict(self.units_by_sku),
            "commission_by_host": [asdict(host) for host in self.commission_by_host],
            "pins": [asdict(window) for window in self.pins],
            "deals": [asdict(window) for window in self.deals],
            "timeline": self.table(),
        }


@dataclass(slots=True)
class _Bucket:
    counts: Counter[str] = field(default_factory=Counter)
    money: Counter[tuple[str, str]] = field(default_factory=Counter)
    viewers: int | None = None
    viewers_at: datetime | None = None
    peak_viewers: int | None = None

    def sample(self, at: datetime, concurrent: int, peak: int) -> None:
        if self.viewers_at is None or at >= self.viewers_at:
            self.viewers, self.viewers_at = concurrent, at
        self.peak_viewers = peak if self.peak_viewers is None else max(self.peak_viewers, peak)

    def absorb(self, other: _Bucket) -> None:
        self.counts.update(other.counts)
        self.money.update(other.money)
        if other.peak_viewers is not None:
            self.peak_viewers = max(self.peak_viewers or 0, other.peak_viewers)

    def row(self, minute: int | None, label: str, currency: str | None) -> Row:
        counts = {name: self.counts[name] for name in COUNTS}
        amounts = {name: self.money[name, currency] if currency else 0 for name in AMOUNTS}
        return Row(
            minute=minute,
            label=label,
            viewers=self.viewers,
            peak_viewers=self.peak_viewers,
            **counts,
            **amounts,
        )


@dataclass
class _Recorder:
    live_id: str
    title: str = ""
    scheduled: bool = False
    cancelled: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    minutes: dict[int, _Bucket] = field(default_factory=dict)
    after: _Bucket = field(default_factory=_Bucket)
    orders: set[str] = field(default_factory=set)
    accruals: set[str] = field(default_factory=set)
    buyers: set[str] = field(default_factory=set)
    currencies: Counter[str] = field(default_factory=Counter)
    pins: dict[str, list[Window]] = field(default_factory=dict)
    deals: dict[str, Window] = field(default_factory=dict)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    units_by_sku: Counter[str] = field(default_factory=Counter)
    hosts: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)

    def concerns(self, data: Mapping[str, Any]) -> bool:
        """False when the payload names another live (or none): a cheap skip before decoding.
        Events that name no live at all (rejections, reversals) are kept and decided by their ids."""
        attribution = data.get("attribution")
        if isinstance(attribution, Mapping) and "live_id" in attribution:
            return bool(attribution["live_id"] == self.live_id)
        return "live_id" not in data or data["live_id"] == self.live_id

    def bucket(self, at: datetime) -> _Bucket:
        assert self.started_at is not None
        if self.ended_at is not None and at > self.ended_at:
            return self.after
        minute = max(0, (at - self.started_at) // MINUTE)
        return self.minutes.setdefault(minute, _Bucket())

    def seconds(self, at: datetime) -> float:
        assert self.started_at is not None
        return round((at - self.started_at).total_seconds(), 3)

    def record(self, event: Event) -> None:
        """Fold one decoded event in (events of other lives are ignored)."""
        if isinstance(event, LiveScheduled | LiveStarted | LiveEnded | LiveCancelled):
            self._lifecycle(event)
        elif self.started_at is None:
            return
        elif isinstance(event, OrderPlaced | OrderConfirmed | OrderRejected | OrderCancelled | OrderRefunded):
            self._order(event)
        elif isinstance(event, CommissionAccrued | CommissionReversed | CommissionReleased):
            self._commission(event)
        elif isinstance(event, OnAir) and event.live_id == self.live_id:
            self._on_air(event)

    def _lifecycle(self, event: LiveScheduled | LiveStarted | LiveEnded | LiveCancelled) -> None:
        if event.live_id != self.live_id:
            return
        if isinstance(event, LiveScheduled):
            self.scheduled, self.title = True, event.title
        elif isinstance(event, LiveStarted):
            self.started_at = event.occurred_at
        elif isinstance(event, LiveEnded):
            self.ended_at = event.occurred_at
        else:
            self.cancelled = True

    def _on_air(self, event: OnAir) -> None:
        if isinstance(event, AudienceSampled):
            last_instant = event.window_end - timedelta(microseconds=1)
            bucket = self.bucket(max(last_instant, event.window_start))
            bucket.sample(event.window_end, event.concurrent_viewers, event.peak_concurrent_viewers)
            bucket.counts.update(joins=event.joins, likes=event.likes)
            return
        at = event.occurred_at
        counts = self.bucket(at).counts
        if isinstance(event, MessagePosted):
            counts["messages"] += 1
        elif isinstance(event, MessageBlocked):
            counts["blocked"] += 1
        elif isinstance(event, MessageRemoved):
            counts["removed"] += 1
        elif isinstance(event, QuestionAsked):
            counts["questions"] += 1
        elif isinstance(event, QuestionAnswered):
            counts["answered"] += 1
        elif isinstance(event, ProductPinned):
            counts["pins"] += 1
            label = event.product_id if event.sku_id is None else event.sku_id
            self.pins.setdefault(event.product_id, []).append(Window("pin", label, self.seconds(at), None))
        elif isinstance(event, ProductUnpinned):
            counts["unpins"] += 1
            opened_pins = self.pins.get(event.product_id, [])
            if opened_pins and opened_pins[-1].end_s is None:
                last = opened_pins[-1]
                opened_pins[-1] = Window(last.kind, last.label, last.start_s, self.seconds(at))
        elif isinstance(event, FlashDealStarted):
            counts["deals_started"] += 1
            label = f"{event.sku_id} {event.units}u @ {event.deal_price.amount} {event.deal_price.currency}"
            self.deals[event.deal_id] = Window("deal", label, self.seconds(at), None)
        elif isinstance(event, FlashDealEnded):
            counts["deals_ended"] += 1
            deal = self.deals.get(event.deal_id)
            if deal is not None:
                self.deals[event.deal_id] = Window(deal.kind, deal.label, deal.start_s, self.seconds(at))

    def _order(
        self, event: OrderPlaced | OrderConfirmed | OrderRejected | OrderCancelled | OrderRefunded
    ) -> None:
        if isinstance(event, OrderPlaced | OrderConfirmed):
            if event.attribution.live_id != self.live_id:
                return
            self.orders.add(event.order_id)
        elif event.order_id not in self.orders:
            return
        bucket = self.bucket(event.occurred_at)
        counts, money = bucket.counts, bucket.money
        if isinstance(event, OrderPlaced):
            counts["placed"] += 1
        elif isinstance(event, OrderConfirmed):
            currency = event.total.currency
            self.currencies[currency] += 1
            counts.update(confirmed=1, units=event.line.quantity)
            money["gmv", currency] += event.total.amount
            self.units_by_sku[event.line.sku_id] += event.line.quantity
            if event.buyer_id not in self.buyers:
                self.buyers.add(event.buyer_id)
                counts["buyers"] += 1
        elif isinstance(event, OrderRejected):
            counts["rejected"] += 1
            self.rejected_by_reason[event.reason] += 1
        elif isinstance(event, OrderCancelled):
            counts.update(cancelled=1, units_returned=event.quantity)
            money["cancelled_amount", event.refund.currency] += event.refund.amount
        else:
            counts.update(refunds=1, units_returned=event.quantity)
            money["refunded_amount", event.amount.currency] += event.amount.amount

    def _commission(self, event: CommissionAccrued | CommissionReversed | CommissionReleased) -> None:
        if isinstance(event, CommissionAccrued):
            if event.live_id != self.live_id:
                return
            self.accruals.add(event.accrual_id)
            kind = "commission_accrued"
        elif event.accrual_id not in self.accruals:
            return
        else:
            kind = "commission_reversed" if isinstance(event, CommissionReversed) else "commission_released"
        currency = event.amount.currency
        self.bucket(event.occurred_at).money[kind, currency] += event.amount.amount
        self.hosts.setdefault(event.influencer_id, Counter())[kind, currency] += event.amount.amount

    def report(self) -> LiveReport:
        assert self.started_at is not None
        currency = _currency(self.live_id, self.currencies)
        last = max(self.minutes, default=0)
        if self.ended_at is not None:
            last = max(0, -(-(self.ended_at - self.started_at) // MINUTE) - 1)
        totals = _Bucket()
        minutes = []
        for minute in range(last + 1):
            bucket = self.minutes.get(minute, _Bucket())
            totals.absorb(bucket)
            minutes.append(bucket.row(minute, _clock(self.started_at + minute * MINUTE), currency))
        totals.absorb(self.after)
        return LiveReport(
            live_id=self.live_id,
            title=self.title,
            started_at=self.started_at,
            ended_at=self.ended_at,
            currency=currency,
            minutes=tuple(minutes),
            after=self.after.row(None, "after", currency),
            totals=totals.row(None, "total", currency),
            pins=tuple(window for windows in self.pins.values() for window in windows),
            deals=tuple(self.deals.values()),
            rejected_by_reason=dict(sorted(self.rejected_by_reason.items())),
            units_by_sku=dict(sorted(self.units_by_sku.items())),
            commission_by_host=tuple(
                HostCommission(
                    influencer_id=host,
                    accrued=amounts["commission_accrued", currency] if currency else 0,
                    reversed=amounts["commission_reversed", currency] if currency else 0,
                    released=amounts["commission_released", currency] if currency else 0,
                )
                for host, amounts in sorted(self.hosts.items())
            ),
        )


def _currency(live_id: str, seen: Counter[str]) -> str | None:
    if len(seen) > 1:
        raise ReportError(
            f"live {live_id} sold in several currencies ({', '.join(sorted(seen))}): a report adds up "
            "one currency, and this one cannot be summed"
        )
    return next(iter(seen), None)


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M")


def _ordered(refs: Iterable[StoreRef]) -> list[StoreRef]:
    by_service = {ref.service: ref for ref in refs}
    missing = [service for service in READ_ORDER if service not in by_service]
    if missing:
        raise ReportError(f"the live report reads the {', '.join(missing)} store(s): none given")
    return [by_service[service] for service in READ_ORDER]


async def live_report(refs: Iterable[StoreRef], live_id: str, *, page: int = 5_000) -> LiveReport:
    """The live's per-minute timeline and totals (see the module docstring for every figure)."""
    recorder = _Recorder(live_id)
    for ref in _ordered(refs):
        try:
            async with opened(ref) as store:
                async for batch in read_range(store, page=page):
                    for recorded in batch:
                        model = _TYPES.get(recorded.type)
                        if model is None or is_inbox_copy(recorded) or not recorder.concerns(recorded.data):
                            continue
                        recorder.record(REGISTRY.decode(recorded.type, recorded.data_version, recorded.data))
        except SourceError as error:
            raise ReportError(str(error)) from error
        if ref.service == "live":
            _check_found(recorder)
    return recorder.report()


def build_report(live_id: str, events: Iterable[Event]) -> LiveReport:
    """The same report from decoded events already in hand (live events first, as the stores are
    read): what ``live_report`` folds, without the stores."""
    recorder = _Recorder(live_id)
    for event in events:
        recorder.record(event)
    _check_found(recorder)
    return recorder.report()


def _check_found(recorder: _Recorder) -> None:
    if not recorder.scheduled and recorder.started_at is None:
        raise ReportError(f"unknown live {recorder.live_id!r}: the live store has no such live")
    if recorder.cancelled:
        raise ReportError(f"live {recorder.live_id} was cancelled before it started: nothing to report")
    if recorder.started_at is None:
        raise ReportError(f"live {recorder.live_id} has not started yet: nothing to report")


def write_csv(report: LiveReport, path: Path) -> Path:
    """The report's table as CSV (one row per minute, then ``after`` and ``total``)."""
    with atomically(path, "w") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(report.table())
    return path


@contextlib.contextmanager
def atomically(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file written under a temporary name next to ``path`` and renamed onto it once complete:
    a failure leaves ``path`` as it was and no temporary file behind."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode, newline="" if "b" not in mode else None) as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
