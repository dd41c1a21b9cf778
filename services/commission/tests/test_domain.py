"""Given/when/then tests of the commission deciders, and property tests of their invariants."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream_commission.commands import (
    AccrueCommission,
    Actor,
    AllocateOrderCommission,
    AmendAgreement,
    IssueStatement,
    ReleaseCommission,
    ReverseCommission,
    SignAgreement,
)
from shopstream_commission.domain import (
    AccountDecider,
    AccountState,
    AgreementDecider,
    Entries,
    LedgerEntry,
    OrderCommissionDecider,
    accrual_commands,
    accrual_id_for,
    allocate,
    largest_remainder,
    reversal_target,
    statement_totals,
)
from shopstream_commission.events import OrderCommissionAllocated, OrderCommissionNotAllocated
from shopstream_commission.values import Agreement, Share
from shopstream_contracts import Money
from shopstream_contracts.commission.v1 import (
    CommissionAccrued,
    CommissionAgreementSigned,
    CommissionReleased,
    CommissionReversed,
    CommissionShare,
    StatementIssued,
)
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound, fold

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 1, tzinfo=UTC)
BRAND = "brd_glow"
ANA = "usr_ana_lima"
BIA = "usr_bia_rocha"
CAIO = "usr_caio"
STAFF = Actor("usr_brand_glow_ops", brands=frozenset({BRAND}))
ADMIN = Actor("usr_admin", is_admin=True)
OUTSIDER = Actor("usr_other_ops", brands=frozenset({"brd_other"}))

agreements = AgreementDecider()
orders = OrderCommissionDecider()
accounts = AccountDecider()


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


# Agreement -------------------------------------------------------------------------------------


def sign(**overrides: Any) -> SignAgreement:
    fields: dict[str, Any] = {
        "agreement_id": "agr_glow_ana",
        "brand_id": BRAND,
        "influencer_id": ANA,
        "rate_bps": 1200,
        "holdback_days": 30,
        "cohost_shares": (),
        "effective_from": None,
        "actor": STAFF,
        "at": T0,
    }
    fields.update(overrides)
    return SignAgreement(**fields)


def amend(**overrides: Any) -> AmendAgreement:
    fields: dict[str, Any] = {
        "agreement_id": "agr_glow_ana",
        "rate_bps": 1500,
        "holdback_days": 14,
        "cohost_shares": (),
        "effective_from": None,
        "actor": STAFF,
        "at": T0 + timedelta(days=10),
    }
    fields.update(overrides)
    return AmendAgreement(**fields)


def signed(command: SignAgreement | AmendAgreement, history: Sequence[DomainEvent] = ()) -> list[DomainEvent]:
    return [*history, *agreements.decide(command, fold(agreements, history))]


def test_sign_records_version_1_in_force_from_the_signature() -> None:
    [event] = agreements.decide(sign(cohost_shares=(Share(ANA, 7000), Share(BIA, 3000))), None)

    assert event == CommissionAgreementSigned(
        agreement_id="agr_glow_ana",
        agreement_version=1,
        brand_id=BRAND,
        influencer_id=ANA,
        rate_bps=1200,
        holdback_days=30,
        cohost_shares=[
            CommissionShare(influencer_id=ANA, share_bps=7000),
            CommissionShare(influencer_id=BIA, share_bps=3000),
        ],
        effective_from=T0,
        signed_by=STAFF.user_id,
        occurred_at=T0,
    )


def test_version_1_may_be_backdated() -> None:
    [event] = agreements.decide(sign(effective_from=T0 - timedelta(days=3)), None)
    assert isinstance(event, CommissionAgreementSigned)
    assert event.effective_from == T0 - timedelta(days=3)


def test_an_admin_may_sign_for_any_brand() -> None:
    [event] = agreements.decide(sign(actor=ADMIN), None)
    assert isinstance(event, CommissionAgreementSigned)
    assert event.signed_by == ADMIN.user_id


def test_staff_of_another_brand_may_not_sign() -> None:
    with pytest.raises(Forbidden) as refused:
        agreements.decide(sign(actor=OUTSIDER), None)
    assert refused.value.code == "not_brand_staff"


def test_an_agreement_is_signed_once() -> None:
    with pytest.raises(DomainError) as refused:
        agreements.decide(sign(), fold(agreements, signed(sign())))
    assert (refused.value.code, refused.value.status, refused.value.field) == (
        "agreement_exists",
        409,
        "agreement_id",
    )


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"rate_bps": 0}, "invalid_rate", "rate_bps"),
        ({"rate_bps": 10_001}, "invalid_rate", "rate_bps"),
        ({"holdback_days": -1}, "invalid_holdback", "holdback_days"),
        ({"holdback_days": 366}, "invalid_holdback", "holdback_days"),
        ({"cohost_shares": (Share(ANA, 5000), Share(ANA, 5000))}, "duplicate_cohost", "cohost_shares"),
        ({"cohost_shares": (Share(BIA, 6000), Share(CAIO, 4000))}, "lead_not_in_shares", "cohost_shares"),
        ({"cohost_shares": (Share(ANA, 10_000), Share(BIA, 0))}, "share_not_positive", "cohost_shares"),
        ({"cohost_shares": (Share(ANA, 7000), Share(BIA, 2000))}, "shares_not_whole", "cohost_shares"),
        (
            {"cohost_shares": (Share(ANA, 9979), *(Share(f"usr_{i}", 1) for i in range(21)))},
            "too_many_cohosts",
            "cohost_shares",
        ),
    ],
)
def test_invalid_terms_are_refused_with_the_field(overrides: dict[str, Any], code: str, field: str) -> None:
    for command in (sign(**overrides), amend(**overrides)):
        with pytest.raises(Invalid) as refused:
            agreements.decide(
                command, fold(agreements, signed(sign())) if isinstance(command, AmendAgreement) else None
            )
        assert (refused.value.code, refused.value.field, refused.value.status) == (code, field, 422)


def test_amend_adds_the_next_version_with_the_same_parties() -> None:
    history = signed(sign())
    [event] = agreements.decide(amend(), fold(agreements, history))

    assert isinstance(event, CommissionAgreementSigned)
    assert (event.agreement_version, event.brand_id, event.influencer_id) == (2, BRAND, ANA)
    assert (event.rate_bps, event.holdback_days, event.effective_from) == (1500, 14, T0 + timedelta(days=10))
    state = fold(agreements, [*history, event])
    assert state is not None
    assert [v.version for v in state.versions] == [1, 2]


def test_amend_of_an_unknown_agreement_is_not_found() -> None:
    with pytest.raises(NotFound) as refused:
        agreements.decide(amend(), None)
    assert refused.value.code == "agreement_not_found"


def test_staff_of_another_brand_may_not_amend() -> None:
    with pytest.raises(Forbidden):
        agreements.decide(amend(actor=OUTSIDER), fold(agreements, signed(sign())))


def test_a_new_version_cannot_be_retroactive() -> None:
    command = amend(effective_from=T0 + timedelta(days=9))  # signed on day 10
    with pytest.raises(Invalid) as refused:
        agreements.decide(command, fold(agreements, signed(sign())))
    assert (refused.value.code, refused.value.field) == ("retroactive_version", "effective_from")


def test_a_new_version_starts_after_the_previous_one() -> None:
    history = signed(sign(effective_from=T0 + timedelta(days=20)))
    with pytest.raises(Invalid) as refused:
        agreements.decide(amend(effective_from=T0 + timedelta(days=15)), fold(agreements, history))
    assert refused.value.code == "effective_from_not_after_previous"


def test_version_in_force_is_the_latest_effective_at_the_moment_of_sale() -> None:
    history = signed(amend(effective_from=T0 + timedelta(days=20)), signed(sign()))
    state = fold(agreements, history)
    assert state is not None

    def version_at(at: datetime) -> int | None:
        version = state.version_in_force(at)
        return None if version is None else version.version

    assert version_at(T0 - timedelta(seconds=1)) is None
    assert version_at(T0) == 1
    assert version_at(T0 + timedelta(days=20) - timedelta(microseconds=1)) == 1
    assert version_at(T0 + timedelta(days=20)) == 2


# Order commission (allocation) -----------------------------------------------------------------


def agreement_of(*commands: SignAgreement | AmendAgreement) -> Agreement:
    history: list[DomainEvent] = []
    for command in commands:
        history = signed(command, history)
    state = fold(agreements, history)
    assert state is not None
    return state


def allocation(**overrides: Any) -> AllocateOrderCommission:
    fields: dict[str, Any] = {
        "order_id": "ord_01HZX4R7TB",
        "live_id": "liv_01HZX3K9QF",
        "brand_id": BRAND,
        "agreement_id": "agr_glow_ana",
        "host_ids": (ANA, BIA),
        "base": brl(17980),
        "sold_at": T0 + timedelta(hours=20, minutes=25, seconds=15, microseconds=20000),
        "agreement": agreement_of(sign(cohost_shares=(Share(ANA, 7000), Share(BIA, 3000)))),
        "at": T0 + timedelta(hours=21),
    }
    fields.update(overrides)
    return AllocateOrderCommission(**fields)


def allocated(command: AllocateOrderCommission) -> OrderCommissionAllocated:
    result = allocate(command)
    assert isinstance(result, OrderCommissionAllocated), result
    return result


def test_the_golden_sale_is_split_70_30_by_largest_remainder() -> None:
    # 17980 × 12 % = 2157.6 ⇒ 2157; 70 % = 1509.9, 30 % = 647.1 ⇒ 1509 + 647 + the leftover unit to Ana.
    result = allocated(allocation())

    assert result.commission == brl(2157)
    assert [(p.influencer_id, p.share_bps, p.amount.amount) for p in result.parts] == [
        (ANA, 7000, 1510),
        (BIA, 3000, 647),
    ]
    assert result.hold_until == datetime(2025, 5, 31, 20, 25, 15, 20000, tzinfo=UTC)
    assert (result.agreement_version, result.rate_bps) == (1, 1200)
    assert result.parts[0].accrual_id == accrual_id_for("ord_01HZX4R7TB", ANA)


def test_a_lone_influencer_gets_the_whole_commission() -> None:
    result = allocated(allocation(agreement=agreement_of(sign()), host_ids=(ANA,), base=brl(999)))
    assert [(p.influencer_id, p.share_bps, p.amount.amount) for p in result.parts] == [(ANA, 10_000, 119)]


def test_hosts_who_are_not_parties_earn_nothing() -> None:
    result = allocated(allocation(agreement=agreement_of(sign()), host_ids=(ANA, CAIO)))
    assert [p.influencer_id for p in result.parts] == [ANA]
    assert result.parts[0].amount == result.commission


def test_the_shares_of_parties_who_did_not_host_go_to_those_who_did() -> None:
    shares = (Share(ANA, 5000), Share(BIA, 3000), Share(CAIO, 2000))
    result = allocated(allocation(agreement=agreement_of(sign(cohost_shares=shares)), host_ids=(BIA, CAIO)))
    assert [(p.influencer_id, p.share_bps) for p in result.parts] == [(BIA, 6000), (CAIO, 4000)]
    assert sum(p.amount.amount for p in result.parts) == result.commission.amount == 2157


def test_the_version_in_force_at_the_sale_applies_not_the_latest() -> None:
    agreement = agreement_of(sign(), amend(effective_from=T0 + timedelta(days=10)))
    before = allocated(allocation(agreement=agreement, host_ids=(ANA,), sold_at=T0 + timedelta(days=9)))
    after = allocated(allocation(agreement=agreement, host_ids=(ANA,), sold_at=T0 + timedelta(days=10)))

    assert (before.agreement_version, before.rate_bps, before.commission.amount) == (1, 1200, 2157)
    assert before.hold_until == T0 + timedelta(days=39)
    assert (after.agreement_version, after.rate_bps, after.commission.amount) == (2, 1500, 2697)
    assert after.hold_until == T0 + timedelta(days=24)


def test_a_host_listed_twice_earns_once() -> None:
    result = allocated(allocation(host_ids=(ANA, BIA, ANA)))
    assert [p.influencer_id for p in result.parts] == [ANA, BIA]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"agreement_id": None, "agreement": None}, "no_agreement"),
        ({"agreement": None}, "unknown_agreement"),
        ({"brand_id": "brd_other"}, "brand_mismatch"),
        ({"sold_at": T0 - timedelta(seconds=1)}, "no_version_in_force"),
        ({"host_ids": (CAIO,)}, "no_party_hosted"),
        ({"host_ids": ()}, "no_party_hosted"),
    ],
)
def test_orders_that_earn_nothing_record_why(overrides: dict[str, Any], reason: str) -> None:
    [event] = orders.decide(allocation(**overrides), None)
    assert isinstance(event, OrderCommissionNotAllocated)
    assert (event.order_id, event.reason) == ("ord_01HZX4R7TB", reason)


def test_an_order_is_allocated_once() -> None:
    first = orders.decide(allocation(), None)
    again = orders.decide(allocation(host_ids=(ANA,)), fold(orders, first))
    assert again == []
    refused = orders.decide(allocation(agreement=None), None)
    assert orders.decide(allocation(), fold(orders, refused)) == []


def test_accrual_commands_carry_each_part() -> None:
    result = allocated(allocation())
    commands = accrual_commands(result, T0 + timedelta(days=1))
    assert [(c.influencer_id, c.amount.amount, c.share_bps, c.hold_until) for c in commands] == [
        (ANA, 1510, 7000, result.hold_until),
        (BIA, 647, 3000, result.hold_until),
    ]
    assert {c.agreement_id for c in commands} == {"agr_glow_ana"}
    assert {c.base.amount for c in commands} == {17980}


def test_largest_remainder_gives_leftovers_to_the_largest_remainders_then_the_earlier() -> None:
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert largest_remainder(2157, [7000, 3000]) == [1510, 647]
    assert largest_remainder(0, [5, 5]) == [0, 0]
    assert largest_remainder(7, [0, 1]) == [0, 7]
    with pytest.raises(ValueError, match="non-negative"):
        largest_remainder(5, [0, 0])


@given(
    total=st.integers(min_value=0, max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12).filter(any),
)
def test_largest_remainder_sums_exactly_and_each_part_is_within_one_unit(
    total: int, weights: list[int]
) -> None:
    parts = largest_remainder(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert total * weight // whole <= part <= total * weight // whole + 1
        assert weight > 0 or part == 0


@given(
    base=st.integers(min_value=0, max_value=10**10),
    rate=st.integers(min_value=1, max_value=10_000),
    raw_shares=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=6),
    hosted=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_allocated_parts_always_sum_to_the_commission(
    base: int, rate: int, raw_shares: list[int], hosted: list[bool]
) -> None:
    party_ids = [f"usr_{i}" for i in range(len(raw_shares))]
    bps = largest_remainder(10_000, raw_shares)
    shares = tuple(Share(p, b) for p, b in zip(party_ids, bps, strict=True) if b > 0)
    lead = shares[0].influencer_id
    agreement = agreement_of(sign(influencer_id=lead, rate_bps=rate, cohost_shares=shares))
    hosts = tuple(p for p, h in zip(party_ids, hosted, strict=False) if h) or (lead,)

    result = allocate(allocation(agreement=agreement, host_ids=(*hosts, "usr_guest"), base=brl(base)))

    present = [s for s in shares if s.influencer_id in hosts]
    if not present:
        assert isinstance(result, OrderCommissionNotAllocated)
        return
    assert isinstance(result, OrderCommissionAllocated)
    assert result.commission.amount == base * rate // 10_000
    assert sum(p.amount.amount for p in result.parts) == result.commission.amount
    assert sum(p.share_bps for p in result.parts) == 10_000
    assert [p.influencer_id for p in result.parts] == [s.influencer_id for s in present]


# Account (ledger) ------------------------------------------------------------------------------

SOLD = T0 + timedelta(hours=20)
HOLD = SOLD + timedelta(days=30)


def accrue(order_id: str = "ord_1", amount: int = 1510, **overrides: Any) -> AccrueCommission:
    fields: dict[str, Any] = {
        "influencer_id": ANA,
        "accrual_id": accrual_id_for(order_id, ANA),
        "order_id": order_id,
        "brand_id": BRAND,
        "live_id": "liv_1",
        "agreement_id": "agr_glow_ana",
        "agreement_version": 1,
        "rate_bps": 1200,
        "share_bps": 7000,
        "base": brl(17980),
        "amount": brl(amount),
        "hold_until": HOLD,
        "at": SOLD,
    }
    fields.update(overrides)
    return AccrueCommission(**fields)


def cancel(order_id: str = "ord_1", at: datetime = SOLD + timedelta(days=1)) -> ReverseCommission:
    return ReverseCommission(ANA, order_id, f"rev_{order_id}_c", "order_cancelled", at)


def refund(
    refunded: int, order_id: str = "ord_1", *, total: int = 17980, at: datetime = SOLD + timedelta(days=2)
) -> ReverseCommission:
    return ReverseCommission(
        ANA,
        order_id,
        f"rev_{order_id}_{refunded}",
        "order_refunded",
        at,
        refund_id=f"rfd_{refunded}",
        total_refunded=brl(refunded),
        order_total=brl(total),
        fully_refunded=refunded == total,
    )


def release(order_id: str = "ord_1", at: datetime = HOLD) -> ReleaseCommission:
    return ReleaseCommission(ANA, accrual_id_for(order_id, ANA), at)


def statement(start: datetime, end: datetime, **overrides: Any) -> IssueStatement:
    fields: dict[str, Any] = {
        "influencer_id": ANA,
        "statement_id": "stm_1",
        "period_start": start,
        "period_end": end,
        "currency": "BRL",
        "actor": Actor(ANA),
        "at": end,
    }
    fields.update(overrides)
    return IssueStatement(**fields)


Command = AccrueCommission | ReleaseCommission | ReverseCommission | IssueStatement


def ledger(*commands: Command) -> list[DomainEvent]:
    """The events of executing ``commands`` in order on an empty ledger."""
    history: list[DomainEvent] = []
    for command in commands:
        history += accounts.decide(command, fold(accounts, history))
    return history


def when(history: Sequence[DomainEvent], command: Command) -> Sequence[DomainEvent]:
    return accounts.decide(command, fold(accounts, history))


def test_a_ledger_state_shares_what_came_before_and_keeps_the_order() -> None:
    first = LedgerEntry(SOLD, "accrued", "BRL", 1510)
    second = LedgerEntry(HOLD, "released", "BRL", 1510)
    one = Entries().add(first)
    two = one.add(second)
    assert (list(one), list(two), len(two)) == ([first], [first, second], 2)
    assert two.before is one  # nothing copied: a hot ledger stays O(1) per entry
    before = fold(accounts, when([], accrue()))
    after = accounts.evolve(before, when([], accrue(order_id="ord_2"))[0])
    assert set(before.accruals) == {accrual_id_for("ord_1", ANA)}
    assert set(after.accruals) == {accrual_id_for("ord_1", ANA), accrual_id_for("ord_2", ANA)}
    assert after.balance("BRL").held == 2 * 1510
    assert before.balance("BRL").held == 1510


def test_accrue_records_the_accrual_as_held() -> None:
    [event] = when([], accrue())
    assert isinstance(event, CommissionAccrued)
    assert (event.influencer_id, event.order_id, event.amount, event.hold_until) == (
        ANA,
        "ord_1",
        brl(1510),
        HOLD,
    )
    state = fold(accounts, [event])
    assert (state.balance("BRL").held, state.balance("BRL").released) == (1510, 0)


def test_one_accrual_per_order_even_under_another_accrual_id() -> None:
    history = ledger(accrue())
    assert when(history, accrue()) == []
    assert when(history, accrue(accrual_id="acc_other")) == []


def test_an_accrual_is_a_non_negative_amount_in_the_base_currency() -> None:
    with pytest.raises(Invalid) as refused:
        when([], accrue(amount=-1))
    assert refused.value.field == "amount"
    with pytest.raises(Invalid):
        when([], accrue(base=usd(17980)))


def test_release_waits_for_the_holdback() -> None:
    history = ledger(accrue())
    with pytest.raises(DomainError) as refused:
        when(history, release(at=HOLD - timedelta(microseconds=1)))
    assert (refused.value.code, refused.value.status) == ("holdback_not_over", 409)

    [event] = when(history, release(at=HOLD))
    assert isinstance(event, CommissionReleased)
    assert event.amount == brl(1510)
    balance = fold(accounts, [*history, event]).balance("BRL")
    assert (balance.held, balance.released) == (0, 1510)


def test_release_happens_once() -> None:
    assert when(ledger(accrue(), release()), release(at=HOLD + timedelta(days=1))) == []


def test_release_of_an_unknown_accrual_is_not_found() -> None:
    with pytest.raises(NotFound) as refused:
        when(ledger(accrue()), release(order_id="ord_unknown"))
    assert refused.value.code == "accrual_not_found"


def test_release_pays_what_is_left_after_reversals() -> None:
    [event] = when(ledger(accrue(), refund(8990)), release())
    assert isinstance(event, CommissionReleased)
    assert event.amount == brl(755)


def test_a_fully_reversed_accrual_has_nothing_to_release() -> None:
    assert when(ledger(accrue(), cancel()), release()) == []


def test_cancel_reverses_in_full_once() -> None:
    history = ledger(accrue())
    [event] = when(history, cancel())
    assert isinstance(event, CommissionReversed)
    assert (event.amount, event.reason, event.refund_id) == (brl(1510), "order_cancelled", None)
    assert when([*history, event], cancel()) == []
    state = fold(accounts, [*history, event])
    assert (state.balance("BRL").held, state.balance("BRL").released) == (0, 0)


def test_partial_refund_reverses_in_proportion_rounded_down() -> None:
    [event] = when(ledger(accrue(amount=1000)), refund(6000, total=17980))
    assert isinstance(event, CommissionReversed)
    # 1000 × 6000 / 17980 = 333.70… ⇒ 333
    assert (event.amount, event.reason, event.refund_id) == (brl(333), "order_refunded", "rfd_6000")


def test_successive_refunds_reverse_the_cumulative_share_and_a_full_refund_exactly_the_rest() -> None:
    history = ledger(accrue(amount=1000), refund(6000, total=17980))
    [second] = when(history, refund(12000, total=17980))
    assert isinstance(second, CommissionReversed)
    assert second.amount == brl(1000 * 12000 // 17980 - 333)  # 667 − 333
    history.append(second)
    [last] = when(history, refund(17980, total=17980))
    assert isinstance(last, CommissionReversed)
    assert last.amount.amount == 1000 - 667
    assert fold(accounts, [*history, last]).accruals[accrual_id_for("ord_1", ANA)].reversed == 1000


def test_a_duplicate_or_late_refund_reverses_nothing() -> None:
    history = ledger(accrue(amount=1000), refund(12000))
    assert when(history, refund(12000)) == []
    assert when(history, refund(6000)) == []


def test_a_refund_after_cancellation_reverses_nothing() -> None:
    assert when(ledger(accrue(), cancel()), refund(8990)) == []


def test_a_cancellation_after_a_partial_refund_reverses_the_rest() -> None:
    [event] = when(ledger(accrue(), refund(8990)), cancel())
    assert isinstance(event, CommissionReversed)
    assert event.amount == brl(755)


def test_reversal_after_release_comes_out_of_the_payable_balance() -> None:
    history = ledger(accrue("ord_1", 1510), release("ord_1"), accrue("ord_2", 300, at=HOLD))
    history += when(history, refund(8990, at=HOLD + timedelta(days=1)))
    balance = fold(accounts, history).balance("BRL")
    # ord_2's 300 stays held; ord_1's payable 1510 loses the refunded half.
    assert (balance.held, balance.released, balance.total) == (300, 755, 1055)

    history += when(history, cancel("ord_1", at=HOLD + timedelta(days=2)))
    balance = fold(accounts, history).balance("BRL")
    assert (balance.held, balance.released) == (300, 0)


def test_a_period_whose_reversals_exceed_its_accruals_moves_the_balance_down() -> None:
    june = HOLD + timedelta(days=1)
    history = ledger(accrue(), release(), cancel(at=june))
    [event] = when(history, statement(june, june + timedelta(days=1)))
    assert isinstance(event, StatementIssued)
    assert (event.opening_balance, event.reversed, event.closing_balance) == (brl(1510), brl(1510), brl(0))


def test_reversal_of_an_unknown_order_is_not_found() -> None:
    with pytest.raises(NotFound) as refused:
        when(ledger(accrue()), cancel("ord_unknown"))
    assert refused.value.code == "order_not_accrued"


def test_a_refund_reversal_needs_both_totals_in_one_currency() -> None:
    history = ledger(accrue())
    bad = replace(refund(100), order_total=usd(17980))
    with pytest.raises(Invalid) as refused:
        when(history, bad)
    assert (refused.value.code, refused.value.field) == ("invalid_refund", "total_refunded")
    with pytest.raises(Invalid):
        when(history, replace(refund(100), total_refunded=None))


def test_the_golden_statement_reconciles_to_the_ledger() -> None:
    may, june = T0, datetime(2025, 6, 1, tzinfo=UTC)
    history = ledger(
        accrue(at=datetime(2025, 5, 1, 20, 25, 15, 300000, tzinfo=UTC)),
        refund(8990, at=datetime(2025, 5, 6, 13, 2, 12, tzinfo=UTC)),
        release(at=datetime(2025, 5, 31, 20, 25, 16, tzinfo=UTC)),
    )
    [event] = when(
        history, statement(may, june, statement_id="stm_ana_2025_05", at=june + timedelta(hours=3))
    )

    assert event == StatementIssued(
        influencer_id=ANA,
        statement_id="stm_ana_2025_05",
        period_start=may,
        period_end=june,
        opening_balance=brl(0),
        accrued=brl(1510),
        reversed=brl(755),
        released=brl(755),
        closing_balance=brl(755),
        entries=3,
        occurred_at=june + timedelta(hours=3),
    )


def test_a_statement_opens_with_the_balance_before_its_period() -> None:
    history = ledger(
        accrue("ord_1", 1000),
        refund(8990, at=SOLD + timedelta(days=1)),
        accrue("ord_2", 500, at=SOLD + timedelta(days=3)),
    )
    [event] = when(history, statement(SOLD + timedelta(days=2), SOLD + timedelta(days=4)))
    assert isinstance(event, StatementIssued)
    assert (event.opening_balance, event.accrued, event.reversed, event.closing_balance, event.entries) == (
        brl(500),
        brl(500),
        brl(0),
        brl(1000),
        1,
    )


def test_a_statement_is_issued_once_per_period_and_currency() -> None:
    history = ledger(accrue(), statement(T0, T0 + timedelta(days=1)))
    assert when(history, statement(T0, T0 + timedelta(days=1), statement_id="stm_2")) == []


def test_an_admin_may_issue_anyones_statement_an_other_influencer_may_not() -> None:
    history = ledger(accrue())
    assert len(when(history, statement(T0, SOLD + timedelta(days=1), actor=ADMIN))) == 1
    with pytest.raises(Forbidden) as refused:
        when(history, statement(T0, SOLD + timedelta(days=1), actor=Actor(BIA)))
    assert refused.value.code == "not_own_account"


@pytest.mark.parametrize(
    ("start", "end", "at", "code"),
    [
        (T0, T0, T0, "invalid_period"),
        (T0 + timedelta(days=1), T0, T0 + timedelta(days=2), "invalid_period"),
        (T0, T0 + timedelta(days=2), T0 + timedelta(days=1), "period_not_closed"),
    ],
)
def test_a_statement_period_must_be_ended(start: datetime, end: datetime, at: datetime, code: str) -> None:
    with pytest.raises(Invalid) as refused:
        when(ledger(accrue()), statement(start, end, at=at))
    assert (refused.value.code, refused.value.field) == (code, "period_end")


def test_the_currency_defaults_to_the_ledgers_only_one() -> None:
    [event] = when(ledger(accrue()), statement(T0, T0 + timedelta(days=1), currency=None))
    assert isinstance(event, StatementIssued)
    assert event.closing_balance == brl(1510)
    for history in (
        [],
        ledger(
            accrue(),
            replace(accrue("ord_2"), base=usd(100), amount=usd(12)),
        ),
    ):
        with pytest.raises(Invalid) as refused:
            when(history, statement(T0, T0 + timedelta(days=1), currency=None))
        assert (refused.value.code, refused.value.field) == ("currency_required", "currency")


def test_an_entry_is_never_dated_inside_a_period_already_stated() -> None:
    end = SOLD + timedelta(days=1)
    issued_at = end + timedelta(hours=1)
    history = ledger(accrue(), statement(T0, end, at=issued_at))
    # A command stamped before the statement was issued (a retry, a lagging clock) is dated after it.
    [late] = when(history, cancel(at=end - timedelta(hours=1)))
    assert isinstance(late, CommissionReversed)
    assert late.occurred_at == issued_at
    state = fold(accounts, [*history, late])
    assert statement_totals(state.entries, T0, end, "BRL").closing == 1510
    assert state.balance("BRL").total == 0


def test_reversal_target_is_floored_and_exact_when_full() -> None:
    assert reversal_target(1510, 8990, 17980, fully_refunded=False) == 755
    assert reversal_target(1000, 6000, 17980, fully_refunded=False) == 333
    assert reversal_target(1000, 17979, 17980, fully_refunded=True) == 1000
    assert reversal_target(1000, 20000, 17980, fully_refunded=False) == 1000


# Property: random ledgers reconcile --------------------------------------------------------------

ORDERS = [f"ord_{i}" for i in range(5)]
operation = st.one_of(
    st.tuples(st.just("accrue"), st.sampled_from(ORDERS), st.integers(0, 50_000), st.integers(0, 5)),
    st.tuples(st.just("cancel"), st.sampled_from(ORDERS)),
    st.tuples(st.just("refund"), st.sampled_from(ORDERS), st.integers(1, 100)),
    st.tuples(st.just("release"), st.sampled_from(ORDERS)),
    st.tuples(st.just("advance"), st.integers(1, 72)),
)


class Model:
    """What the ledger must show, kept independently of the decider's own bookkeeping."""

    def __init__(self) -> None:
        self.accrued: dict[str, int] = {}
        self.refunded: dict[str, int] = {}  # percent of the order refunded so far
        self.cancelled: set[str] = set()
        self.events: list[DomainEvent] = []


def _run(operations: Sequence[tuple[Any, ...]]) -> tuple[Model, datetime]:
    model, now = Model(), T0
    for op in operations:
        kind = op[0]
        command: Command | None = None
        if kind == "advance":
            now += timedelta(hours=op[1])
        elif kind == "accrue":
            _, order_id, amount, days = op
            command = accrue(order_id, amount, at=now, hold_until=now + timedelta(days=days))
        elif kind == "cancel":
            command = cancel(op[1], at=now)
        elif kind == "refund":
            _, order_id, percent = op
            already = model.refunded.get(order_id, 0)
            cumulative = min(100, already + percent)
            model.refunded[order_id] = cumulative
            command = refund(cumulative, order_id, total=100, at=now)
        else:
            command = release(op[1], at=now)
        if command is None:
            continue
        try:
            new = when(model.events, command)
        except DomainError as refusal:
            # The only refusals of this sequence: an unknown order or accrual, or a holdback not over.
            if refusal.code not in {"order_not_accrued", "accrual_not_found", "holdback_not_over"}:
                raise
            if kind == "refund":
                model.refunded[op[1]] = already
            continue
        model.events += new
        if kind == "accrue" and new:
            model.accrued[op[1]] = op[2]
        if kind == "cancel":
            model.cancelled.add(op[1])
        _check(model)
    return model, now


def _check(model: Model) -> None:
    state: AccountState = fold(accounts, model.events)
    accrued = sum(e.amount.amount for e in model.events if isinstance(e, CommissionAccrued))
    reversed_ = sum(e.amount.amount for e in model.events if isinstance(e, CommissionReversed))
    balance = state.balance("BRL")
    assert balance.held + balance.released == accrued - reversed_
    assert balance.held == sum(a.remaining for a in state.accruals.values() if a.released is None)
    assert balance.held >= 0
    for order_id, amount in model.accrued.items():
        accrual = state.accruals[accrual_id_for(order_id, ANA)]
        assert accrual.amount == amount
        assert 0 <= accrual.reversed <= amount
        if order_id in model.cancelled or model.refunded.get(order_id) == 100:
            assert accrual.reversed == amount
        else:
            assert accrual.reversed >= amount * model.refunded.get(order_id, 0) // 100


@settings(max_examples=300, deadline=None)
@given(
    operations=st.lists(operation, max_size=40), cuts=st.lists(st.integers(0, 2000), min_size=2, max_size=5)
)
def test_random_ledgers_reconcile_balances_and_statements(
    operations: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    model, now = _run(operations)
    state = fold(accounts, model.events)
    end = now + timedelta(hours=1)
    bounds = sorted(
        {
            T0 - timedelta(hours=1),
            *(T0 + timedelta(hours=c) for c in cuts if T0 + timedelta(hours=c) < end),
            end,
        }
    )

    # Consecutive statements chain: each closing is the next opening; the last closing is the ledger.
    closing = 0
    entries = 0
    for start, stop in itertools.pairwise(bounds):
        totals = statement_totals(state.entries, start, stop, "BRL")
        assert totals.opening == closing
        assert totals.closing == totals.opening + totals.accrued - totals.reversed
        closing = totals.closing
        entries += totals.entries
    assert closing == state.balance("BRL").total
    assert entries == sum(1 for e in model.events if not isinstance(e, StatementIssued))

    # The issued event carries the same figures.
    if len(bounds) > 2:
        [issued] = when(model.events, statement(bounds[1], bounds[2], at=end))
        assert isinstance(issued, StatementIssued)
        totals = statement_totals(state.entries, bounds[1], bounds[2], "BRL")
        assert (
            issued.closing_balance.amount
            == issued.opening_balance.amount + issued.accrued.amount - issued.reversed.amount
        )
        assert (issued.opening_balance.amount, issued.closing_balance.amount, issued.released.amount) == (
            totals.opening,
            totals.closing,
            totals.released,
        )
