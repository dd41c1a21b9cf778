"""What-if commission: replay past sales through a proposed agreement, writing nothing.

The sales are a live's (or a period's) confirmed orders, with every later cancellation and refund
of those orders, read from the orders store. Each is put through the commission service's own
code, so the answer is what the service would have booked under the proposed terms:

- its order policy turns the order events into commands (web orders earn nothing);
- its allocation (``allocate``) picks the agreement version in force at the moment of sale and
  splits ⌊total × rate⌋ among the hosting parties by largest remainder;
- its ledger decider accrues, reverses (in full on cancellation, pro rata floored on a partial
  refund) and releases each accrual once its holdback is over.

The proposed terms replace the rate, and optionally the holdback and the co-host shares, of every
version of the agreement an order names; the versions and the parties stay those actually signed.
With tiers, an order's rate is that of the highest tier whose threshold the agreement's cumulative
confirmed GMV (before the order, in this replay, per currency) has reached.

The actual figures are the commission service's CommissionAccrued/Reversed/Released events for
the same orders. Releases are compared as of the commission store's last event: the replay
releases an accrual at its ``hold_until``, the service when its ticker runs past it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from shopstream_commission.commands import (
    AccountCommand,
    AccrueOrderCommission,
    AllocateOrderCommission,
    OrderPolicyCommand,
    ReleaseCommission,
    ReverseCommission,
)
from shopstream_commission.domain import (
    MAX_HOLDBACK_DAYS,
    AccountDecider,
    AccountState,
    AgreementDecider,
    AgreementState,
    accrual_commands,
    allocate,
)
from shopstream_commission.events import OrderCommissionAllocated
from shopstream_commission.policies import OrderCommissionPolicy
from shopstream_commission.values import FULL_SHARE_BPS, Agreement, Share
from shopstream_contracts import REGISTRY
from shopstream_contracts.commission.v1 import (
    CommissionAccrued,
    CommissionAgreementSigned,
    CommissionReleased,
    CommissionReversed,
)
from shopstream_contracts.orders.v1 import OrderCancelled, OrderConfirmed, OrderRefunded
from shopstream_eventstore import RecordedEvent

from .sources import SourceError, StoreRef, is_inbox_copy, opened, read_range

_CONFIRMED = OrderConfirmed.contract.type
_AFTER_SALE = (OrderCancelled.contract.type, OrderRefunded.contract.type)
_SIGNED = CommissionAgreementSigned.contract.type
_LEDGER = (
    CommissionAccrued.contract.type,
    CommissionReversed.contract.type,
    CommissionReleased.contract.type,
)

POLICY = OrderCommissionPolicy()
AGREEMENTS = AgreementDecider()
ACCOUNTS = AccountDecider()


class WhatIfError(Exception):
    """The what-if cannot be run as asked: the message says why (shown as is)."""


@dataclass(frozen=True, slots=True)
class Tier:
    from_gmv: int
    """Cumulative confirmed GMV of the agreement (minor units) from which ``rate_bps`` applies."""
    rate_bps: int


@dataclass(frozen=True, slots=True)
class Proposal:
    rate_bps: int
    holdback_days: int | None = None
    """None: each agreement version's own holdback."""
    tiers: tuple[Tier, ...] = ()
    shares: tuple[Share, ...] | None = None
    """None: each agreement version's own co-host shares."""

    def __post_init__(self) -> None:
        for rate in (self.rate_bps, *(tier.rate_bps for tier in self.tiers)):
            if not 0 < rate <= FULL_SHARE_BPS:
                raise WhatIfError(f"a rate is between 1 and {FULL_SHARE_BPS} bps, not {rate}")
        if self.holdback_days is not None and not 0 <= self.holdback_days <= MAX_HOLDBACK_DAYS:
            raise WhatIfError(
                f"the holdback is between 0 and {MAX_HOLDBACK_DAYS} days, not {self.holdback_days}"
            )
        thresholds = [tier.from_gmv for tier in self.tiers]
        if any(threshold < 0 for threshold in thresholds) or len(set(thresholds)) != len(thresholds):
            raise WhatIfError("tier thresholds are distinct amounts of at least 0 minor units")
        if self.shares is not None:
            ids = [share.influencer_id for share in self.shares]
            if (
                not self.shares
                or len(set(ids)) != len(ids)
                or any(share.share_bps <= 0 for share in self.shares)
                or sum(share.share_bps for share in self.shares) != FULL_SHARE_BPS
            ):
                raise WhatIfError(
                    f"co-host shares are distinct hosts of at least 1 bps summing to {FULL_SHARE_BPS}"
                )

    def rate_at(self, cumulative_gmv: int) -> int:
        rate = self.rate_bps
        for tier in sorted(self.tiers, key=lambda tier: tier.from_gmv):
            if cumulative_gmv >= tier.from_gmv:
                rate = tier.rate_bps
        return rate

    def applied_to(self, agreement: Agreement, rate_bps: int) -> Agreement:
        """The agreement with every version's terms replaced by the proposed ones."""
        versions = tuple(
            replace(
                version,
                rate_bps=rate_bps,
                holdback_days=version.holdback_days if self.holdback_days is None else self.holdback_days,
                shares=version.shares if self.shares is None else self.shares,
            )
            for version in agreement.versions
        )
        return replace(agreement, versions=versions)


@dataclass(frozen=True, slots=True)
class Selection:
    """A live's orders, or those confirmed in the period ``[since, until)``."""

    live_id: str | None = None
    period: tuple[datetime, datetime] | None = None

    def __post_init__(self) -> None:
        if (self.live_id is None) == (self.period is None):
            raise WhatIfError("choose either a live or a period (since and until)")
        if self.period is not None and self.period[0] >= self.period[1]:
            raise WhatIfError(f"the period is empty: since {self.period[0].isoformat()} is not before until")

    def takes(self, order: OrderConfirmed) -> bool:
        if self.period is None:
            return order.attribution.live_id == self.live_id
        since, until = self.period
        return since <= order.occurred_at < until

    def describe(self) -> str:
        if self.period is None:
            return f"live {self.live_id}"
        since, until = self.period
        return f"period from {since.isoformat()} until {until.isoformat()}"


@dataclass(frozen=True, slots=True)
class Figures:
    accrued: int = 0
    reversed: int = 0
    released: int = 0

    @property
    def net(self) -> int:
        return self.accrued - self.reversed


@dataclass(frozen=True, slots=True)
class Comparison:
    """One influencer's (or brand's) commission in one currency: as booked, and as proposed."""

    party: str
    currency: str
    actual: Figures
    proposed: Figures

    @property
    def difference(self) -> int:
        """Proposed net minus actual net (positive: the influencer earns more, the brand pays more)."""
        return self.proposed.net - self.actual.net


@dataclass(frozen=True, slots=True)
class WhatIf:
    selection: Selection
    proposal: Proposal
    orders: int
    """Confirmed orders replayed."""
    gmv: Counter[str]
    """Their totals per currency."""
    as_of: datetime | None
    by_influencer: tuple[Comparison, ...]
    by_brand: tuple[Comparison, ...]


_Key = tuple[str, str]
"""(party, currency)."""


@dataclass
class _Tally:
    """Accrued / reversed / released per (party, currency)."""

    amounts: dict[_Key, Counter[str]] = field(default_factory=dict)

    def add(self, party: str, currency: str, kind: str, amount: int) -> None:
        self.amounts.setdefault((party, currency), Counter())[kind] += amount

    def figures(self, key: _Key) -> Figures:
        amounts = self.amounts.get(key, Counter())
        return Figures(amounts["accrued"], amounts["reversed"], amounts["released"])


@dataclass
class _Ledgers:
    """The proposed commission: one ledger state per (order, influencer), run by the service's own
    decider, and the accruals waiting for their holdback to end."""

    by_influencer: _Tally = field(default_factory=_Tally)
    by_brand: _Tally = field(default_factory=_Tally)
    allocations: dict[str, OrderCommissionAllocated] = field(default_factory=dict)
    states: dict[_Key, AccountState] = field(default_factory=dict)
    holdbacks: list[tuple[datetime, str, str, str]] = field(default_factory=list)
    """(hold_until, order id, influencer id, accrual id), soonest first."""

    def run(self, order_id: str, influencer_id: str, command: AccountCommand) -> None:
        key = (order_id, influencer_id)
        state = self.states.get(key, ACCOUNTS.initial_state())
        brand = self.allocations[order_id].brand_id
        for event in ACCOUNTS.decide(command, state):
            state = ACCOUNTS.evolve(state, event)
            if isinstance(event, CommissionAccrued | CommissionReversed | CommissionReleased):
                self.by_influencer.add(
                    influencer_id, event.amount.currency, _kind(event), event.amount.amount
                )
                self.by_brand.add(brand, event.amount.currency, _kind(event), event.amount.amount)
        self.states[key] = state

    def release_until(self, moment: datetime) -> None:
        while self.holdbacks and self.holdbacks[0][0] <= moment:
            hold_until, order_id, influencer_id, accrual_id = heapq.heappop(self.holdbacks)
            self.run(order_id, influencer_id, ReleaseCommission(influencer_id, accrual_id, hold_until))


@dataclass
class _Replay:
    proposal: Proposal
    agreements: dict[str, Agreement] = field(default_factory=dict)
    cumulative: Counter[_Key] = field(default_factory=Counter)
    ledgers: _Ledgers = field(default_factory=_Ledgers)
    reversals: int = 0

    def order(self, at: datetime, command: OrderPolicyCommand) -> None:
        self.ledgers.release_until(at)
        if isinstance(command, AccrueOrderCommission):
            self._accrue(command)
            return
        allocation = self.ledgers.allocations.get(command.order_id)
        if allocation is None:
            return  # the order earned nothing under the proposal: nothing to take back
        for part in allocation.parts:
            self.reversals += 1
            reverse = ReverseCommission(
                influencer_id=part.influencer_id,
                order_id=command.order_id,
                reversal_id=f"what-if-{self.reversals}",
                reason=command.reason,
                at=at,
                refund_id=command.refund_id,
                total_refunded=command.total_refunded,
                order_total=command.order_total,
                fully_refunded=command.fully_refunded,
            )
            self.ledgers.run(command.order_id, part.influencer_id, reverse)

    def _accrue(self, command: AccrueOrderCommission) -> None:
        actual = self.agreements.get(command.agreement_id or "")
        proposed = None
        if actual is not None:
            key = (actual.agreement_id, command.base.currency)
            proposed = self.proposal.applied_to(actual, self.proposal.rate_at(self.cumulative[key]))
            self.cumulative[key] += command.base.amount
        allocation = allocate(
            AllocateOrderCommission(
                order_id=command.order_id,
                live_id=command.live_id,
                brand_id=command.brand_id,
                agreement_id=command.agreement_id,
                host_ids=command.host_ids,
                base=command.base,
                sold_at=command.sold_at,
                agreement=proposed,
                at=command.sold_at,
            )
        )
        if not isinstance(allocation, OrderCommissionAllocated):
            return
        self.ledgers.allocations[command.order_id] = allocation
        for accrue in accrual_commands(allocation, command.sold_at):
            self.ledgers.run(command.order_id, accrue.influencer_id, accrue)
            heapq.heappush(
                self.ledgers.holdbacks,
                (allocation.hold_until, command.order_id, accrue.influencer_id, accrue.accrual_id),
            )


def _by_service(refs: Iterable[StoreRef]) -> dict[str, StoreRef]:
    found = {ref.service: ref for ref in refs}
    missing = [service for service in ("orders", "commission") if service not in found]
    if missing:
        raise WhatIfError(f"the what-if reads the {' and '.join(missing)} store(s): none given")
    return found


async def what_if(
    refs: Iterable[StoreRef], selection: Selection, proposal: Proposal, *, page: int = 5_000
) -> WhatIf:
    """Actual against proposed commission for the selected sales, per influencer and per brand."""
    stores = _by_service(refs)
    try:
        sales, gmv = await _sales(stores["orders"], selection, page)
        if not gmv:
            raise WhatIfError(f"no confirmed order in the {selection.describe()}: nothing to replay")
        replay = _Replay(proposal)
        actual_by_influencer, actual_by_brand, as_of = await _commission(
            stores["commission"], {order_id for order_id, _, _ in sales}, replay.agreements, page
        )
    except SourceError as error:
        raise WhatIfError(str(error)) from error
    for _, at, command in sales:
        replay.order(at, command)
    if as_of is not None:
        replay.ledgers.release_until(as_of)
    return WhatIf(
        selection=selection,
        proposal=proposal,
        orders=sum(1 for _, _, command in sales if isinstance(command, AccrueOrderCommission)),
        gmv=gmv,
        as_of=as_of,
        by_influencer=_compare(actual_by_influencer, replay.ledgers.by_influencer),
        by_brand=_compare(actual_by_brand, replay.ledgers.by_brand),
    )


async def _sales(
    ref: StoreRef, selection: Selection, page: int
) -> tuple[list[tuple[str, datetime, OrderPolicyCommand]], Counter[str]]:
    """The selected orders' commission commands in the orders service's order, each with the time
    of the order event; and their confirmed GMV per currency."""
    selected: set[str] = set()
    sales: list[tuple[str, datetime, OrderPolicyCommand]] = []
    gmv: Counter[str] = Counter()
    async with opened(ref) as store:
        async for batch in read_range(store, page=page):
            for recorded in batch:
                if is_inbox_copy(recorded) or not _selects(recorded, selection, selected):
                    continue
                decoded = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
                assert isinstance(decoded, OrderConfirmed | OrderCancelled | OrderRefunded)
                if isinstance(decoded, OrderConfirmed):
                    gmv[decoded.total.currency] += decoded.total.amount
                sales.extend(
                    (decoded.order_id, decoded.occurred_at, command) for command in POLICY.react(recorded)
                )
    return sales, gmv


def _selects(recorded: RecordedEvent, selection: Selection, selected: set[str]) -> bool:
    """Whether an order event belongs to the replay (a confirmation is decoded to decide)."""
    if recorded.type in _AFTER_SALE:
        return recorded.data.get("order_id") in selected
    if recorded.type != _CONFIRMED:
        return False
    order = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
    assert isinstance(order, OrderConfirmed)
    if selection.takes(order):
        selected.add(order.order_id)
        return True
    return False


async def _commission(
    ref: StoreRef, orders: set[str], agreements: dict[str, Agreement], page: int
) -> tuple[_Tally, _Tally, datetime | None]:
    """The agreements as signed (into ``agreements``), the commission actually booked on
    ``orders`` per influencer and per brand, and the time of the commission store's last event."""
    by_influencer, by_brand = _Tally(), _Tally()
    accruals: dict[str, tuple[str, str]] = {}
    as_of: datetime | None = None
    async with opened(ref) as store:
        async for batch in read_range(store, page=page):
            for recorded in batch:
                if is_inbox_copy(recorded):
                    continue
                as_of = (
                    recorded.metadata.occurred_at
                    if as_of is None
                    else max(as_of, recorded.metadata.occurred_at)
                )
                if recorded.type == _SIGNED:
                    signed = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
                    assert isinstance(signed, CommissionAgreementSigned)
                    state: AgreementState = agreements.get(signed.agreement_id)
                    folded = AGREEMENTS.evolve(state, signed)
                    if folded is not None:
                        agreements[folded.agreement_id] = folded
                elif recorded.type in _LEDGER and _books(recorded, orders, accruals):
                    entry = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
                    assert isinstance(entry, CommissionAccrued | CommissionReversed | CommissionReleased)
                    if isinstance(entry, CommissionAccrued):
                        accruals[entry.accrual_id] = (entry.influencer_id, entry.brand_id)
                    influencer, brand = accruals[entry.accrual_id]
                    by_influencer.add(influencer, entry.amount.currency, _kind(entry), entry.amount.amount)
                    by_brand.add(brand, entry.amount.currency, _kind(entry), entry.amount.amount)
    return by_influencer, by_brand, as_of


def _kind(entry: CommissionAccrued | CommissionReversed | CommissionReleased) -> str:
    if isinstance(entry, CommissionAccrued):
        return "accrued"
    return "reversed" if isinstance(entry, CommissionReversed) else "released"


def _books(recorded: RecordedEvent, orders: set[str], accruals: dict[str, tuple[str, str]]) -> bool:
    if recorded.type == CommissionAccrued.contract.type:
        return recorded.data.get("order_id") in orders
    return recorded.data.get("accrual_id") in accruals


def _compare(actual: _Tally, proposed: _Tally) -> tuple[Comparison, ...]:
    keys = sorted({*actual.amounts, *proposed.amounts})
    return tuple(
        Comparison(party, currency, actual.figures((party, currency)), proposed.figures((party, currency)))
        for party, currency in keys
    )
