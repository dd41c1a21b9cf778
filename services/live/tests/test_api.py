"""The live service end to end: real store (SQLite, and PostgreSQL for the whole life of a live),
real Kafka, real HTTP. Catalog events are produced onto Kafka as the catalog's relay would."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopstream_contracts.catalog.v1 import StockReleased, StockReserved
from shopstream_contracts.topics import LIVE_SESSION
from shopstream_live.bootstrap import LiveSettings, build
from shopstream_service.settings import ServiceSettings
from shopstream_service.testing import RunningService, running_service
from shopstream_testing.topics import read_topic
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.integration

# Ticks fast so the tests wait little; the windows stay a minute (the clock is moved, not waited).
FAST = LiveSettings(audience_tick_seconds=0.1, deal_tick_seconds=0.1)


@pytest.fixture
async def svc(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[RunningService]:
    async with running_service(
        build(ServiceSettings(), FAST),
        kafka_bootstrap=kafka_bootstrap,
        store_url=f"sqlite:///{tmp_path}/l.sqlite",
    ) as service:
        yield service


@pytest.fixture
async def pg_svc(kafka_bootstrap: str, postgres_dsn: str) -> AsyncIterator[RunningService]:
    async with running_service(
        build(ServiceSettings(), FAST), kafka_bootstrap=kafka_bootstrap, store_url=postgres_dsn
    ) as service:
        yield service


class World:
    """Unique ids and tokens for one test (the session's Kafka holds other tests' events too)."""

    def __init__(self, svc: RunningService) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.svc = svc
        self.glow = f"brd_glow_{suffix}"
        self.luma = f"brd_luma_{suffix}"
        self.ana = f"usr_ana_{suffix}"
        self.bia = f"usr_bia_{suffix}"
        self.serum = f"prd_serum_{suffix}"
        self.lipstick = f"prd_lip_{suffix}"
        self.sku30 = f"sku_serum30_{suffix}"
        self.sku50 = f"sku_serum50_{suffix}"
        self.as_ana = svc.headers(self.ana, "influencer")
        self.as_bia = svc.headers(self.bia, "influencer")
        self.glow_staff = svc.headers(f"usr_gina_{suffix}", "brand", brands=[self.glow])
        self.luma_staff = svc.headers(f"usr_lucas_{suffix}", "brand", brands=[self.luma])
        self.other_staff = svc.headers(f"usr_otto_{suffix}", "brand", brands=[f"brd_acme_{suffix}"])
        self.other_influencer = svc.headers(f"usr_zoe_{suffix}", "influencer")
        self.admin = svc.headers(f"usr_root_{suffix}", "admin")
        self.viewer = svc.headers(f"usr_vic_{suffix}", "viewer")

    def schedule_body(self, **overrides: Any) -> dict[str, Any]:
        start = self.svc.clock.now() + timedelta(hours=1)
        return {
            "title": "Glow night",
            "description": "Live-only prices",
            "scheduled_start_at": start.isoformat(),
            "host_ids": [self.ana, self.bia],
            "brands": [
                {"brand_id": self.glow, "agreement_id": f"agr_{self.glow}"},
                {"brand_id": self.luma, "agreement_id": f"agr_{self.luma}"},
            ],
            "showcase": [
                {"product_id": self.serum, "brand_id": self.glow, "sku_ids": [self.sku30, self.sku50]},
                {"product_id": self.lipstick, "brand_id": self.luma},
            ],
            **overrides,
        }

    async def schedule(self, headers: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
        reply = await self.svc.http.post(
            "/lives", json=self.schedule_body(**overrides), headers=headers or self.as_ana
        )
        assert reply.status_code == 201, reply.text
        live: dict[str, Any] = reply.json()
        return live

    async def on_air(self) -> str:
        live_id: str = (await self.schedule())["live_id"]
        started = await self.svc.http.post(f"/lives/{live_id}/start", headers=self.as_ana)
        assert started.status_code == 200, started.text
        return live_id

    async def start_deal(
        self, live_id: str, headers: dict[str, str] | None = None, **overrides: Any
    ) -> httpx.Response:
        body = {
            "product_id": self.serum,
            "sku_id": self.sku30,
            "deal_price": {"amount": 8990, "currency": "BRL"},
            "units": 40,
            "per_buyer_cap": 2,
            "duration_ms": 300_000,
            **overrides,
        }
        return await self.svc.http.post(f"/lives/{live_id}/deals", json=body, headers=headers or self.as_ana)

    async def get(self, path: str) -> Any:
        reply = await self.svc.http.get(path, headers=self.viewer)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def timeline_types(self, live_id: str) -> list[str]:
        return [entry["type"] for entry in await self.get(f"/lives/{live_id}/timeline?limit=1000")]

    def reserved(self, deal_id: str, *, quantity: int, left: int) -> StockReserved:
        return StockReserved(
            sku_id=self.sku30,
            product_id=self.serum,
            brand_id=self.glow,
            reservation_id=f"res_{uuid.uuid4().hex}",
            order_id=f"ord_{uuid.uuid4().hex}",
            buyer_id=f"usr_buyer_{uuid.uuid4().hex[:6]}",
            quantity=quantity,
            deal_id=deal_id,
            deal_units_left=left,
            available_after=100,
            occurred_at=self.svc.clock.now(),
        )


def problem(
    reply: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return body


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the whole life of a live ---------------------------------------------------------------


async def _whole_life(svc: RunningService) -> None:
    w = World(svc)
    live = await w.schedule()
    live_id = live["live_id"]
    assert live["status"] == "scheduled"
    assert live["host_ids"] == [w.ana, w.bia]
    assert [b["brand_id"] for b in live["brands"]] == [w.glow, w.luma]
    assert live["showcase"][0]["sku_ids"] == [w.sku30, w.sku50]
    assert live["scheduled_by"] == w.ana

    later = svc.clock.now() + timedelta(hours=2)
    moved = await svc.http.post(
        f"/lives/{live_id}/reschedule", json={"scheduled_start_at": later.isoformat()}, headers=w.glow_staff
    )
    assert moved.status_code == 200, moved.text
    assert at(moved.json()["scheduled_start_at"]) == later

    started = await svc.http.post(f"/lives/{live_id}/start", headers=w.as_bia)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "live"
    started_at = at(started.json()["started_at"])

    svc.clock.advance(timedelta(seconds=5))
    pinned = await svc.http.put(
        f"/lives/{live_id}/pin", json={"product_id": w.serum, "sku_id": w.sku50}, headers=w.as_ana
    )
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["pin"]["product_id"] == w.serum
    assert (await w.get(f"/lives/{live_id}/pin"))["pin"]["sku_id"] == w.sku50

    deal_reply = await w.start_deal(live_id, w.glow_staff)
    assert deal_reply.status_code == 201, deal_reply.text
    deal = deal_reply.json()
    assert deal["active"] is True
    assert deal["deal_price"] == {"amount": 8990, "currency": "BRL"}
    assert (deal["units"], deal["per_buyer_cap"], deal["units_left"], deal["units_reserved"]) == (
        40,
        2,
        40,
        0,
    )
    assert at(deal["ends_at"]) - at(deal["started_at"]) == timedelta(minutes=5)
    assert deal["live_offset_ms"] == (at(deal["started_at"]) - started_at) // timedelta(milliseconds=1)

    terms = await svc.http.post(
        f"/lives/{live_id}/payment-terms",
        json={
            "brand_id": w.glow,
            "max_installments": 6,
            "interest_free": True,
            "min_installment": {"amount": 2000, "currency": "BRL"},
        },
        headers=w.as_ana,
    )
    assert terms.status_code == 201, terms.text
    assert terms.json()["active"] is True
    assert terms.json()["min_installment"] == {"amount": 2000, "currency": "BRL"}

    view = await w.get(f"/lives/{live_id}")
    assert [d["deal_id"] for d in view["active_deals"]] == [deal["deal_id"]]
    assert [t["terms_id"] for t in view["payment_terms"]] == [terms.json()["terms_id"]]
    assert view["pin"]["product_id"] == w.serum

    for headers in (w.viewer, w.as_bia):
        beat = await svc.http.post(
            f"/lives/{live_id}/audience/heartbeats", json={"likes": 3}, headers=headers
        )
        assert beat.status_code == 202, beat.text
    svc.publish(w.reserved(deal["deal_id"], quantity=2, left=38))

    async def reserved() -> dict[str, Any] | None:
        found: dict[str, Any] = await w.get(f"/lives/{live_id}/deals/{deal['deal_id']}")
        return found if found["units_reserved"] == 2 else None

    assert (await wait_until_async(reserved, timeout=30))["units_left"] == 38
    svc.clock.advance(timedelta(seconds=61))

    async def counted() -> dict[str, Any] | None:
        audience: dict[str, Any] = await w.get(f"/lives/{live_id}/audience")
        # A window may close empty first: windows are minute-aligned, the heartbeats fall anywhere.
        return audience if audience["likes"] == 6 else None

    audience = await wait_until_async(counted, timeout=15)
    assert audience["peak_concurrent_viewers"] == 2

    svc.clock.advance(timedelta(seconds=10))
    ended = await svc.http.post(f"/lives/{live_id}/end", headers=w.luma_staff)
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert (body["status"], body["pin"], body["active_deals"]) == ("ended", None, [])
    assert body["payment_terms"][0]["active"] is False

    (closed,) = await w.get(f"/lives/{live_id}/deals")
    assert (closed["active"], closed["end_reason"]) == (False, "live_ended")
    timeline = await w.get(f"/lives/{live_id}/timeline?limit=1000")
    types = [entry["type"] for entry in timeline if entry["type"] != "AudienceSampled"]
    assert types == [
        "LiveScheduled",
        "LiveRescheduled",
        "LiveStarted",
        "ProductPinned",
        "FlashDealStarted",
        "PaymentTermsOffered",
        "FlashDealEnded",
        "ProductUnpinned",
        "LiveEnded",
    ]
    for entry in timeline:
        # An audience window's offset is that of its end; every other event's, that of itself.
        moment = at(
            entry["data"]["window_end"] if entry["type"] == "AudienceSampled" else entry["occurred_at"]
        )
        if entry["live_offset_ms"] is not None:
            assert entry["live_offset_ms"] == (moment - started_at) // timedelta(milliseconds=1)
    assert timeline[-1]["live_offset_ms"] >= 76_000

    hosted = await w.get(f"/lives?host_id={w.bia}")
    assert [(summary["live_id"], summary["status"]) for summary in hosted] == [(live_id, "ended")]
    assert [s["live_id"] for s in await w.get(f"/lives?brand_id={w.luma}&status=ended")] == [live_id]
    assert await w.get(f"/lives?brand_id={w.luma}&status=live") == []


async def test_a_live_is_scheduled_started_worked_and_ended(svc: RunningService) -> None:
    await _whole_life(svc)


async def test_the_same_on_postgresql(pg_svc: RunningService) -> None:
    await _whole_life(pg_svc)


async def test_every_event_is_published_on_the_live_topic_keyed_by_the_live(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    await svc.http.put(f"/lives/{live_id}/pin", json={"product_id": w.lipstick}, headers=w.as_ana)
    await svc.http.post(f"/lives/{live_id}/end", headers=w.as_ana)

    async def published() -> list[str] | None:
        # read_topic blocks: off the event loop, where this very service's relay is running.
        records = await asyncio.to_thread(read_topic, svc.settings.kafka_bootstrap, LIVE_SESSION.name)
        types = [r.headers["ce_type"].decode() for r in records if r.key == live_id.encode()]
        return types if len(types) >= 5 else None

    types = await wait_until_async(published, timeout=30)
    assert types == [
        "shopstream.live.LiveScheduled",
        "shopstream.live.LiveStarted",
        "shopstream.live.ProductPinned",
        "shopstream.live.ProductUnpinned",
        "shopstream.live.LiveEnded",
    ]


# --- scheduling and lifecycle rules ---------------------------------------------------------


async def test_who_may_schedule(svc: RunningService) -> None:
    w = World(svc)
    body = w.schedule_body()
    problem(await svc.http.post("/lives", json=body), 401)
    problem(await svc.http.post("/lives", json=body, headers={"Authorization": "Bearer forged"}), 401)
    problem(await svc.http.post("/lives", json=body, headers=w.viewer), 403, "role_required")
    problem(
        await svc.http.post("/lives", json=body, headers=w.other_influencer), 403, "not_allowed_to_schedule"
    )
    problem(await svc.http.post("/lives", json=body, headers=w.other_staff), 403, "not_allowed_to_schedule")
    for allowed in (w.as_bia, w.luma_staff, w.admin):
        assert (await w.schedule(allowed))["status"] == "scheduled"
    assert len(await w.get(f"/lives?host_id={w.ana}")) == 3


async def test_bad_schedules_are_refused_naming_the_field_and_change_nothing(svc: RunningService) -> None:
    w = World(svc)
    past = (svc.clock.now() - timedelta(minutes=1)).isoformat()
    cases: list[tuple[dict[str, Any], int, str | None, str]] = [
        ({"title": ""}, 422, None, "body.title"),
        ({"title": "   "}, 422, "blank_title", "title"),
        ({"host_ids": []}, 422, None, "body.host_ids"),
        ({"scheduled_start_at": "2025-05-01T20:00:00"}, 422, None, "body.scheduled_start_at"),
        ({"scheduled_start_at": past}, 422, "start_not_in_future", "scheduled_start_at"),
        ({"host_ids": [w.ana, w.ana]}, 422, "duplicate_host", "host_ids"),
        (
            {"showcase": [{"product_id": w.serum, "brand_id": "brd_nope"}]},
            422,
            "brand_not_on_live",
            "showcase[0].brand_id",
        ),
        ({"surprise": 1}, 422, None, "body.surprise"),
        ({"brands": [{"brand_id": w.glow}]}, 422, None, "body.brands.0.agreement_id"),
    ]
    for overrides, status, code, field in cases:
        problem(
            await svc.http.post("/lives", json=w.schedule_body(**overrides), headers=w.as_ana),
            status,
            code,
            field,
        )
    assert await w.get(f"/lives?host_id={w.ana}") == []


async def test_the_same_idempotency_key_schedules_once(svc: RunningService) -> None:
    w = World(svc)
    headers = {**w.as_ana, "Idempotency-Key": "schedule-1"}
    first = await svc.http.post("/lives", json=w.schedule_body(), headers=headers)
    again = await svc.http.post("/lives", json=w.schedule_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["live_id"] == again.json()["live_id"]
    assert len(await w.get(f"/lives?host_id={w.ana}")) == 1
    other = await svc.http.post(
        "/lives", json=w.schedule_body(), headers={**w.as_ana, "Idempotency-Key": "schedule-2"}
    )
    assert other.json()["live_id"] != first.json()["live_id"]


async def test_lifecycle_refusals(svc: RunningService) -> None:
    w = World(svc)
    live_id = (await w.schedule())["live_id"]
    problem(await svc.http.post(f"/lives/{live_id}/end", headers=w.as_ana), 409, "live_not_on_air")
    problem(
        await svc.http.put(f"/lives/{live_id}/pin", json={"product_id": w.serum}, headers=w.as_ana),
        409,
        "live_not_on_air",
    )
    problem(await svc.http.post(f"/lives/{live_id}/start", headers=w.viewer), 403, "role_required")
    problem(
        await svc.http.post(f"/lives/{live_id}/start", headers=w.other_influencer), 403, "not_live_operator"
    )
    problem(await svc.http.post(f"/lives/{live_id}/start", headers=w.other_staff), 403, "not_live_operator")
    problem(
        await svc.http.post(
            f"/lives/{live_id}/reschedule", json={"scheduled_start_at": "soon"}, headers=w.as_ana
        ),
        422,
        None,
        "body.scheduled_start_at",
    )
    cancelled = await svc.http.post(f"/lives/{live_id}/cancel", json={"reason": "host ill"}, headers=w.admin)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "host ill")
    problem(await svc.http.post(f"/lives/{live_id}/start", headers=w.as_ana), 409, "live_not_scheduled")
    problem(await svc.http.post(f"/lives/{live_id}/cancel", headers=w.as_ana), 409, "live_not_scheduled")


async def test_unknown_lives_and_deals_are_not_found(svc: RunningService) -> None:
    w = World(svc)
    missing = f"liv_missing_{uuid.uuid4().hex[:6]}"
    for reply in (
        await svc.http.get(f"/lives/{missing}", headers=w.viewer),
        await svc.http.get(f"/lives/{missing}/pin", headers=w.viewer),
        await svc.http.get(f"/lives/{missing}/deals", headers=w.viewer),
        await svc.http.get(f"/lives/{missing}/payment-terms", headers=w.viewer),
        await svc.http.get(f"/lives/{missing}/timeline", headers=w.viewer),
        await svc.http.get(f"/lives/{missing}/audience", headers=w.viewer),
        await svc.http.post(f"/lives/{missing}/start", headers=w.as_ana),
        await svc.http.post(f"/lives/{missing}/audience/heartbeats", headers=w.viewer),
        await w.start_deal(missing),
    ):
        problem(reply, 404, "live_not_found")
    live_id = await w.on_air()
    problem(await svc.http.get(f"/lives/{live_id}/deals/deal_nope", headers=w.viewer), 404, "deal_not_found")
    problem(
        await svc.http.post(f"/lives/{live_id}/deals/deal_nope/cancel", headers=w.as_ana),
        404,
        "deal_not_found",
    )
    problem(await svc.http.get("/lives/bad id", headers=w.viewer), 422, None, "path.live_id")
    problem(await svc.http.get(f"/lives/{live_id}"), 401)


# --- pins, deals, terms ---------------------------------------------------------------------


async def test_pin_rules(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    problem(await svc.http.delete(f"/lives/{live_id}/pin", headers=w.as_ana), 409, "nothing_pinned")
    problem(
        await svc.http.put(f"/lives/{live_id}/pin", json={"product_id": "prd_nope"}, headers=w.as_ana),
        422,
        "not_in_showcase",
        "product_id",
    )
    problem(
        await svc.http.put(
            f"/lives/{live_id}/pin", json={"product_id": w.serum, "sku_id": "sku_nope"}, headers=w.as_ana
        ),
        422,
        "sku_not_in_showcase",
        "sku_id",
    )
    problem(
        await svc.http.put(f"/lives/{live_id}/pin", json={"product_id": w.serum}, headers=w.luma_staff),
        403,
        "brand_not_yours",
        "product_id",
    )
    problem(
        await svc.http.put(f"/lives/{live_id}/pin", json={}, headers=w.as_ana), 422, None, "body.product_id"
    )
    assert (
        await svc.http.put(f"/lives/{live_id}/pin", json={"product_id": w.serum}, headers=w.glow_staff)
    ).status_code == 200
    replaced = await svc.http.put(
        f"/lives/{live_id}/pin", json={"product_id": w.lipstick}, headers=w.luma_staff
    )
    assert replaced.json()["pin"]["product_id"] == w.lipstick
    problem(
        await svc.http.delete(f"/lives/{live_id}/pin?product_id={w.serum}", headers=w.as_ana),
        409,
        "not_pinned",
        "product_id",
    )
    unpinned = await svc.http.delete(f"/lives/{live_id}/pin?product_id={w.lipstick}", headers=w.as_ana)
    assert unpinned.json() == {"pin": None}
    assert await w.timeline_types(live_id) == [
        "LiveScheduled",
        "LiveStarted",
        "ProductPinned",
        "ProductUnpinned",
        "ProductPinned",
        "ProductUnpinned",
    ]


async def test_deal_rules(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    problem(await w.start_deal(live_id, per_buyer_cap=41), 422, "per_buyer_cap_out_of_range", "per_buyer_cap")
    problem(await w.start_deal(live_id, units=0), 422, None, "body.units")
    problem(
        await w.start_deal(live_id, deal_price={"amount": 0, "currency": "BRL"}),
        422,
        "price_not_positive",
        "deal_price.amount",
    )
    problem(
        await w.start_deal(live_id, deal_price={"amount": 89.9, "currency": "BRL"}),
        422,
        None,
        "body.deal_price.amount",
    )
    problem(
        await w.start_deal(live_id, deal_price={"amount": 8990, "currency": "brl"}),
        422,
        None,
        "body.deal_price.currency",
    )
    problem(await w.start_deal(live_id, sku_id="sku_nope"), 422, "sku_not_in_showcase", "sku_id")
    problem(await w.start_deal(live_id, w.luma_staff), 403, "brand_not_yours", "product_id")
    problem(await w.start_deal(live_id, w.viewer), 403, "role_required")
    first = await w.start_deal(live_id)
    assert first.status_code == 201, first.text
    problem(await w.start_deal(live_id), 409, "deal_already_active", "sku_id")
    other_sku = await w.start_deal(live_id, sku_id=w.sku50)
    assert other_sku.status_code == 201, other_sku.text
    deal_id = first.json()["deal_id"]
    problem(
        await svc.http.post(f"/lives/{live_id}/deals/{deal_id}/cancel", headers=w.luma_staff),
        403,
        "brand_not_yours",
    )
    cancelled = await svc.http.post(f"/lives/{live_id}/deals/{deal_id}/cancel", headers=w.glow_staff)
    assert (cancelled.json()["active"], cancelled.json()["end_reason"]) == (False, "cancelled")
    assert cancelled.json()["ended_by"].startswith("usr_gina_")
    problem(
        await svc.http.post(f"/lives/{live_id}/deals/{deal_id}/cancel", headers=w.as_ana),
        409,
        "deal_not_active",
    )
    assert (await w.start_deal(live_id)).status_code == 201
    active = await w.get(f"/lives/{live_id}/deals?active=true")
    assert len(active) == 2
    assert len(await w.get(f"/lives/{live_id}/deals")) == 3


async def test_the_same_idempotency_key_starts_one_deal(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    headers = {**w.as_ana, "Idempotency-Key": "deal-1"}
    first, again = await w.start_deal(live_id, headers), await w.start_deal(live_id, headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["deal_id"] == again.json()["deal_id"]
    assert len(await w.get(f"/lives/{live_id}/deals")) == 1


async def test_a_deal_ends_at_its_deadline_by_the_clock(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    deal = (await w.start_deal(live_id, duration_ms=5_000)).json()
    svc.clock.advance(timedelta(seconds=6))

    async def ended() -> dict[str, Any] | None:
        view: dict[str, Any] = await w.get(f"/lives/{live_id}/deals/{deal['deal_id']}")
        return view if view["end_reason"] else None

    view = await wait_until_async(ended, timeout=15)
    assert view["end_reason"] == "deadline"
    assert view["ended_at"] == view["ends_at"]
    assert (await w.get(f"/lives/{live_id}"))["active_deals"] == []


async def test_a_deal_ends_when_the_catalog_reserves_its_last_unit(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    deal_id = (await w.start_deal(live_id, units=3, per_buyer_cap=2)).json()["deal_id"]
    svc.publish(
        w.reserved(deal_id, quantity=2, left=1), w.reserved("deal_of_someone_else", quantity=1, left=0)
    )

    async def reserved_two() -> dict[str, Any] | None:
        view: dict[str, Any] = await w.get(f"/lives/{live_id}/deals/{deal_id}")
        return view if view["units_reserved"] == 2 else None

    assert (await wait_until_async(reserved_two, timeout=30))["units_left"] == 1
    await svc.settle()
    assert (await w.get(f"/lives/{live_id}/deals/{deal_id}"))["active"] is True

    svc.publish(w.reserved(deal_id, quantity=1, left=0))

    async def sold_out() -> dict[str, Any] | None:
        view: dict[str, Any] = await w.get(f"/lives/{live_id}/deals/{deal_id}")
        return view if view["end_reason"] else None

    view = await wait_until_async(sold_out, timeout=30)
    assert (view["end_reason"], view["ended_by"], view["units_left"]) == ("sold_out", None, 0)
    await svc.settle()
    assert (await w.timeline_types(live_id)).count("FlashDealEnded") == 1
    released = StockReleased(
        sku_id=w.sku30,
        product_id=w.serum,
        brand_id=w.glow,
        reservation_id="res_1",
        order_id="ord_1",
        quantity=1,
        deal_id=deal_id,
        reason="order_cancelled",
        available_after=10,
        occurred_at=svc.clock.now(),
    )
    svc.publish(released)

    async def released_one() -> dict[str, Any] | None:
        view: dict[str, Any] = await w.get(f"/lives/{live_id}/deals/{deal_id}")
        return view if view["units_reserved"] == 2 else None

    await wait_until_async(released_one, timeout=30)
    ready = await svc.http.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_payment_terms_rules(svc: RunningService) -> None:
    w = World(svc)
    live_id = await w.on_air()
    path = f"/lives/{live_id}/payment-terms"
    problem(
        await svc.http.post(path, json={"max_installments": 6, "interest_free": True}, headers=w.glow_staff),
        403,
        "brand_not_yours",
        "brand_id",
    )
    problem(
        await svc.http.post(
            path,
            json={"brand_id": "brd_nope", "max_installments": 6, "interest_free": True},
            headers=w.as_ana,
        ),
        422,
        "brand_not_on_live",
        "brand_id",
    )
    problem(
        await svc.http.post(path, json={"max_installments": 49, "interest_free": True}, headers=w.as_ana),
        422,
        "installments_out_of_range",
        "max_installments",
    )
    problem(
        await svc.http.post(path, json={"max_installments": 6}, headers=w.as_ana),
        422,
        None,
        "body.interest_free",
    )
    lapsed = (svc.clock.now() - timedelta(seconds=1)).isoformat()
    problem(
        await svc.http.post(
            path, json={"max_installments": 6, "interest_free": True, "valid_until": lapsed}, headers=w.as_ana
        ),
        422,
        "valid_until_not_in_future",
        "valid_until",
    )
    until = svc.clock.now() + timedelta(minutes=10)
    offered = await svc.http.post(
        path,
        json={"max_installments": 10, "interest_free": False, "valid_until": until.isoformat()},
        headers=w.admin,
    )
    assert offered.status_code == 201, offered.text
    assert (offered.json()["brand_id"], offered.json()["active"]) == (None, True)
    svc.clock.advance(timedelta(minutes=11))
    (terms,) = await w.get(path)
    assert terms["active"] is False


# --- audience -------------------------------------------------------------------------------


async def test_heartbeats_become_one_audience_window_per_minute(svc: RunningService) -> None:
    w = World(svc)
    # Start half a second past a minute: windows are minute-aligned, so the first one lasts 59.5 s.
    now = svc.clock.now()
    svc.clock.advance(
        timedelta(minutes=1) - (now - now.replace(second=0, microsecond=0)) + timedelta(seconds=0.5)
    )
    live_id = await w.on_air()
    viewers = [svc.headers(f"usr_viewer_{i}_{uuid.uuid4().hex[:4]}", "viewer") for i in range(3)]
    for headers in viewers:
        reply = await svc.http.post(
            f"/lives/{live_id}/audience/heartbeats", json={"likes": 2}, headers=headers
        )
        assert reply.status_code == 202, reply.text
    problem(
        await svc.http.post(f"/lives/{live_id}/audience/heartbeats", json={"likes": -1}, headers=w.viewer),
        422,
        None,
        "body.likes",
    )
    svc.clock.advance(timedelta(seconds=61))

    async def windows() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = await w.get(f"/lives/{live_id}/timeline?type=AudienceSampled")
        return found or None

    first = (await wait_until_async(windows, timeout=15))[0]
    assert (first["data"]["peak_concurrent_viewers"], first["data"]["joins"], first["data"]["likes"]) == (
        3,
        3,
        6,
    )
    assert first["data"]["concurrent_viewers"] == 0  # nobody heartbeated within the presence time
    assert first["live_offset_ms"] == (
        at(first["data"]["window_end"]) - at((await w.get(f"/lives/{live_id}"))["started_at"])
    ) // timedelta(milliseconds=1)
    audience = await w.get(f"/lives/{live_id}/audience")
    assert audience["peak_concurrent_viewers"] == 3
    assert audience["likes"] == 6

    await svc.http.post(f"/lives/{live_id}/audience/heartbeats", headers=viewers[0])
    await svc.http.post(f"/lives/{live_id}/end", headers=w.as_ana)
    ended_at = at((await w.get(f"/lives/{live_id}"))["ended_at"])

    async def last_window() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = await w.get(f"/lives/{live_id}/timeline?type=AudienceSampled")
        return found if found and at(found[-1]["data"]["window_end"]) == ended_at else None

    recorded = await wait_until_async(last_window, timeout=15)
    assert [at(e["data"]["window_start"]) for e in recorded[1:]] == [
        at(e["data"]["window_end"]) for e in recorded[:-1]
    ]
    assert recorded[-1]["data"]["concurrent_viewers"] == 1
    problem(
        await svc.http.post(f"/lives/{live_id}/audience/heartbeats", headers=w.viewer), 409, "live_not_on_air"
    )


async def test_the_openapi_document_lists_every_route(svc: RunningService) -> None:
    paths = (await svc.http.get("/openapi.json")).json()["paths"]
    assert set(paths) >= {
        "/lives",
        "/lives/{live_id}",
        "/lives/{live_id}/reschedule",
        "/lives/{live_id}/cancel",
        "/lives/{live_id}/start",
        "/lives/{live_id}/end",
        "/lives/{live_id}/pin",
        "/lives/{live_id}/deals",
        "/lives/{live_id}/deals/{deal_id}",
        "/lives/{live_id}/deals/{deal_id}/cancel",
        "/lives/{live_id}/payment-terms",
        "/lives/{live_id}/audience/heartbeats",
        "/lives/{live_id}/audience",
        "/lives/{live_id}/timeline",
    }
    assert json.dumps(paths)  # serialisable
