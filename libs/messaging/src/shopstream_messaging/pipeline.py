"""Running the relay and the inbox as long-lived tasks of a service process.

The composition every service's bootstrap (and the backbone demo) uses: what to publish is the
service's contract events, what to accept is whatever the published contract can decode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from faststream.confluent import KafkaBroker

from shopstream_contracts import Registry
from shopstream_eventstore import EventStore

from .inbox import Inbox, contract_acceptor, subscribe_inbox
from .kafka import BatchProducer, producer_config
from .publishing import contract_messages
from .relay import Relay


async def run_relay(
    store: EventStore, bootstrap_servers: str, service: str, registry: Registry, *, batch_size: int = 1000
) -> None:
    """Publish the service's public events until cancelled."""
    producer = BatchProducer(producer_config(bootstrap_servers, **{"client.id": f"{service}-relay"}))
    relay = Relay(
        store, producer, contract_messages(registry, service), service=service, batch_size=batch_size
    )
    try:
        await relay.run()
    finally:
        producer.close()


async def run_inbox(
    store: EventStore,
    bootstrap_servers: str,
    service: str,
    registry: Registry,
    topics: Sequence[str],
    *,
    group_id: str | None = None,
    max_records: int = 1000,
    started: asyncio.Event | None = None,
) -> None:
    """Store every event of ``topics`` in the service's own store until cancelled."""
    group = group_id or f"shopstream.{service}.inbox"
    dead_letters = BatchProducer(
        producer_config(bootstrap_servers, **{"client.id": f"{service}-dead-letters"})
    )
    inbox = Inbox(store, contract_acceptor(registry), dead_letters, service=service, consumer_group=group)
    # Per-message "Received/Processed" lines go to DEBUG: at inbox rates they would drown the log.
    broker = KafkaBroker(
        bootstrap_servers,
        client_id=f"{service}-inbox",
        log_level=logging.DEBUG,
        logger=logging.getLogger("shopstream.faststream"),
    )
    subscribe_inbox(broker, inbox, topics, group_id=group, max_records=max_records)
    await broker.start()
    if started is not None:
        started.set()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()
        dead_letters.close()
