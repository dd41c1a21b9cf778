"""Where the history is read from: the services' event stores, named by URL the way the services
themselves name them, read in global-position order in bounded pages (constant memory however
long the history).

Each store holds its service's own events and inbox copies of the events it consumed from other
services (streams ``inbox:<topic>:<key>``, same event ids). Reading "all stores" therefore reads
each service's *own* events only, so every event of the platform comes once, from its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shopstream_contracts import REGISTRY
from shopstream_contracts.errors import UnknownEventType
from shopstream_eventstore import EventStore, RecordedEvent
from shopstream_messaging.inbox import INBOX_PREFIX

SERVICES: tuple[str, ...] = ("live", "chat", "catalog", "orders", "commission")
DEFAULT_STORE_URL = "sqlite:///.local/data/{service}.sqlite"
"""The services' own default (``SHOPSTREAM_STORE_URL``); ``{service}`` is replaced."""


class SourceError(Exception):
    """A store that cannot be read as asked: the message says which and why (shown as is)."""


@dataclass(frozen=True, slots=True)
class StoreRef:
    service: str
    url: str

    @property
    def label(self) -> str:
        return f"{self.service} ({_redact(self.url)})"


def store_refs(url_template: str = DEFAULT_STORE_URL, services: Iterable[str] = SERVICES) -> list[StoreRef]:
    """One reference per service: ``{service}`` in the template is replaced (a PostgreSQL or
    KurrentDB URL without it names one server holding every service's schema or stream prefix)."""
    chosen = list(services)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise SourceError(f"unknown service(s) {unknown}: choose from {', '.join(SERVICES)}")
    return [StoreRef(service, url_template.replace("{service}", service)) for service in chosen]


async def open_store(ref: StoreRef, *, create: bool = False) -> EventStore:
    """Open a service's event store for reading. A SQLite file that does not exist is an error
    (opening it would create an empty store and silently report nothing), unless ``create``
    (a writer of synthetic history)."""
    url = ref.url
    if url.startswith("sqlite:///"):
        from shopstream_eventstore.sqlite import SqliteEventStore

        path = Path(url.removeprefix("sqlite:///"))
        if not create and not await asyncio.to_thread(path.is_file):
            raise SourceError(f"{ref.service}: no event store at {path}")
        return await SqliteEventStore.open(path)
    if url.startswith(("postgresql://", "postgres://")):
        from shopstream_eventstore.postgres import PostgresEventStore

        return await PostgresEventStore.open(url, ref.service)
    if url.startswith(("kurrentdb://", "kurrentdb+discover://", "esdb://", "esdb+discover://")):
        from shopstream_eventstore.kurrentdb import KurrentDBEventStore

        return await KurrentDBEventStore.open(url, prefix=ref.service)
    raise SourceError(
        f"unsupported store URL {_redact(url)!r}: use sqlite:///<path>, postgresql://… or kurrentdb://…"
    )


@contextlib.asynccontextmanager
async def opened(ref: StoreRef) -> AsyncIterator[EventStore]:
    store = await open_store(ref)
    try:
        yield store
    finally:
        await store.close()


def is_inbox_copy(event: RecordedEvent) -> bool:
    return event.stream_id.startswith(INBOX_PREFIX)


def owner_of(event_type: str) -> str | None:
    """The service that publishes a public event type (None for internal events)."""
    try:
        return REGISTRY.topic(event_type).service
    except UnknownEventType:
        return None


async def read_range(
    store: EventStore,
    *,
    after: int = 0,
    until: int | None = None,
    page: int = 5_000,
) -> AsyncIterator[Sequence[RecordedEvent]]:
    """Pages of events with ``after < position <= until`` in position order; ``until`` defaults to
    the head when the read starts, so a read of a live store ends (and is repeatable)."""
    end = await store.head_position() if until is None else until
    position = after
    while position < end:
        batch = await store.read_all(position, page)
        if not batch:
            return
        if batch[-1].position > end:
            batch = [event for event in batch if event.position <= end]
            if batch:
                yield batch
            return
        yield batch
        position = batch[-1].position


async def position_at(store: EventStore, moment: datetime, *, page: int = 5_000) -> int:
    """The store's last position recorded at or before ``moment`` (0 if none): the state "as of"
    a wall-clock instant is everything up to it. Positions are in commit order and the recorded
    time of a commit never goes back, so the scan stops at the first later event."""
    last = 0
    async for batch in read_range(store, page=page):
        for event in batch:
            if event.recorded_at > moment:
                return last
            last = event.position
    return last


def _redact(url: str) -> str:
    """A URL without its password, for messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
