"""Running one real service inside a test: its real store, real Kafka, real HTTP server.

``running_service`` starts the service's runtime in the test's event loop on a free port with
a controlled clock, and yields a ``RunningService`` to drive it the way clients and other
services do: HTTP with bearer tokens, contract events produced onto Kafka as CloudEvents.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from confluent_kafka import Producer

from shopstream_contracts import REGISTRY, Event
from shopstream_infra import create_topics
from shopstream_infra.procs import free_ports
from shopstream_messaging.cloudevents import CloudEvent, encode

from .auth import mint_token
from .clock import ControlledClock
from .runtime import ServiceContext, ServiceRuntime, ServiceSpec
from .settings import ServiceSettings


@dataclass
class RunningService:
    runtime: ServiceRuntime
    context: ServiceContext
    http: httpx.AsyncClient
    settings: ServiceSettings
    clock: ControlledClock

    def headers(self, subject: str, *roles: str, brands: Iterable[str] = ()) -> dict[str, str]:
        """Authorization header of a valid token for ``subject`` with ``roles``."""
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

    def publish(self, *events: Event, correlation_id: str | None = None) -> list[str]:
        """Produce contract events onto their topics as another service's relay would; returns
        their ``ce_id``s."""
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap})
        ids = []
        for event in events:
            contract = event.contract
            key = event.aggregate_id
            cloud = CloudEvent(
                id=str(uuid.uuid4()),
                source=contract.topic.source,
                type=contract.type,
                time=self.clock.now(),
                subject=key,
                data=event.to_data(),
                dataversion=contract.version,
                key=key,
                correlationid=correlation_id,
            )
            k, value, headers = encode(cloud)
            wire: list[tuple[str, str | bytes | None]] = list(headers)
            producer.produce(contract.topic.name, key=k, value=value, headers=wire)
            ids.append(cloud.id)
        if producer.flush(30) != 0:
            raise RuntimeError("Kafka did not acknowledge the published events")
        return ids

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every projection and policy has processed the whole store, including what
        the policies themselves appended (asked again until the head stops moving)."""
        async with asyncio.timeout(timeout):
            while True:
                head = await self.context.store.head_position()
                runners = [*self.context.projections.values(), *self.context.policies.values()]
                await asyncio.gather(*(r.wait_until(head, timeout) for r in runners))
                if await self.context.store.head_position() == head:
                    return

    async def advance_clock(self, by: timedelta) -> None:
        self.clock.advance(by)


@asynccontextmanager
async def running_service(
    spec: ServiceSpec,
    *,
    kafka_bootstrap: str,
    store_url: str,
    partitions: int = 3,
) -> AsyncIterator[RunningService]:
    """Start ``spec`` for a test; the consumed and published topics are created first."""
    own = [topic.name for topic in REGISTRY.topics() if topic.service == spec.name]
    create_topics(kafka_bootstrap, [*spec.consumes, *own], partitions=partitions)
    (port,) = free_ports(1)
    settings = ServiceSettings(
        store_url=store_url,
        kafka_bootstrap=kafka_bootstrap,
        http_port=port,
        clock_control=True,
        # A group of its own: another test's service must not share this one's partitions.
        consumer_group=f"{spec.name}-test-{uuid.uuid4().hex[:8]}",
    )
    clock = ControlledClock()
    runtime = ServiceRuntime(spec, settings, clock)
    context = await runtime.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield RunningService(runtime, context, http, settings, clock)
    finally:
        await runtime.stop()
