"""What-if commission: the proposal's rules alone, then replays of the recorded history — the
actual terms replayed give back exactly what the commission service booked, other terms give
what the service's rules say, and nothing is written."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopstream_analytics.report import live_report
from shopstream_analytics.sources import StoreRef, opened, store_refs
from shopstream_analytics.whatif import Proposal, Selection, Tier, WhatIf, WhatIfError, what_if
from shopstream_commission.values import Share

from .history import RecordedHistory


@pytest.mark.unit
def test_a_tier_applies_from_its_cumulative_gmv_on() -> None:
    proposal = Proposal(rate_bps=1000, tiers=(Tier(100_000, 1200), Tier(50_000, 1100)))
    assert [proposal.rate_at(gmv) for gmv in (0, 49_999, 50_000, 99_999, 100_000, 10**9)] == [
        1000,
        1000,
        1100,
        1100,
        1200,
        1200,
    ]
    assert Proposal(rate_bps=1000, tiers=(Tier(0, 900),)).rate_at(0) == 900


@pytest.mark.unit
@pytest.mark.parametrize(
    "make",
    [
        lambda: Proposal(rate_bps=0),
        lambda: Proposal(rate_bps=10_001),
        lambda: Proposal(rate_bps=1000, holdback_days=366),
        lambda: Proposal(rate_bps=1000, tiers=(Tier(10, 1100), Tier(10, 1200))),
        lambda: Proposal(rate_bps=1000, tiers=(Tier(-1, 1100),)),
        lambda: Proposal(rate_bps=1000, shares=(Share("a", 6000), Share("b", 3000))),
        lambda: Proposal(rate_bps=1000, shares=(Share("a", 10_000), Share("a", 0))),
        lambda: Selection(),
        lambda: Selection(
            live_id="liv_x", period=(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
        ),
        lambda: Selection(period=(datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))),
    ],
)
def test_impossible_terms_or_selections_are_refused(make: object) -> None:
    with pytest.raises(WhatIfError):
        make()  # type: ignore[operator]


def _run(history: RecordedHistory, selection: Selection, proposal: Proposal) -> WhatIf:
    return asyncio.run(what_if(store_refs(history.store_url_template), selection, proposal))


@pytest.mark.integration
def test_replaying_the_actual_terms_gives_back_what_the_commission_service_booked(
    recorded_history: RecordedHistory,
) -> None:
    for sale in recorded_history.reports:
        terms = sale.parameters
        result = _run(
            recorded_history,
            Selection(live_id=sale.ids.live_id),
            Proposal(rate_bps=terms.rate_bps, holdback_days=terms.holdback_days),
        )
        assert result.orders == sale.orders.confirmed
        assert dict(result.gmv) == {"BRL": sale.orders.gmv}
        by_host = {row.party: row for row in result.by_influencer}
        assert set(by_host) == set(sale.ids.host_ids)
        for host in sale.commission.hosts:
            row = by_host[host.influencer_id]
            assert row.actual == row.proposed
            assert (row.actual.accrued, row.actual.reversed, row.actual.released) == (
                host.accrued,
                host.reversed,
                host.released,
            )
            assert row.difference == 0
        (brand,) = result.by_brand
        assert (brand.party, brand.difference) == (sale.ids.brand_id, 0)


@pytest.mark.integration
def test_a_full_rate_proposal_pays_the_whole_gmv_less_what_went_back(
    recorded_history: RecordedHistory,
) -> None:
    """At 10000 bps an order's commission is its total, so the brand's accrual is the GMV exactly;
    reversals are floored per host, so at most one minor unit per host and refund stays unreversed."""
    for sale in recorded_history.reports:
        selection = Selection(live_id=sale.ids.live_id)
        flat = _run(recorded_history, selection, Proposal(rate_bps=10_000))
        tiered = _run(recorded_history, selection, Proposal(rate_bps=1, tiers=(Tier(0, 10_000),)))
        (brand,) = flat.by_brand
        assert brand.proposed.accrued == sale.orders.gmv
        slack = len(sale.ids.host_ids) * (sale.orders.partially_refunded + sale.orders.cancelled)
        assert 0 <= brand.proposed.net - sale.orders.net <= slack
        assert brand.difference == brand.proposed.net - brand.actual.net > 0
        assert tiered.by_brand == flat.by_brand


@pytest.mark.integration
def test_a_tier_reached_mid_live_raises_the_rate_of_the_later_orders_only(
    recorded_history: RecordedHistory,
) -> None:
    sale = recorded_history.reports[0]
    selection = Selection(live_id=sale.ids.live_id)
    base = _run(recorded_history, selection, Proposal(rate_bps=1000))
    unreachable = _run(recorded_history, selection, Proposal(rate_bps=1000, tiers=(Tier(10**12, 2000),)))
    reached = _run(
        recorded_history, selection, Proposal(rate_bps=1000, tiers=(Tier(sale.orders.gmv // 2, 2000),))
    )
    doubled = _run(recorded_history, selection, Proposal(rate_bps=2000))
    assert unreachable.by_brand == base.by_brand
    (low,), (mid,), (high,) = base.by_brand, reached.by_brand, doubled.by_brand
    assert low.proposed.accrued < mid.proposed.accrued < high.proposed.accrued


@pytest.mark.integration
def test_a_holdback_of_zero_releases_every_accrual_before_any_reversal(
    recorded_history: RecordedHistory,
) -> None:
    sale = recorded_history.reports[0]
    result = _run(
        recorded_history,
        Selection(live_id=sale.ids.live_id),
        Proposal(rate_bps=sale.parameters.rate_bps, holdback_days=0),
    )
    for row in result.by_influencer:
        assert row.proposed.accrued == row.actual.accrued
        assert row.proposed.released == row.proposed.accrued > row.actual.released
        assert row.difference == 0


@pytest.mark.integration
def test_a_period_takes_the_orders_confirmed_in_it(recorded_history: RecordedHistory) -> None:
    everything = Selection(period=(datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)))
    result = _run(recorded_history, everything, Proposal(rate_bps=1250))
    assert result.orders == sum(sale.orders.confirmed for sale in recorded_history.reports)
    assert {row.party for row in result.by_brand} == {sale.ids.brand_id for sale in recorded_history.reports}
    nothing = Selection(period=(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC)))
    with pytest.raises(WhatIfError, match="no confirmed order"):
        _run(recorded_history, nothing, Proposal(rate_bps=1250))


async def _heads(refs: list[StoreRef]) -> dict[str, int]:
    heads = {}
    for ref in refs:
        async with opened(ref) as store:
            heads[ref.service] = await store.head_position()
    return heads


def _fingerprint(refs: list[StoreRef]) -> tuple[dict[str, int], dict[str, str]]:
    """Each store's head and the digest of its files (the database and its write-ahead log)."""
    digests = {}
    for ref in refs:
        database = Path(ref.url.removeprefix("sqlite:///"))
        digest = hashlib.sha256()
        for path in (database, database.with_name(database.name + "-wal")):
            digest.update(path.read_bytes() if path.exists() else b"absent")
        digests[ref.service] = digest.hexdigest()
    return asyncio.run(_heads(refs)), digests


@pytest.mark.integration
def test_what_if_and_the_live_report_write_nothing(recorded_history: RecordedHistory) -> None:
    refs = store_refs(recorded_history.store_url_template)
    before = _fingerprint(refs)
    sale = recorded_history.reports[-1]
    _run(recorded_history, Selection(live_id=sale.ids.live_id), Proposal(rate_bps=3000, holdback_days=0))
    asyncio.run(live_report(refs, sale.ids.live_id))
    assert _fingerprint(refs) == before
