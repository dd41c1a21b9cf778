"""Where the history is read from: the services' event stores, named by URL the way the services
themselves name them, read in global-position order in bounded pages (constant memory however
long the history).

Each store holds its service's own events and inbox copies of the events it consumed from other
services (streams ``inbox:<topic>:<key>``, same event ids). Reading "all stores" therefore reads
each service's *own* events only, so every event of the platform comes once, from its owner.

Readers that look into every event take ``RecordedEvent``s (``read_range``); the export, which
mostly passes events on, takes ``StoredEvent``s (``read_range_stored``): the stored rows with
their JSON left as text, decoded only when a row or a filter asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from shopstream_contracts import REGISTRY
from shopstream_contracts.errors import UnknownEventType
from shopstream_eventstore import EventMetadata, EventStore, RawEvent, RecordedEvent, load_metadata
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


class Occurred(Protocol):
    @property
    def occurred_at(self) -> datetime: ...


class Event(Protocol):
    """What the selection and the merge look at: a ``RecordedEvent`` or a ``StoredEvent``."""

    @property
    def position(self) -> int: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def metadata(self) -> Occurred: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


E = TypeVar("E", bound=Event)
E_co = TypeVar("E_co", bound=Event, covariant=True)


class StoredEvent:
    """A stored event with its data and metadata kept as the JSON text the store holds, each
    decoded on first use (an export writes the data text as is, and decodes it only for the
    CloudEvent subject, the live filter or ``flatten``). ``event_id`` is the id's text."""

    __slots__ = (
        "_data",
        "_metadata",
        "data_text",
        "data_version",
        "event_id",
        "metadata_text",
        "position",
        "recorded_at",
        "stream_id",
        "stream_version",
        "type",
    )

    def __init__(self, raw: RawEvent) -> None:
        (
            self.position,
            self.event_id,
            self.stream_id,
            self.stream_version,
            self.type,
            self.data_version,
            self.data_text,
            self.metadata_text,
            self.recorded_at,
        ) = raw
        self._data: Mapping[str, Any] | None = None
        self._metadata: EventMetadata | None = None

    @property
    def data(self) -> Mapping[str, Any]:
        data = self._data
        if data is None:
            data = self._data = orjson.loads(self.data_text)
        return data

    @property
    def metadata(self) -> EventMetadata:
        meta = self._metadata
        if meta is None:
            meta = self._metadata = load_metadata(self.metadata_text)
        return meta


def is_inbox_copy(event: Event) -> bool:
    return event.stream_id.startswith(INBOX_PREFIX)


def owner_of(event_type: str) -> str | None:
    """The service that publishes a public event type (None for internal events)."""
    try:
        return REGISTRY.topic(event_type).service
    except UnknownEventType:
        return None


class ReadRange(Protocol[E_co]):
    """``read_range`` or ``read_range_stored``."""

    def __call__(
        self, store: EventStore, *, after: int = 0, until: int | None = None, page: int = 5_000
    ) -> AsyncIterator[Sequence[E_co]]: ...


def read_range(
    store: EventStore,
    *,
    after: int = 0,
    until: int | None = None,
    page: int = 5_000,
) -> AsyncIterator[Sequence[RecordedEvent]]:
    """Pages of events with ``after < position <= until`` in position order; ``until`` defaults to
    the head when the read starts, so a read of a live store ends (and is repeatable)."""
    return _pages(store, store.read_all, after, until, page)


def read_range_stored(
    store: EventStore,
    *,
    after: int = 0,
    until: int | None = None,
    page: int = 5_000,
) -> AsyncIterator[Sequence[StoredEvent]]:
    """``read_range`` with the events as ``StoredEvent``s."""
    return _pages(store, functools.partial(_read_stored, store), after, until, page)


async def _pages(
    store: EventStore,
    read: Callable[[int, int], Awaitable[Sequence[E]]],
    after: int,
    until: int | None,
    page: int,
) -> AsyncIterator[Sequence[E]]:
    end = await store.head_position() if until is None else until
    position = after
    while position < end:
        batch = await read(position, page)
        if not batch:
            return
        if batch[-1].position > end:
            batch = [event for event in batch if event.position <= end]
            if batch:
                yield batch
            return
        yield batch
        position = batch[-1].position


async def _read_stored(store: EventStore, after: int, limit: int) -> list[StoredEvent]:
    return [StoredEvent(raw) for raw in await store.read_all_raw(after, limit)]


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
