"""A recorded history for the analysts' tests: the demo's live sale run on the real platform, and
what two read APIs showed while it ran — the stock of the sale's deal SKU (catalog) and its lead
host's commission balance (commission) — each with the wall-clock instant and the stores' heads.

An observation is kept only when it pins a state down: catalog's and commission's projections had
applied their store up to its head, the head did not move while the figures were read, and (checked
against the stores once they are stopped) the head's event was recorded at or before the instant
and the next one after it. So "the stock and the balance as of ``at``" — or as of the heads — is
exactly what was observed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shopstream_analytics.sources import StoreRef, opened
from shopstream_cli.sale import CURRENCY, PhaseHook, SaleReport, Tokens, World
from shopstream_testing.waiting import WaitTimeout, wait_until_async

WATCHED = ("catalog", "commission")
"""The services whose figures are observed: their heads must hold still while they are read."""


@dataclass(frozen=True, slots=True)
class Observation:
    run: str
    """The sale's run id (``SaleReport.ids.run``)."""
    phase: str
    """The sale phase about to start (``run_live_sale``'s ``on_phase`` names)."""
    at: datetime
    heads: Mapping[str, int]
    """Every service store's head; catalog's and commission's are exactly what was applied."""
    sku_id: str
    stock: Mapping[str, int] | None
    """``on_hand``, ``reserved``, ``available``; None before the SKU exists."""
    influencer_id: str
    balance: Mapping[str, int]
    """In BRL: ``held``, ``released``, ``total``, ``accrued``, ``reversed``, ``accruals``; empty
    before the host's first accrual."""


@dataclass(frozen=True, slots=True)
class RecordedHistory:
    workdir: Path
    store_url_template: str
    """``sqlite:///<workdir>/data/{service}.sqlite``: every service's store, services stopped."""
    live_ids: list[str]
    reports: list[SaleReport]
    observations: list[Observation]

    def store_url(self, service: str) -> str:
        return self.store_url_template.replace("{service}", service)


class Observer:
    """An ``on_phase`` hook per sale that records an observation at each phase's start once the
    watched services are quiescent (given up after ``patience`` seconds: the phase goes unrecorded)."""

    def __init__(self, urls: Mapping[str, str], client: httpx.AsyncClient, patience: float = 10.0) -> None:
        self._urls = dict(urls)
        self._client = client
        self._patience = patience
        self._admin = Tokens().headers("usr_analyst_observer", "admin")
        self.observations: list[Observation] = []

    def hook(self, run: str) -> PhaseHook:
        world = World.new(Tokens(), run)

        async def on_phase(phase: str) -> None:
            try:
                seen = await wait_until_async(
                    lambda: self._observe(world, phase), timeout=self._patience, interval=0.05
                )
            except WaitTimeout:
                return
            if seen is not None:
                self.observations.append(seen)

        return on_phase

    async def _observe(self, world: World, phase: str) -> Observation | None:
        before = await self._heads()
        if before is None:
            return None
        at = datetime.now(UTC)
        stock, balance = await asyncio.gather(
            self._get("catalog", f"/skus/{world.deal_sku}/stock"),
            self._get("commission", f"/influencers/{world.hosts[0]}/balance"),
        )
        after = await self._heads()
        if after is None or any(before[s] != after[s] for s in WATCHED):
            return None
        figures = next((b for b in (balance or {}).get("balances", []) if b["currency"] == CURRENCY), None)
        return Observation(
            run=world.run,
            phase=phase,
            at=at,
            heads=before,
            sku_id=world.deal_sku,
            stock=None if stock is None else {k: stock[k] for k in ("on_hand", "reserved", "available")},
            influencer_id=world.hosts[0],
            balance={}
            if figures is None
            else {
                **{k: figures[k]["amount"] for k in ("held", "released", "total", "accrued", "reversed")},
                "accruals": figures["accruals"],
            },
        )

    async def _heads(self) -> dict[str, int] | None:
        """Every store's head; None unless each watched service's projections have applied its."""
        replies = await asyncio.gather(*(self._readiness(s) for s in self._urls))
        heads: dict[str, int] = {}
        for service, checks in zip(self._urls, replies, strict=True):
            heads[service] = int(checks["store"]["head"])
            lagging = [c for name, c in checks.items() if name.startswith("projection:") and c["lag"] > 0]
            if service in WATCHED and lagging:
                return None
        return heads

    async def _readiness(self, service: str) -> dict[str, Any]:
        reply = await self._client.get(f"{self._urls[service]}/readyz")
        checks: dict[str, Any] = reply.json()["checks"]
        return checks

    async def _get(self, service: str, path: str) -> Any:
        reply = await self._client.get(f"{self._urls[service]}{path}", headers=self._admin)
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        return reply.json()


async def pinned_down(observations: Sequence[Observation], store_url_template: str) -> list[Observation]:
    """The observations whose instant separates the watched stores' head event from the next one
    (an event stamped just before the instant but committed after the heads were read would make
    "as of the instant" ambiguous: such an observation is dropped)."""
    kept = list(observations)
    for service in WATCHED:
        async with opened(StoreRef(service, store_url_template.replace("{service}", service))) as store:
            checked = []
            for seen in kept:
                head = seen.heads[service]
                around = await store.read_all(max(0, head - 1), 2)
                before = all(e.recorded_at <= seen.at for e in around if e.position <= head)
                if before and all(e.recorded_at > seen.at for e in around if e.position > head):
                    checked.append(seen)
            kept = checked
    return kept
