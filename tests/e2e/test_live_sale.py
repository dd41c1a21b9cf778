"""A whole live sale across the five services, as separate processes over real Kafka, driven only
through their HTTP APIs (once on SQLite stores, once on PostgreSQL).

The scenario is `shopstream demo`'s (:mod:`shopstream_cli.sale`) at a smaller size. These tests do
not trust its report: they read the services' APIs themselves and recompute every amount from the
agreement, with the commission service's stated rounding rules, here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shopstream_cli.platform import Platform
from shopstream_cli.sale import SaleReport, Sse, read_feed, run_live_sale
from shopstream_service.auth import mint_token
from shopstream_service.settings import ServiceSettings
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.e2e

BUYERS = 120
DEAL_UNITS = 24
CAP = 2
SOLD = ("confirmed", "cancelled", "refunded")

Json = dict[str, Any]


class Http:
    """Plain HTTP to the platform with locally minted tokens."""

    def __init__(self, platform: Platform, client: httpx.AsyncClient) -> None:
        self.platform = platform
        self.client = client
        self.settings = ServiceSettings()

    def headers(self, subject: str, *roles: str, brands: Sequence[str] = ()) -> dict[str, str]:
        assert self.settings.jwt_secret is not None
        token = mint_token(
            secret=self.settings.jwt_secret,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            subject=subject,
            roles=roles,
            brands=brands,
        )
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("usr_e2e_admin", "admin")

    async def request(
        self, service: str, method: str, path: str, headers: dict[str, str] | None, body: Any = None
    ) -> httpx.Response:
        return await self.client.request(
            method, self.platform.url(service) + path, headers=headers or {}, json=body
        )

    async def ok(
        self, service: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> Any:
        reply = await self.request(service, method, path, headers, body)
        assert reply.status_code in (200, 201), f"{method} {service}{path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None

    async def get(self, service: str, path: str, headers: dict[str, str] | None = None) -> Any:
        return await self.ok(service, "GET", path, headers or self.admin)


@dataclass(frozen=True)
class Sale:
    report: SaleReport
    orders: list[Json]
    """Every order of the live, as the orders service holds it now."""
    agreement: Json
    http: Http

    @property
    def sold(self) -> list[Json]:
        return [o for o in self.orders if o["status"] in SOLD]

    def order(self, order_id: str) -> Json:
        return next(o for o in self.orders if o["order_id"] == order_id)


@pytest.fixture(scope="module")
async def http(platform: Platform) -> AsyncIterator[Http]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield Http(platform, client)


@pytest.fixture(scope="module")
async def sale(platform: Platform, http: Http) -> Sale:
    report = await run_live_sale(
        {name: platform.url(name) for name in ("live", "chat", "catalog", "orders", "commission")},
        buyers=BUYERS,
        deal_units=DEAL_UNITS,
        per_buyer_cap=CAP,
        timeout=60,
    )
    ids = report.ids
    sales = await http.get("orders", f"/brands/{ids.brand_id}/sales?limit=500")
    assert sales["next_before"] is None
    agreement = await http.get("commission", f"/agreements/{ids.agreement_id}")
    return Sale(report, sales["orders"], agreement, http)


# --- the commission service's rules, restated -----------------------------------------------------


def split(total: int, weights: Sequence[int]) -> list[int]:
    """Largest remainder: floor each share, the leftover units one each to the largest remainders
    (ties to the earlier weight)."""
    whole = sum(weights)
    exact = [(total * w // whole, total * w % whole) for w in weights]
    parts = [floor for floor, _ in exact]
    for i in sorted(range(len(weights)), key=lambda i: (-exact[i][1], i))[: total - sum(parts)]:
        parts[i] += 1
    return parts


def accruals_due(total: int, agreement: Json, host_ids: Sequence[str]) -> dict[str, int]:
    """Each host's accrual on an order of ``total``: ⌊total × rate⌋, split by the shares of the
    agreement version in force (renormalised over the hosts who hosted)."""
    terms = agreement["versions"][-1]
    shares = {s["influencer_id"]: s["share_bps"] for s in terms["cohost_shares"]}
    hosts = [h for h in host_ids if h in shares]
    bps = split(10_000, [shares[h] for h in hosts])
    return dict(zip(hosts, split(total * terms["rate_bps"] // 10_000, bps), strict=True))


# --- orders -----------------------------------------------------------------------------------------


async def test_the_flash_deal_confirms_exactly_its_units_and_nobody_beats_the_cap(sale: Sale) -> None:
    report, ids = sale.report, sale.report.ids
    deal_orders = [o for o in sale.orders if o["attribution"]["flash_deal_id"] == ids.deal_id]
    confirmed = [o for o in deal_orders if o["status"] in SOLD]
    # Demand (120 buyers) far exceeds supply: the deal confirms exactly its units, one per order.
    assert len(confirmed) == DEAL_UNITS
    assert sum(o["line"]["quantity"] for o in confirmed) == DEAL_UNITS
    assert all(o["line"]["unit_price"]["amount"] == report.parameters.deal_price for o in confirmed)
    assert all(o["attribution"]["price_source"] == "flash_deal" for o in deal_orders)
    # The SKU's whole stock was the deal's: nothing else of it sold, and nothing was oversold.
    deal_sku = [o for o in sale.sold if o["line"]["sku_id"] == ids.deal_sku_id]
    assert sum(o["line"]["quantity"] for o in deal_sku) == DEAL_UNITS
    stock = await sale.http.get("catalog", f"/skus/{ids.deal_sku_id}/stock")
    cancelled = len(ids.cancelled_order_ids)
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (
        DEAL_UNITS,
        DEAL_UNITS - cancelled,
        cancelled,
    )
    deal = next(d for d in stock["deals"] if d["deal_id"] == ids.deal_id)
    assert (deal["units_allocated"], deal["units_left"], deal["end_reason"]) == (DEAL_UNITS, 0, "sold_out")

    per_buyer = Counter[str]()
    for order in confirmed:
        per_buyer[order["buyer_id"]] += order["line"]["quantity"]
    assert max(per_buyer.values()) == CAP  # someone reached the cap, nobody went past it

    # Those who tried to beat the cap: cap + 1 units in one order are refused; cap + 1 one-unit
    # orders fired at once confirm exactly cap of them.
    by_kind: dict[str, list[Json]] = {}
    for attempt in report.attempts:
        by_kind.setdefault(attempt.kind, []).append(sale.order(str(attempt.order_id)))
    over_cap = by_kind["over_cap"]
    assert len(over_cap) == report.parameters.over_cap_buyers >= 1
    assert {(o["status"], o["reason"]) for o in over_cap} == {("rejected", "per_buyer_cap_reached")}
    split_buyers = Counter(o["buyer_id"] for o in by_kind["split_over_cap"])
    assert len(split_buyers) == report.parameters.split_over_cap_buyers >= 1
    for buyer in split_buyers:
        theirs = [o for o in by_kind["split_over_cap"] if o["buyer_id"] == buyer]
        assert sorted(o["status"] for o in theirs) == ["confirmed"] * CAP + ["rejected"]
        assert [o["reason"] for o in theirs if o["status"] == "rejected"] == ["per_buyer_cap_reached"]

    # Every order was decided; a rejection always says why, and only for a reason of this sale.
    assert {o["status"] for o in sale.orders} <= {"confirmed", "rejected", "cancelled", "refunded"}
    reasons = Counter(o["reason"] for o in sale.orders if o["status"] == "rejected")
    assert set(reasons) <= {"deal_cap_reached", "per_buyer_cap_reached", "deal_not_active", "sold_out"}
    assert reasons["deal_cap_reached"] + reasons["deal_not_active"] + reasons["sold_out"] > 0
    assert sum(reasons.values()) == len(sale.orders) - len(sale.sold)

    # What a buyer sees is their own orders, decided.
    some = confirmed[0]
    mine = await sale.http.get("orders", "/me/orders", sale.http.headers(some["buyer_id"], "viewer"))
    assert {o["buyer_id"] for o in mine["orders"]} == {some["buyer_id"]}
    assert some["order_id"] in {o["order_id"] for o in mine["orders"]}


async def test_a_double_click_makes_one_order(sale: Sale) -> None:
    clicks: dict[tuple[str, str], list[Any]] = {}
    for attempt in sale.report.attempts:
        if attempt.kind == "double_click":
            clicks.setdefault((attempt.buyer_id, attempt.key), []).append(attempt)
    assert len(clicks) == BUYERS // 10
    for (buyer, _), pair in clicks.items():
        assert len(pair) == 2
        assert len({a.order_id for a in pair}) == 1
        # At most one request placed it (201); the other got that same order back (200).
        codes = [a.status_code for a in pair]
        assert set(codes) <= {200, 201}
        assert codes.count(201) <= 1
        assert sum(1 for o in sale.orders if o["buyer_id"] == buyer) == 1
    # Over the whole sale: one order per Idempotency-Key, no order without a key behind it.
    keys = {(a.buyer_id, a.key) for a in sale.report.attempts}
    assert len(sale.orders) == len(keys) == len({a.order_id for a in sale.report.attempts})
    stats = await sale.http.get("orders", f"/stats/orders?live_id={sale.report.ids.live_id}")
    assert sum(stats["by_status"].values()) == len(keys)


# --- commission -----------------------------------------------------------------------------------


async def test_every_confirmed_order_accrues_once_per_host_to_the_cent(sale: Sale) -> None:
    ids = sale.report.ids
    terms = sale.agreement["versions"][-1]
    assert (terms["rate_bps"], sale.agreement["current_version"]) == (1250, 1)
    # The rounding, on this sale's own prices: 12.5% of 89.90 is 11.2375 ⇒ 11.23, split 60/40 is
    # 6.738 + 4.492 ⇒ 6.73 + 4.49 with the leftover cent to the larger remainder ⇒ 6.74 + 4.49.
    assert accruals_due(8990, sale.agreement, ids.host_ids) == dict(
        zip(ids.host_ids, [674, 449], strict=True)
    )

    for order in sale.sold:
        assert order["attribution"]["host_ids"] == ids.host_ids
        assert order["attribution"]["agreement_id"] == ids.agreement_id
        commission = await sale.http.get("commission", f"/orders/{order['order_id']}/commission")
        due = accruals_due(order["total"]["amount"], sale.agreement, ids.host_ids)
        assert commission["status"] == "allocated"
        assert commission["commission"]["amount"] == order["total"]["amount"] * 1250 // 10_000
        assert {a["influencer_id"]: a["amount"]["amount"] for a in commission["accruals"]} == due
        assert len(commission["accruals"]) == len(ids.host_ids)
        assert all(a["base"] == order["total"] for a in commission["accruals"])

    # Each host's ledger holds exactly one accrual per confirmed order and nothing else.
    sold_ids = sorted(o["order_id"] for o in sale.sold)
    for host in ids.host_ids:
        accruals = await sale.http.get("commission", f"/influencers/{host}/accruals?limit=1000")
        assert sorted(a["order_id"] for a in accruals) == sold_ids

    # A rejected order earns nothing.
    rejected = next(o for o in sale.orders if o["status"] == "rejected")
    reply = await sale.http.request(
        "commission", "GET", f"/orders/{rejected['order_id']}/commission", sale.http.admin
    )
    assert reply.status_code == 404


async def test_cancellations_reverse_in_full_and_a_partial_refund_in_proportion(sale: Sale) -> None:
    ids = sale.report.ids
    assert len(ids.cancelled_order_ids) == 3
    for order_id in ids.cancelled_order_ids:
        order = sale.order(order_id)
        assert order["status"] == "cancelled"
        assert order["refunded"] == order["total"]
        commission = await sale.http.get("commission", f"/orders/{order_id}/commission")
        for accrual in commission["accruals"]:
            assert accrual["reversed"] == accrual["amount"]
            assert (accrual["status"], accrual["released"]) == ("reversed", None)
        reservations = await sale.http.get("catalog", f"/orders/{order_id}/reservations")
        assert [(r["quantity"], r["released"]) for r in reservations] == [(1, 1)]

    # 3 × 189.90 at list price, one unit returned: a third of the total back, and of each accrual
    # ⌊accrued × refunded / total⌋ reversed — the rest released after the holdback.
    refunded = sale.order(ids.refunded_order_id)
    total = refunded["total"]["amount"]
    assert (refunded["status"], total, refunded["refunded"]["amount"]) == ("confirmed", 56970, 18990)
    assert (refunded["returned_units"], refunded["shipped"]) == (1, True)
    due = accruals_due(total, sale.agreement, ids.host_ids)
    assert list(due.values()) == [4273, 2848]  # 71.2125 ⇒ 71.21, split 42.726 / 28.484 ⇒ +1 cent to the lead
    commission = await sale.http.get("commission", f"/orders/{ids.refunded_order_id}/commission")
    reversed_ = {a["influencer_id"]: a["reversed"]["amount"] for a in commission["accruals"]}
    assert reversed_ == {host: amount * 18990 // total for host, amount in due.items()}
    assert list(reversed_.values()) == [1424, 949]
    released = {a["influencer_id"]: a["released"]["amount"] for a in commission["accruals"]}
    assert released == {host: due[host] - reversed_[host] for host in due}
    reservations = await sale.http.get("catalog", f"/orders/{ids.refunded_order_id}/reservations")
    assert [(r["quantity"], r["released"]) for r in reservations] == [(3, 1)]


async def test_commission_is_released_after_the_holdback_and_statements_reconcile(sale: Sale) -> None:
    ids = sale.report.ids
    uncancelled = [o for o in sale.sold if o["status"] != "cancelled"]
    for host in ids.host_ids:
        accruals = await sale.http.get("commission", f"/influencers/{host}/accruals?limit=1000")
        for accrual in accruals:
            hold_until = datetime.fromisoformat(accrual["hold_until"])
            assert hold_until - datetime.fromisoformat(accrual["accrued_at"]) < timedelta(days=7, minutes=1)
            if accrual["order_id"] in ids.cancelled_order_ids:
                assert accrual["status"] == "reversed"
            else:
                assert accrual["status"] == "released"
                assert datetime.fromisoformat(accrual["released_at"]) >= hold_until
                assert (
                    accrual["released"]["amount"]
                    == accrual["amount"]["amount"] - accrual["reversed"]["amount"]
                )
        assert sum(1 for a in accruals if a["status"] == "released") == len(uncancelled)

        # The ledger, the balance and the statement tell the same story to the cent.
        ledger = await sale.http.get("commission", f"/influencers/{host}/ledger?limit=1000")
        assert ledger["next_after"] is None
        sums = Counter[str]()
        for entry in ledger["entries"]:
            sums[entry["kind"]] += entry["amount"]["amount"]
        assert sums["accrued"] == sum(a["amount"]["amount"] for a in accruals)
        assert sums["reversed"] == sum(a["reversed"]["amount"] for a in accruals)
        assert sums["released"] == sums["accrued"] - sums["reversed"]
        balance = (await sale.http.get("commission", f"/influencers/{host}/balance"))["balances"]
        assert len(balance) == 1
        assert (balance[0]["held"]["amount"], balance[0]["released"]["amount"]) == (0, sums["released"])
        own = sale.http.headers(host, "influencer")
        statement = await sale.http.get(
            "commission", f"/influencers/{host}/statements/{ids.statement_ids[host]}", own
        )
        assert statement["opening_balance"]["amount"] == 0
        assert statement["accrued"]["amount"] == sums["accrued"]
        assert statement["reversed"]["amount"] == sums["reversed"]
        assert statement["released"]["amount"] == sums["released"]
        assert statement["closing_balance"]["amount"] == sums["accrued"] - sums["reversed"]
        assert statement["closing_balance"] == balance[0]["total"]
        assert statement["entries"] == len(ledger["entries"])
        # Issuing the same period again returns the same statement.
        again = await sale.http.ok(
            "commission",
            "POST",
            f"/influencers/{host}/statements",
            own,
            {"period_start": statement["period_start"], "period_end": statement["period_end"]},
        )
        assert again["statement_id"] == statement["statement_id"]

    # Both hosts together earned exactly the commission of what stayed sold.
    due = Counter[str]()
    for order in sale.sold:
        for host, amount in accruals_due(order["total"]["amount"], sale.agreement, ids.host_ids).items():
            total, refunded = order["total"]["amount"], order["refunded"]["amount"]
            due[host] += 0 if order["status"] == "cancelled" else amount - amount * refunded // total
    for host in ids.host_ids:
        balance = (await sale.http.get("commission", f"/influencers/{host}/balance"))["balances"][0]
        assert balance["total"]["amount"] == due[host]


async def test_the_report_reconciles_and_serialises_to_one_json_object(sale: Sale) -> None:
    report = sale.report
    assert report.checks.failing() == {}
    assert report.reconciled
    document = json.loads(json.dumps(report.to_json()))
    assert document["checks"] == dict.fromkeys(report.checks.model_dump(), 0)
    assert document["deal"]["orders_confirmed"] == DEAL_UNITS
    assert document["orders"]["confirmed"] == len(sale.sold)
    assert document["orders"]["gmv"] == sum(o["total"]["amount"] for o in sale.sold)
    assert "attempts" not in document


# --- the live -------------------------------------------------------------------------------------


async def test_the_live_keeps_its_timeline_and_tallies_its_audience(sale: Sale) -> None:
    ids = sale.report.ids
    live = await sale.http.get("live", f"/lives/{ids.live_id}")
    assert (live["status"], live["pin"], live["active_deals"]) == ("ended", None, [])
    assert live["host_ids"] == ids.host_ids
    timeline = await sale.http.get("live", f"/lives/{ids.live_id}/timeline?limit=1000")
    kinds = Counter(entry["type"] for entry in timeline)
    assert kinds.pop("AudienceSampled") >= 1
    assert kinds == dict.fromkeys(
        [
            "LiveScheduled",
            "LiveStarted",
            "ProductPinned",
            "PaymentTermsOffered",
            "FlashDealStarted",
            "FlashDealEnded",
            "ProductUnpinned",
            "LiveEnded",
        ],
        1,
    )
    ended = next(e for e in timeline if e["type"] == "FlashDealEnded")
    assert ended["data"]["reason"] == "sold_out"
    offsets = [e["live_offset_ms"] for e in timeline if e["live_offset_ms"] is not None]
    assert len(offsets) >= 6
    assert offsets == sorted(offsets)
    # Six viewers sent a heartbeat with three likes each, within the first window.
    audience = live["audience"]
    assert (audience["joins"], audience["likes"], audience["peak_concurrent_viewers"]) == (6, 18, 6)


# --- chat -------------------------------------------------------------------------------------------


async def feed_of(sale: Sale, viewer: str, role: str = "viewer") -> list[Sse]:
    url = sale.http.platform.url("chat") + f"/rooms/{sale.report.ids.room_id}/feed"
    headers = {**sale.http.headers(viewer, role), "Last-Event-ID": "0"}
    return await read_feed(sale.http.client, url, headers)


async def test_chat_moderation_shows_in_the_feed_and_the_last_messages(sale: Sale) -> None:
    ids = sale.report.ids
    room = await sale.http.get("chat", f"/rooms/{ids.room_id}")
    assert room["status"] == "closed"
    assert room["tallies"] == {
        "messages": 6,
        "blocked_banned_word": 1,
        "blocked_slow_mode": 1,
        "blocked_muted": 1,
        "removed": 1,
        "questions": 1,
        "answered": 1,
        "mutes": 1,
    }
    banned, muted, slowed = ids.blocked_message_ids

    # A late joiner's last messages: no blocked message, not the removed one.
    bystander = ids.chatters[2]
    last = await sale.http.get(
        "chat", f"/rooms/{ids.room_id}/messages?limit=500", sale.http.headers(bystander, "viewer")
    )
    shown = {m["message_id"] for m in last["messages"]}
    assert len(shown) == 5
    assert not shown & {banned, muted, slowed, ids.removed_message_id}
    assert all(ids.banned_word not in m["text"].lower() for m in last["messages"])

    # The whole feed replayed for a bystander: the removal but not the removed message, the
    # question and its answer, none of the troll's blocked messages, no mute notice.
    others = await feed_of(sale, bystander)
    kinds = [e.event for e in others]
    assert kinds[0] == "room_opened"
    assert kinds[-1] == "room_closed"
    assert "message_blocked" not in kinds
    assert "participant_muted" not in kinds
    assert [e.data["message_id"] for e in others if e.event == "message_removed"] == [ids.removed_message_id]
    assert ids.removed_message_id not in {e.data.get("message_id") for e in others if e.event == "message"}
    asked = [e for e in others if e.event == "question_asked"]
    answered = [e for e in others if e.event == "question_answered"]
    assert (
        [e.data["question_id"] for e in asked]
        == [e.data["question_id"] for e in answered]
        == [ids.question_id]
    )
    assert [e.id for e in others] == sorted(e.id for e in others)

    # The troll sees their own refusals and their mute; the chatty one only their slow-mode refusal.
    troll = await feed_of(sale, ids.troll)
    assert [(e.data["message_id"], e.data["reason"]) for e in troll if e.event == "message_blocked"] == [
        (banned, "banned_word"),
        (muted, "muted"),
    ]
    assert [e.data["participant_id"] for e in troll if e.event == "participant_muted"] == [ids.troll]
    chatty = await feed_of(sale, ids.chatters[4])
    assert [(e.data["message_id"], e.data["reason"]) for e in chatty if e.event == "message_blocked"] == [
        (slowed, "slow_mode")
    ]
    own = await sale.http.get("chat", f"/rooms/{ids.room_id}/blocked", sale.http.headers(ids.troll, "viewer"))
    assert {b["message_id"] for b in own} == {banned, muted}
    assert (
        await sale.http.get("chat", f"/rooms/{ids.room_id}/blocked", sale.http.headers(bystander, "viewer"))
        == []
    )

    # A closed room takes no more messages.
    reply = await sale.http.request(
        "chat",
        "POST",
        f"/rooms/{ids.room_id}/messages",
        sale.http.headers(bystander, "viewer"),
        {"text": "hi"},
    )
    assert reply.status_code == 409


# --- authorization ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Others:
    """Another brand, its product and an influencer hosting another live, on air."""

    brand_id: str
    product_id: str
    influencer: str
    live_id: str
    room_id: str
    message_id: str


@pytest.fixture(scope="module")
async def others(sale: Sale) -> Others:
    http, run = sale.http, sale.report.ids.run
    brand, zoe = f"brd_luma_{run}", f"usr_zoe_{run}"
    staff = http.headers(f"usr_lucas_{run}", "brand", brands=[brand])
    await http.ok(
        "catalog",
        "POST",
        "/brands",
        http.admin,
        {"brand_id": brand, "name": "Luma", "country": "BR", "default_currency": "BRL"},
    )
    product = await http.ok(
        "catalog",
        "POST",
        "/products",
        staff,
        {
            "brand_id": brand,
            "title": "Luma lipstick",
            "skus": [{"list_prices": [{"market": "BR", "price": {"amount": 4990, "currency": "BRL"}}]}],
        },
    )
    agreement = await http.ok(
        "commission",
        "POST",
        "/agreements",
        staff,
        {"brand_id": brand, "influencer_id": zoe, "rate_bps": 1000, "holdback_days": 7},
    )
    now = datetime.fromisoformat(
        (await http.ok("live", "POST", "/admin/clock", http.admin, {"advance_seconds": 0.001}))["now"]
    )
    live = await http.ok(
        "live",
        "POST",
        "/lives",
        http.headers(zoe, "influencer"),
        {
            "title": "Luma lips",
            "scheduled_start_at": (now + timedelta(hours=1)).isoformat(),
            "host_ids": [zoe],
            "brands": [{"brand_id": brand, "agreement_id": agreement["agreement_id"]}],
            "showcase": [{"product_id": product["product_id"], "brand_id": brand}],
        },
    )
    await http.ok("live", "POST", f"/lives/{live['live_id']}/start", http.headers(zoe, "influencer"))

    async def room_open() -> Json | None:
        reply = await http.request("chat", "GET", f"/lives/{live['live_id']}/room", http.admin)
        return reply.json() if reply.status_code == 200 and reply.json()["status"] == "open" else None

    room = await wait_until_async(room_open, timeout=30, message="the other live's chat room opens")
    assert room is not None
    posted = await http.ok(
        "chat",
        "POST",
        f"/rooms/{room['room_id']}/messages",
        http.headers(f"usr_val_{run}", "viewer"),
        {"text": "hey"},
    )
    return Others(brand, product["product_id"], zoe, live["live_id"], room["room_id"], posted["message_id"])


# Who may not do what, and how they are told. `host`/`cohost` host the sale's live, `other_host`
# hosts another live, on air (`other_live`, `other_room`); `brand` is the sale's brand staff,
# `other_brand` another brand's; `buyer` placed `{order}`, `other_buyer` did not.
# fmt: off
DENIED: list[tuple[str, str, str]] = [
    # the live: only its hosts, its brands' staff and admins operate it
    ("viewer",      "POST live /lives/{other_live}/start",                        "403 role_required"),
    ("viewer",      "POST live /lives/{other_live}/end",                          "403 role_required"),
    ("viewer",      "PUT live /lives/{other_live}/pin",                           "403 role_required"),
    ("viewer",      "POST live /lives/{other_live}/deals",                        "403 role_required"),
    ("viewer",      "POST live /lives/{other_live}/payment-terms",                "403 role_required"),
    ("host",        "PUT live /lives/{other_live}/pin",                           "403 not_live_operator"),
    ("host",        "POST live /lives/{other_live}/end",                          "403 not_live_operator"),
    ("brand",       "PUT live /lives/{other_live}/pin",                           "403 not_live_operator"),
    # chat: only the live's hosts, moderators and admins moderate its room
    ("host",        "POST chat /rooms/{other_room}/mutes",                        "403 not_a_moderator"),
    ("host",        "DELETE chat /rooms/{other_room}/messages/{other_message}",   "403 not_a_moderator"),
    ("host",        "GET chat /rooms/{other_room}/mutes",                         "403 not_a_moderator"),
    ("other_host",  "DELETE chat /rooms/{room}/messages/{message}",               "403 not_a_moderator"),
    ("other_host",  "POST chat /rooms/{room}/questions/{question}/answer",        "403 not_a_moderator"),
    ("viewer",      "PUT chat /rooms/{other_room}/slow-mode",                     "403 not_a_moderator"),
    ("moderator",   "PUT chat /banned-words",                                     "403 not_an_admin"),
    # orders: a buyer sees and cancels only their own orders; refunds are the brand's
    ("other_buyer", "GET orders /orders/{order}",                                 "403 not_your_order"),
    ("other_buyer", "POST orders /orders/{order}/cancel",                         "403 not_your_order"),
    ("other_buyer", "GET catalog /orders/{order}/reservations",                   "403 not_your_order"),
    ("buyer",       "POST orders /orders/{order}/refunds",                        "403 role_required"),
    # commission: an influencer sees only their own
    ("cohost",      "GET commission /influencers/{host}/balance",                 "403 not_own_account"),
    ("cohost",      "GET commission /influencers/{host}/statements",              "403 not_own_account"),
    ("other_host",  "GET commission /influencers/{host}/ledger",                  "403 not_own_account"),
    ("other_host",  "GET commission /influencers/{host}/accruals",                "403 not_own_account"),
    ("other_host",  "POST commission /influencers/{host}/statements",             "403 not_own_account"),
    ("other_host",  "GET commission /orders/{order}/commission",                  "403 not_a_party"),
    ("other_host",  "GET commission /agreements/{agreement}",                     "403 not_a_party"),
    ("other_host",  "GET commission /agreements?influencer_id={host}",            "403 not_own_account"),
    ("buyer",       "GET commission /influencers/{host}/balance",                 "403 role_required"),
    # a brand sees and changes only its own products, stock, sales and agreements
    ("other_brand", "GET orders /brands/{brand}/sales",                           "403 not_brand_staff"),
    ("other_brand", "GET orders /orders/{order}",                                 "403 not_your_order"),
    ("other_brand", "POST orders /orders/{order}/refunds",                        "403 not_brand_staff"),
    ("other_brand", "GET catalog /brands/{brand}/products",                       "403 not_brand_staff"),
    ("other_brand", "GET catalog /skus/{sku}/stock",                              "403 not_brand_staff"),
    ("other_brand", "GET catalog /orders/{order}/reservations",                   "403 not_your_order"),
    ("other_brand", "POST catalog /skus/{sku}/stock/receipts",                    "403 not_brand_staff"),
    ("other_brand", "GET commission /agreements?brand_id={brand}",               "403 not_brand_staff"),
    ("other_brand", "GET commission /orders/{order}/commission",                  "403 not_a_party"),
    ("other_brand", "POST commission /agreements",                                "403 not_brand_staff"),
    ("brand",       "POST catalog /brands",                                       "403 role_required"),
    ("brand",       "GET orders /stats/orders",                                   "403 role_required"),
    # no valid token
    ("anonymous",   "GET live /lives/{live}",                                     "401 unauthenticated"),
    ("anonymous",   "GET chat /rooms/{room}/messages",                            "401 unauthenticated"),
    ("anonymous",   "GET catalog /products/{product}",                            "401 unauthenticated"),
    ("anonymous",   "GET orders /orders/{order}",                                 "401 unauthenticated"),
    ("anonymous",   "GET commission /agreements/{agreement}",                     "401 unauthenticated"),
    ("forged",      "GET orders /me/orders",                                      "401 unauthenticated"),
]
# fmt: on

BODIES: dict[str, Json] = {
    "PUT /lives/{other_live}/pin": {"product_id": "{other_product}"},
    "POST /lives/{other_live}/deals": {
        "product_id": "{other_product}",
        "sku_id": "{other_product}-1",
        "deal_price": {"amount": 100, "currency": "BRL"},
        "units": 1,
        "per_buyer_cap": 1,
        "duration_ms": 60_000,
    },
    "POST /lives/{other_live}/payment-terms": {"max_installments": 3, "interest_free": True},
    "POST /rooms/{other_room}/mutes": {"participant_id": "usr_someone", "duration_ms": 60_000},
    "POST /rooms/{room}/questions/{question}/answer": {"answer": "no"},
    "PUT /rooms/{other_room}/slow-mode": {"interval_ms": 1000},
    "PUT /banned-words": {"terms": []},
    "POST /orders/{order}/refunds": {"quantity": 1},
    "POST /influencers/{host}/statements": {
        "period_start": "2020-01-01T00:00:00Z",
        "period_end": "2020-02-01T00:00:00Z",
    },
    "POST /skus/{sku}/stock/receipts": {"quantity": 5},
    "POST /agreements": {
        "brand_id": "{brand}",
        "influencer_id": "{other_host}",
        "rate_bps": 9000,
        "holdback_days": 0,
    },
    "POST /brands": {"name": "Mine now", "country": "BR", "default_currency": "BRL"},
}


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


@pytest.mark.parametrize(("who", "request_", "expected"), DENIED, ids=[f"{w}: {r}" for w, r, _ in DENIED])
async def test_authorization_is_denied_where_it_must_be(
    sale: Sale, others: Others, who: str, request_: str, expected: str
) -> None:
    ids, http = sale.report.ids, sale.http
    order = next(
        o for o in sale.sold if o["status"] == "confirmed" and o["line"]["sku_id"] == ids.deal_sku_id
    )
    other_buyer = next(o["buyer_id"] for o in sale.orders if o["buyer_id"] != order["buyer_id"])
    last = await http.get("chat", f"/rooms/{ids.room_id}/messages?limit=1")
    names = {
        "live": ids.live_id,
        "room": ids.room_id,
        "message": last["messages"][-1]["message_id"],
        "question": ids.question_id,
        "order": order["order_id"],
        "host": ids.host_ids[0],
        "other_host": others.influencer,
        "agreement": ids.agreement_id,
        "brand": ids.brand_id,
        "product": ids.product_id,
        "sku": ids.deal_sku_id,
        "other_live": others.live_id,
        "other_room": others.room_id,
        "other_message": others.message_id,
        "other_product": others.product_id,
    }
    forged = mint_token(
        secret="a-key-that-is-not-the-platform-signing-key",
        issuer=http.settings.jwt_issuer,
        audience=http.settings.jwt_audience,
        subject="usr_x",
        roles=["admin"],
    )
    tokens: dict[str, dict[str, str]] = {
        "viewer": http.headers(ids.chatters[1], "viewer"),
        "buyer": http.headers(order["buyer_id"], "viewer"),
        "other_buyer": http.headers(other_buyer, "viewer"),
        "host": http.headers(ids.host_ids[0], "influencer"),
        "cohost": http.headers(ids.host_ids[1], "influencer"),
        "other_host": http.headers(others.influencer, "influencer"),
        "brand": http.headers(ids.brand_staff, "brand", brands=[ids.brand_id]),
        "other_brand": http.headers(f"usr_lucas_{ids.run}", "brand", brands=[others.brand_id]),
        "moderator": http.headers(ids.moderator, "moderator"),
        "anonymous": {},
        "forged": {"Authorization": f"Bearer {forged}"},
    }
    method, service, path = request_.split()
    body = _fill(BODIES.get(f"{method} {path}"), names)
    reply = await http.request(service, method, _fill(path, names), tokens[who], body)
    status, code = expected.split()
    assert (reply.status_code, reply.json().get("code")) == (int(status), code), reply.text


async def test_what_was_denied_changed_nothing_and_what_is_public_hides_stock(
    sale: Sale, others: Others
) -> None:
    ids, http = sale.report.ids, sale.http
    # Another brand's staff sees the public catalogue entry, without stock figures.
    product = await http.get(
        "catalog",
        f"/products/{ids.product_id}",
        http.headers(f"usr_lucas_{ids.run}", "brand", brands=[others.brand_id]),
    )
    assert all(sku["stock"] is None for sku in product["skus"])
    own = await http.get(
        "catalog",
        f"/products/{ids.product_id}",
        http.headers(ids.brand_staff, "brand", brands=[ids.brand_id]),
    )
    assert all(sku["stock"] is not None for sku in own["skus"])
    # The other live is still on air with no pin; the sale's order is still as it was.
    other_live = await http.get("live", f"/lives/{others.live_id}")
    assert (other_live["status"], other_live["pin"], other_live["active_deals"]) == ("live", None, [])
    now = await http.get("orders", "/stats/orders?live_id=" + ids.live_id)
    assert sum(now["by_status"].values()) == len(sale.orders)
    assert now["by_status"].get("cancelled", 0) == len(ids.cancelled_order_ids)
    stock = await http.get("catalog", f"/skus/{ids.deal_sku_id}/stock")
    assert stock["on_hand"] == DEAL_UNITS
