"""A scripted live sale through the five services' public HTTP APIs, and its reconciled report.

What `shopstream demo` runs and what the end-to-end tests check: an admin onboards a brand; its
staff creates a product, prices it and receives stock, and signs a commission agreement with two
co-hosting influencers; the live is scheduled and goes on air; viewers chat (a question is asked
and answered, a banned word is blocked, a message removed, a troll muted); a product is pinned,
payment terms offered and a flash deal started; a few hundred buyers hit the deal at once (some
double-click with one Idempotency-Key, some try to beat the per-buyer cap); every order is
waited on until confirmed or rejected; some are cancelled and one partly refunded; the live ends;
the clocks move past the commission holdback, accruals are released and statements issued.

The driver talks HTTP only, as a client would. The services react to each other's events
asynchronously, so before every step that depends on another service having consumed an event
it polls that service's read API until the condition holds, with a deadline — never a fixed sleep.

The report is read back from the services' read APIs, and its reconciliation checks must all be
zero: oversold units, duplicate orders, buyers over the per-buyer cap, confirmed orders without
exactly one correct accrual per host, ledger-vs-statement difference, and the like.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from shopstream_service.auth import mint_token
from shopstream_service.settings import ServiceSettings

T = TypeVar("T")
Json = dict[str, Any]
Narrate = Callable[[str], None]
PhaseHook = Callable[[str], Awaitable[None]]

CURRENCY = "BRL"
MARKET = "BR"
FULL_BPS = 10_000
SOLD = ("confirmed", "cancelled", "refunded")
"""Order statuses of a sale that happened (confirmed, whatever became of it later)."""


class SaleError(RuntimeError):
    """The scenario could not go on: an unexpected answer, or a condition not met in time."""


# --- the report -----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class SaleIds(_Model):
    run: str
    brand_id: str
    brand_staff: str
    product_id: str
    deal_sku_id: str
    list_sku_id: str
    agreement_id: str
    host_ids: list[str]
    live_id: str
    room_id: str
    deal_id: str
    terms_id: str
    moderator: str
    chatters: list[str]
    troll: str
    asker: str
    question_id: str
    removed_message_id: str
    banned_word: str
    blocked_message_ids: list[str]
    refunded_order_id: str
    cancelled_order_ids: list[str]
    statement_ids: dict[str, str]


class SaleParameters(_Model):
    buyers: int
    deal_units: int
    per_buyer_cap: int
    double_clickers: int
    over_cap_buyers: int = Field(description="Buyers asking for cap + 1 units in one order.")
    split_over_cap_buyers: int = Field(description="Buyers firing cap + 1 one-unit orders at once.")
    deal_stock: int = Field(description="Units of the deal SKU received into stock.")
    list_stock: int
    deal_price: int
    list_price_deal_sku: int
    list_price_list_sku: int
    rate_bps: int
    shares_bps: dict[str, int]
    holdback_days: int


Kind = Literal["single", "double_click", "over_cap", "split_over_cap", "list"]


class Attempt(_Model):
    """One POST /orders as a buyer sent it."""

    buyer_id: str
    key: str
    kind: Kind
    quantity: int
    status_code: int
    order_id: str | None


class OrderFigures(_Model):
    requests: int = Field(description="POST /orders sent, double clicks included.")
    idempotency_keys: int
    orders: int = Field(description="Orders the orders service holds for the live.")
    confirmed: int = Field(description="Orders that were confirmed (whatever became of them later).")
    rejected: int
    rejected_by_reason: dict[str, int]
    by_status: dict[str, int]
    cancelled: int
    partially_refunded: int
    double_clicks: int
    double_click_orders: int = Field(description="Distinct orders the double clicks made.")
    paid_in_installments: int
    gmv: int = Field(description="Total of the confirmed orders, minor units.")
    refunded: int
    net: int


class SkuUnits(_Model):
    sku_id: str
    label: str
    stock_received: int
    units_sold: int = Field(description="Units of confirmed orders.")
    units_returned: int = Field(description="Cancelled or returned units.")
    on_hand: int
    reserved: int
    available: int


class DealFigures(_Model):
    deal_id: str
    price: int
    units: int
    units_allocated: int
    per_buyer_cap: int
    orders_confirmed: int
    units_sold: int
    units_left: int
    buyers: int
    most_units_one_buyer: int
    end_reason: str | None


class HostCommission(_Model):
    influencer_id: str
    share_bps: int
    accruals: int
    accrued: int
    reversed: int
    released: int
    held: int
    balance: int
    statement_opening: int
    statement_accrued: int
    statement_reversed: int
    statement_released: int
    statement_closing: int
    statement_entries: int


class CommissionFigures(_Model):
    agreement_id: str
    rate_bps: int
    holdback_days: int
    commission_of_sales: int = Field(description="Σ commission of the confirmed orders.")
    hosts: list[HostCommission]


class LiveFigures(_Model):
    status: str
    on_air_seconds: float = Field(description="By the live service's clock (moved a minute on).")
    showcase_products: int
    payment_terms: int
    audience_windows: int
    peak_concurrent_viewers: int
    joins: int
    likes: int
    timeline: dict[str, int] = Field(description="The live's events by type.")


class ChatFigures(_Model):
    room_status: str
    messages: int
    visible_messages: int = Field(description="What a late joiner's last-N shows.")
    blocked_banned_word: int
    blocked_slow_mode: int
    blocked_muted: int
    removed: int
    questions: int
    answered: int
    mutes: int
    banned_words_version: int
    feed_events_seen_live: dict[str, int] = Field(description="What one viewer's live SSE feed received.")


class ReconciliationChecks(_Model):
    oversold_units: int
    duplicate_orders: int = Field(description="Orders beyond one per Idempotency-Key.")
    lost_orders: int = Field(description="Orders a buyer was answered with that the service does not hold.")
    buyers_over_cap: int
    orders_without_exact_accruals: int
    accruals_without_confirmed_order: int
    unreleased_after_holdback: int = Field(description="Accruals still held once the holdback is over.")
    ledger_vs_statement_difference: int
    blocked_or_muted_visible_to_others: int

    def failing(self) -> dict[str, int]:
        return {name: value for name, value in self.model_dump().items() if value != 0}


class SaleReport(_Model):
    ids: SaleIds
    parameters: SaleParameters
    orders: OrderFigures
    units: list[SkuUnits]
    deal: DealFigures
    commission: CommissionFigures
    live: LiveFigures
    chat: ChatFigures
    checks: ReconciliationChecks
    reconciled: bool = Field(description="Every reconciliation check is zero.")
    timings_seconds: dict[str, float]
    attempts: list[Attempt] = Field(exclude=True, description="Every order request (not serialised).")

    def to_json(self) -> Json:
        return self.model_dump(mode="json")


# --- commission arithmetic (the commission service's stated rules) --------------------------------


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights``: floor each part, then one more unit to each of
    the largest remainders, ties to the earlier weight — the parts sum to ``total``."""
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def expected_accruals(
    base: int, rate_bps: int, shares: Mapping[str, int], hosts: Sequence[str]
) -> dict[str, int]:
    """Each host's accrual on an order of ``base`` minor units: ⌊base × rate⌋ split by the hosts'
    shares renormalised over the hosts present, both by largest remainder."""
    present = [h for h in dict.fromkeys(hosts) if h in shares]
    bps = largest_remainder(FULL_BPS, [shares[h] for h in present])
    amounts = largest_remainder(base * rate_bps // FULL_BPS, bps)
    return dict(zip(present, amounts, strict=True))


def expected_reversal(accrued: int, refunded: int, total: int) -> int:
    """What is reversed of an accrual once ``refunded`` of ``total`` went back: pro rata, floored;
    all of it when the whole total went back (a cancellation)."""
    return accrued if refunded >= total else accrued * refunded // total


# --- HTTP -----------------------------------------------------------------------------------------


class Tokens:
    """Local bearer tokens with the services' development key."""

    def __init__(self, settings: ServiceSettings | None = None) -> None:
        self._settings = settings or ServiceSettings()
        if self._settings.jwt_secret is None:
            raise SaleError("no JWT secret configured: the scenario mints local development tokens")
        self._cache: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, str]] = {}

    def headers(self, subject: str, *roles: str, brands: Sequence[str] = ()) -> dict[str, str]:
        key = (subject, tuple(sorted(roles)), tuple(sorted(brands)))
        if key not in self._cache:
            assert self._settings.jwt_secret is not None
            token = mint_token(
                secret=self._settings.jwt_secret,
                issuer=self._settings.jwt_issuer,
                audience=self._settings.jwt_audience,
                subject=subject,
                roles=roles,
                brands=brands,
            )
            self._cache[key] = {"Authorization": f"Bearer {token}"}
        return dict(self._cache[key])


class Api:
    """The five services' HTTP APIs through one connection pool."""

    def __init__(self, urls: Mapping[str, str], client: httpx.AsyncClient) -> None:
        missing = {"live", "chat", "catalog", "orders", "commission"} - set(urls)
        if missing:
            raise SaleError(f"no URL for {sorted(missing)}")
        self.urls = dict(urls)
        self.client = client

    def url(self, service: str, path: str) -> str:
        return self.urls[service].rstrip("/") + path

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        retry_for: float = 30.0,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One request, retried with the same headers until ``retry_for`` seconds have passed when
        repeating it cannot act twice: a connection refused (nothing was sent — a service being
        restarted), a 409 with Retry-After (a concurrent write: nothing was written); and, for
        an idempotent request (a GET, one with an Idempotency-Key, or one declared so), a dropped
        connection or a 503 (not ready, or written but not readable yet)."""
        safe = idempotent if idempotent is not None else method == "GET" or "Idempotency-Key" in headers
        deadline = time.monotonic() + retry_for
        while True:
            try:
                reply = await self.client.request(
                    method, self.url(service, path), headers=dict(headers), json=body, params=params
                )
            except httpx.TransportError as error:
                if time.monotonic() > deadline or not (safe or isinstance(error, httpx.ConnectError)):
                    raise
                await asyncio.sleep(0.2)
                continue
            again = (reply.status_code == 503 and safe) or (
                reply.status_code == 409 and "retry-after" in reply.headers
            )
            if not again or time.monotonic() > deadline:
                return reply
            await asyncio.sleep(min(1.0, float(reply.headers.get("retry-after", "0.1") or 0.1)))

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        expect: tuple[int, ...] = (200, 201),
        idempotent: bool | None = None,
    ) -> Any:
        reply = await self.send(
            service, method, path, headers, body=body, params=params, idempotent=idempotent
        )
        if reply.status_code not in expect:
            raise SaleError(f"{method} {service}{path} → {reply.status_code}: {reply.text[:600]}")
        return reply.json() if reply.content else None

    async def get(self, service: str, path: str, headers: Mapping[str, str], **params: Any) -> Any:
        return await self.call(service, "GET", path, headers, params=params or None, expect=(200,))


async def eventually(
    probe: Callable[[], Awaitable[T | Literal[False] | None]],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.1,
) -> T:
    """The first truthy result of ``probe``, polled until ``timeout`` seconds; SaleError after."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await probe()
        except (SaleError, httpx.TransportError) as error:
            value, last = None, error
        else:
            last = value
        if value:
            return value
        if time.monotonic() > deadline:
            raise SaleError(f"{what}: not so after {timeout:g}s (last: {last!r:.400})")
        await asyncio.sleep(interval)


# --- the scenario ---------------------------------------------------------------------------------


@dataclass
class World:
    """Everyone and everything of one run: unique ids, so runs can share a platform."""

    run: str
    tokens: Tokens
    brand_id: str = ""
    staff: str = ""
    admin: str = ""
    moderator: str = ""
    hosts: list[str] = field(default_factory=list)
    chatters: list[str] = field(default_factory=list)
    troll: str = ""
    asker: str = ""
    product_id: str = ""
    deal_sku: str = ""
    list_sku: str = ""
    agreement_id: str = ""
    live_id: str = ""
    room_id: str = ""
    deal_id: str = ""
    terms_id: str = ""

    @classmethod
    def new(cls, tokens: Tokens, run: str | None = None) -> World:
        run = run or uuid.uuid4().hex[:8]
        world = cls(run=run, tokens=tokens)
        world.brand_id = f"brd_glow_{run}"
        world.staff = f"usr_gina_{run}"
        world.admin = f"usr_root_{run}"
        world.moderator = f"usr_mod_{run}"
        world.hosts = [f"usr_ana_{run}", f"usr_bia_{run}"]
        world.chatters = [f"usr_chat{i}_{run}" for i in range(6)]
        world.troll = f"usr_troll_{run}"
        world.asker = world.chatters[0]
        world.product_id = f"prd_serum_{run}"
        world.deal_sku = f"{world.product_id}-1"
        world.list_sku = f"{world.product_id}-2"
        world.agreement_id = f"agr_{run}"
        return world

    def keyed(self, headers: dict[str, str], what: str) -> dict[str, str]:
        """``headers`` with an Idempotency-Key for ``what`` of this run: a retry acts once."""
        return {**headers, "Idempotency-Key": f"{what}-{self.run}"}

    def as_admin(self) -> dict[str, str]:
        return self.tokens.headers(self.admin, "admin")

    def as_staff(self) -> dict[str, str]:
        return self.tokens.headers(self.staff, "brand", brands=[self.brand_id])

    def as_host(self, index: int = 0) -> dict[str, str]:
        return self.tokens.headers(self.hosts[index], "influencer")

    def as_moderator(self) -> dict[str, str]:
        return self.tokens.headers(self.moderator, "moderator")

    def as_viewer(self, user: str) -> dict[str, str]:
        return self.tokens.headers(user, "viewer")

    def buyer(self, n: int) -> str:
        return f"usr_buyer{n:04d}_{self.run}"


@dataclass
class _Config:
    buyers: int
    deal_units: int
    per_buyer_cap: int
    double_clickers: int
    over_cap: int
    split_over_cap: int
    cancels: int
    deal_stock: int
    list_stock: int
    deal_price: int = 8990
    list_price_deal_sku: int = 12990
    list_price_list_sku: int = 18990
    rate_bps: int = 1250
    holdback_days: int = 7
    lead_share_bps: int = 6000
    list_order_units: int = 3
    banned_word: str = "counterfeit"
    timeout: float = 120.0


@dataclass
class Chat:
    removed_message_id: str = ""
    question_id: str = ""
    blocked: list[str] = field(default_factory=list)
    seen_live: Counter[str] = field(default_factory=Counter)
    banned_words_version: int = 0


class _Phases:
    def __init__(self, narrate: Narrate, on_phase: PhaseHook | None) -> None:
        self.narrate = narrate
        self.on_phase = on_phase
        self.seconds: dict[str, float] = {}

    @asynccontextmanager
    async def phase(self, name: str, says: str) -> AsyncIterator[None]:
        self.narrate(says)
        if self.on_phase is not None:
            await self.on_phase(name)
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)


async def run_live_sale(
    urls: Mapping[str, str],
    *,
    buyers: int = 300,
    deal_units: int = 30,
    per_buyer_cap: int = 2,
    double_clickers: int | None = None,
    over_cap_buyers: int | None = None,
    split_over_cap_buyers: int | None = None,
    cancels: int = 3,
    timeout: float = 120.0,
    narrate: Narrate | None = None,
    settings: ServiceSettings | None = None,
    concurrency: int = 100,
    on_phase: PhaseHook | None = None,
    run: str | None = None,
) -> SaleReport:
    """Drive one live sale through the services at ``urls`` (service name ⇒ base URL; the services
    must run with clock control) and return its report.

    ``timeout`` bounds each wait; ``narrate`` is told what happens; ``on_phase`` is awaited with
    each phase's name as it starts (``sync_clocks``, ``catalog``, ``agreement``, ``go_live``,
    ``chat``, ``pin_terms_deal``, ``flash_sale``, ``saga``, ``accruals``, ``after_sale``,
    ``end_live``, ``holdback``, ``statements``, ``report``) — fault tests strike from there. ``run``
    (random by default) names everything the sale creates (``World.new(tokens, run)`` says how), so a
    caller can watch the sale's SKUs and hosts from ``on_phase``; it must differ between sales on one
    platform."""
    if buyers < 10 or deal_units < 1 or per_buyer_cap < 1:
        raise ValueError("at least 10 buyers, 1 deal unit and a per-buyer cap of 1")
    config = _Config(
        buyers=buyers,
        deal_units=deal_units,
        per_buyer_cap=per_buyer_cap,
        double_clickers=buyers // 10 if double_clickers is None else double_clickers,
        over_cap=max(1, buyers // 30) if over_cap_buyers is None else over_cap_buyers,
        split_over_cap=(
            max(1, min(buyers // 60, deal_units // (3 * per_buyer_cap)))
            if split_over_cap_buyers is None
            else split_over_cap_buyers
        ),
        cancels=cancels,
        deal_stock=deal_units,
        list_stock=10,
        timeout=timeout,
    )
    if config.double_clickers + config.over_cap + config.split_over_cap + 1 > buyers:
        raise ValueError("more special buyers than buyers")
    if config.split_over_cap * per_buyer_cap >= deal_units:
        raise ValueError("the buyers testing the cap would take every deal unit: nothing left for the crowd")
    say = narrate or (lambda _: None)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as client:
        sale = _Sale(Api(urls, client), World.new(Tokens(settings), run), config, _Phases(say, on_phase))
        return await sale.run()


class _Sale:
    def __init__(self, api: Api, world: World, config: _Config, phases: _Phases) -> None:
        self.api = api
        self.w = world
        self.c = config
        self.p = phases
        self.chat = Chat()
        self.attempts: list[Attempt] = []
        self.cancelled: list[str] = []
        self.refunded_order = ""
        self.statements: dict[str, Json] = {}
        self.period: tuple[datetime, datetime] | None = None
        self.watcher: asyncio.Task[None] | None = None

    def until(self, probe: Callable[[], Awaitable[T | Literal[False] | None]], what: str) -> Awaitable[T]:
        return eventually(probe, what, timeout=self.c.timeout)

    async def run(self) -> SaleReport:
        p = self.p.phase
        async with p("sync_clocks", "Aligning the five services' clocks"):
            await self.align_clocks()
        async with p("catalog", f"Admin onboards brand {self.w.brand_id}; its staff lists a product, stock"):
            await self.set_up_catalog()
        async with p("agreement", "Brand signs a commission agreement with two co-hosts"):
            await self.sign_agreement()
        async with p("go_live", "The live is scheduled and goes on air"):
            await self.go_live()
        try:
            async with p("chat", "Viewers chat; a question is answered; moderation blocks, removes, mutes"):
                await self.chat_during_live()
            async with p("pin_terms_deal", "A product is pinned, payment terms offered, a flash deal starts"):
                await self.pin_terms_and_deal()
            async with p("flash_sale", f"{self.c.buyers} buyers hit {self.c.deal_units} deal units at once"):
                await self.flash_sale()
            async with p("saga", "Waiting until every order is confirmed or rejected"):
                orders = await self.settle_orders()
            async with p("accruals", "Waiting for the commission of every confirmed order"):
                await self.wait_for_accruals(orders)
            async with p("after_sale", "Some orders are cancelled, one is partly refunded"):
                await self.cancel_and_refund(orders)
            async with p("end_live", "The live ends"):
                await self.end_live()
        finally:
            if self.watcher is not None and not self.watcher.done():
                self.watcher.cancel()
                await asyncio.gather(self.watcher, return_exceptions=True)
        async with p("holdback", f"Clocks move {self.c.holdback_days} days on: commission is released"):
            await self.pass_holdback()
        async with p("statements", "Each host's statement is issued"):
            await self.issue_statements()
        async with p("report", "Reading the report back from the services"):
            return await self.report()

    # -- clocks -----------------------------------------------------------------------------------

    async def advance(self, service: str, seconds: float) -> datetime:
        reply = await self.api.call(
            service,
            "POST",
            "/admin/clock",
            self.w.as_admin(),
            body={"advance_seconds": seconds},
            expect=(200,),
        )
        return datetime.fromisoformat(reply["now"])

    async def advance_all(self, seconds: float) -> dict[str, datetime]:
        services = list(self.api.urls)
        nows = await asyncio.gather(*(self.advance(s, seconds) for s in services))
        return dict(zip(services, nows, strict=True))

    async def align_clocks(self) -> None:
        """Move every service's clock to the most advanced one, so a holdback that ends for
        orders and commission ends at the same moment for both (earlier runs on the same platform
        may have moved some clocks further than others)."""
        nows = await self.advance_all(0.001)
        ahead = max(nows.values())
        behind = {s: (ahead - now).total_seconds() for s, now in nows.items() if ahead - now > timedelta(0)}
        await asyncio.gather(*(self.advance(s, seconds + 0.001) for s, seconds in behind.items()))

    # -- catalog ----------------------------------------------------------------------------------

    async def set_up_catalog(self) -> None:
        w, c = self.w, self.c
        await self.api.call(
            "catalog",
            "POST",
            "/brands",
            w.keyed(w.as_admin(), "brand"),
            body={
                "brand_id": w.brand_id,
                "name": "Glow Cosmetics",
                "country": MARKET,
                "default_currency": CURRENCY,
            },
        )
        await self.api.call(
            "catalog",
            "POST",
            "/products",
            w.keyed(w.as_staff(), "product"),
            body={
                "product_id": w.product_id,
                "brand_id": w.brand_id,
                "title": "Glow vitamin C serum",
                "description": "Brightening serum",
                "skus": [
                    {"options": {"size": "30ml"}, "list_prices": [_price(c.list_price_deal_sku)]},
                    {"options": {"size": "50ml"}, "list_prices": []},
                ],
            },
        )
        await self.api.call(
            "catalog",
            "PUT",
            f"/products/{w.product_id}/skus/{w.list_sku}/list-prices/{MARKET}",
            w.keyed(w.as_staff(), "list-price"),
            body={"price": _money(c.list_price_list_sku)},
            expect=(200,),
        )
        for sku, units in ((w.deal_sku, c.deal_stock), (w.list_sku, c.list_stock)):
            await self.api.call(
                "catalog",
                "POST",
                f"/skus/{sku}/stock/receipts",
                w.keyed(w.as_staff(), f"receipt-{sku}"),
                body={"quantity": units, "reference": f"PO-{w.run}"},
            )
        # Orders prices from its own projection of catalog events: wait until it knows both SKUs.
        for sku, price in ((w.deal_sku, c.list_price_deal_sku), (w.list_sku, c.list_price_list_sku)):
            await self.until(partial(self._quoted, sku, None, price), f"orders prices {sku}")

    async def _quoted(self, sku: str, live_id: str | None, price: int, source: str = "list") -> bool:
        params: dict[str, Any] = {"market": MARKET}
        if live_id is not None:
            params["live_id"] = live_id
        reply = await self.api.send(
            "orders",
            "GET",
            f"/skus/{sku}/quote",
            self.w.as_viewer(self.w.chatters[0]),
            params=params,
            retry_for=0,
        )
        if reply.status_code != 200:
            return False
        quote = reply.json()
        channel = "web" if live_id is None else "live"
        return bool(
            quote["line"]["unit_price"]["amount"] == price
            and quote["attribution"]["price_source"] == source
            and quote["attribution"]["channel"] == channel
        )

    # -- commission agreement ---------------------------------------------------------------------

    async def sign_agreement(self) -> None:
        w, c = self.w, self.c
        lead, cohost = w.hosts
        await self.api.call(
            "commission",
            "POST",
            "/agreements",
            w.as_staff(),
            body={
                "agreement_id": w.agreement_id,
                "brand_id": w.brand_id,
                "influencer_id": lead,
                "rate_bps": c.rate_bps,
                "holdback_days": c.holdback_days,
                "cohost_shares": [
                    {"influencer_id": lead, "share_bps": c.lead_share_bps},
                    {"influencer_id": cohost, "share_bps": FULL_BPS - c.lead_share_bps},
                ],
            },
        )

    def shares(self) -> dict[str, int]:
        lead, cohost = self.w.hosts
        return {lead: self.c.lead_share_bps, cohost: FULL_BPS - self.c.lead_share_bps}

    # -- the live ---------------------------------------------------------------------------------

    async def go_live(self) -> None:
        w = self.w
        now = await self.advance("live", 0.001)
        live = await self.api.call(
            "live",
            "POST",
            "/lives",
            w.keyed(w.as_host(), "live"),
            body={
                "title": "Glow night: vitamin C week",
                "description": "Live-only prices on the serum",
                "scheduled_start_at": (now + timedelta(minutes=10)).isoformat(),
                "host_ids": w.hosts,
                "brands": [{"brand_id": w.brand_id, "agreement_id": w.agreement_id}],
                "showcase": [{"product_id": w.product_id, "brand_id": w.brand_id, "sku_ids": []}],
            },
            expect=(201,),
        )
        w.live_id = live["live_id"]
        await self.api.call("live", "POST", f"/lives/{w.live_id}/start", w.as_host(), expect=(200,))
        # Chat opens the room on LiveStarted; orders sells on the live once it knows it started.
        room = await self.until(self._room_status("open"), "chat room open")
        w.room_id = room["room_id"]
        await self.until(
            lambda: self._quoted(w.deal_sku, w.live_id, self.c.list_price_deal_sku),
            "orders sells on the live",
        )
        self.watcher = asyncio.create_task(self._watch_feed())

    def _room_status(self, status: str) -> Callable[[], Awaitable[Json | None]]:
        async def probe() -> Json | None:
            reply = await self.api.send(
                "chat",
                "GET",
                f"/lives/{self.w.live_id}/room",
                self.w.as_viewer(self.w.chatters[1]),
                retry_for=0,
            )
            room: Json | None = reply.json() if reply.status_code == 200 else None
            return room if room is not None and room["status"] == status else None

        return probe

    async def _watch_feed(self) -> None:
        """One viewer follows the live feed (SSE) from the room's opening until it closes."""
        viewer = self.w.chatters[-1]
        url = self.api.url("chat", f"/rooms/{self.w.room_id}/feed")
        async with self.api.client.stream(
            "GET", url, headers=self.w.as_viewer(viewer), timeout=httpx.Timeout(60.0, read=None)
        ) as response:
            async for entry in read_sse(response):
                self.chat.seen_live[entry.event] += 1
                if entry.event in ("room_closed", "room_cancelled"):
                    return

    # -- chat -------------------------------------------------------------------------------------

    async def post(self, user: str, text: str) -> Json:
        """``user`` posts ``text`` (with an Idempotency-Key: a retry is the same message)."""
        headers = {**self.w.as_viewer(user), "Idempotency-Key": f"post-{uuid.uuid4()}"}
        reply: Json = await self.api.call(
            "chat",
            "POST",
            f"/rooms/{self.w.room_id}/messages",
            headers,
            body={"text": text, "display_name": user.split("_")[1]},
            expect=(201,),
        )
        return reply

    async def ensure_banned_word(self) -> None:
        current = await self.api.get("chat", "/banned-words", self.w.as_admin())
        terms: list[str] = current["terms"]
        if self.c.banned_word not in terms:
            current = await self.api.call(
                "chat",
                "PUT",
                "/banned-words",
                self.w.as_admin(),
                body={"terms": [*terms, self.c.banned_word]},
                expect=(200,),
            )
        self.chat.banned_words_version = current["version"]

    async def chat_during_live(self) -> None:
        w, room = self.w, f"/rooms/{self.w.room_id}"
        await self.ensure_banned_word()
        greetings = ["Hi from São Paulo!", "Hello!!", "Love this serum", "What time does the deal start?"]
        for n, chatter in enumerate(w.chatters[1:4]):
            await self.post(chatter, greetings[n % len(greetings)])
        # Viewers' players send heartbeats (with the likes tapped); a minute on, the live service
        # has closed the live's first audience window.
        for chatter in w.chatters:
            await self.api.call(
                "live",
                "POST",
                f"/lives/{w.live_id}/audience/heartbeats",
                w.as_viewer(chatter),
                body={"likes": 3},
                expect=(202,),
                idempotent=True,
            )
        await self.advance_all(60)
        await self.until(self._audience_sampled, "the live records an audience window")
        # A question about a product, answered by the co-host.
        asked = await self.post(w.asker, "Does the serum come in 50ml?")
        question = await self.api.call(
            "chat",
            "POST",
            f"{room}/messages/{asked['message_id']}/question",
            w.as_viewer(w.asker),
            body={"product_id": w.product_id},
            expect=(200, 201),  # 200: it already was a question (a retry)
            idempotent=True,
        )
        self.chat.question_id = question["question_id"]
        await self.api.call(
            "chat",
            "POST",
            f"{room}/questions/{self.chat.question_id}/answer",
            w.as_host(1),
            body={"answer": "Yes! The 50ml is in the showcase too."},
            expect=(201,),
        )
        # The troll: a banned word is blocked, spam removed, then a mute and a post refused.
        blocked = await self.post(w.troll, f"cheap {self.c.banned_word.upper()} serum here, DM me")
        if blocked["status"] != "blocked" or blocked["reason"] != "banned_word":
            raise SaleError(f"the banned word was not blocked: {blocked}")
        self.chat.blocked.append(blocked["message_id"])
        spam = await self.post(w.troll, "follow my page for free stuff!!!")
        await self.api.call(
            "chat",
            "DELETE",
            f"{room}/messages/{spam['message_id']}",
            w.as_moderator(),
            params={"reason": "spam"},
            expect=(204,),
        )
        self.chat.removed_message_id = spam["message_id"]
        await self.api.call(
            "chat",
            "POST",
            f"{room}/mutes",
            w.as_host(),
            body={"participant_id": w.troll, "duration_ms": 600_000, "reason": "spam"},
            expect=(201,),
        )
        muted = await self.post(w.troll, "you cannot silence me")
        if muted["status"] != "blocked" or muted["reason"] != "muted":
            raise SaleError(f"the muted viewer could post: {muted}")
        self.chat.blocked.append(muted["message_id"])
        # Slow mode for a moment: a second message within the interval is held back.
        await self.api.call(
            "chat",
            "PUT",
            f"{room}/slow-mode",
            w.as_moderator(),
            body={"interval_ms": 30_000},
            expect=(200,),
            idempotent=True,
        )
        chatty = w.chatters[4]
        first = await self.post(chatty, "DEAL DEAL DEAL")
        if first["status"] != "posted":
            raise SaleError(f"a first message under slow mode was refused: {first}")
        slowed = await self.post(chatty, "DEAL DEAL DEAL DEAL")
        if slowed["status"] != "blocked" or slowed["reason"] != "slow_mode":
            raise SaleError(f"slow mode let a message through: {slowed}")
        self.chat.blocked.append(slowed["message_id"])
        await self.api.call(
            "chat",
            "PUT",
            f"{room}/slow-mode",
            w.as_moderator(),
            body={"interval_ms": 0},
            expect=(200,),
            idempotent=True,
        )

    async def _audience_sampled(self) -> bool:
        audience = await self.api.get("live", f"/lives/{self.w.live_id}/audience", self.w.as_admin())
        return int(audience["windows"]) >= 1

    # -- pin, payment terms, flash deal -----------------------------------------------------------

    async def pin_terms_and_deal(self) -> None:
        w, c = self.w, self.c
        await self.api.call(
            "live",
            "PUT",
            f"/lives/{w.live_id}/pin",
            w.as_host(),
            body={"product_id": w.product_id, "sku_id": w.deal_sku},
            expect=(200,),
            idempotent=True,
        )
        terms = await self.api.call(
            "live",
            "POST",
            f"/lives/{w.live_id}/payment-terms",
            w.keyed(w.as_staff(), "terms"),
            body={
                "brand_id": w.brand_id,
                "max_installments": 6,
                "interest_free": True,
                "min_installment": _money(1000),
            },
            expect=(201,),
        )
        w.terms_id = terms["terms_id"]
        deal = await self.api.call(
            "live",
            "POST",
            f"/lives/{w.live_id}/deals",
            w.keyed(w.as_host(), "deal"),
            body={
                "product_id": w.product_id,
                "sku_id": w.deal_sku,
                "deal_price": _money(c.deal_price),
                "units": c.deal_units,
                "per_buyer_cap": c.per_buyer_cap,
                "duration_ms": 30 * 60_000,
            },
            expect=(201,),
        )
        w.deal_id = deal["deal_id"]
        # Buyers may only come once orders prices at the deal (and knows the terms) and the catalog
        # has set the deal's units aside.
        await self.until(
            lambda: self._quoted(w.deal_sku, w.live_id, c.deal_price, "flash_deal"), "orders prices the deal"
        )
        await self.until(self._terms_known, "orders knows the payment terms")
        await self.until(self._deal_allocated, "catalog allocates the deal's units")

    async def _terms_known(self) -> bool:
        params = {"market": MARKET, "live_id": self.w.live_id, "installments": 3, "terms_id": self.w.terms_id}
        reply = await self.api.send(
            "orders",
            "GET",
            f"/skus/{self.w.deal_sku}/quote",
            self.w.as_viewer(self.w.chatters[0]),
            params=params,
            retry_for=0,
        )
        return reply.status_code == 200 and bool(reply.json()["payment_plan"]["interest_free"])

    async def _deal_allocated(self) -> bool:
        stock = await self.api.get("catalog", f"/skus/{self.w.deal_sku}/stock", self.w.as_staff())
        return any(
            d["deal_id"] == self.w.deal_id and d["units_allocated"] == self.c.deal_units
            for d in stock["deals"]
        )

    # -- the flash sale ---------------------------------------------------------------------------

    async def flash_sale(self) -> None:
        """The deal opens: the fastest fingers first — buyers trying to beat the per-buyer cap
        (cap + 1 units at once, or cap + 1 one-unit orders fired together) and one buyer of
        several units at list price — then, once those are decided, the crowd all at once, a tenth
        of it double-clicking (two identical requests with one Idempotency-Key)."""
        w, c = self.w, self.c
        over_cap: list[Kind] = ["over_cap"] * c.over_cap
        split: list[Kind] = ["split_over_cap"] * c.split_over_cap
        kinds = [*over_cap, *split, "list"]
        await self._rush([self._buyer(n, kind) for n, kind in enumerate(kinds)])
        await self.settle_orders()
        double_clicks: list[Kind] = ["double_click"] * c.double_clickers
        singles: list[Kind] = ["single"] * (c.buyers - len(kinds) - c.double_clickers)
        crowd = double_clicks + singles
        random.Random(w.run).shuffle(crowd)
        await self._rush([self._buyer(n, kind) for n, kind in enumerate(crowd, start=len(kinds))])

    async def _rush(self, buyers: Sequence[Awaitable[list[Attempt]]]) -> None:
        """Every buyer at once (as far as the connection pool lets them)."""
        gate = asyncio.Event()

        async def at_the_gate(attempts: Awaitable[list[Attempt]]) -> list[Attempt]:
            await gate.wait()
            return await attempts

        tasks = [asyncio.ensure_future(at_the_gate(buyer)) for buyer in buyers]
        gate.set()
        for done in await asyncio.gather(*tasks):
            self.attempts.extend(done)
        failed = [a for a in self.attempts if a.status_code not in (200, 201)]
        if failed:
            raise SaleError(f"{len(failed)} order requests failed, e.g. {failed[0]}")

    async def _buyer(self, n: int, kind: Kind) -> list[Attempt]:
        c, w = self.c, self.w
        buyer = w.buyer(n)
        installments = n % 3 == 0
        body: Json = {
            "sku_id": w.deal_sku,
            "quantity": 1,
            "market": MARKET,
            "live_id": w.live_id,
            "payment_plan": {"method": "card", "installments": 3, "terms_id": w.terms_id}
            if installments
            else {"method": "pix", "installments": 1},
        }
        key = f"checkout-{uuid.uuid4()}"
        if kind == "double_click":
            return list(
                await asyncio.gather(self._order(buyer, key, body, kind), self._order(buyer, key, body, kind))
            )
        if kind == "over_cap":
            return [await self._order(buyer, key, {**body, "quantity": c.per_buyer_cap + 1}, kind)]
        if kind == "split_over_cap":
            keys = [f"checkout-{uuid.uuid4()}" for _ in range(c.per_buyer_cap + 1)]
            return list(await asyncio.gather(*(self._order(buyer, k, body, kind) for k in keys)))
        if kind == "list":
            body = {**body, "sku_id": w.list_sku, "quantity": c.list_order_units}
        return [await self._order(buyer, key, body, kind)]

    async def _order(self, buyer: str, key: str, body: Json, kind: Kind) -> Attempt:
        headers = {**self.w.as_viewer(buyer), "Idempotency-Key": key}
        reply = await self.api.send("orders", "POST", "/orders", headers, body=body, retry_for=self.c.timeout)
        order_id = reply.json().get("order_id") if reply.status_code in (200, 201) else None
        return Attempt(
            buyer_id=buyer,
            key=key,
            kind=kind,
            quantity=body["quantity"],
            status_code=reply.status_code,
            order_id=order_id,
        )

    async def settle_orders(self) -> list[Json]:
        """Wait until orders has decided every order (the saga goes through catalog and back)."""
        expected = len({a.order_id for a in self.attempts})

        async def settled() -> Json | None:
            stats = await self.api.get("orders", "/stats/orders", self.w.as_admin(), live_id=self.w.live_id)
            by_status: dict[str, int] = stats["by_status"]
            done = sum(by_status.values()) >= expected and by_status.get("placed", 0) == 0
            return stats if done else None

        await self.until(settled, "every order confirmed or rejected")
        return await self.live_orders()

    async def live_orders(self) -> list[Json]:
        """Every order of the brand on this live, from the brand's sales (paged, as an admin)."""
        orders: list[Json] = []
        before: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if before is not None:
                params["before"] = before
            page = await self.api.get(
                "orders", f"/brands/{self.w.brand_id}/sales", self.w.as_admin(), **params
            )
            orders.extend(o for o in page["orders"] if o["attribution"]["live_id"] == self.w.live_id)
            before = page["next_before"]
            if before is None:
                return orders

    async def commission_of(self, order_id: str) -> Json | None:
        reply = await self.api.send(
            "commission", "GET", f"/orders/{order_id}/commission", self.w.as_admin(), retry_for=0
        )
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise SaleError(f"commission of {order_id}: {reply.status_code} {reply.text[:300]}")
        found: Json = reply.json()
        return found

    async def accruals(self, host: str) -> list[Json]:
        found: list[Json] = []
        while True:
            page = await self.api.get(
                "commission",
                f"/influencers/{host}/accruals",
                self.w.as_admin(),
                limit=1000,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < 1000:
                return found

    async def wait_for_accruals(self, orders: list[Json]) -> None:
        confirmed = {o["order_id"] for o in orders if o["status"] in SOLD}

        async def accrued() -> bool:
            for host in self.w.hosts:
                if {a["order_id"] for a in await self.accruals(host)} != confirmed:
                    return False
            return True

        await self.until(accrued, "one accrual per host for every confirmed order")

    # -- after the sale ---------------------------------------------------------------------------

    async def cancel_and_refund(self, orders: list[Json]) -> None:
        w = self.w
        deal_sales = [o for o in orders if o["status"] == "confirmed" and o["line"]["sku_id"] == w.deal_sku]
        for order in deal_sales[: self.c.cancels]:
            await self.api.call(
                "orders",
                "POST",
                f"/orders/{order['order_id']}/cancel",
                w.as_viewer(order["buyer_id"]),
                body={"reason": "changed my mind"},
                expect=(200,),
                idempotent=True,  # cancelling a cancelled order changes nothing
            )
            self.cancelled.append(order["order_id"])
        listed = [o for o in orders if o["status"] == "confirmed" and o["line"]["sku_id"] == w.list_sku]
        if not listed:
            raise SaleError("the list-price order was not confirmed")
        order_id = self.refunded_order = listed[0]["order_id"]
        await self.api.call(
            "orders", "POST", f"/orders/{order_id}/ship", w.as_staff(), expect=(200,), idempotent=True
        )
        await self.api.call(
            "orders",
            "POST",
            f"/orders/{order_id}/refunds",
            w.keyed(w.as_staff(), "return"),
            body={"quantity": 1, "reason": "one unit returned"},
        )

        # Commission takes back what it must, catalog puts the units back.
        async def reversed_() -> bool:
            for changed in [*self.cancelled, order_id]:
                commission = await self.commission_of(changed)
                if commission is None or not all(a["reversed"]["amount"] > 0 for a in commission["accruals"]):
                    return False
            return True

        await self.until(reversed_, "commission reversed for the cancelled and refunded orders")

        async def released() -> bool:
            for changed in [*self.cancelled, order_id]:
                reservations = await self.api.get("catalog", f"/orders/{changed}/reservations", w.as_staff())
                if not all(
                    r["released"] >= (r["quantity"] if changed != order_id else 1) for r in reservations
                ):
                    return False
            return True

        await self.until(released, "catalog released the cancelled and returned units")

    async def end_live(self) -> None:
        w = self.w
        await self.api.call("live", "POST", f"/lives/{w.live_id}/end", w.as_host(), expect=(200,))
        await self.until(self._room_status("closed"), "chat room closed")
        if self.watcher is not None:
            await asyncio.wait_for(self.watcher, self.c.timeout)

    # -- holdback, releases, statements -----------------------------------------------------------

    async def pass_holdback(self) -> None:
        await self.advance_all(self.c.holdback_days * 86_400 + 3_600)

        async def released() -> bool:
            for host in self.w.hosts:
                if any(a["status"] == "held" for a in await self.accruals(host)):
                    return False
            return True

        await self.until(released, "every accrual released after the holdback")

    async def issue_statements(self) -> None:
        w = self.w
        firsts: list[datetime] = []
        for host in w.hosts:
            entries = await self.ledger(host)
            firsts.append(min(datetime.fromisoformat(e["occurred_at"]) for e in entries))
        start = min(firsts).replace(second=0, microsecond=0)
        # A statement covers a period that has ended: end it now, by commission's clock.
        end = (await self.advance_all(1.0))["commission"]
        self.period = (start, end)
        for n, host in enumerate(w.hosts):
            self.statements[host] = await self.api.call(
                "commission",
                "POST",
                f"/influencers/{host}/statements",
                w.as_host(n),
                body={"period_start": start.isoformat(), "period_end": end.isoformat(), "currency": CURRENCY},
                idempotent=True,  # the same period again answers the same statement
            )

    async def ledger(self, host: str) -> list[Json]:
        entries: list[Json] = []
        after = 0
        while True:
            page = await self.api.get(
                "commission", f"/influencers/{host}/ledger", self.w.as_admin(), after=after, limit=1000
            )
            entries.extend(page["entries"])
            if page["next_after"] is None:
                return entries
            after = page["next_after"]

    # -- the report -------------------------------------------------------------------------------

    async def report(self) -> SaleReport:
        w, c = self.w, self.c
        orders = await self.live_orders()
        by_id = {o["order_id"]: o for o in orders}
        sold = [o for o in orders if o["status"] in SOLD]
        stats = await self.api.get("orders", "/stats/orders", w.as_admin(), live_id=w.live_id)
        deal_orders = [o for o in sold if o["attribution"]["flash_deal_id"] == w.deal_id]
        per_buyer = Counter[str]()
        for order in deal_orders:
            per_buyer[order["buyer_id"]] += order["line"]["quantity"]

        # Idempotency: one order per (buyer, key), and every double click answered with one order.
        keys: dict[tuple[str, str], set[str | None]] = {}
        for attempt in self.attempts:
            keys.setdefault((attempt.buyer_id, attempt.key), set()).add(attempt.order_id)
        answered = {a.order_id for a in self.attempts}
        duplicates = max(0, len(orders) - len(keys)) + sum(len(ids) - 1 for ids in keys.values())
        double_click_orders = {a.order_id for a in self.attempts if a.kind == "double_click"}

        stocks = {
            sku: await self.api.get("catalog", f"/skus/{sku}/stock", w.as_staff())
            for sku in (w.deal_sku, w.list_sku)
        }
        received = {w.deal_sku: c.deal_stock, w.list_sku: c.list_stock}
        units = []
        for sku, stock in stocks.items():
            sku_sold = [o for o in sold if o["line"]["sku_id"] == sku]
            units.append(
                SkuUnits(
                    sku_id=sku,
                    label="30ml, flash deal" if sku == w.deal_sku else "50ml, list price",
                    stock_received=received[sku],
                    units_sold=sum(o["line"]["quantity"] for o in sku_sold),
                    units_returned=sum(
                        o["line"]["quantity"] if o["status"] == "cancelled" else o["returned_units"]
                        for o in sku_sold
                    ),
                    on_hand=stock["on_hand"],
                    reserved=stock["reserved"],
                    available=stock["available"],
                )
            )
        deal_units = next(d for d in stocks[w.deal_sku]["deals"] if d["deal_id"] == w.deal_id)
        deal_view = await self.api.get("live", f"/lives/{w.live_id}/deals/{w.deal_id}", w.as_admin())
        deal_sold = sum(o["line"]["quantity"] for o in deal_orders)
        oversold = (
            max(0, deal_sold - c.deal_units)
            + sum(max(0, u.units_sold - u.stock_received) for u in units)
            + sum(max(0, -u.available) + max(0, u.reserved - u.on_hand) for u in units)
        )

        commission, accrual_problems, extra, held = await self._commission(sold)
        chat, leaks = await self._chat()
        live = await self._live()
        checks = ReconciliationChecks(
            oversold_units=oversold,
            duplicate_orders=duplicates,
            lost_orders=len(answered - set(by_id)),
            buyers_over_cap=sum(1 for n in per_buyer.values() if n > c.per_buyer_cap),
            orders_without_exact_accruals=accrual_problems,
            accruals_without_confirmed_order=extra,
            unreleased_after_holdback=held,
            ledger_vs_statement_difference=await self._ledger_vs_statements(commission),
            blocked_or_muted_visible_to_others=leaks,
        )
        gmv = sum(o["total"]["amount"] for o in sold)
        refunded = sum(o["refunded"]["amount"] for o in sold)
        return SaleReport(
            ids=SaleIds(
                run=w.run,
                brand_id=w.brand_id,
                brand_staff=w.staff,
                product_id=w.product_id,
                deal_sku_id=w.deal_sku,
                list_sku_id=w.list_sku,
                agreement_id=w.agreement_id,
                host_ids=w.hosts,
                live_id=w.live_id,
                room_id=w.room_id,
                deal_id=w.deal_id,
                terms_id=w.terms_id,
                moderator=w.moderator,
                chatters=w.chatters,
                troll=w.troll,
                asker=w.asker,
                question_id=self.chat.question_id,
                removed_message_id=self.chat.removed_message_id,
                banned_word=c.banned_word,
                blocked_message_ids=self.chat.blocked,
                refunded_order_id=self.refunded_order,
                cancelled_order_ids=self.cancelled,
                statement_ids={h: s["statement_id"] for h, s in self.statements.items()},
            ),
            parameters=SaleParameters(
                buyers=c.buyers,
                deal_units=c.deal_units,
                per_buyer_cap=c.per_buyer_cap,
                double_clickers=c.double_clickers,
                over_cap_buyers=c.over_cap,
                split_over_cap_buyers=c.split_over_cap,
                deal_stock=c.deal_stock,
                list_stock=c.list_stock,
                deal_price=c.deal_price,
                list_price_deal_sku=c.list_price_deal_sku,
                list_price_list_sku=c.list_price_list_sku,
                rate_bps=c.rate_bps,
                shares_bps=self.shares(),
                holdback_days=c.holdback_days,
            ),
            orders=OrderFigures(
                requests=len(self.attempts),
                idempotency_keys=len(keys),
                orders=len(orders),
                confirmed=len(sold),
                rejected=sum(1 for o in orders if o["status"] == "rejected"),
                rejected_by_reason=dict(sorted(stats["rejected_by_reason"].items())),
                by_status=dict(sorted(stats["by_status"].items())),
                cancelled=sum(1 for o in orders if o["status"] == "cancelled"),
                partially_refunded=sum(
                    1
                    for o in sold
                    if 0 < o["refunded"]["amount"] < o["total"]["amount"] and o["status"] != "cancelled"
                ),
                double_clicks=sum(1 for a in self.attempts if a.kind == "double_click") // 2,
                double_click_orders=len(double_click_orders & set(by_id)),
                paid_in_installments=sum(1 for o in sold if o["payment_plan"]["installments"] > 1),
                gmv=gmv,
                refunded=refunded,
                net=gmv - refunded,
            ),
            units=units,
            deal=DealFigures(
                deal_id=w.deal_id,
                price=c.deal_price,
                units=c.deal_units,
                units_allocated=deal_units["units_allocated"],
                per_buyer_cap=c.per_buyer_cap,
                orders_confirmed=len(deal_orders),
                units_sold=deal_sold,
                units_left=deal_units["units_left"],
                buyers=len(per_buyer),
                most_units_one_buyer=max(per_buyer.values(), default=0),
                end_reason=deal_view["end_reason"],
            ),
            commission=commission,
            live=live,
            chat=chat,
            checks=checks,
            reconciled=not checks.failing(),
            timings_seconds=self.p.seconds,
            attempts=self.attempts,
        )

    async def _commission(self, sold: list[Json]) -> tuple[CommissionFigures, int, int, int]:
        """The hosts' figures; how many confirmed orders lack exactly one correct accrual per host
        (amount, reversal, release); how many accruals match no confirmed order; how many are
        still held."""
        w, c = self.w, self.c
        shares = self.shares()
        problems = 0
        total_commission = 0
        for order in sold:
            expected = expected_accruals(
                order["total"]["amount"], c.rate_bps, shares, order["attribution"]["host_ids"]
            )
            total_commission += sum(expected.values())
            found = await self.commission_of(order["order_id"])
            if not _exact_commission(order, found, expected, w.agreement_id):
                problems += 1
        confirmed_ids = {o["order_id"] for o in sold}
        figures_by_host: list[HostCommission] = []
        extra = held = 0
        for host in w.hosts:
            accruals = await self.accruals(host)
            extra += sum(1 for a in accruals if a["order_id"] not in confirmed_ids)
            held += sum(1 for a in accruals if a["status"] == "held")
            balance = await self.api.get("commission", f"/influencers/{host}/balance", w.as_admin())
            figures: Json = next((b for b in balance["balances"] if b["currency"] == CURRENCY), {})
            statement = self.statements[host]

            def amount(name: str, figures: Json = figures) -> int:
                return int(figures[name]["amount"]) if figures else 0

            figures_by_host.append(
                HostCommission(
                    influencer_id=host,
                    share_bps=shares[host],
                    accruals=figures.get("accruals", 0),
                    accrued=amount("accrued"),
                    reversed=amount("reversed"),
                    released=amount("released"),
                    held=amount("held"),
                    balance=amount("total"),
                    statement_opening=statement["opening_balance"]["amount"],
                    statement_accrued=statement["accrued"]["amount"],
                    statement_reversed=statement["reversed"]["amount"],
                    statement_released=statement["released"]["amount"],
                    statement_closing=statement["closing_balance"]["amount"],
                    statement_entries=statement["entries"],
                )
            )
        result = CommissionFigures(
            agreement_id=w.agreement_id,
            rate_bps=c.rate_bps,
            holdback_days=c.holdback_days,
            commission_of_sales=total_commission,
            hosts=figures_by_host,
        )
        return result, problems, extra, held

    async def _ledger_vs_statements(self, commission: CommissionFigures) -> int:
        """Σ |statement − ledger| over each host's accrued, reversed, released and closing
        balance, and the closing balance against the balance the service reports."""
        assert self.period is not None
        start, end = self.period
        difference = 0
        for host in commission.hosts:
            sums: Counter[str] = Counter()
            opening = 0
            for entry in await self.ledger(host.influencer_id):
                at = datetime.fromisoformat(entry["occurred_at"])
                amount = entry["amount"]["amount"]
                if at >= end:
                    continue
                if at < start:
                    opening += {"accrued": amount, "reversed": -amount}.get(entry["kind"], 0)
                else:
                    sums[entry["kind"]] += amount
            closing = opening + sums["accrued"] - sums["reversed"]
            difference += (
                abs(host.statement_opening - opening)
                + abs(host.statement_accrued - sums["accrued"])
                + abs(host.statement_reversed - sums["reversed"])
                + abs(host.statement_released - sums["released"])
                + abs(host.statement_closing - closing)
                + abs(host.statement_closing - host.balance)
            )
        return difference

    async def _live(self) -> LiveFigures:
        w = self.w
        view = await self.api.get("live", f"/lives/{w.live_id}", w.as_admin())
        timeline = await self.api.get("live", f"/lives/{w.live_id}/timeline", w.as_admin(), limit=1000)
        started, ended = view["started_at"], view["ended_at"]
        on_air = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
        audience = view["audience"]
        return LiveFigures(
            status=view["status"],
            on_air_seconds=round(on_air, 3),
            showcase_products=len(view["showcase"]),
            payment_terms=len(view["payment_terms"]),
            audience_windows=audience["windows"],
            peak_concurrent_viewers=audience["peak_concurrent_viewers"],
            joins=audience["joins"],
            likes=audience["likes"],
            timeline=dict(sorted(Counter(entry["type"] for entry in timeline).items())),
        )

    async def _chat(self) -> tuple[ChatFigures, int]:
        """The room's figures, and how many blocked messages or mute notices someone other than
        their subject can see (in the last messages or in a full replay of the feed)."""
        w = self.w
        room = await self.api.get("chat", f"/rooms/{w.room_id}", w.as_viewer(w.chatters[1]))
        late = await self.api.get(
            "chat", f"/rooms/{w.room_id}/messages", w.as_viewer(w.chatters[2]), limit=500
        )
        visible = {m["message_id"] for m in late["messages"]}
        replay = await self.feed(w.chatters[2])
        leaks = len(visible & {*self.chat.blocked, self.chat.removed_message_id})
        leaks += sum(1 for e in replay if e.event in ("message_blocked", "participant_muted"))
        tallies = room["tallies"]
        figures = ChatFigures(
            room_status=room["status"],
            messages=tallies["messages"],
            visible_messages=len(visible),
            blocked_banned_word=tallies["blocked_banned_word"],
            blocked_slow_mode=tallies["blocked_slow_mode"],
            blocked_muted=tallies["blocked_muted"],
            removed=tallies["removed"],
            questions=tallies["questions"],
            answered=tallies["answered"],
            mutes=tallies["mutes"],
            banned_words_version=self.chat.banned_words_version,
            feed_events_seen_live=dict(sorted(self.chat.seen_live.items())),
        )
        return figures, leaks

    async def feed(self, viewer: str) -> list[Sse]:
        """The whole feed of the (closed) room as ``viewer`` sees it, replayed from the start."""
        return await read_feed(
            self.api.client,
            self.api.url("chat", f"/rooms/{self.w.room_id}/feed"),
            {**self.w.as_viewer(viewer), "Last-Event-ID": "0"},
        )


def _exact_commission(
    order: Json, found: Json | None, expected: Mapping[str, int], agreement_id: str
) -> bool:
    """The order's commission is allocated under the agreement with exactly one accrual per host,
    each of the expected amount, reversed exactly as the order's refunds say, and the rest
    released (the holdback is over)."""
    if found is None or found["status"] != "allocated" or found["agreement_id"] != agreement_id:
        return False
    parts = found["accruals"]
    if sorted(a["influencer_id"] for a in parts) != sorted(expected):
        return False
    total, refunded = order["total"]["amount"], order["refunded"]["amount"]
    for accrual in parts:
        amount = expected[accrual["influencer_id"]]
        reversed_ = expected_reversal(amount, refunded, total)
        released = accrual["released"]["amount"] if accrual["released"] else None
        if (
            accrual["amount"]["amount"] != amount
            or accrual["base"]["amount"] != total
            or accrual["reversed"]["amount"] != reversed_
            or released != (amount - reversed_ if amount > reversed_ else None)
        ):
            return False
    return True


# --- Server-Sent Events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: Json


async def read_sse(response: httpx.Response) -> AsyncIterator[Sse]:
    if response.status_code != 200:
        await response.aread()
        raise SaleError(f"feed: {response.status_code} {response.text[:300]}")
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Sse(
                    int(fields.get("id", "0")), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def read_feed(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], timeout: float = 60.0
) -> list[Sse]:
    """Every entry of a closed room's feed (the stream ends after room_closed)."""
    async with asyncio.timeout(timeout), client.stream("GET", url, headers=dict(headers)) as response:
        return [entry async for entry in read_sse(response)]


def _money(amount: int) -> Json:
    return {"amount": amount, "currency": CURRENCY}


def _price(amount: int) -> Json:
    return {"market": MARKET, "price": _money(amount)}
