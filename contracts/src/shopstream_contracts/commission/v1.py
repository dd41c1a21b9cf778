"""Version 1 of the commission service's public events.

Topics: ``shopstream.commission.agreement`` (key ``agreement_id``: versioned brand–influencer
agreements) and ``shopstream.commission.account`` (key ``influencer_id``: one influencer's
ledger and statements, in ledger order).

Ledger: an accrual is held until its holdback ends, then released; a cancellation reverses it
in full, a partial refund in proportion. An influencer's balance is accrued − reversed; the
released part of it is payable.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, StrictInt

from shopstream_contracts.base import (
    BasisPoints,
    ContractModel,
    Count,
    Event,
    EventContract,
    Id,
    Money,
    OccurredAt,
    PositiveCount,
    Topic,
    UtcDateTime,
)
from shopstream_contracts.topics import COMMISSION_ACCOUNT, COMMISSION_AGREEMENT

_INFLUENCER_ID = "The influencer whose ledger this is (the Kafka key)."


def _contract(name: str, topic: Topic) -> EventContract:
    return EventContract(type=f"shopstream.commission.{name}", version=1, topic=topic)


class CommissionShare(ContractModel):
    """One influencer's share of a live's commission when several hosts share it."""

    influencer_id: Id = Field(description="The co-host.")
    share_bps: BasisPoints = Field(description="Share of the commission, in basis points of it.")


class CommissionAgreementSigned(Event):
    """A version of a brand–influencer agreement was signed. Each new version replaces the
    previous one for sales from ``effective_from`` on; sales before it keep the old terms."""

    contract: ClassVar[EventContract] = _contract("CommissionAgreementSigned", COMMISSION_AGREEMENT)

    agreement_id: Id = Field(description="The agreement (the Kafka key); stable across its versions.")
    agreement_version: PositiveCount = Field(description="Version of the agreement: 1, 2, … without gaps.")
    brand_id: Id = Field(description="The brand that pays the commission.")
    influencer_id: Id = Field(description="The influencer the agreement is signed with (the lead host).")
    rate_bps: BasisPoints = Field(description="Commission rate on the order total, in basis points.")
    holdback_days: StrictInt = Field(
        ge=0, le=365, description="Days an accrual is held (the return window) before it is released."
    )
    cohost_shares: list[CommissionShare] = Field(
        default_factory=list,
        description="How the commission is split when the live has co-hosts: the shares, the lead "
        "host's included, sum to 10000 bps. Empty: the lead host gets it all.",
    )
    effective_from: UtcDateTime = Field(description="Sales at or after this instant use this version (UTC).")
    signed_by: Id = Field(description="User who recorded the signature.")
    occurred_at: OccurredAt


class CommissionAccrued(Event):
    """An influencer earned commission on a confirmed order; it is held until ``hold_until``."""

    contract: ClassVar[EventContract] = _contract("CommissionAccrued", COMMISSION_ACCOUNT)

    influencer_id: Id = Field(description=_INFLUENCER_ID)
    accrual_id: Id = Field(description="This accrual; releases and reversals reference it.")
    order_id: Id = Field(description="The confirmed order it is earned on.")
    brand_id: Id = Field(description="The brand that pays it.")
    live_id: Id | None = Field(default=None, description="The live the order is attributed to, if any.")
    agreement_id: Id = Field(description="The agreement applied.")
    agreement_version: PositiveCount = Field(description="Its version in force at the moment of sale.")
    rate_bps: BasisPoints = Field(description="The agreement's rate.")
    share_bps: BasisPoints = Field(description="This influencer's share of the commission (10000 alone).")
    base: Money = Field(description="The order amount the commission is computed on.")
    amount: Money = Field(description="Commission earned: base × rate × share, rounded down to a minor unit.")
    hold_until: UtcDateTime = Field(description="When the holdback ends and it can be released (UTC).")
    occurred_at: OccurredAt


class CommissionReleased(Event):
    """An accrual's holdback ended: what is left of it after reversals became payable."""

    contract: ClassVar[EventContract] = _contract("CommissionReleased", COMMISSION_ACCOUNT)

    influencer_id: Id = Field(description=_INFLUENCER_ID)
    accrual_id: Id = Field(description="The accrual released.")
    order_id: Id = Field(description="Its order.")
    amount: Money = Field(description="Amount released: accrued minus everything reversed before.")
    occurred_at: OccurredAt


class CommissionReversed(Event):
    """Commission was taken back: in full on cancellation, in proportion on a partial refund."""

    contract: ClassVar[EventContract] = _contract("CommissionReversed", COMMISSION_ACCOUNT)

    influencer_id: Id = Field(description=_INFLUENCER_ID)
    reversal_id: Id = Field(description="This reversal.")
    accrual_id: Id = Field(description="The accrual it takes back from.")
    order_id: Id = Field(description="Its order.")
    amount: Money = Field(description="Amount taken back (positive).")
    reason: Literal["order_cancelled", "order_refunded"] = Field(
        description="order_cancelled: the whole accrual is reversed; order_refunded: the refunded "
        "share of it."
    )
    refund_id: Id | None = Field(default=None, description="The refund that caused it (order_refunded).")
    occurred_at: OccurredAt


class StatementIssued(Event):
    """An influencer's statement for a period and currency. It reconciles to the ledger:
    closing_balance = opening_balance + accrued − reversed; released is the part of the balance
    that became payable in the period."""

    contract: ClassVar[EventContract] = _contract("StatementIssued", COMMISSION_ACCOUNT)

    influencer_id: Id = Field(description=_INFLUENCER_ID)
    statement_id: Id = Field(description="The statement.")
    period_start: UtcDateTime = Field(description="Start of the period, inclusive (UTC).")
    period_end: UtcDateTime = Field(description="End of the period, exclusive (UTC).")
    opening_balance: Money = Field(description="Balance at period_start.")
    accrued: Money = Field(description="Sum of accruals in the period.")
    reversed: Money = Field(description="Sum of reversals in the period.")
    released: Money = Field(description="Sum of releases in the period.")
    closing_balance: Money = Field(description="Balance at period_end.")
    entries: Count = Field(description="Number of ledger entries in the period.")
    occurred_at: OccurredAt


EVENTS: tuple[type[Event], ...] = (
    CommissionAgreementSigned,
    CommissionAccrued,
    CommissionReleased,
    CommissionReversed,
    StatementIssued,
)
