"""Horizontal scale: two processes of one service on one PostgreSQL store and real Kafka.

Replicas share the inbox's consumer group, so Kafka splits the consumed topics' partitions
between them, and a replica that dies hands its partitions to the survivor (after the group's
session timeout). They share the event store — the inbox deduplicates by event id, a command
appends at the stream's expected version and decides again on a concurrent write — and the
read-model tables: each projection batch lands once (the runners compare-and-set the
checkpoint; the one that loses the race reloads and follows on, which is no failure). Both
replicas' relays publish every event, so Kafka holds most of the service's events twice; the
consumers deduplicate by ``ce_id``. Policies run on both replicas too, and a policy's command
id derives from its cause, so the second execution writes nothing.

None of that may show in the business outcome: these tests check it does not.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

from shopstream_catalog.bootstrap import CONSUMES as CATALOG_TOPICS
from shopstream_cli.platform import Platform, ServiceProcess, running_platform
from shopstream_cli.sale import run_live_sale
from shopstream_contracts.catalog.v1 import StockReservationRejected, StockReserved
from shopstream_contracts.topics import CATALOG_STOCK
from shopstream_infra.procs import free_ports
from shopstream_messaging.cloudevents import decode
from shopstream_service.auth import mint_token
from shopstream_service.settings import ServiceSettings
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.faults

PARTITIONS = 6  # the Platform's topics
DEAL_UNITS = 20
BUYERS = 80

Json = dict[str, Any]
Sample = tuple[str, dict[str, str], float]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path, store="postgres", clock_control=True) as running:
        yield running


def _headers(subject: str, *roles: str, brands: tuple[str, ...] = ()) -> dict[str, str]:
    settings = ServiceSettings()
    assert settings.jwt_secret is not None
    token = mint_token(
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        subject=subject,
        roles=roles,
        brands=brands,
    )
    return {"Authorization": f"Bearer {token}"}


ADMIN = _headers("usr_scale_admin", "admin")


def add_replica(platform: Platform, service: str, key: str) -> ServiceProcess:
    """Start another process of ``service`` with the same environment (store, Kafka, consumer
    group) on its own HTTP port. Registered in the platform under ``key``: the platform can
    kill it and stops it at the end."""
    (port,) = free_ports(1)
    env = {**platform.services[service].env, "SHOPSTREAM_HTTP_PORT": str(port)}
    replica = ServiceProcess(service, port, platform.workdir / "logs" / f"{key}.log", env)
    platform.services[key] = replica
    replica.start()
    platform.wait_ready(60, (key,))
    return replica


# --- what a replica says about itself (/metrics) ----------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


async def metrics(client: httpx.AsyncClient, url: str) -> list[Sample]:
    reply = await client.get(f"{url}/metrics")
    reply.raise_for_status()
    samples = []
    for line in reply.text.splitlines():
        if match := _SAMPLE.match(line):
            samples.append((match["name"], dict(_LABEL.findall(match["labels"])), float(match["value"])))
    return samples


def metric(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(v for n, found, v in samples if n == name and labels.items() <= found.items())


def consumed_partitions(samples: list[Sample]) -> set[tuple[str, int]]:
    """The partitions this process's inbox has stored a batch from (it reports their lag)."""
    return {
        (labels["topic"], int(labels["partition"]))
        for name, labels, _ in samples
        if name == "shopstream_consumer_lag_messages"
    }


# --- what Kafka says -----------------------------------------------------------------------------------


def group_members(bootstrap: str, group: str) -> list[set[tuple[str, int]]] | None:
    """Each member's partitions once the group is stable; None while it rebalances."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    if description.state != ConsumerGroupState.STABLE:
        return None
    return [
        {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}
        for member in description.members
    ]


def uncommitted(bootstrap: str, group: str, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    """Messages past the group's committed offset, per partition that has any."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        behind = {}
        for tp in consumer.committed(partitions, timeout=10):
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if high > max(tp.offset, 0):
                behind[(tp.topic, tp.partition)] = high - max(tp.offset, 0)
        return behind
    finally:
        consumer.close()


def topic_events(bootstrap: str, topic: str) -> list[tuple[str, str, Json]]:
    """(ce_id, ce_type, data) of every message on ``topic``, duplicates included."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"scale-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        ends: dict[int, int] = {}
        assignment = []
        for partition in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(topic, partition, low))
        consumer.assign(assignment)
        events = []
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            event = decode(message.key(), message.value(), message.headers())
            events.append((event.id, event.type, event.data))
            at, offset = message.partition(), message.offset()
            assert at is not None
            assert offset is not None
            if offset + 1 >= ends[at]:
                del ends[at]
        assert not ends, f"could not read {topic} to its end: {ends}"
        return events
    finally:
        consumer.close()


# --- clocks ------------------------------------------------------------------------------------------


async def _now(client: httpx.AsyncClient, url: str) -> datetime:
    reply = await client.post(f"{url}/admin/clock", headers=ADMIN, json={"advance_seconds": 0.001})
    reply.raise_for_status()
    return datetime.fromisoformat(reply.json()["now"])


async def align_clock(client: httpx.AsyncClient, leader: str, follower: str) -> None:
    """Replicas of a service share the time; the sale driver moves only the clock of the replica
    it talks to, so the other one follows it here."""
    behind = (await _now(client, leader) - await _now(client, follower)).total_seconds()
    if behind > 0:
        reply = await client.post(f"{follower}/admin/clock", headers=ADMIN, json={"advance_seconds": behind})
        reply.raise_for_status()


async def assert_replicas_healthy(client: httpx.AsyncClient, *replicas: ServiceProcess) -> None:
    """Sharing projections is no failure: no runner ever failed, both replicas are ready."""
    for replica in replicas:
        samples = await metrics(client, replica.url)
        assert metric(samples, "shopstream_processing_failures_total") == 0, [
            s for s in samples if s[0] == "shopstream_processing_failures_total" and s[2]
        ]
        assert (await client.get(f"{replica.url}/readyz")).status_code == 200


# --- 1. two catalog replicas through a live sale, one killed ------------------------------------------


async def test_two_catalog_replicas_split_the_partitions_and_the_survivor_takes_over_a_kill_9(
    platform: Platform,
) -> None:
    assert platform.kafka is not None
    bootstrap = platform.kafka.bootstrap_servers
    group = "shopstream.catalog.inbox"
    every_partition = {(topic, p) for topic in CATALOG_TOPICS for p in range(PARTITIONS)}
    victim = platform.services["catalog"]
    survivor = add_replica(platform, "catalog", "catalog-2")

    async def members() -> list[set[tuple[str, int]]] | None:
        return await asyncio.to_thread(group_members, bootstrap, group)

    async def split_in_two() -> bool:
        found = await members()
        return bool(found and len(found) == 2 and all(found) and not found[0] & found[1])

    await wait_until_async(split_in_two, timeout=30, interval=0.2, message="the group splits the partitions")
    assert set().union(*(await members() or [])) == every_partition

    seen: dict[str, list[Sample]] = {}
    happened: list[str] = []
    background: list[asyncio.Task[None]] = []

    async with httpx.AsyncClient(timeout=10) as client:

        async def both_consuming_the_sale() -> bool:
            stats = await client.get(f"{platform.url('orders')}/stats/orders", headers=ADMIN)
            if stats.status_code != 200 or stats.json()["by_status"].get("confirmed", 0) < 1:
                return False
            for name, replica in (("victim", victim), ("survivor", survivor)):
                seen[name] = await metrics(client, replica.url)
            return all(
                metric(samples, "shopstream_inbox_received_total", outcome="stored") > 0
                for samples in seen.values()
            )

        async def strike() -> None:
            await wait_until_async(
                both_consuming_the_sale, timeout=120, interval=0.05, message="both replicas consume the sale"
            )
            platform.kill9("catalog")
            killed = time.monotonic()
            happened.append("killed")

            async def handed_over() -> bool:
                return await members() == [every_partition]

            # The dead member's session expires (10 s), the group rebalances onto the survivor.
            await wait_until_async(handed_over, timeout=40, interval=0.2, message="the survivor takes over")
            happened.append("handed over")
            print(f"handover {time.monotonic() - killed:.1f}s after the kill")

        async def on_phase(name: str) -> None:
            if not happened:
                try:
                    await align_clock(client, survivor.url, victim.url)
                except httpx.TransportError:
                    if not happened:  # not just the victim dying under the request
                        raise
            if name == "flash_sale":
                background.append(asyncio.create_task(strike()))
            elif name == "report" and background:
                await background[0]

        # The driver talks to the survivor; the victim only consumes, reacts and publishes.
        urls = {name: platform.url(name) for name in ("live", "chat", "orders", "commission")}
        report = await run_live_sale(
            {**urls, "catalog": survivor.url}, buyers=BUYERS, deal_units=DEAL_UNITS, on_phase=on_phase
        )
        print("phases", report.timings_seconds)
        assert happened == ["killed", "handed over"]

        # The sale reconciles: no oversell, no lost or doubled order, exact accruals.
        assert report.checks.failing() == {}, report.checks
        assert report.reconciled
        assert report.deal.units_sold == DEAL_UNITS

        # Both replicas got partitions, disjoint ones, and both stored messages of the sale.
        victims, survivors = consumed_partitions(seen["victim"]), consumed_partitions(seen["survivor"])
        assert victims, victims
        assert survivors, survivors
        assert not victims & survivors, (victims, survivors)
        for samples in seen.values():  # sharing the projections was no failure on either
            assert metric(samples, "shopstream_processing_failures_total") == 0
        # The survivor went on with the victim's partitions, and nothing was left behind.
        assert victims <= consumed_partitions(await metrics(client, survivor.url))

        async def all_committed() -> bool:
            return not await asyncio.to_thread(uncommitted, bootstrap, group, CATALOG_TOPICS)

        await wait_until_async(all_committed, timeout=30, message="every catalog partition committed")
        await assert_replicas_healthy(client, survivor)

    # Every order was decided exactly once by the catalog, though both relays published (Kafka
    # holds duplicates) and the victim died with batches in flight.
    events = await asyncio.to_thread(topic_events, bootstrap, CATALOG_STOCK.name)
    copies = Counter(event_id for event_id, _, _ in events)
    assert max(copies.values()) >= 2, "both relays publish every event: Kafka holds duplicates"
    decisions: dict[str, set[str]] = defaultdict(set)
    answers = {StockReserved.contract.type, StockReservationRejected.contract.type}
    for event_id, event_type, data in events:
        if event_type in answers:
            decisions[data["order_id"]].add(event_id)
    placed = {a.order_id for a in report.attempts if a.order_id is not None}
    assert {order: len(ids) for order, ids in decisions.items() if order in placed} == dict.fromkeys(
        placed, 1
    )


# --- 2. two orders replicas taking commands on the same orders at once --------------------------------


class Client:
    """HTTP to the services, retrying what the API says may be retried as-is: a 409 with
    Retry-After (a concurrent write won; nothing was written)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.conflicts = 0

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: Json | None = None
    ) -> httpx.Response:
        deadline = time.monotonic() + 30
        while True:
            reply = await self.client.request(method, url, headers=dict(headers), json=body)
            if reply.status_code != 409 or "retry-after" not in reply.headers or time.monotonic() > deadline:
                return reply
            self.conflicts += 1
            await asyncio.sleep(0.05)

    async def ok(self, method: str, url: str, headers: Mapping[str, str], body: Json | None = None) -> Any:
        reply = await self.send(method, url, headers, body)
        assert reply.status_code in (200, 201), f"{method} {url}: {reply.status_code} {reply.text[:500]}"
        return reply.json()


async def test_concurrent_commands_on_the_same_orders_through_two_orders_replicas(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    brand, staff = f"brd_scale_{run}", f"usr_staff_{run}"
    product = f"prd_scale_{run}"
    sku = f"{product}-1"
    price, stock = 5000, 40
    as_staff = _headers(staff, "brand", brands=(brand,))
    catalog = platform.url("catalog")
    replicas = [platform.services["orders"], add_replica(platform, "orders", "orders-2")]
    urls = [replica.url for replica in replicas]
    side = itertools.cycle(urls)

    def as_buyer(n: int) -> dict[str, str]:
        return _headers(f"usr_buyer{n}_{run}", "viewer")

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http:
        api = Client(http)
        await api.ok(
            "POST",
            f"{catalog}/brands",
            ADMIN,
            {"brand_id": brand, "name": "Scale", "country": "BR", "default_currency": "BRL"},
        )
        body = {
            "product_id": product,
            "brand_id": brand,
            "title": "Scale serum",
            "skus": [{"options": {"size": "30ml"}, "list_prices": [{"market": "BR", "price": _brl(price)}]}],
        }
        await api.ok("POST", f"{catalog}/products", as_staff, body)
        await api.ok("POST", f"{catalog}/skus/{sku}/stock/receipts", as_staff, {"quantity": stock})

        async def both_sell_it() -> bool:
            for url in urls:
                reply = await http.get(
                    f"{url}/skus/{sku}/quote", params={"market": "BR"}, headers=as_buyer(0)
                )
                if reply.status_code != 200:
                    return False
            return True

        await wait_until_async(both_sell_it, timeout=30, message="both orders replicas price the SKU")

        async def place(n: int, quantity: int, key: str, url: str) -> httpx.Response:
            order = {"sku_id": sku, "quantity": quantity, "market": "BR", "payment_plan": {"method": "pix"}}
            return await api.send("POST", f"{url}/orders", {**as_buyer(n), "Idempotency-Key": key}, order)

        async def order(order_id: str, url: str | None = None) -> Json:
            view: Json = await api.ok("GET", f"{url or urls[0]}/orders/{order_id}", ADMIN)
            return view

        async def confirmed(order_id: str) -> bool:
            return bool((await order(order_id))["status"] == "confirmed")

        async def at_once(*requests: Any) -> list[httpx.Response]:
            return list(await asyncio.gather(*requests))

        # (a) One buyer's checkout sent 16 times at once with one Idempotency-Key, half to each
        # replica: one order, created once; every answer names it.
        replies = await at_once(*(place(1, 2, f"checkout-{run}", next(side)) for _ in range(16)))
        assert sorted(r.status_code for r in replies) == [200] * 15 + [201], [r.text for r in replies]
        (double_clicked,) = {r.json()["order_id"] for r in replies}
        await wait_until_async(
            lambda: confirmed(double_clicked), timeout=30, message="the order is confirmed"
        )
        for url in urls:
            mine = await api.ok("GET", f"{url}/me/orders", as_buyer(1))
            assert [o["order_id"] for o in mine["orders"]] == [double_clicked]

        # (b) 12 one-unit refunds of a 4-unit order at once, from both replicas: 4 go through,
        # the rest are refused; never more refunded than paid.
        refunded = (
            await api.ok(
                "POST",
                f"{urls[1]}/orders",
                {**as_buyer(2), "Idempotency-Key": run},
                {
                    "sku_id": sku,
                    "quantity": 4,
                    "market": "BR",
                    "payment_plan": {"method": "pix"},
                },
            )
        )["order_id"]
        await wait_until_async(lambda: confirmed(refunded), timeout=30, message="the order is confirmed")
        replies = await at_once(
            *(
                api.send(
                    "POST",
                    f"{next(side)}/orders/{refunded}/refunds",
                    {**as_staff, "Idempotency-Key": f"r{n}"},
                    {"quantity": 1},
                )
                for n in range(12)
            )
        )
        codes = Counter(r.status_code for r in replies)
        assert codes[201] == 4, [r.text for r in replies]
        assert {r.json()["code"] for r in replies if r.status_code != 201} <= {
            "order_fully_refunded",
            "refund_quantity_exceeds_order",
        }, [r.text for r in replies]
        for url in urls:
            view = await order(refunded, url)
            assert view["status"] == "refunded"
            assert view["refunded"]["amount"] == view["total"]["amount"] == 4 * price
            assert view["returned_units"] == 4
            assert len(view["refunds"]) == 4

        # (c) Cancel and refund of one order at once, on different replicas: exactly one wins.
        contested = []
        for n in range(3, 9):
            reply = await place(n, 1, f"contested-{run}", urls[n % 2])
            assert reply.status_code == 201, reply.text
            contested.append(reply.json()["order_id"])
        for order_id in contested:
            await wait_until_async(partial(confirmed, order_id), timeout=30, message="contested confirmed")
        winners: Counter[str] = Counter()
        for n, order_id in enumerate(contested):
            cancel_on, refund_on = urls[n % 2], urls[(n + 1) % 2]
            cancel, refund = await at_once(
                api.send("POST", f"{cancel_on}/orders/{order_id}/cancel", as_staff, {"reason": "race"}),
                api.send("POST", f"{refund_on}/orders/{order_id}/refunds", as_staff, {"quantity": 1}),
            )
            view = await order(order_id)
            if cancel.status_code == 200:
                winners["cancel"] += 1
                assert (refund.status_code, refund.json()["code"]) == (409, "order_cancelled")
                assert (view["status"], view["refunds"]) == ("cancelled", [])
            else:
                winners["refund"] += 1
                assert refund.status_code == 201, refund.text
                assert (cancel.status_code, cancel.json()["code"]) == (409, "order_refunded")
                assert (view["status"], len(view["refunds"])) == ("refunded", 1)
            assert view["refunded"]["amount"] == price
        print("cancel/refund winners", dict(winners), "retried conflicts", api.conflicts)

        # The catalog saw every order once and released each returned unit once, though both
        # orders relays published every event: only the double-clicked order's 2 units are held.
        async def stock_settled() -> Json | None:
            figures = await api.ok("GET", f"{catalog}/skus/{sku}/stock", as_staff)
            return figures if figures["reserved"] == 2 else None

        figures = await wait_until_async(stock_settled, timeout=30, message="the catalog releases the units")
        assert figures is not None
        assert (figures["on_hand"], figures["available"]) == (stock, stock - 2)
        for order_id, released in [(double_clicked, 0), (refunded, 4), *((o, 1) for o in contested)]:
            (reservation,) = await api.ok("GET", f"{catalog}/orders/{order_id}/reservations", as_staff)
            assert reservation["released"] == released, reservation
        stats = await api.ok("GET", f"{urls[1]}/stats/orders", ADMIN)
        assert stats["by_status"] == {
            "confirmed": 1,
            "refunded": 1 + winners["refund"],
            **({"cancelled": winners["cancel"]} if winners["cancel"] else {}),
        }
        await assert_replicas_healthy(http, *replicas)


def _brl(amount: int) -> Json:
    return {"amount": amount, "currency": "BRL"}
