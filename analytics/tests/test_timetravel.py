"""Time travel on the recorded history: catalog's stock and commission's ledger built as of each
observation's instant — and as of its store positions — show exactly the stock and the balance the
services' APIs showed then; the live read models are not touched; bad targets change nothing."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pytest

from shopstream_analytics.catalog import select
from shopstream_analytics.sources import StoreRef, opened, store_refs
from shopstream_analytics.timetravel import (
    Snapshot,
    TimeTravelError,
    balance_of,
    build_as_of,
    query,
    stock_of,
)
from shopstream_processing import ProjectionRunner
from shopstream_service.runtime import open_readmodel

from .history import Observation, RecordedHistory

pytestmark = pytest.mark.integration


def refs(history: RecordedHistory) -> tuple[StoreRef, StoreRef]:
    catalog, commission = store_refs(history.store_url_template, ["catalog", "commission"])
    return catalog, commission


async def as_of(
    ref: StoreRef, projection: str, target: Path, *, at: datetime | None = None, position: int | None = None
) -> Snapshot:
    (chosen,) = select(ref.service, [projection])
    return await build_as_of(ref, chosen, target, at=at, position=position)


async def seen_in(catalog: Snapshot, commission: Snapshot, observation: Observation) -> Observation:
    """The observation as the two time-travel files show it."""
    stock = await stock_of(catalog.path, observation.sku_id)
    balances = [
        b for b in await balance_of(commission.path, observation.influencer_id) if b.currency == "BRL"
    ]
    balance = {k: v for k, v in asdict(balances[0]).items() if k != "currency"} if balances else {}
    return Observation(
        run=observation.run,
        phase=observation.phase,
        at=observation.at,
        heads={**observation.heads, "catalog": catalog.position, "commission": commission.position},
        sku_id=observation.sku_id,
        stock=None if stock is None else {k: getattr(stock, k) for k in ("on_hand", "reserved", "available")},
        influencer_id=observation.influencer_id,
        balance=balance,
    )


async def live_checksums(history: RecordedHistory) -> dict[str, str]:
    found = {}
    for ref in refs(history):
        db = await open_readmodel(ref.url, ref.service)
        try:
            async with opened(ref) as store:
                for projection in select(ref.service):
                    runner = ProjectionRunner(store, db, projection, service=ref.service)
                    checksum = await runner.checksum()
                    found[f"{ref.service}/{projection.name}"] = f"{checksum.position}:{checksum.digest}"
        finally:
            await db.close()
    return found


async def test_as_of_each_observed_instant_and_position_the_stock_and_balance_are_what_was_seen(
    recorded_history: RecordedHistory, tmp_path: Path
) -> None:
    observations = recorded_history.observations
    # Every sale phase of both sales was pinned down, and the figures moved during the sales.
    assert len(observations) >= 20
    assert len({(o.run, o.phase) for o in observations}) == len(observations)
    assert len({tuple(o.stock.values()) for o in observations if o.stock}) >= 3
    assert len({o.balance.get("total") for o in observations}) >= 3
    catalog, commission = refs(recorded_history)
    untouched = await live_checksums(recorded_history)
    for n, seen in enumerate(observations):
        by_time = (
            await as_of(catalog, "stock", tmp_path / f"stock-{n}.sqlite", at=seen.at),
            await as_of(commission, "ledger", tmp_path / f"ledger-{n}.sqlite", at=seen.at),
        )
        assert await seen_in(*by_time, seen) == seen, f"as of {seen.at.isoformat()} ({seen.phase})"
    for catalog_head, commission_head in sorted(
        {(o.heads["catalog"], o.heads["commission"]) for o in observations}
    ):
        by_position = (
            await as_of(catalog, "stock", tmp_path / "stock.sqlite", position=catalog_head),
            await as_of(commission, "ledger", tmp_path / "ledger.sqlite", position=commission_head),
        )
        for seen in observations:
            if (seen.heads["catalog"], seen.heads["commission"]) == (catalog_head, commission_head):
                assert await seen_in(*by_position, seen) == seen, f"as of {dict(seen.heads)} ({seen.phase})"
    assert await live_checksums(recorded_history) == untouched


async def test_the_built_file_says_what_it_is_and_answers_queries(
    recorded_history: RecordedHistory, tmp_path: Path
) -> None:
    catalog, _ = refs(recorded_history)
    seen = next(o for o in recorded_history.observations if o.stock and o.stock["reserved"])
    built = await as_of(catalog, "stock", tmp_path / "stock.sqlite", at=seen.at)
    assert (built.service, built.projection, built.version, built.as_of) == ("catalog", "stock", 1, seen.at)
    assert built.position == built.events == seen.heads["catalog"]
    columns, rows = query(built.path, "SELECT service, projection, position FROM time_travel")
    assert (columns, rows) == (["service", "projection", "position"], [("catalog", "stock", built.position)])
    _, reserved = query(built.path, "SELECT reserved FROM stock WHERE sku_id = ?", [seen.sku_id])
    assert reserved == [(seen.stock["reserved"],)]  # type: ignore[index]
    # Rebuilt again (an earlier time-travel file is replaced), as of the very beginning: empty.
    empty = await as_of(catalog, "stock", built.path, position=0)
    assert empty.rows == {"stock": 0, "deals": 0, "reservations": 0}
    assert list(fingerprint(tmp_path)) == ["stock.sqlite"]  # no temporary file left over
    with pytest.raises(TimeTravelError, match="readonly"):
        query(built.path, "DELETE FROM stock")


def fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


async def test_bad_targets_and_moments_are_refused_and_nothing_is_written(
    recorded_history: RecordedHistory, tmp_path: Path
) -> None:
    catalog, _ = refs(recorded_history)
    data = recorded_history.workdir / "data"
    stranger = tmp_path / "notes.sqlite"
    stranger.write_text("not a time-travel file")
    before = fingerprint(data), fingerprint(tmp_path)
    cases = [
        (data / "catalog.sqlite", {"position": 3}, "live store"),
        (data / "orders.sqlite", {"position": 3}, "not a time-travel file"),
        (stranger, {"position": 3}, "not a time-travel file"),
        (tmp_path / "missing" / "x.sqlite", {"position": 3}, "not a directory"),
        (tmp_path / "x.sqlite", {"position": 10**9}, "not in the store"),
        (tmp_path / "x.sqlite", {"at": datetime(2026, 1, 1, 12)}, "no time zone"),
        (tmp_path / "x.sqlite", {}, "either an instant or a position"),
    ]
    for target, moment, error in cases:
        with pytest.raises(TimeTravelError, match=error):
            await as_of(catalog, "stock", target, **moment)  # type: ignore[arg-type]
    assert (fingerprint(data), fingerprint(tmp_path)) == before
