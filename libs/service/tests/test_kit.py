"""The service kit end to end with a toy service: real SQLite store, real Kafka, real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from shopstream_eventstore import RecordedEvent
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_processing import IssuedCommand, Statement, Table, TableNames
from shopstream_service.auth import Authenticated, Principal, require_roles
from shopstream_service.clock import SystemClock
from shopstream_service.commands import CommandHandler
from shopstream_service.domain import DomainEvent, InternalEvent, Invalid, NotFound
from shopstream_service.events import EventCatalog
from shopstream_service.http import context_of, correlation_id
from shopstream_service.runtime import PolicyBinding, ServiceContext, ServiceSpec
from shopstream_service.testing import RunningService, running_service

pytestmark = pytest.mark.integration


class Added(InternalEvent):
    type_name: ClassVar[str] = "shopstream.toy.internal.Added"
    tally_id: str
    amount: int
    by: str


@dataclass(frozen=True)
class Add:
    tally_id: str
    amount: int
    by: str
    at: datetime


class TallyDecider:
    def initial_state(self) -> int:
        return 0

    def evolve(self, state: int, event: DomainEvent) -> int:
        return state + event.amount if isinstance(event, Added) else state

    def decide(self, command: Add, state: int) -> Sequence[DomainEvent]:
        if state + command.amount > 100:
            raise Invalid("tally_full", f"a tally holds at most 100, it holds {state}", field="amount")
        return [Added(tally_id=command.tally_id, amount=command.amount, by=command.by)]


class Tallies:
    name = "tallies"
    version = 1
    tables = (Table("tallies", "tally_id text PRIMARY KEY, total bigint NOT NULL"),)

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        table = tables["tallies"]
        return [
            Statement(
                f"INSERT INTO {table} (tally_id, total) VALUES ($1, $2) "
                f"ON CONFLICT (tally_id) DO UPDATE SET total = {table}.total + excluded.total",
                (e.data["tally_id"], e.data["amount"]),
            )
            for e in events
            if e.type == Added.type_name
        ]


class BonusOnThirteen:
    """Adding exactly 13 earns a bonus of 1 on the tally: a policy with a derived command id."""

    name = "bonus-on-13"

    def react(self, event: RecordedEvent) -> Sequence[Add]:
        if event.type == Added.type_name and event.data["amount"] == 13:
            return [Add(event.data["tally_id"], 1, "policy", event.metadata.occurred_at)]
        return []


class AddBody(BaseModel):
    amount: int = Field(gt=0, le=50)


router = APIRouter()
Writer = Annotated[Principal, Depends(require_roles("influencer"))]


@router.post("/tallies/{tally_id}/add", status_code=201)
async def add(
    tally_id: str,
    body: AddBody,
    principal: Writer,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    context = context_of(request)
    command = Add(tally_id, body.amount, principal.subject, context.clock.now())
    command_id = (
        uuid.uuid5(uuid.NAMESPACE_URL, f"{principal.subject}/{idempotency_key}")
        if idempotency_key
        else uuid.uuid4()
    )
    stream = f"tally-{tally_id}"
    outcome = await context.handler.execute(
        TallyDecider(), stream, command, command_id=command_id, correlation_id=correlation_id(request)
    )
    await context.wait_for(outcome.position)
    return {"version": outcome.version, "duplicate": outcome.duplicate}


@router.get("/tallies/{tally_id}")
async def read(tally_id: str, _: Authenticated, request: Request) -> dict[str, Any]:
    db = context_of(request).readmodel
    rows = await db.fetch("SELECT total FROM tallies WHERE tally_id = $1", tally_id)
    if not rows:
        raise NotFound("tally_not_found", f"no tally {tally_id!r}")
    return {"tally_id": tally_id, "total": rows[0][0]}


def toy_spec() -> ServiceSpec:
    def policies(context: ServiceContext) -> Sequence[PolicyBinding]:
        async def handle(issued: IssuedCommand[Add]) -> object:
            stream = f"tally-{issued.command.tally_id}"
            return await context.handler.execute_issued(TallyDecider(), stream, issued)

        return [PolicyBinding(BonusOnThirteen(), handle)]

    return ServiceSpec(
        name="toy", routers=[router], internal_events=[Added], projections=[Tallies()], policies=policies
    )


@pytest.fixture
async def toy(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[RunningService]:
    async with running_service(
        toy_spec(), kafka_bootstrap=kafka_bootstrap, store_url=f"sqlite:///{tmp_path}/toy.sqlite"
    ) as service:
        yield service


async def test_a_command_is_applied_and_readable_at_once(toy: RunningService) -> None:
    ana = toy.headers("ana", "influencer")
    created = await toy.http.post("/tallies/t1/add", json={"amount": 5}, headers=ana)
    assert created.status_code == 201, created.text
    assert created.json() == {"version": 0, "duplicate": False}
    read = await toy.http.get("/tallies/t1", headers=ana)
    assert read.json() == {"tally_id": "t1", "total": 5}


async def test_the_same_idempotency_key_twice_writes_once(toy: RunningService) -> None:
    ana = {**toy.headers("ana", "influencer"), "Idempotency-Key": "k-1"}
    first = await toy.http.post("/tallies/t2/add", json={"amount": 7}, headers=ana)
    again = await toy.http.post("/tallies/t2/add", json={"amount": 7}, headers=ana)
    assert first.json()["duplicate"] is False
    assert again.json()["duplicate"] is True
    assert (await toy.http.get("/tallies/t2", headers=ana)).json()["total"] == 7


async def test_concurrent_commands_on_one_stream_all_apply(toy: RunningService) -> None:
    ana = toy.headers("ana", "influencer")
    replies = await asyncio.gather(
        *(toy.http.post("/tallies/t3/add", json={"amount": 2}, headers=ana) for _ in range(20))
    )
    assert [r.status_code for r in replies] == [201] * 20
    assert sorted(r.json()["version"] for r in replies) == list(range(20))
    assert (await toy.http.get("/tallies/t3", headers=ana)).json()["total"] == 40


async def test_errors_are_precise_problems(toy: RunningService) -> None:
    ana = toy.headers("ana", "influencer")
    missing = await toy.http.post("/tallies/t4/add", json={"amount": 5})
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = await toy.http.get("/tallies/t4", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    viewer = await toy.http.post("/tallies/t4/add", json={"amount": 5}, headers=toy.headers("bob", "viewer"))
    assert viewer.status_code == 403
    assert viewer.json()["code"] == "role_required"
    invalid = await toy.http.post("/tallies/t4/add", json={"amount": 500}, headers=ana)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "body.amount"
    unknown = await toy.http.get("/tallies/nope", headers=ana)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "tally_not_found"
    for _ in range(2):
        assert (await toy.http.post("/tallies/t4/add", json={"amount": 50}, headers=ana)).status_code == 201
    full = await toy.http.post("/tallies/t4/add", json={"amount": 1}, headers=ana)
    assert full.status_code == 422
    assert full.json()["code"] == "tally_full"
    assert full.json()["errors"] == [{"field": "amount", "reason": "a tally holds at most 100, it holds 100"}]
    assert (await toy.http.get("/tallies/t4", headers=ana)).json()["total"] == 100


async def test_a_policy_acts_once_per_event(toy: RunningService) -> None:
    ana = toy.headers("ana", "influencer")
    await toy.http.post("/tallies/t5/add", json={"amount": 13}, headers=ana)
    await toy.settle()
    assert (await toy.http.get("/tallies/t5", headers=ana)).json()["total"] == 14
    events = await toy.context.store.read_stream("tally-t5")
    assert [e.data["by"] for e in events] == ["ana", "policy"]
    assert events[1].metadata.causation_id == str(events[0].event_id)


async def test_health_readiness_metrics_correlation_and_clock(toy: RunningService) -> None:
    assert (await toy.http.get("/healthz")).json() == {"status": "ok"}
    ready = await toy.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["projection:tallies"]["ok"]
    ana = toy.headers("ana", "influencer")
    reply = await toy.http.post(
        "/tallies/t6/add", json={"amount": 1}, headers={**ana, "X-Correlation-ID": "corr-42"}
    )
    assert reply.headers["x-correlation-id"] == "corr-42"
    (event,) = await toy.context.store.read_stream("tally-t6")
    assert event.metadata.correlation_id == "corr-42"
    metrics = (await toy.http.get("/metrics")).text
    assert 'shopstream_events_appended_total{service="toy"}' in metrics
    before = toy.clock.now()
    admin = toy.headers("root", "admin")
    moved = await toy.http.post("/admin/clock", json={"advance_seconds": 3600}, headers=admin)
    assert moved.status_code == 200
    assert (toy.clock.now() - before).total_seconds() >= 3600
    denied = await toy.http.post("/admin/clock", json={"advance_seconds": 1}, headers=ana)
    assert denied.status_code == 403


async def test_a_retry_answers_as_the_first_time_even_if_deciding_again_would_refuse(
    toy: RunningService,
) -> None:
    ana = toy.headers("ana", "influencer")
    await toy.http.post("/tallies/t7/add", json={"amount": 50}, headers=ana)
    keyed = {**ana, "Idempotency-Key": "fill-up"}
    first = await toy.http.post("/tallies/t7/add", json={"amount": 50}, headers=keyed)
    retry = await toy.http.post("/tallies/t7/add", json={"amount": 50}, headers=keyed)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == {"version": 1, "duplicate": True}
    assert (await toy.http.get("/tallies/t7", headers=ana)).json()["total"] == 100


# The command handler's cache of folded states: a cached stream is read from its cached version on,
# so what another writer appended (a second replica on the same store) is always decided on, and
# a retried command still answers as the first time did.

DECIDER = TallyDecider()
STREAM = "tally-t1"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    opened = await SqliteEventStore.open(str(tmp_path / "store.sqlite"))
    try:
        yield opened
    finally:
        await opened.close()


def replica(store: SqliteEventStore) -> CommandHandler:
    return CommandHandler(store, EventCatalog([Added]), SystemClock(), service="toy")


def adding(amount: int) -> Add:
    return Add("t1", amount, "usr_a", datetime.now(UTC))


async def test_a_cached_state_sees_what_another_writer_appended(store: SqliteEventStore) -> None:
    first, second = replica(store), replica(store)
    await first.execute(DECIDER, STREAM, adding(60), command_id=uuid.uuid4())
    assert await first.load(DECIDER, STREAM) == (60, 0)  # cached by the first replica

    await second.execute(DECIDER, STREAM, adding(40), command_id=uuid.uuid4())

    assert await first.load(DECIDER, STREAM) == (100, 1)
    with pytest.raises(Invalid):  # decided on 100, not on the cached 60
        await first.execute(DECIDER, STREAM, adding(1), command_id=uuid.uuid4())
    assert len(await store.read_stream(STREAM)) == 2


async def test_a_retry_on_a_cached_stream_writes_nothing_and_answers_as_the_first_time(
    store: SqliteEventStore,
) -> None:
    handler = replica(store)
    retried = uuid.uuid4()
    first = await handler.execute(DECIDER, STREAM, adding(70), command_id=retried)
    await handler.execute(DECIDER, STREAM, adding(20), command_id=uuid.uuid4())

    # Deciding again would refuse (90 + 70 > 100): the retry must be told from the stream.
    again = await handler.execute(DECIDER, STREAM, adding(70), command_id=retried)

    assert again.duplicate
    assert again.events == [Added(tally_id="t1", amount=70, by="usr_a")]
    assert again.position == first.position
    assert [e.data["amount"] for e in await store.read_stream(STREAM)] == [70, 20]


async def test_a_long_stream_is_folded_once_then_only_its_tail(store: SqliteEventStore) -> None:
    handler = replica(store)
    for _ in range(50):
        await handler.execute(DECIDER, STREAM, adding(1), command_id=uuid.uuid4())
    reads: list[int] = []
    read_stream = store.read_stream

    async def counting(stream_id: str, from_version: int = 0) -> list[RecordedEvent]:
        events = await read_stream(stream_id, from_version)
        reads.append(len(events))
        return events

    store.read_stream = counting  # type: ignore[method-assign]
    await handler.execute(DECIDER, STREAM, adding(1), command_id=uuid.uuid4())
    assert reads == [1]  # only what the previous command wrote is read and folded, not 50 events
    assert await handler.load(DECIDER, STREAM) == (51, 50)
