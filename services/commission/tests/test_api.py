"""The commission service end to end: real store (SQLite, and PostgreSQL for the sale), real Kafka,
real HTTP. Order events are produced onto Kafka as the orders service's relay would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from shopstream_commission.bootstrap import build
from shopstream_contracts import Money
from shopstream_contracts.orders.v1 import (
    Attribution,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderRefunded,
)
from shopstream_service.settings import ServiceSettings
from shopstream_service.testing import RunningService, running_service
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.integration

T = TypeVar("T")


@pytest.fixture
async def svc(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[RunningService]:
    async with running_service(
        build(ServiceSettings()), kafka_bootstrap=kafka_bootstrap, store_url=f"sqlite:///{tmp_path}/c.sqlite"
    ) as service:
        yield service


@pytest.fixture
async def pg_svc(kafka_bootstrap: str, postgres_dsn: str) -> AsyncIterator[RunningService]:
    async with running_service(
        build(ServiceSettings()), kafka_bootstrap=kafka_bootstrap, store_url=postgres_dsn
    ) as service:
        yield service


class World:
    """Unique ids and tokens for one test (the session's Kafka holds other tests' events too)."""

    def __init__(self, svc: RunningService) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.svc = svc
        self.brand = f"brd_{suffix}"
        self.ana = f"usr_ana_{suffix}"
        self.bia = f"usr_bia_{suffix}"
        self.live = f"liv_{suffix}"
        self.agreement = f"agr_{suffix}"
        self.staff = svc.headers(f"usr_staff_{suffix}", "brand", brands=[self.brand])
        self.other_staff = svc.headers(f"usr_other_{suffix}", "brand", brands=[f"brd_other_{suffix}"])
        self.admin = svc.headers("usr_admin", "admin")
        self.viewer = svc.headers(f"usr_viewer_{suffix}", "viewer")
        self.as_ana = svc.headers(self.ana, "influencer")
        self.as_bia = svc.headers(self.bia, "influencer")

    async def sign(self, **overrides: Any) -> httpx.Response:
        body = {
            "agreement_id": self.agreement,
            "brand_id": self.brand,
            "influencer_id": self.ana,
            "rate_bps": 1200,
            "holdback_days": 30,
            "cohost_shares": [
                {"influencer_id": self.ana, "share_bps": 7000},
                {"influencer_id": self.bia, "share_bps": 3000},
            ],
            **overrides,
        }
        return await self.svc.http.post("/agreements", json=body, headers=self.staff)

    def confirmed(self, order_id: str, total: int = 17980, **attribution: Any) -> OrderConfirmed:
        money = Money(amount=total, currency="BRL")
        return OrderConfirmed(
            order_id=order_id,
            buyer_id="usr_buyer",
            reservation_id=f"res_{order_id}",
            market="BR",
            line=OrderLine(
                product_id="prd_serum",
                sku_id="sku_serum",
                brand_id=self.brand,
                quantity=1,
                unit_price=money,
                list_price=money,
                line_total=money,
            ),
            attribution=Attribution(
                **{
                    "channel": "live",
                    "live_id": self.live,
                    "brand_id": self.brand,
                    "agreement_id": self.agreement,
                    "host_ids": [self.ana, self.bia],
                    "price_source": "list",
                    **attribution,
                }
            ),
            total=money,
            occurred_at=self.svc.clock.now(),
        )

    def refunded(self, order_id: str, amount: int, total_refunded: int, total: int = 17980) -> OrderRefunded:
        return OrderRefunded(
            order_id=order_id,
            buyer_id="usr_buyer",
            brand_id=self.brand,
            refund_id=f"rfd_{uuid.uuid4().hex[:8]}",
            sku_id="sku_serum",
            amount=Money(amount=amount, currency="BRL"),
            quantity=0,
            total_refunded=Money(amount=total_refunded, currency="BRL"),
            order_total=Money(amount=total, currency="BRL"),
            fully_refunded=total_refunded == total,
            refunded_by=self.brand,
            occurred_at=self.svc.clock.now(),
        )

    def cancelled(self, order_id: str) -> OrderCancelled:
        return OrderCancelled(
            order_id=order_id,
            buyer_id="usr_buyer",
            brand_id=self.brand,
            sku_id="sku_serum",
            quantity=1,
            refund=Money(amount=17980, currency="BRL"),
            cancelled_by="usr_buyer",
            occurred_at=self.svc.clock.now(),
        )

    async def commission(self, order_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.svc.http.get(f"/orders/{order_id}/commission", headers=headers or self.admin)

    async def order_state(self, order_id: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
        """The order's commission once ``predicate`` holds on it (events flow through Kafka)."""

        async def probe() -> dict[str, Any] | None:
            reply = await self.commission(order_id)
            if reply.status_code != 200:
                return None
            body: dict[str, Any] = reply.json()
            return body if predicate(body) else None

        return await eventually(probe, timeout, f"order {order_id}")

    async def balance(self, influencer: str) -> dict[str, Any]:
        reply = await self.svc.http.get(f"/influencers/{influencer}/balance", headers=self.admin)
        assert reply.status_code == 200, reply.text
        [brl] = reply.json()["balances"]
        return {k: v["amount"] if isinstance(v, dict) else v for k, v in brl.items()}


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float, message: str) -> T:
    """``wait_until_async`` for a probe that answers None until the outcome is there."""
    result = await wait_until_async(probe, timeout=timeout, message=message)
    assert result is not None
    return result


def amounts(body: dict[str, Any], field: str = "amount") -> dict[str, int | None]:
    return {a["influencer_id"]: (a[field] or {}).get("amount") for a in body["accruals"]}


# Agreements -------------------------------------------------------------------------------------


async def test_agreements_are_signed_versioned_and_shown_to_their_parties(svc: RunningService) -> None:
    w = World(svc)
    signed = await w.sign()
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert (body["agreement_id"], body["brand_id"], body["influencer_id"], body["current_version"]) == (
        w.agreement,
        w.brand,
        w.ana,
        1,
    )
    assert body["versions"][0]["rate_bps"] == 1200
    assert body["versions"][0]["cohost_shares"] == [
        {"influencer_id": w.ana, "share_bps": 7000},
        {"influencer_id": w.bia, "share_bps": 3000},
    ]

    effective = (svc.clock.now() + timedelta(days=1)).isoformat()
    amended = await svc.http.post(
        f"/agreements/{w.agreement}/versions",
        json={"rate_bps": 1500, "holdback_days": 7, "effective_from": effective},
        headers=w.staff,
    )
    assert amended.status_code == 201, amended.text
    assert [(v["version"], v["rate_bps"], v["holdback_days"]) for v in amended.json()["versions"]] == [
        (1, 1200, 30),
        (2, 1500, 7),
    ]

    for reader in (w.staff, w.as_ana, w.as_bia, w.admin):
        seen = await svc.http.get(f"/agreements/{w.agreement}", headers=reader)
        assert seen.status_code == 200, seen.text
        assert seen.json()["current_version"] == 2
    stranger = await svc.http.get(f"/agreements/{w.agreement}", headers=w.other_staff)
    assert (stranger.status_code, stranger.json()["code"]) == (403, "not_a_party")

    by_brand = await svc.http.get("/agreements", params={"brand_id": w.brand}, headers=w.staff)
    assert [a["agreement_id"] for a in by_brand.json()] == [w.agreement]
    mine = await svc.http.get("/agreements", params={"influencer_id": w.ana}, headers=w.as_ana)
    assert [a["agreement_id"] for a in mine.json()] == [w.agreement]
    assert (
        await svc.http.get("/agreements", params={"brand_id": w.brand}, headers=w.other_staff)
    ).status_code == 403
    assert (
        await svc.http.get("/agreements", params={"influencer_id": w.ana}, headers=w.as_bia)
    ).status_code == 403
    assert (await svc.http.get("/agreements", headers=w.staff)).status_code == 403


async def test_agreement_commands_are_refused_precisely_and_change_nothing(svc: RunningService) -> None:
    w = World(svc)
    assert (await svc.http.post("/agreements", json={})).status_code == 401
    as_viewer = await svc.http.post("/agreements", json={}, headers=w.viewer)
    assert (as_viewer.status_code, as_viewer.json()["code"]) == (403, "role_required")

    other = await svc.http.post(
        "/agreements",
        json={"brand_id": w.brand, "influencer_id": w.ana, "rate_bps": 1000, "holdback_days": 0},
        headers=w.other_staff,
    )
    assert (other.status_code, other.json()["code"]) == (403, "not_brand_staff")

    bad_rate = await w.sign(rate_bps=0)
    assert bad_rate.status_code == 422
    assert (bad_rate.json()["code"], bad_rate.json()["errors"][0]["field"]) == ("invalid_rate", "rate_bps")
    not_whole = await w.sign(cohost_shares=[{"influencer_id": w.ana, "share_bps": 9000}])
    assert (not_whole.status_code, not_whole.json()["code"]) == (422, "shares_not_whole")
    wrong_type = await w.sign(rate_bps="12%")
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "body.rate_bps"
    naive = await w.sign(effective_from="2025-05-01T00:00:00")
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "body.effective_from"
    assert (await svc.http.get(f"/agreements/{w.agreement}", headers=w.admin)).status_code == 404

    assert (await w.sign()).status_code == 201
    again = await w.sign()
    assert (again.status_code, again.json()["code"]) == (409, "agreement_exists")

    past = (svc.clock.now() - timedelta(hours=1)).isoformat()
    retro = await svc.http.post(
        f"/agreements/{w.agreement}/versions",
        json={"rate_bps": 1500, "holdback_days": 7, "effective_from": past},
        headers=w.staff,
    )
    assert (retro.status_code, retro.json()["code"]) == (422, "retroactive_version")
    assert retro.json()["errors"][0]["field"] == "effective_from"
    foreign = await svc.http.post(
        f"/agreements/{w.agreement}/versions", json={"rate_bps": 1, "holdback_days": 1}, headers=w.other_staff
    )
    assert foreign.status_code == 403
    unknown = await svc.http.post(
        "/agreements/agr_nope/versions", json={"rate_bps": 1500, "holdback_days": 7}, headers=w.admin
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "agreement_not_found")
    assert (await svc.http.get(f"/agreements/{w.agreement}", headers=w.admin)).json()["current_version"] == 1


# The sale: accrue, refund, release, statement, cancel -----------------------------------------


async def _sale(svc: RunningService) -> None:
    w = World(svc)
    assert (await w.sign()).status_code == 201
    order = f"ord_{uuid.uuid4().hex[:10]}"
    confirmed = w.confirmed(order)
    # Delivered twice (a producer retry re-publishes under a new message id): still one accrual each.
    svc.publish(confirmed, confirmed)

    body = await w.order_state(order, lambda b: len(b["accruals"]) == 2)
    # 17980 × 12 % = 2157 (floored); 70/30 by largest remainder: 1510 + 647.
    assert (body["status"], body["commission"]["amount"]) == ("allocated", 2157)
    assert amounts(body) == {w.ana: 1510, w.bia: 647}
    assert {a["status"] for a in body["accruals"]} == {"held"}
    await svc.settle()
    assert amounts((await w.commission(order)).json()) == {w.ana: 1510, w.bia: 647}

    # Half refunded: each accrual is reversed by half, rounded down.
    svc.publish(w.refunded(order, 8990, 8990))
    body = await w.order_state(order, lambda b: all(a["reversed"]["amount"] > 0 for a in b["accruals"]))
    assert amounts(body, "reversed") == {w.ana: 755, w.bia: 323}

    # The holdback ends: what is left is released.
    svc.clock.advance(timedelta(days=30, seconds=1))
    body = await w.order_state(order, lambda b: all(a["status"] == "released" for a in b["accruals"]))
    assert amounts(body, "released") == {w.ana: 755, w.bia: 324}
    assert await w.balance(w.ana) == {
        "currency": "BRL",
        "held": 0,
        "released": 755,
        "total": 755,
        "accrued": 1510,
        "reversed": 755,
        "accruals": 1,
    }

    ledger = await svc.http.get(f"/influencers/{w.ana}/ledger", headers=w.as_ana)
    assert ledger.status_code == 200, ledger.text
    assert [(e["kind"], e["amount"]["amount"]) for e in ledger.json()["entries"]] == [
        ("accrued", 1510),
        ("reversed", 755),
        ("released", 755),
    ]
    page = await svc.http.get(f"/influencers/{w.ana}/ledger", params={"limit": 2}, headers=w.as_ana)
    rest = await svc.http.get(
        f"/influencers/{w.ana}/ledger", params={"after": page.json()["next_after"]}, headers=w.as_ana
    )
    assert len(page.json()["entries"]) == 2
    assert [e["kind"] for e in rest.json()["entries"]] == ["released"]
    assert rest.json()["next_after"] is None

    # The statement of the period reconciles to the ledger; issuing it again gives the same one.
    start = confirmed.occurred_at - timedelta(days=1)
    end = svc.clock.now()
    period = {"period_start": start.isoformat(), "period_end": end.isoformat()}
    issued = await svc.http.post(f"/influencers/{w.ana}/statements", json=period, headers=w.as_ana)
    assert issued.status_code == 201, issued.text
    statement = issued.json()
    figures = {
        k: statement[k]["amount"]
        for k in ("opening_balance", "accrued", "reversed", "released", "closing_balance")
    }
    assert figures == {
        "opening_balance": 0,
        "accrued": 1510,
        "reversed": 755,
        "released": 755,
        "closing_balance": 755,
    }
    assert statement["entries"] == 3
    again = await svc.http.post(f"/influencers/{w.ana}/statements", json=period, headers=w.as_ana)
    assert (again.status_code, again.json()["statement_id"]) == (200, statement["statement_id"])
    listed = await svc.http.get(f"/influencers/{w.ana}/statements", headers=w.as_ana)
    assert statement["statement_id"] in [s["statement_id"] for s in listed.json()]
    one = await svc.http.get(f"/influencers/{w.ana}/statements/{statement['statement_id']}", headers=w.as_ana)
    assert one.json() == statement

    # Cancelled after release: the rest is reversed out of the payable balance.
    svc.publish(w.cancelled(order))
    body = await w.order_state(order, lambda b: all(a["reversed"] == a["amount"] for a in b["accruals"]))
    assert {(a["status"], a["released"]["amount"]) for a in body["accruals"]} == {
        ("released", 755),
        ("released", 324),
    }
    balance = await w.balance(w.ana)
    assert (balance["held"], balance["released"], balance["total"]) == (0, 0, 0)

    # Every read model rebuilt from position 0 equals the live one.
    await svc.settle()
    for runner in svc.context.projections.values():
        rebuilt = await runner.rebuild(verify=True)
        assert rebuilt.previous is not None
        assert rebuilt.previous == rebuilt.rebuilt, runner.name
    assert amounts((await w.commission(order)).json(), "reversed") == {w.ana: 1510, w.bia: 647}


async def test_a_live_sale_accrues_reverses_releases_and_reconciles(svc: RunningService) -> None:
    await _sale(svc)


async def test_the_same_sale_on_postgresql(pg_svc: RunningService) -> None:
    await _sale(pg_svc)


async def test_the_version_in_force_at_the_moment_of_sale_applies(svc: RunningService) -> None:
    w = World(svc)
    assert (await w.sign(cohost_shares=[])).status_code == 201
    effective = svc.clock.now() + timedelta(hours=1)
    amended = await svc.http.post(
        f"/agreements/{w.agreement}/versions",
        json={"rate_bps": 2000, "holdback_days": 1, "effective_from": effective.isoformat()},
        headers=w.staff,
    )
    assert amended.status_code == 201
    before = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}", 10_000, host_ids=[w.ana])
    svc.clock.advance(timedelta(hours=2))
    after = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}", 10_000, host_ids=[w.ana])
    # Both arrive after version 2 was signed; each is judged at its own moment of sale.
    svc.publish(before, after)

    early = await w.order_state(before.order_id, lambda b: len(b["accruals"]) == 1)
    late = await w.order_state(after.order_id, lambda b: len(b["accruals"]) == 1)
    assert (early["agreement_version"], early["commission"]["amount"]) == (1, 1200)
    assert (late["agreement_version"], late["commission"]["amount"]) == (2, 2000)
    assert early["accruals"][0]["hold_until"].startswith(
        str((before.occurred_at + timedelta(days=30)).date())
    )


async def test_orders_that_earn_nothing_say_why(svc: RunningService) -> None:
    w = World(svc)
    unknown = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}")
    web = w.confirmed(
        f"ord_{uuid.uuid4().hex[:10]}", channel="web", live_id=None, agreement_id=None, host_ids=[]
    )
    svc.publish(unknown, web)

    body = await w.order_state(unknown.order_id, lambda b: True)
    assert (body["status"], body["reason"], body["accruals"]) == ("not_allocated", "unknown_agreement", [])
    await svc.settle()
    missing = await w.commission(web.order_id)
    assert (missing.status_code, missing.json()["code"]) == (404, "order_not_found")


async def test_matured_accruals_are_released_by_the_clock_and_months_get_statements(
    svc: RunningService,
) -> None:
    w = World(svc)
    assert (await w.sign(holdback_days=3, cohost_shares=[])).status_code == 201
    order = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}", 50_000, host_ids=[w.ana])
    svc.publish(order)
    await w.order_state(order.order_id, lambda b: len(b["accruals"]) == 1)

    svc.clock.advance(timedelta(days=2))
    await svc.settle()
    assert (await w.balance(w.ana))["held"] == 6000

    svc.clock.advance(timedelta(days=40))
    body = await w.order_state(order.order_id, lambda b: b["accruals"][0]["status"] == "released")
    assert body["accruals"][0]["released"]["amount"] == 6000

    async def monthly() -> list[dict[str, Any]]:
        reply = await svc.http.get(f"/influencers/{w.ana}/statements", headers=w.as_ana)
        statements: list[dict[str, Any]] = reply.json()
        return statements

    [statement] = await eventually(monthly, 30, "a monthly statement")
    start, end = (
        datetime.fromisoformat(statement["period_start"]),
        datetime.fromisoformat(statement["period_end"]),
    )
    assert (start.day, end.day, end.hour) == (1, 1, 0)
    assert end <= svc.clock.now()
    assert statement["closing_balance"]["amount"] == (
        statement["opening_balance"]["amount"]
        + statement["accrued"]["amount"]
        - statement["reversed"]["amount"]
    )


# Who sees what ----------------------------------------------------------------------------------


async def test_influencers_see_only_their_own_commission(svc: RunningService) -> None:
    w = World(svc)
    assert (await w.sign()).status_code == 201
    order = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}")
    svc.publish(order)
    await w.order_state(order.order_id, lambda b: len(b["accruals"]) == 2)

    for path in ("balance", "ledger", "accruals", "statements"):
        url = f"/influencers/{w.ana}/{path}"
        assert (await svc.http.get(url)).status_code == 401
        assert (await svc.http.get(url, headers=w.as_ana)).status_code == 200
        assert (await svc.http.get(url, headers=w.admin)).status_code == 200
        other = await svc.http.get(url, headers=w.as_bia)
        assert (other.status_code, other.json()["code"]) == (403, "not_own_account")
        staff = await svc.http.get(url, headers=w.staff)
        assert (staff.status_code, staff.json()["code"]) == (403, "role_required")
    held = await svc.http.get(f"/influencers/{w.ana}/accruals", params={"status": "held"}, headers=w.as_ana)
    assert [a["order_id"] for a in held.json()] == [order.order_id]
    released = await svc.http.get(
        f"/influencers/{w.ana}/accruals", params={"status": "released"}, headers=w.as_ana
    )
    assert released.json() == []
    period = {"period_start": "2025-01-01T00:00:00Z", "period_end": "2025-02-01T00:00:00Z"}
    forged = await svc.http.post(f"/influencers/{w.ana}/statements", json=period, headers=w.as_bia)
    assert forged.status_code == 403

    # The order's commission: the brand and admins see every part, a host only their own.
    assert amounts((await w.commission(order.order_id, w.staff)).json()) == {w.ana: 1510, w.bia: 647}
    assert amounts((await w.commission(order.order_id, w.as_bia)).json()) == {w.bia: 647}
    for outsider in (w.other_staff, w.viewer, svc.headers("usr_someone", "influencer")):
        denied = await w.commission(order.order_id, outsider)
        assert (denied.status_code, denied.json()["code"]) == (403, "not_a_party")
    assert (await w.commission("ord_never_seen")).status_code == 404
    assert (
        await svc.http.get(f"/influencers/{w.ana}/statements/stm_nope", headers=w.as_ana)
    ).status_code == 404


async def test_statement_requests_are_validated(svc: RunningService) -> None:
    w = World(svc)
    url = f"/influencers/{w.ana}/statements"
    now = svc.clock.now()

    async def issue(body: dict[str, Any]) -> dict[str, Any]:
        reply = await svc.http.post(url, json=body, headers=w.as_ana)
        assert reply.status_code == 422, reply.text
        problem: dict[str, Any] = reply.json()
        return problem

    backwards = await issue(
        {"period_start": now.isoformat(), "period_end": (now - timedelta(days=1)).isoformat()}
    )
    assert (backwards["code"], backwards["errors"][0]["field"]) == ("invalid_period", "period_end")
    future = {
        "period_start": (now - timedelta(days=1)).isoformat(),
        "period_end": (now + timedelta(days=1)).isoformat(),
    }
    assert (await issue({**future, "currency": "BRL"}))["code"] == "period_not_closed"
    past = {
        "period_start": (now - timedelta(days=2)).isoformat(),
        "period_end": (now - timedelta(days=1)).isoformat(),
    }
    assert (await issue(past))["code"] == "currency_required"
    assert (await issue({**past, "currency": "brl"}))["errors"][0]["field"] == "body.currency"
    assert (await issue({"period_start": "yesterday"}))["errors"][0]["field"] == "body.period_start"

    # An empty ledger in a named currency has a statement of zeros.
    empty = await svc.http.post(url, json={**past, "currency": "BRL"}, headers=w.as_ana)
    assert empty.status_code == 201
    assert (empty.json()["closing_balance"], empty.json()["entries"]) == ({"amount": 0, "currency": "BRL"}, 0)


async def test_a_restart_redelivering_every_message_changes_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/restart.sqlite"
    async with running_service(
        build(ServiceSettings()), kafka_bootstrap=kafka_bootstrap, store_url=url
    ) as svc:
        w = World(svc)
        assert (await w.sign()).status_code == 201
        order = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}")
        svc.publish(order)
        await w.order_state(order.order_id, lambda b: len(b["accruals"]) == 2)
        await svc.settle()
        ledger = [e.event_id for e in await svc.context.store.read_stream(f"account-{w.ana}")]

    # A new consumer group reads the topic from the start again: the same messages, the same ids.
    async with running_service(
        build(ServiceSettings()), kafka_bootstrap=kafka_bootstrap, store_url=url
    ) as again:
        w.svc = again
        await wait_until_async(lambda: again.context.kafka_ready.is_set(), timeout=30)
        marker = w.confirmed(f"ord_{uuid.uuid4().hex[:10]}")
        again.publish(marker)
        # Once an order published after the restart is accrued, every older message was seen too.
        await w.order_state(marker.order_id, lambda b: len(b["accruals"]) == 2)
        await again.settle()
        assert [e.event_id for e in await again.context.store.read_stream(f"account-{w.ana}")][
            : len(ledger)
        ] == ledger
        body = (await w.commission(order.order_id)).json()
        assert amounts(body) == {w.ana: 1510, w.bia: 647}
        assert (await w.balance(w.ana))["accruals"] == 2
