"""Chat fan-out: ``rate`` messages/s posted over HTTP into one room (open loop) while
``subscribers`` Server-Sent-Events clients follow the room's feed; against a raw broadcast of
the very same frames.

The chat service runs as its own process (SQLite store, the run's Kafka); the room is opened
the way the live service opens it, by its LiveScheduled and LiveStarted events on Kafka. The
subscribers are a few client processes (so the client side is not what limits the run) that
resume the feed after the room's current head, de-chunk the HTTP body, count message frames,
hash every byte they got and note when each batch arrived. One of them also keeps its whole
stream and parses it: every message once, in order. Every other subscriber must have received
exactly the same bytes (same hash), so the reference's verdict is theirs too.

The raw baseline is a minimal asyncio SSE server in this process that writes the same frames
(the bytes the reference subscriber received) at the same schedule to the same number of
connections, each due batch as one HTTP chunk, read by the same client processes.

Figures: delivered frames/s across subscribers (from the first message's scheduled time to the
last frame delivered) vs the raw broadcast; p99 from a message's scheduled POST time to its frame
at a subscriber (sampled over every subscriber) vs the raw broadcast's p99 from the frame's
scheduled time. Checks: every subscriber got every message exactly once and in order, every post
was accepted, and the service encoded each message's frame once (its
``shopstream_chat_feed_frames_encoded_total`` counter, scraped from ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import resource
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from confluent_kafka import Producer

from shopstream_cli.platform import ServiceProcess
from shopstream_contracts import REGISTRY, Event
from shopstream_contracts.live.v1 import LiveBrand, LiveScheduled, LiveStarted
from shopstream_contracts.topics import LIVE_SESSION
from shopstream_infra import create_topics
from shopstream_infra.procs import free_ports, tail
from shopstream_messaging.cloudevents import CloudEvent, encode
from shopstream_service.auth import mint_token
from shopstream_service.settings import ServiceSettings

from ..context import BenchContext
from ..figures import Figure, Target
from ..measure import open_loop, percentile
from ..registry import Benchmark

MESSAGE_MARK = b"\nevent: message\n"
"""What starts a message frame's second line; JSON data escapes newlines, so it occurs nowhere else."""
ENCODED_METRIC = "shopstream_chat_feed_frames_encoded_total"
SUBSCRIBERS_METRIC = "shopstream_chat_feed_subscribers"
POST_CONNECTIONS = 128
LATENCY_SAMPLES = 200_000
TEXT_FILLER = "is this the serum from the pinned product? asking for my sister, she loves it"
BOTTLENECK = (
    "The service is CPU-bound on its one event loop. What chat itself does per message is small: each "
    "feed entry is read once per room and encoded once (frames_encoded == messages; before: once per "
    "subscriber, with a store query per subscriber per wake-up), and posts are decided on a cached room "
    "state and appended in batches (before: the whole room stream re-read per post, and 409s from "
    "optimistic-concurrency collisions). The profile that led here (py-spy on the chat process, on a "
    "loaded box) put the rest in the HTTP stack: Starlette's BaseHTTPMiddleware piping every streamed "
    "chunk of every subscriber through an anyio memory stream (~55 % of the fan-out loop, ~38 % of "
    "ingest), uvicorn's pure-Python h11 parser (~26 % of ingest) and a thread-pool hop per request for "
    "the sync auth dependency. All three are fixed in the service kit (pure-ASGI correlation "
    "middleware, httptools + uvloop, async auth dependencies): delivered frames went from 0.09 x to "
    "0.30 x the raw broadcast and the p99 from ~25 s to ~2.5 s (same benchmark; the earlier run on a "
    "busier box). The profile was not retaken after these fixes. What would move it further: more "
    "than one process per service (the room reader is per process, so workers sharing a port scale the "
    "fan-out), and admission of posts in batches per HTTP request for hot rooms."
)
RAW = "raw broadcast of the same frames (asyncio SSE server, chunked HTTP, same clients)"


@dataclass(frozen=True)
class Size:
    rate: float
    messages: int
    subscribers: int
    client_processes: int
    drain: float
    """Seconds the subscribers may take, after the last post, to receive everything."""


async def run(ctx: BenchContext) -> list[Figure]:
    size = ctx.size(
        smoke=Size(rate=200, messages=100, subscribers=20, client_processes=1, drain=20),
        quick=Size(rate=2_000, messages=2_000, subscribers=1_000, client_processes=2, drain=120),
        full=Size(rate=2_000, messages=20_000, subscribers=1_000, client_processes=2, drain=300),
    )
    _raise_open_files_limit()
    delivered: list[float] = []
    raw_delivered: list[float] = []
    p99s: list[float] = []
    raw_p99s: list[float] = []
    checks: dict[str, Any] = {}
    async with chat_service(ctx) as chat:
        for repeat in range(ctx.repeats):
            ctx.step(f"repeat {repeat + 1}/{ctx.repeats}: opening a room")
            room = await chat.open_room()
            ctx.step(f"{size.messages} messages at {size.rate:g}/s to {size.subscribers} subscribers")
            service = await _through_chat(chat, room, size)
            ctx.step("the same frames through the raw broadcast")
            raw = await _through_raw(service.frames, size)
            delivered.append(service.delivered_rate)
            raw_delivered.append(raw.delivered_rate)
            p99s.append(service.p99_ms)
            raw_p99s.append(raw.p99_ms)
            _merge(checks, service.checks)
            _merge(checks, {f"raw_{name}": value for name, value in raw.checks.items()})
    messages = size.messages * ctx.repeats
    checks["each_message_encoded_once"] = checks.get("frames_encoded") == messages
    missed = (
        statistics.median(delivered) < 0.7 * statistics.median(raw_delivered) or statistics.median(p99s) > 250
    )
    notes = BOTTLENECK if missed else ""
    return [
        Figure(
            benchmark="chat",
            name=f"chat fan-out: {size.rate:g} msgs/s into one room, {size.subscribers} SSE subscribers",
            unit="frames/s",
            samples=delivered,
            baseline=RAW,
            baseline_samples=raw_delivered,
            targets=[Target("ratio_at_least", 0.7, "≥ 0.7 × a raw broadcast of the same frames")],
            checks=checks,
            notes=notes,
        ),
        Figure(
            benchmark="chat",
            name="chat p99 ingest (scheduled POST) ⇒ delivered to a subscriber",
            unit="ms",
            samples=p99s,
            baseline=f"{RAW}, p99 from the frame's scheduled time",
            baseline_samples=raw_p99s,
            targets=[Target("at_most", 250, "p99 ingest ⇒ delivered ≤ 250 ms")],
            notes=notes,
        ),
    ]


def _merge(into: dict[str, Any], checks: dict[str, Any]) -> None:
    """Counts add up over the repeats; a boolean holds if it held every time."""
    for name, value in checks.items():
        if isinstance(value, bool):
            into[name] = into.get(name, True) and value
        else:
            into[name] = into.get(name, 0) + value


def _raise_open_files_limit() -> None:
    """A thousand connections on each side: the soft limit up to the hard one (inherited by the
    service and client processes started afterwards)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the chat service ---------------------------------------------------------------------------


@dataclass
class Room:
    live_id: str
    room_id: str
    head: int
    """The feed position the subscribers resume after (the room's opening)."""


class ChatService:
    """The chat service as a process, driven as the live service and clients drive it."""

    def __init__(self, ctx: BenchContext, process: ServiceProcess) -> None:
        self.ctx = ctx
        self.process = process
        self.settings = ServiceSettings()  # the development token key the process uses too
        self.http = httpx.AsyncClient(base_url=process.url, timeout=30)

    def headers(self, subject: str, *roles: str) -> dict[str, str]:
        assert self.settings.jwt_secret is not None
        token = mint_token(
            secret=self.settings.jwt_secret,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            subject=subject,
            roles=roles,
        )
        return {"Authorization": f"Bearer {token}"}

    async def wait_ready(self, timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                if not self.process.alive():
                    raise RuntimeError(f"chat exited while starting:\n{tail(self.process.log_file, 30)}")
                with contextlib.suppress(httpx.TransportError):
                    if (await self.http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)  # polling a starting process, bounded by the timeout

    async def open_room(self) -> Room:
        """Schedule and start a live on Kafka (as the live service's relay would) and wait for its
        room to open."""
        live_id = self.ctx.unique(f"liv_bench_{uuid.uuid4().hex[:6]}")
        host = f"usr_host_{live_id}"
        now = datetime.now(UTC)
        scheduled = LiveScheduled(
            live_id=live_id,
            title="Chat bench",
            scheduled_start_at=now,
            host_ids=[host],
            brands=[LiveBrand(brand_id="brd_bench", agreement_id="agr_bench")],
            scheduled_by=host,
            occurred_at=now - timedelta(minutes=1),
        )
        await asyncio.to_thread(
            _publish,
            self.ctx.kafka_bootstrap,
            [scheduled, LiveStarted(live_id=live_id, started_by=host, occurred_at=now)],
        )
        viewer = self.headers("usr_bench_reader", "viewer")
        async with asyncio.timeout(60):
            while True:
                reply = await self.http.get(f"/lives/{live_id}/room", headers=viewer)
                if reply.status_code == 200 and reply.json()["status"] == "open":
                    room_id = str(reply.json()["room_id"])
                    break
                await asyncio.sleep(0.05)  # the room opens once the inbox and policy ran
        page = await self.http.get(f"/rooms/{room_id}/messages", headers=viewer)
        page.raise_for_status()
        return Room(live_id, room_id, int(page.json()["last_event_id"]))

    async def metric(self, name: str) -> int:
        reply = await self.http.get("/metrics")
        reply.raise_for_status()
        for line in reply.text.splitlines():
            if line.startswith(f"{name} "):
                return int(float(line.split()[-1]))
        return 0

    async def wait_subscribed(self, count: int, timeout: float = 120.0) -> None:
        """Until ``count`` subscribers have caught up and joined their room's fan-out: a message
        posted earlier would reach a late one by its catch-up read (encoded once more)."""
        async with asyncio.timeout(timeout):
            while True:
                if await self.metric(SUBSCRIBERS_METRIC) >= count:
                    return
                await asyncio.sleep(0.05)  # polling the service's gauge, bounded by the timeout


@asynccontextmanager
async def chat_service(ctx: BenchContext) -> AsyncIterator[ChatService]:
    bootstrap = ctx.kafka_bootstrap
    chat_topics = [topic.name for topic in REGISTRY.topics() if topic.service == "chat"]
    await asyncio.to_thread(create_topics, bootstrap, [LIVE_SESSION.name, *chat_topics], partitions=3)
    workdir = ctx.scratch("chat")
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "SHOPSTREAM_STORE_URL": f"sqlite:///{workdir / 'chat.sqlite'}",
        "SHOPSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "SHOPSTREAM_HTTP_PORT": str(port),
        "SHOPSTREAM_CONSUMER_GROUP": ctx.unique(f"chat-bench-{uuid.uuid4().hex[:8]}"),
        "SHOPSTREAM_LOG_LEVEL": "WARNING",
    }
    process = ServiceProcess("chat", port, workdir / "chat.log", env)
    ctx.step("starting the chat service")
    process.start()
    service = ChatService(ctx, process)
    try:
        await service.wait_ready()
        yield service
    finally:
        await service.http.aclose()
        if process.proc is not None:
            await asyncio.to_thread(process.proc.stop, signal.SIGTERM, 15)


def _publish(bootstrap: str, events: Sequence[Event]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        contract = event.contract
        cloud = CloudEvent(
            id=str(uuid.uuid4()),
            source=contract.topic.source,
            type=contract.type,
            time=datetime.now(UTC),
            subject=event.aggregate_id,
            data=event.to_data(),
            dataversion=contract.version,
            key=event.aggregate_id,
        )
        key, value, headers = encode(cloud)
        wire: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(contract.topic.name, key=key, value=value, headers=wire)
    if producer.flush(30) != 0:
        raise RuntimeError("Kafka did not acknowledge the live's events")


# -- one fan-out run ---------------------------------------------------------------------------


@dataclass
class FanOut:
    delivered_rate: float
    p99_ms: float
    checks: dict[str, Any]
    frames: list[bytes]
    """The message frames, in the order the subscribers received them."""


async def _through_chat(chat: ChatService, room: Room, size: Size) -> FanOut:
    encoded_before = await chat.metric(ENCODED_METRIC)
    feed = f"/rooms/{room.room_id}/feed"
    tokens = [chat.headers(f"usr_viewer_{n}", "viewer")["Authorization"] for n in range(size.subscribers)]
    poster_tokens = [chat.headers(f"usr_poster_{n}", "viewer")["Authorization"] for n in range(100)]
    run_id = uuid.uuid4().hex[:8]

    def request(seq: int) -> bytes:
        body = json.dumps({"text": f"m{seq} {TEXT_FILLER}"}).encode()
        return (
            f"POST /rooms/{room.room_id}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {poster_tokens[seq % len(poster_tokens)]}\r\n"
            f"Idempotency-Key: {run_id}-{seq}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    requests = [request(seq) for seq in range(size.messages)]
    statuses: dict[int, int] = {}
    async with Subscribers.start(chat.process.port, feed, tokens, room.head, size) as subscribers:
        await chat.wait_subscribed(size.subscribers)
        async with Poster(chat.process.port, POST_CONNECTIONS) as poster:

            async def post(seq: int) -> None:
                status = await poster.send(requests[seq])
                statuses[status] = statuses.get(status, 0) + 1

            start = asyncio.get_running_loop().time()  # open_loop's start, a few µs earlier at most
            result = await open_loop(size.rate, size.messages, post)
        streams = await subscribers.results(size.drain)
    encoded = await chat.metric(ENCODED_METRIC) - encoded_before
    fan_out = _analyse(streams, start, size, lambda seq: start + seq / size.rate)
    fan_out.checks.update(
        errors_posts=result.errors + sum(n for status, n in statuses.items() if status != 201),
        frames_encoded=encoded,
    )
    return fan_out


async def _through_raw(frames: list[bytes], size: Size) -> FanOut:
    async with (
        RawBroadcast() as server,
        Subscribers.start(server.port, "/feed", [""] * size.subscribers, 0, size) as subscribers,
    ):
        await server.connected(size.subscribers)
        start = await server.broadcast(frames, size.rate)
        streams = await subscribers.results(size.drain)
    return _analyse(streams, start, size, lambda seq: start + seq / size.rate, frame_seq=False)


def _analyse(
    streams: list[dict[str, Any]],
    start: float,
    size: Size,
    scheduled: Callable[[int], float],
    *,
    frame_seq: bool = True,
) -> FanOut:
    """Checks and figures of one run from what the subscribers report: the reference's parsed
    stream, and every subscriber's frame count, hash and batch arrival times.

    ``frame_seq``: a frame's message is the sequence number in its text (the chat run); without
    it, the n-th frame's (the raw run, which sends the frames in order on a fixed schedule).
    """
    reference = next(s for s in streams if "parsed" in s)
    parsed: list[list[int]] = reference["parsed"]
    seqs = [seq for _, seq in parsed]
    ids = [event_id for event_id, _ in parsed]
    distinct = set(seqs)
    ref_missing = len(set(range(size.messages)) - distinct)
    ref_duplicates = len(seqs) - len(distinct)
    missing = duplicates = mismatched = 0
    for stream in streams:
        if stream["hash"] == reference["hash"]:
            missing += ref_missing
            duplicates += ref_duplicates
        else:
            mismatched += 1
            missing += max(0, size.messages - stream["frames"])
            duplicates += max(0, stream["frames"] - size.messages)
    order = seqs if frame_seq else list(range(len(seqs)))
    latencies = _sampled_latencies(streams, [scheduled(seq) for seq in order])
    last = max((s["arrivals"][-1][0] for s in streams if s["arrivals"]), default=start)
    total = sum(s["frames"] for s in streams)
    return FanOut(
        delivered_rate=total / (last - start) if last > start else 0.0,
        p99_ms=percentile(latencies, 99) * 1000 if latencies else float("inf"),
        checks={
            "missing_frames": missing,
            "duplicate_frames": duplicates,
            "mismatch_streams": mismatched,
            "in_order": ids == sorted(ids),
        },
        frames=[frame.encode() for frame in reference["frames_bytes"]],
    )


def _sampled_latencies(streams: list[dict[str, Any]], scheduled: list[float]) -> list[float]:
    """From each frame's scheduled time to the arrival of the batch that brought it, for every
    ``stride``-th frame of every subscriber (offset per subscriber): the p99 of all of them
    without sorting tens of millions of numbers."""
    count = len(scheduled)
    stride = max(1, count * len(streams) // LATENCY_SAMPLES)
    latencies: list[float] = []
    for n, stream in enumerate(streams):
        arrivals = stream["arrivals"]
        batch = 0
        for frame in range(n % stride, min(count, stream["frames"]), stride):
            while arrivals[batch][1] <= frame:
                batch += 1
            latencies.append(arrivals[batch][0] - scheduled[frame])
    return latencies


# -- the posting client ----------------------------------------------------------------------


class Poster:
    """Keep-alive HTTP/1.1 connections sending pre-built requests: a minimal client, so the load
    generator costs little CPU next to the service it loads (httpx costs ~10× more per request)."""

    def __init__(self, port: int, connections: int) -> None:
        self._port = port
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._open = 0
        self._max = connections
        self._all: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Poster:
        return self

    async def __aexit__(self, *_: object) -> None:
        for writer in self._all:
            writer.close()

    async def send(self, request: bytes) -> int:
        """The response's status."""
        reader, writer = await self._connection()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            self._open -= 1
            raise
        self._idle.put_nowait((reader, writer))
        return int(head.split(b" ", 2)[1])

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle.empty() and self._open < self._max:
            self._open += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
            except BaseException:
                self._open -= 1
                raise
            self._all.append(writer)
            return reader, writer
        return await self._idle.get()


# -- the raw broadcast -----------------------------------------------------------------------


class RawBroadcast:
    """The least a server can do: answer any request with a chunked text/event-stream and write
    each due batch of pre-encoded frames, as one chunk, to every connection."""

    def __init__(self) -> None:
        self._transports: list[asyncio.Transport] = []
        self._joined = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawBroadcast:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        for transport in self._transports:
            transport.close()
        assert self._server is not None
        self._server.close()

    async def connected(self, count: int, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self._transports) < count:
                self._joined.clear()
                await self._joined.wait()

    async def broadcast(self, frames: list[bytes], rate: float) -> float:
        """Write frame ``n`` at ``start + n / rate`` (all the due ones as one chunk); the start."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while sent < len(frames):
            due = min(len(frames), int((loop.time() - start) * rate) + 1)
            if due > sent:
                chunk = _chunk(b"".join(frames[sent:due]))
                for transport in self._transports:
                    transport.write(chunk)
                sent = due
            await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))  # the schedule
        return start

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + _chunk(b"retry: 2000\n\n")
        )
        self._transports.append(writer.transport)  # type: ignore[arg-type]
        self._joined.set()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# -- the subscribers (client processes) ---------------------------------------------------------


class Subscribers:
    """Client processes, each holding a share of the SSE connections; started and connected before
    the load, asked for what they received after it."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self._processes = processes

    @classmethod
    @asynccontextmanager
    async def start(
        cls, port: int, path: str, tokens: list[str], last_event_id: int, size: Size
    ) -> AsyncIterator[Subscribers]:
        shares = [tokens[n :: size.client_processes] for n in range(size.client_processes)]
        processes = []
        try:
            for n, share in enumerate(shares):
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    "from shopstream_bench.benchmarks.chat import subscriber_main; subscriber_main()",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=2**28,
                )
                processes.append(process)
                config = {
                    "port": port,
                    "path": path,
                    "tokens": share,
                    "last_event_id": last_event_id,
                    "expected": size.messages,
                    "reference": n == 0,
                }
                assert process.stdin is not None
                process.stdin.write(json.dumps(config).encode() + b"\n")
                await process.stdin.drain()
            for process in processes:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), 120)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a subscriber process did not connect: {line[:300]!r}")
            yield cls(processes)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                await process.wait()

    async def results(self, drain: float) -> list[dict[str, Any]]:
        """Every connection's report, once each has every message or ``drain`` s have passed."""
        streams: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + drain
        for process in self._processes:
            assert process.stdin is not None
            assert process.stdout is not None
            remaining = max(0.1, deadline - asyncio.get_running_loop().time())
            try:
                line = await asyncio.wait_for(process.stdout.readline(), remaining)
            except TimeoutError:
                process.stdin.write(b"stop\n")
                await process.stdin.drain()
                line = await asyncio.wait_for(process.stdout.readline(), 60)
            streams.extend(json.loads(line))
        return streams


def subscriber_main() -> None:
    """One client process: reads its configuration from stdin, prints ``ready`` once every
    connection has its response head, then the connections' reports (one JSON line) once every
    connection has every message or ``stop`` is read from stdin."""
    config = json.loads(sys.stdin.readline())
    reports = asyncio.run(_subscribe(config))
    sys.stdout.write(json.dumps(reports) + "\n")
    sys.stdout.flush()


async def _subscribe(config: dict[str, Any]) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    expected: int = config["expected"]
    complete = asyncio.Event()
    feeds: list[FeedConnection] = []

    def done() -> None:
        if all(feed.frames >= expected for feed in feeds):
            complete.set()

    for n, token in enumerate(config["tokens"]):
        headers = f"Authorization: {token}\r\n" if token else ""
        request = (
            f"GET {config['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Last-Event-ID: {config['last_event_id']}\r\n{headers}\r\n"
        ).encode()
        feeds.append(FeedConnection(request, expected, config["reference"] and n == 0, done))
    connecting = asyncio.Semaphore(64)  # not a thousand SYNs at once

    async def connect(feed: FeedConnection) -> None:
        async with connecting:
            await loop.create_connection(lambda: feed, "127.0.0.1", config["port"])
            await feed.ready

    await asyncio.gather(*(connect(feed) for feed in feeds))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    # A daemon thread: a blocked read of stdin must not keep the finished process alive.
    threading.Thread(
        target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(complete.set)), daemon=True
    ).start()
    await complete.wait()
    return [feed.report() for feed in feeds]


class FeedConnection(asyncio.Protocol):
    """One SSE connection: de-chunks the HTTP body, counts message frames, hashes every byte of
    the body but keep-alive comments, and notes when each batch arrived. The reference keeps its
    whole stream to parse it at the end."""

    def __init__(
        self, request: bytes, expected: int, reference: bool, progressed: Callable[[], None]
    ) -> None:
        self._request = request
        self._expected = expected
        self._progressed = progressed
        self._head = bytearray()
        self._chunked = False
        self._remaining = 0
        self._skip = 0
        self._line = b""
        self._comment = False
        self._in_body = False
        self._tail = b""
        self._hash = hashlib.blake2b(digest_size=16)
        self._kept: list[bytes] | None = [] if reference else None
        self.frames = 0
        self.arrivals: list[tuple[float, int]] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the response head"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            status = head.split(b" ", 2)[1]
            if status != b"200":
                self.ready.set_exception(ConnectionError(f"feed answered {head[:200]!r}"))
                return
            self._chunked = b"transfer-encoding: chunked" in head.lower()
            self._in_body = True
            self.ready.set_result(None)
        if self._chunked:
            self._dechunk(data, now)
        else:
            self._body(data, 0, len(data), now)

    def _dechunk(self, data: bytes, now: float) -> None:
        """Walks the chunked encoding in place: no copy of the payload, which may be split
        anywhere between reads."""
        at, size = 0, len(data)
        while at < size:
            if self._remaining:
                take = min(self._remaining, size - at)
                if not self._comment:
                    self._body(data, at, at + take, now)
                self._remaining -= take
                at += take
                if not self._remaining:
                    self._skip = 2  # the CRLF after the payload
            elif self._skip:
                taken = min(self._skip, size - at)
                self._skip -= taken
                at += taken
            else:
                end = data.find(b"\r\n", at)
                if end < 0:
                    self._line += data[at:]
                    return
                self._remaining = int(self._line + data[at:end], 16)
                self._line = b""
                at = end + 2
                # A keep-alive comment is a chunk of its own: timing-dependent, not content.
                self._comment = data[at : at + 1] == b":"
                if not self._remaining:
                    self._skip = 2

    def _body(self, data: bytes, start: int, end: int, now: float) -> None:
        self._hash.update(memoryview(data)[start:end])
        if self._kept is not None:
            self._kept.append(data[start:end])
        overlap = len(MESSAGE_MARK) - 1
        # Marks split between reads (the tail is too short to hold a whole one), then the rest.
        found = (self._tail + data[start : start + overlap]).count(MESSAGE_MARK)
        found += data.count(MESSAGE_MARK, start, end)
        self._tail = (self._tail + data[max(start, end - overlap) : end])[-overlap:]
        if found:
            self.frames += found
            self.arrivals.append((now, self.frames))
            if self.frames >= self._expected:
                self._progressed()

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "frames": self.frames,
            "hash": self._hash.hexdigest(),
            "arrivals": self.arrivals,
        }
        if self._kept is not None:
            frames = [f + b"\n\n" for f in b"".join(self._kept).split(b"\n\n") if MESSAGE_MARK in b"\n" + f]
            report["parsed"] = [_id_and_seq(frame) for frame in frames]
            report["frames_bytes"] = [frame.decode() for frame in frames]
        return report


def _id_and_seq(frame: bytes) -> tuple[int, int]:
    fields = dict(line.split(b": ", 1) for line in frame.strip().split(b"\n"))
    text: str = json.loads(fields[b"data"])["text"]
    return int(fields[b"id"]), int(text.split(" ", 1)[0][1:])


BENCHMARK = Benchmark(
    name="chat",
    title="Chat fan-out: messages into one room, SSE subscribers, vs a raw broadcast of the same frames",
    run=run,
    order=60,
)
