"""The live feed's fan-out: one reader per room, each entry encoded once, the same bytes to every
subscriber.

A room with subscribers has one ``RoomFeed`` task: it wakes when the feed projection moves, reads
the room's new entries with one query, encodes each as an SSE frame once and hands the batch to
every subscriber's queue. In the common case (no entry visible to one participant only) every
subscriber is sent the very same ``bytes`` object; a subscriber that falls behind gets the
batches queued meanwhile in one write.

A subscriber first catches up from the read model (its backlog, or what followed its
Last-Event-ID), then follows the room's batches; a batch that starts after what it has seen is
preceded by another catch-up read, so nothing is skipped and, positions being increasing, nothing
is repeated. A subscriber that falls more than ``MAX_QUEUED`` batches behind (or whose room reader
failed) is disconnected; its EventSource reconnects with its Last-Event-ID and catches up from the
read model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from shopstream_observability import get_logger
from shopstream_processing import ProjectionRunner, ReadModelDb, Row

from .projections import FINAL_KINDS, feed_head, feed_rows

log = get_logger(__name__)

FEED_BATCH = 500
KEEP_ALIVE_SECONDS = 15.0
MAX_QUEUED = 1_000
RETRY = b"retry: 2000\n\n"
KEEP_ALIVE = b": keep-alive\n\n"

FRAMES_ENCODED = Counter(
    "shopstream_chat_feed_frames_encoded",
    "Feed entries encoded as SSE frames: once per entry for a room's live subscribers, plus once per "
    "entry a subscriber catches up on from the read model.",
)

SUBSCRIBERS = Gauge(
    "shopstream_chat_feed_subscribers", "Subscribers following a room's live feed (caught up, joined)"
)


@dataclass(frozen=True, slots=True)
class Frame:
    position: int
    visible_to: str | None
    final: bool
    data: bytes


def encode(rows: Sequence[Row]) -> list[Frame]:
    """SSE frames of ``(position, kind, visible_to, data)`` rows; ``data`` is already the entry's
    JSON text, so encoding is string formatting, not JSON."""
    FRAMES_ENCODED.inc(len(rows))
    return [
        Frame(
            position,
            visible_to,
            kind in FINAL_KINDS,
            f"id: {position}\nevent: {kind}\ndata: {data}\n\n".encode(),
        )
        for position, kind, visible_to, data in rows
    ]


@dataclass(frozen=True, slots=True)
class Batch:
    after: int
    """The room's position this batch follows: every entry up to it was in earlier batches."""
    frames: list[Frame]
    shared: bytes | None
    """All the frames joined, when every one is visible to everyone (the common case)."""

    @classmethod
    def of(cls, after: int, frames: list[Frame]) -> Batch:
        public = all(frame.visible_to is None for frame in frames)
        return cls(after, frames, b"".join(frame.data for frame in frames) if public else None)


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[Batch | None] = field(default_factory=asyncio.Queue)
    joined: bool = False


class RoomFeed:
    """The room's one reader of the read model while it has subscribers."""

    def __init__(self, db: ReadModelDb, runner: ProjectionRunner, room_id: str) -> None:
        self._db = db
        self._runner = runner
        self._room_id = room_id
        self.subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._final: Batch | None = None

    def join(self) -> _Subscriber:
        subscriber = _Subscriber()
        if self._final is not None:
            # The room ended while this subscriber caught up: it still gets the end.
            subscriber.queue.put_nowait(self._final)
            return subscriber
        self.subscribers.add(subscriber)
        subscriber.joined = True
        SUBSCRIBERS.inc()
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name=f"chat-feed:{self._room_id}")
        return subscriber

    def leave(self, subscriber: _Subscriber) -> bool:
        """Whether the room has no subscriber left (its reader is then stopped)."""
        if subscriber.joined:
            subscriber.joined = False
            SUBSCRIBERS.dec()
        self.subscribers.discard(subscriber)
        if self.subscribers or self._task is None:
            return not self.subscribers
        self._task.cancel()
        self._task = None
        return True

    async def _follow(self) -> None:
        try:
            await self._broadcast()
        except Exception:
            # Its subscribers reconnect (EventSource does) and catch up from the read model.
            log.exception("chat.feed_reader_failed", room_id=self._room_id)
            for subscriber in self.subscribers:
                subscriber.queue.put_nowait(None)
            self.subscribers.clear()
            self._task = None

    async def _broadcast(self) -> None:
        cursor = await feed_head(self._db, self._room_id)
        while True:
            # Read the checkpoint before querying: anything applied later wakes the wait below.
            seen = self._runner.position
            rows = await feed_rows(self._db, self._room_id, cursor, FEED_BATCH, None)
            if not rows:
                with contextlib.suppress(TimeoutError):
                    await self._runner.wait_until(seen + 1, KEEP_ALIVE_SECONDS)
                continue
            batch = Batch.of(cursor, encode(rows))
            cursor = batch.frames[-1].position
            for subscriber in list(self.subscribers):
                if subscriber.queue.qsize() >= MAX_QUEUED:
                    subscriber.queue.put_nowait(None)  # too far behind: disconnect, it will resume
                    self.subscribers.discard(subscriber)
                else:
                    subscriber.queue.put_nowait(batch)
            if batch.frames[-1].final:
                self._final = batch
                return


class Feeds:
    """Every room's live feed in this process."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomFeed] = {}

    async def stream(
        self,
        db: ReadModelDb,
        runner: ProjectionRunner,
        room_id: str,
        viewer: str,
        start: int,
        *,
        ended: bool,
    ) -> AsyncIterator[bytes]:
        """The viewer's SSE stream from after ``start``; ends after the room's final entry (at
        once, after the catch-up, when the room had already ended)."""
        yield RETRY
        caught_up, cursor, final = await _catch_up(db, room_id, viewer, start, None)
        for chunk in caught_up:
            yield chunk
        if final or ended:
            return
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = RoomFeed(db, runner, room_id)
        subscriber = room.join()
        try:
            while True:
                try:
                    async with asyncio.timeout(KEEP_ALIVE_SECONDS):
                        batches = [await subscriber.queue.get()]
                except TimeoutError:
                    yield KEEP_ALIVE
                    continue
                while not subscriber.queue.empty():
                    batches.append(subscriber.queue.get_nowait())
                chunks: list[bytes] = []
                for batch in batches:
                    if batch is None:  # dropped by the room's reader: what came before, then the end
                        final = True
                        break
                    if batch.after > cursor:
                        # Entries between what it saw and this batch: from the read model first.
                        caught_up, cursor, final = await _catch_up(db, room_id, viewer, cursor, batch.after)
                        chunks += caught_up
                        if final:
                            break
                    chunk, cursor, final = _deliver(batch, viewer, cursor)
                    chunks.append(chunk)
                    if final:
                        break
                if chunks:
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if final:
                    return
        finally:
            if room.leave(subscriber):
                self._rooms.pop(room_id, None)


def _deliver(batch: Batch, viewer: str, cursor: int) -> tuple[bytes, int, bool]:
    """What of the batch the viewer gets after ``cursor``: the shared bytes when it gets all of
    it; the new cursor; whether the room's final entry was in it."""
    last = batch.frames[-1]
    if batch.shared is not None and batch.after == cursor:
        return batch.shared, last.position, last.final
    frames = [
        frame
        for frame in batch.frames
        if frame.position > cursor and (frame.visible_to is None or frame.visible_to == viewer)
    ]
    return b"".join(frame.data for frame in frames), max(cursor, last.position), last.final


async def _catch_up(
    db: ReadModelDb, room_id: str, viewer: str, cursor: int, until: int | None
) -> tuple[list[bytes], int, bool]:
    """The viewer's entries after ``cursor`` from the read model — up to ``until`` (the start of
    a batch it is about to get), or all of them — as chunks; the cursor after them; whether the
    room's final entry was among them."""
    chunks: list[bytes] = []
    while True:
        rows = await feed_rows(db, room_id, cursor, FEED_BATCH, viewer)
        complete = len(rows) < FEED_BATCH
        if until is not None:
            kept = [row for row in rows if row[0] <= until]
            complete = complete or len(kept) < len(rows)
            rows = kept
        if rows:
            frames = encode(rows)
            final = next((n for n, frame in enumerate(frames) if frame.final), None)
            if final is not None:
                chunks.append(b"".join(frame.data for frame in frames[: final + 1]))
                return chunks, frames[final].position, True
            chunks.append(b"".join(frame.data for frame in frames))
            cursor = frames[-1].position
        if complete:
            # Nothing else up to ``until`` is for this viewer: the batch follows on directly.
            return chunks, max(cursor, until or 0), False
