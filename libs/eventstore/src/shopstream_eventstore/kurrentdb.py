"""The KurrentDB event store (kurrentdbclient's ``AsyncKurrentDBClient``), one prefix per service.

Many services (or test runs) share one server, so every name this store writes starts with its
prefix: a stream ``order-42`` is ``{prefix}-order-42``; ``read_all``/``subscribe`` ask the server
to return only streams matching ``^{prefix}-…`` (a stream-name regex filter). Internal streams
use ``{prefix}.`` instead, which that filter never matches: checkpoints
(``{prefix}.checkpoint-{name}``) and event-id claims (``{prefix}.eventid-{uuid}``). A prefix is
``[A-Za-z0-9_]+`` so one prefix can never be the start of another's stream names.

The mapping:

* global position = the event's commit position: unique per event, increasing in log order,
  with large gaps (the model allows gaps). The log is a single sequence, so there is no
  "committed late at a lower position" gap for followers.
* expected version = ``current_version``; ``WrongCurrentVersionError`` becomes
  ``WrongExpectedVersion``.
* event id = the KurrentDB event id. The server's own idempotency is per stream and, for
  ``ANY``, best effort (a cache of recent ids), and its success answer does not say whether it
  wrote anything. Our contract is stronger: an id is stored once per store, an exact retry
  answers ``duplicate=True``, anything else is ``DuplicateEventId``. So before an append every
  event id is *claimed* with a ``NO_STREAM`` append to its own claim stream. A fresh claim proves
  the id was never stored (claims precede writes); an existing claim sends us to read the
  owning stream and decide with ``_versioning.retry_result``. A claim whose append failed stays
  behind: harmless for a retry to the same stream (the read shows the id is not there), but an
  id claimed by *another* stream that does not hold it is refused, since that append may be in
  flight.
* metadata = a flat JSON object of strings (multi-stream append accepts nothing else):
  ``occurred_at`` (UTC ISO-8601), ``data_version``, ``correlation_id``, ``causation_id`` and one
  ``extra.<key>`` per extra entry. Keys the server or tracing adds are ignored when read.
* ``append_many`` over several streams uses multi-stream append (KurrentDB ≥ 25.1); older
  servers raise ``NotImplementedError`` rather than append stream by stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import kurrentdbclient as kdb
import orjson
from kurrentdbclient.common import AbstractAsyncCatchupSubscription
from kurrentdbclient.exceptions import (
    AbortedByServerError,
    DeadlineExceededError,
    DiscoveryFailedError,
    GrpcError,
    KurrentDBClientError,
    MaximumAppendSizeExceededError,
    NodeIsNotLeaderError,
    NotFoundError,
    RecordMaxSizeExceededError,
    TransactionMaxSizeExceededError,
    WrongCurrentVersionError,
)

from ._serialization import _utc, raw
from ._versioning import check_expected, retry_result
from .errors import DuplicateEventId, EventStoreError, StoreUnavailable, WrongExpectedVersion
from .model import (
    AppendRequest,
    AppendResult,
    EventMetadata,
    ExpectedVersion,
    NewEvent,
    RawEvent,
    RecordedEvent,
    StreamState,
)

_log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^[A-Za-z0-9_]+$")
_EXTRA = "extra."
_CLAIM_TYPE = "shopstream.eventstore.EventIdClaimed"
_CHECKPOINT_TYPE = "shopstream.eventstore.CheckpointSaved"
_SCAN_PAGE = 256
_CLAIM_CONCURRENCY = 64
_RESUBSCRIBE_MIN = 0.1
_RESUBSCRIBE_MAX = 5.0
_MULTI_APPEND_MISSING = (
    "append_many over several streams needs KurrentDB 25.1 or later (multi-stream append); "
    "this server does not offer it, and appending stream by stream would not be all-or-nothing"
)

_UNAVAILABLE: tuple[type[Exception], ...] = (
    GrpcError,
    DeadlineExceededError,
    DiscoveryFailedError,
    AbortedByServerError,
    NodeIsNotLeaderError,
)
"""Transport trouble, as opposed to a request the server refused."""

_TOO_LARGE: tuple[type[Exception], ...] = (
    MaximumAppendSizeExceededError,
    RecordMaxSizeExceededError,
    TransactionMaxSizeExceededError,
)


# -- naming --------------------------------------------------------------------------------------


def validate_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"prefix {prefix!r} must match [A-Za-z0-9_]+: a '-' or '.' would let one prefix "
            "see another's streams"
        )
    return prefix


def stream_name(prefix: str, stream_id: str) -> str:
    return f"{prefix}-{stream_id}"


def stream_id_of(prefix: str, name: str) -> str | None:
    """The stream id of one of this prefix's event streams, None for anything else."""
    head = f"{prefix}-"
    return name[len(head) :] if name.startswith(head) else None


def stream_filter(prefix: str) -> str:
    """The server-side stream-name filter: the client anchors it as ``^…$``, and ``(?s:)``
    makes ``.`` match newlines too (valid in both .NET and Python regex)."""
    return f"{re.escape(prefix)}-(?s:.*)"


def checkpoint_stream(prefix: str, name: str) -> str:
    return f"{prefix}.checkpoint-{name}"


def claim_stream(prefix: str, event_id: UUID) -> str:
    return f"{prefix}.eventid-{event_id}"


# -- expected versions -----------------------------------------------------------------------------

_STATES = {
    StreamState.ANY: kdb.StreamState.ANY,
    StreamState.NO_STREAM: kdb.StreamState.NO_STREAM,
    StreamState.EXISTS: kdb.StreamState.EXISTS,
}


def to_current_version(expected: ExpectedVersion) -> int | kdb.StreamState:
    if isinstance(expected, StreamState):
        return _STATES[expected]
    if expected < 0:
        # The client asserts on negative revisions; the caller checks these locally instead.
        raise ValueError(f"expected version {expected} is negative")
    return expected


def actual_version(reported: int | kdb.StreamState | None) -> int | None:
    """The stream version a conflict reports; the client turns -1 into ``NO_STREAM``."""
    return reported if isinstance(reported, int) and reported >= 0 else None


def conflict_error(
    stream_id: str, expected: ExpectedVersion, error: WrongCurrentVersionError, event_ids: Sequence[UUID]
) -> EventStoreError:
    actual = actual_version(error.actual_version)
    if expected is StreamState.ANY or (expected is StreamState.EXISTS and actual is not None):
        # Such an append cannot conflict on its version: the server answers a partial retry
        # (first ids stored, later ones new, "corrupted idempotency") with a version conflict.
        return DuplicateEventId(
            event_ids[0], f"the server refused the append to {stream_id!r} as a partial retry"
        )
    return WrongExpectedVersion(stream_id, expected, actual)


def next_version(expected: ExpectedVersion, count: int) -> int | None:
    """The version after writing ``count`` events, when the expected version alone tells it."""
    if expected is StreamState.NO_STREAM:
        return count - 1
    if isinstance(expected, int):
        return expected + count
    return None


# -- events ----------------------------------------------------------------------------------------


def encode_metadata(event: NewEvent) -> bytes:
    meta = event.metadata
    doc: dict[str, str] = {
        "occurred_at": _utc(meta.occurred_at).isoformat(),
        "data_version": str(event.data_version),
    }
    if meta.correlation_id is not None:
        doc["correlation_id"] = meta.correlation_id
    if meta.causation_id is not None:
        doc["causation_id"] = meta.causation_id
    for key, value in meta.extra.items():
        if not isinstance(value, str):
            # Multi-stream append rejects non-string metadata; failing here keeps append and
            # append_many accepting the same events.
            raise TypeError(f"metadata extra {key!r} must be a string, not {type(value).__name__}")
        doc[_EXTRA + key] = value
    return orjson.dumps(doc)


def decode_metadata(raw: bytes, recorded_at: datetime) -> tuple[EventMetadata, int]:
    """The metadata and data version of a stored event. Events this store did not write may
    lack them: they read as occurring when recorded, at data version 1."""
    try:
        doc = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    occurred = doc.get("occurred_at")
    metadata = EventMetadata(
        occurred_at=_utc(datetime.fromisoformat(occurred)) if isinstance(occurred, str) else recorded_at,
        correlation_id=_text(doc.get("correlation_id")),
        causation_id=_text(doc.get("causation_id")),
        extra={
            key[len(_EXTRA) :]: value
            for key, value in doc.items()
            if key.startswith(_EXTRA) and isinstance(value, str)
        },
    )
    try:
        data_version = int(doc.get("data_version", 1))
    except (TypeError, ValueError):
        data_version = 1
    return metadata, data_version


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def to_new_event(event: NewEvent) -> kdb.NewEvent:
    return kdb.NewEvent(
        type=event.type,
        data=orjson.dumps(event.data),
        metadata=encode_metadata(event),
        content_type="application/json",
        id=event.event_id,
    )


def to_recorded(prefix: str, event: kdb.RecordedEvent) -> RecordedEvent | None:
    """None for what is not one of this prefix's domain events (system events, link events)."""
    stream_id = stream_id_of(prefix, event.stream_name)
    if stream_id is None or event.is_system_event:
        return None
    metadata, data_version = decode_metadata(event.metadata, _recorded_fallback(event))
    return RecordedEvent(
        event_id=event.id,
        stream_id=stream_id,
        stream_version=event.stream_position,
        position=event.commit_position,
        type=event.type,
        data_version=data_version,
        data=orjson.loads(event.data),
        metadata=metadata,
        recorded_at=event.recorded_at if event.recorded_at is not None else metadata.occurred_at,
    )


def _recorded_fallback(event: kdb.RecordedEvent) -> datetime:
    if event.recorded_at is not None:
        return event.recorded_at
    # The server always sends a creation time; this only keeps a malformed event readable.
    return datetime.fromtimestamp(0, UTC)


# -- errors ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _backend(action: str) -> Iterator[None]:
    """Callers never see kurrentdbclient's exceptions, only the store's own."""
    try:
        yield
    except _TOO_LARGE as exc:
        raise EventStoreError(
            f"KurrentDB {action}: too large for the server ({exc}); raise its MaxAppendSize "
            "(KURRENTDB_MAX_APPEND_SIZE, 1 MiB by default) or store the payload elsewhere"
        ) from exc
    except _UNAVAILABLE as exc:
        # A write cut off mid-call may have landed; the event-id rules make the retry safe.
        outcome = "; it may have been written: retry with the same event ids" if action == "append" else ""
        raise StoreUnavailable(
            f"KurrentDB {action}: server unavailable ({type(exc).__name__}: {exc}){outcome}"
        ) from exc
    except KurrentDBClientError as exc:
        raise EventStoreError(f"KurrentDB {action} failed ({type(exc).__name__}: {exc})") from exc


def _unimplemented(exc: BaseException) -> bool:
    """Whether the server lacks the RPC (an older KurrentDB): the client reports that as a plain
    GrpcError whose cause is the gRPC error. grpc ships no type stubs, hence the duck typing."""
    code = getattr(exc.__cause__, "code", None)
    if callable(code):
        return getattr(code(), "name", None) == "UNIMPLEMENTED"
    return "UNIMPLEMENTED" in str(exc)


@dataclass(frozen=True, slots=True)
class _Stop:
    """The end of one subscription call; ``error`` is None when the server just ended it."""

    error: BaseException | None


# -- the store -------------------------------------------------------------------------------------


class KurrentDBEventStore:
    def __init__(self, client: kdb.AsyncKurrentDBClient, prefix: str) -> None:
        self._client = client
        self._prefix = validate_prefix(prefix)
        self._filter = stream_filter(prefix)
        self._closed = False
        self._multi_append: bool | None = None
        self._capped_checkpoints: set[str] = set()
        self._slots = asyncio.Semaphore(_CLAIM_CONCURRENCY)

    @classmethod
    async def open(cls, url: str, *, prefix: str, connect_timeout: float = 10.0) -> KurrentDBEventStore:
        validate_prefix(prefix)
        client = kdb.AsyncKurrentDBClient(url)
        try:
            async with asyncio.timeout(connect_timeout):
                await client.connect()
                # Connecting to a single node only builds a channel: a cheap read proves the
                # server answers before the store is handed out.
                await client.get_current_version(f"{prefix}.probe-", timeout=connect_timeout)
        except (TimeoutError, KurrentDBClientError) as exc:
            with contextlib.suppress(Exception):
                await client.close()
            raise StoreUnavailable(f"cannot reach KurrentDB at {url}: {exc!r}") from exc
        return cls(client, prefix)

    @property
    def prefix(self) -> str:
        return self._prefix

    # -- writing -----------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        (result,) = await self._append_unit([AppendRequest(stream_id, events, expected_version)])
        return result

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not requests:
            return []
        streams = [request.stream_id for request in requests]
        if len(requests) > 1 and len(set(streams)) != len(streams):
            raise NotImplementedError("KurrentDB appends to each stream at most once per append_many")
        if len(requests) > 1 and self._multi_append is False:
            raise NotImplementedError(_MULTI_APPEND_MISSING)
        return await self._append_unit(requests)

    async def append_each(self, requests: Sequence[AppendRequest]) -> list[AppendResult | EventStoreError]:
        # One append at a time: KurrentDB has no transaction that lets some requests of a
        # multi-stream append fail alone, and each is durable when its append returns.
        outcomes: list[AppendResult | EventStoreError] = []
        for request in requests:
            try:
                (result,) = await self._append_unit([request])
            except (WrongExpectedVersion, DuplicateEventId) as exc:
                outcomes.append(exc)
            else:
                outcomes.append(result)
        return outcomes

    async def _append_unit(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        self._check_open()
        _reject_repeated_ids(requests)
        with _backend("append"):
            for request in requests:
                if isinstance(request.expected_version, int) and request.expected_version < 0:
                    # No stream is ever at a negative version.
                    check_expected(
                        request.stream_id,
                        request.expected_version,
                        await self.stream_version(request.stream_id),
                    )
            owners = await asyncio.gather(
                *(
                    self._claim(request.stream_id, [e.event_id for e in request.events])
                    for request in requests
                )
            )
            results: list[AppendResult | None] = []
            for request, claimed in zip(requests, owners, strict=True):
                results.append(await self._settle(request, claimed))
            pending = [i for i, result in enumerate(results) if result is None]
            if len(pending) == 1:
                results[pending[0]] = await self._write_one(requests[pending[0]])
            elif pending:
                written = await self._write_many([requests[i] for i in pending])
                for i, result in zip(pending, written, strict=True):
                    results[i] = result
        return [result for result in results if result is not None]

    async def _claim(self, stream_id: str, event_ids: Sequence[UUID]) -> dict[UUID, str]:
        """Claims every id for ``stream_id``; answers the owner of each id claimed before."""

        async def claim(event_id: UUID) -> tuple[UUID, str] | None:
            name = claim_stream(self._prefix, event_id)
            # A random event id: a second claim must conflict, even one for the same stream.
            # (The client's own retry re-sends this same object, which the server deduplicates.)
            marker = kdb.NewEvent(type=_CLAIM_TYPE, data=orjson.dumps({"stream": stream_id}))
            async with self._slots:
                try:
                    await self._client.append_to_stream(
                        name, events=[marker], current_version=kdb.StreamState.NO_STREAM
                    )
                except WrongCurrentVersionError:
                    (last,) = await self._client.get_stream(name, backwards=True, limit=1)
                    return event_id, str(orjson.loads(last.data)["stream"])
            return None

        return dict(found for found in await asyncio.gather(*(claim(i) for i in event_ids)) if found)

    async def _settle(self, request: AppendRequest, claimed: dict[UUID, str]) -> AppendResult | None:
        """The result of a request that must not be written (a retry), None if it must be."""
        stream_id = request.stream_id
        if not request.events:
            current = await self.stream_version(stream_id)
            check_expected(stream_id, request.expected_version, current)
            return AppendResult(stream_id, -1 if current is None else current, await self.head_position())
        if not claimed:
            return None
        by_owner: dict[str, set[UUID]] = defaultdict(set)
        for event_id, owner in claimed.items():
            by_owner[owner].add(event_id)
        owners = list(by_owner)
        hits = await asyncio.gather(
            *(self._scan_back(stream_name(self._prefix, o), by_owner[o]) for o in owners)
        )
        found = [
            (event.id, owner, event.stream_position, event.commit_position)
            for owner, stored in zip(owners, hits, strict=True)
            for event in stored.values()
        ]
        wanted = [event.event_id for event in request.events]
        retry = retry_result(stream_id, wanted, found)
        if retry is not None:
            return retry
        for owner in owners:
            if owner != stream_id:
                event_id = next(iter(by_owner[owner]))
                raise DuplicateEventId(
                    event_id,
                    f"claimed by an append to stream {owner!r} that has not stored it (in flight or failed)",
                )
        # Only our own claims, left by appends that failed: nothing is stored, write it.
        return None

    async def _write_one(self, request: AppendRequest) -> AppendResult:
        name = stream_name(self._prefix, request.stream_id)
        ids = [event.event_id for event in request.events]
        try:
            position = await self._client.append_to_stream(
                name,
                events=[to_new_event(event) for event in request.events],
                current_version=to_current_version(request.expected_version),
            )
        except WrongCurrentVersionError as exc:
            raise conflict_error(request.stream_id, request.expected_version, exc, ids) from exc
        version = next_version(request.expected_version, len(ids))
        if version is None:
            version, position = await self._locate(name, ids[-1])
        return AppendResult(request.stream_id, version, position)

    async def _write_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if self._multi_append is False:
            raise NotImplementedError(_MULTI_APPEND_MISSING)
        batch = [
            kdb.NewEvents(
                stream_name=stream_name(self._prefix, request.stream_id),
                events=[to_new_event(event) for event in request.events],
                current_version=to_current_version(request.expected_version),
            )
            for request in requests
        ]
        try:
            await self._client.multi_append_to_stream(batch)
        except WrongCurrentVersionError as exc:
            request = next(
                (r for r in requests if stream_name(self._prefix, r.stream_id) == exc.stream_name),
                requests[0],
            )
            raise conflict_error(
                request.stream_id, request.expected_version, exc, [e.event_id for e in request.events]
            ) from exc
        except KurrentDBClientError as exc:
            if _unimplemented(exc):
                self._multi_append = False
                raise NotImplementedError(_MULTI_APPEND_MISSING) from exc
            raise
        self._multi_append = True
        # The client returns only the last event's position: each stream's own comes from a read.
        located = await asyncio.gather(
            *(self._locate(stream_name(self._prefix, r.stream_id), r.events[-1].event_id) for r in requests)
        )
        return [
            AppendResult(request.stream_id, version, position)
            for request, (version, position) in zip(requests, located, strict=True)
        ]

    async def _locate(self, name: str, event_id: UUID) -> tuple[int, int]:
        """(stream version, position) of an event just written: with ANY/EXISTS (or several
        streams at once) the server's answer does not say where it landed."""
        stored = await self._scan_back(name, {event_id})
        if event_id not in stored:
            raise EventStoreError(f"event {event_id} was appended to {name!r} but cannot be read back")
        event = stored[event_id]
        return event.stream_position, event.commit_position

    async def _scan_back(self, name: str, wanted: set[UUID]) -> dict[UUID, kdb.RecordedEvent]:
        """The stream's events with these ids, reading from its end (where retries and fresh
        appends are) and stopping as soon as all are found."""
        found: dict[UUID, kdb.RecordedEvent] = {}
        position: int | None = None
        while True:
            try:
                async with self._slots:
                    page = await self._client.get_stream(
                        name, stream_position=position, backwards=True, limit=_SCAN_PAGE
                    )
            except NotFoundError:
                return found
            for event in page:
                if event.id in wanted:
                    found.setdefault(event.id, event)
            if len(found) == len(wanted) or len(page) < _SCAN_PAGE or page[-1].stream_position == 0:
                return found
            position = page[-1].stream_position - 1

    # -- reading -----------------------------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 0) -> list[RecordedEvent]:
        self._check_open()
        with _backend("read_stream"):
            try:
                events = await self._client.get_stream(
                    stream_name(self._prefix, stream_id), stream_position=max(from_version, 0)
                )
            except NotFoundError:
                return []
        return [recorded for event in events if (recorded := to_recorded(self._prefix, event)) is not None]

    async def stream_version(self, stream_id: str) -> int | None:
        self._check_open()
        with _backend("stream_version"):
            version = await self._client.get_current_version(stream_name(self._prefix, stream_id))
        return version if isinstance(version, int) else None

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        self._check_open()
        out: list[RecordedEvent] = []
        cursor = after_position
        with _backend("read_all"):
            while len(out) < limit:
                # A forward read from a position includes the event at it: ask for one more.
                want = limit - len(out) + 1
                async with await self._client.read_all(
                    commit_position=cursor if cursor > 0 else None,
                    filter_include=(self._filter,),
                    filter_by_stream_name=True,
                    limit=want,
                ) as response:
                    page = [event async for event in response]
                for event in page:
                    if event.commit_position > cursor and (recorded := to_recorded(self._prefix, event)):
                        out.append(recorded)
                if len(page) < want:
                    break
                cursor = page[-1].commit_position
        return out[:limit]

    async def head_position(self) -> int:
        self._check_open()
        with _backend("head_position"):
            return await self._client.get_commit_position(
                filter_include=(self._filter,), filter_by_stream_name=True
            )

    def subscribe(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RecordedEvent]]:
        return self._follow(after_position, max(batch_size, 1))

    # The client hands out events decoded (the data version lives in KurrentDB's metadata), so
    # the raw forms are re-encoded here: the same rows as the SQL stores, none of their speed.
    async def read_all_raw(self, after_position: int = 0, limit: int = 1000) -> list[RawEvent]:
        return list(map(raw, await self.read_all(after_position, limit)))

    async def subscribe_raw(
        self, after_position: int = 0, batch_size: int = 500
    ) -> AsyncIterator[list[RawEvent]]:
        async for batch in self.subscribe(after_position, batch_size):
            yield list(map(raw, batch))

    async def _follow(self, after_position: int, batch_size: int) -> AsyncIterator[list[RecordedEvent]]:
        position = after_position
        delay = _RESUBSCRIBE_MIN
        while True:
            self._check_open()
            try:
                subscription = await self._client.subscribe_to_all(
                    commit_position=position if position > 0 else None,
                    filter_include=(self._filter,),
                    filter_by_stream_name=True,
                )
            except _UNAVAILABLE as exc:
                _log.warning("KurrentDB subscription after %s failed to start (%r); retrying", position, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESUBSCRIBE_MAX)
                continue
            except KurrentDBClientError as exc:
                raise EventStoreError(f"KurrentDB subscribe failed ({type(exc).__name__}: {exc})") from exc
            # The pump keeps the call drained while we yield, so a batch is whatever has
            # arrived by the time the consumer asks, never a wait for more.
            queue: asyncio.Queue[kdb.RecordedEvent | _Stop] = asyncio.Queue(maxsize=batch_size)
            pump = asyncio.create_task(_pump(subscription, queue), name="kurrentdb-subscription-pump")
            try:
                stop: _Stop | None = None
                while stop is None:
                    item = await queue.get()
                    batch: list[RecordedEvent] = []
                    while True:
                        if isinstance(item, _Stop):
                            stop = item
                            break
                        recorded = to_recorded(self._prefix, item)
                        if recorded is not None and recorded.position > position:
                            batch.append(recorded)
                            position = recorded.position
                        if len(batch) >= batch_size or queue.empty():
                            break
                        item = queue.get_nowait()
                    if batch:
                        delay = _RESUBSCRIBE_MIN
                        yield batch
            finally:
                pump.cancel()
                await asyncio.wait([pump])
                with contextlib.suppress(Exception):
                    await subscription.stop()
            self._check_open()
            error = stop.error
            if error is not None and not isinstance(error, _UNAVAILABLE):
                if isinstance(error, KurrentDBClientError):
                    raise EventStoreError(f"KurrentDB subscription failed ({type(error).__name__}: {error})")
                raise error
            # Dropped (network, server restart, consumer too slow) or ended by the server:
            # resume right after the last event yielded, so nothing is skipped or repeated.
            _log.warning("KurrentDB subscription after %s dropped (%r); resubscribing", position, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESUBSCRIBE_MAX)

    # -- checkpoints -------------------------------------------------------------------------------

    async def get_checkpoint(self, name: str) -> int:
        self._check_open()
        with _backend("get_checkpoint"):
            try:
                events = await self._client.get_stream(
                    checkpoint_stream(self._prefix, name), backwards=True, limit=1
                )
            except NotFoundError:
                return 0
        return int(orjson.loads(events[0].data)["position"]) if events else 0

    async def save_checkpoint(self, name: str, position: int) -> None:
        self._check_open()
        stream = checkpoint_stream(self._prefix, name)
        with _backend("save_checkpoint"):
            if stream not in self._capped_checkpoints:
                # Only the last checkpoint is ever read; the server may scavenge the rest.
                await self._client.set_stream_metadata(stream, metadata={"$maxCount": 1})
                self._capped_checkpoints.add(stream)
            await self._client.append_to_stream(
                stream,
                events=[kdb.NewEvent(type=_CHECKPOINT_TYPE, data=orjson.dumps({"position": position}))],
                current_version=kdb.StreamState.ANY,
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Closing the client stops every subscription call, which ends their pumps.
        with contextlib.suppress(Exception):
            await self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreError("the KurrentDB event store is closed")


def _reject_repeated_ids(requests: Sequence[AppendRequest]) -> None:
    seen: set[UUID] = set()
    for request in requests:
        for event in request.events:
            if event.event_id in seen:
                raise DuplicateEventId(event.event_id, "appears twice in one append")
            seen.add(event.event_id)


async def _pump(
    subscription: AbstractAsyncCatchupSubscription, queue: asyncio.Queue[kdb.RecordedEvent | _Stop]
) -> None:
    try:
        async for event in subscription:
            await queue.put(event)
    except Exception as exc:
        await queue.put(_Stop(exc))
    else:
        await queue.put(_Stop(None))
