"""Projections: read models built from the local event store, rebuildable from position 0.

Tables live in *generations*. A projection's rows are in physical tables named
``<table>__g<generation>``; readers query the stable name ``<table>``, a view over the serving
generation. The runner applies each subscription batch to the serving generation and advances
that generation's checkpoint in the same transaction, so every event takes effect exactly once.

A rebuild fills a fresh generation from position 0 while the serving one keeps serving (and,
at the same version, keeps following the store). Once the new generation has caught up, one
transaction drops the views, recreates them over the new tables and drops the old tables: a
reader sees the old complete generation or the new complete one, never an empty or partial
table. Views rather than ``ALTER TABLE ... RENAME`` because (1) physical names never change, so
the writer always targets exactly the generation it read the checkpoint of, and a stale writer
fails instead of writing into the swapped-in tables; (2) index names stay unique per schema
without renaming them too; (3) DROP/CREATE VIEW is transactional DDL on both SQLite and
PostgreSQL, and both inline a plain ``SELECT *`` view, so reading through it costs nothing.
One PostgreSQL caveat: a REPEATABLE READ transaction whose snapshot predates a swap finds the
new tables empty (DDL is not MVCC-safe); readers should query per statement (READ COMMITTED).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeGuard, cast

from shopstream_eventstore import EventStore, RawEvent, RecordedEvent
from shopstream_observability import get_logger
from shopstream_observability.metrics import BATCH_SECONDS, PROJECTION_LAG

from .checksum import Checksum, digest_tables
from .readmodel import REGISTRY_TABLE, ReadModelDb, RowCountMismatch, Statement
from .supervision import Backoff, EventProcessingFailed, FollowingRunner, Supervisor

log = get_logger(__name__)

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class Table:
    """One table of a projection, in portable SQL (types both backends accept: text, integer,
    bigint, boolean...)."""

    name: str
    """The stable name readers query."""
    columns: str
    """Column definitions and table constraints, e.g. ``sku text PRIMARY KEY, on_hand bigint NOT NULL``."""
    indexes: tuple[str, ...] = ()
    """Column lists, one secondary index each, e.g. ``("live_id, created_at",)``."""


TableNames = Mapping[str, str]
"""Stable table name ⇒ physical table of the generation being written."""


class Projection(Protocol):
    """A read model: ``apply`` folds events into its tables.

    ``apply`` must be deterministic and must give the same rows whether events come in one
    batch or several (the runner splits batches differently live and during a rebuild). It must
    also be pure: during a rebuild the runner folds the next page while the previous page's
    transaction runs, and drops those statements if that transaction fails. Bump
    ``version`` whenever ``tables`` or ``apply`` change meaning: the runner then rebuilds.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def tables(self) -> Sequence[Table]: ...

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        """The statements that fold ``events`` into the tables; events it ignores yield none."""
        ...


class RawProjection(Projection, Protocol):
    """A projection that can also fold events as the store holds them (``RawEvent``: data and
    metadata as JSON text), skipping the decode into ``RecordedEvent`` (a UUID, a dict, an
    ``EventMetadata`` and two datetimes per event, several times a raw row's read). The runner
    reads raw events for such a projection, live and during a rebuild; ``apply`` stays for
    callers holding recorded events. Both must give the same rows for the same events, with one
    latitude: ``apply_raw`` may return statements that fail a batch which event-by-event
    application would not (an optimistic set-based fold meeting an unexpected row), since the
    runner then re-applies that batch one event per transaction."""

    def apply_raw(self, events: Sequence[RawEvent], tables: TableNames) -> Sequence[Statement]: ...


def reads_raw(projection: Projection) -> TypeGuard[RawProjection]:
    """Whether the projection opted in to raw events (it has an ``apply_raw``)."""
    return callable(getattr(projection, "apply_raw", None))


Event = RecordedEvent | RawEvent
"""What the runner moves: a batch holds one kind only, the one its projection reads."""


@dataclass(frozen=True, slots=True)
class RebuildResult:
    generation: int
    position: int
    """The checkpoint at which the new generation started serving."""
    previous: Checksum | None
    """With ``verify``: the replaced generation at the same position (same version only)."""
    rebuilt: Checksum | None


class CheckpointMoved(Exception):
    """The generation's checkpoint is not where this runner last left it: another runner (or an
    apply whose outcome this one never learnt) wrote it. The runner reloads and carries on."""

    def __init__(self, projection: str, generation: int, expected: int) -> None:
        super().__init__(f"projection {projection} generation {generation}: checkpoint left {expected}")


@dataclass(slots=True)
class _Generation:
    number: int
    version: int
    tables: dict[str, str]
    position: int
    serving: bool


def _generation(
    number: int, version: int, tables: Sequence[str], position: int, serving: bool
) -> _Generation:
    return _Generation(number, version, {t: f"{t}__g{number}" for t in tables}, position, serving)


class ProjectionRunner(FollowingRunner):
    def __init__(
        self,
        store: EventStore,
        db: ReadModelDb,
        projection: Projection,
        *,
        service: str,
        batch_size: int = 500,
        rebuild_batch_size: int = 5_000,
        backoff: Backoff | None = None,
    ) -> None:
        """``batch_size`` events at most per transaction while following the store;
        ``rebuild_batch_size`` while a rebuild fills a generation from the store:
        fewer, larger transactions, each still with its checkpoint (on SQLite every commit is an
        fsync)."""
        for table in projection.tables:
            # Table names go into SQL text (and grow by a generation suffix): keep them plain.
            if not _IDENTIFIER.match(table.name):
                raise ValueError(
                    f"table {table.name!r} must be a lower-case SQL identifier of at most 40 characters"
                )
        super().__init__(store, Supervisor(service, f"projection:{projection.name}", backoff or Backoff()))
        self._db = db
        self._projection = projection
        self._service = service
        self._batch_size = batch_size
        self._rebuild_batch_size = max(batch_size, rebuild_batch_size)
        # Held while a generation is written, so a rebuild's swap never interleaves with a batch.
        self._lock = asyncio.Lock()
        self._serving: _Generation | None = None
        self._rebuilding = False
        self._raw_projection = projection if reads_raw(projection) else None

    @property
    def name(self) -> str:
        return self._projection.name

    async def checksum(self) -> Checksum:
        """The serving generation's rows, read at one checkpoint."""
        async with self._lock:
            serving = self._serving or await self._load()
            return await self._checksum(serving)

    async def rebuild(self, *, verify: bool = False) -> RebuildResult:
        """Build a new generation from position 0 and swap it in; resumes an interrupted rebuild.

        At the same version the serving generation keeps following the store meanwhile, and with
        ``verify`` both are compared by checksum at one position before the swap (a mismatch is
        logged as an error: the projection is not deterministic). At a new version the serving
        generation stays frozen at the old version until the new one takes over.
        """
        if self._rebuilding:
            raise RuntimeError(f"projection {self.name} is already being rebuilt")
        self._rebuilding = True
        try:
            async with self._lock:
                await self._load()
            building = await self._building_generation()
            log.info(
                "projection.rebuild_started",
                projection=self.name,
                generation=building.number,
                from_position=building.position,
            )
            await self._advance(building, await self._store.head_position())
            # Secondary indexes are built once the bulk of the rows is in (one sorted build per
            # index instead of a B-tree insert per row and index); the catch-up below is small.
            if indexes := self._indexes(building, if_not_exists=True):
                await self._db.transaction(indexes)
            async with self._lock:
                serving = self._serving or await self._load()
                previous = rebuilt = None
                if serving.version == building.version:
                    await self._advance(building, serving.position)
                    await self._advance(serving, building.position)
                    if verify:
                        previous, rebuilt = await self._checksum(serving), await self._checksum(building)
                        if previous != rebuilt:
                            log.error(
                                "projection.rebuild_differs",
                                projection=self.name,
                                position=building.position,
                                serving=previous.digest,
                                rebuilt=rebuilt.digest,
                            )
                await self._swap(serving, building)
            log.info(
                "projection.rebuild_swapped",
                projection=self.name,
                generation=building.number,
                position=building.position,
            )
            return RebuildResult(building.number, building.position, previous, rebuilt)
        finally:
            self._rebuilding = False

    # -- the live loop --------------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            try:
                await self._follow_serving()
            except CheckpointMoved as moved:
                # Another runner of this projection (a replica of the service on the same
                # database) applied these events first. That is how replicas share the work, not
                # a failure: no backoff, no error; reload the checkpoint and follow on from it.
                log.debug("projection.checkpoint_moved", projection=self.name, detail=str(moved))

    async def _follow_serving(self) -> None:
        async with self._lock:
            serving = await self._load()
        if serving.version != self._projection.version:
            await self.rebuild()
        self.loaded.set()
        batches: AsyncIterator[Sequence[Event]] = (
            self._store.subscribe_raw(self._progress.position, self._batch_size)
            if self._raw_projection is not None
            else self._store.subscribe(self._progress.position, self._batch_size)
        )
        async for batch in batches:
            started = time.perf_counter()
            async with self._lock:
                serving = self._current()
                # A rebuild's swap may have moved the serving generation past this batch's start.
                fresh = (
                    batch
                    if not batch or batch[0].position > serving.position
                    else [event for event in batch if event.position > serving.position]
                )
                if not fresh:
                    continue
                await self._apply(serving, fresh)
            self._supervisor.succeeded()
            BATCH_SECONDS.labels(self._service, "projection").observe(time.perf_counter() - started)
            PROJECTION_LAG.labels(self._service, self.name).set(await self.lag())

    def _current(self) -> _Generation:
        if self._serving is None:
            raise RuntimeError("no serving generation loaded")
        return self._serving

    # -- generations ------------------------------------------------------------------------

    async def _rows(self) -> list[_Generation]:
        rows = await self._db.fetch(
            f"SELECT generation, version, tables, position, serving FROM {REGISTRY_TABLE} "
            "WHERE projection = $1 ORDER BY generation",
            self.name,
        )
        return [
            _generation(int(number), int(version), tables.split(","), int(position), bool(serving))
            for number, version, tables, position, serving in rows
        ]

    async def _load(self) -> _Generation:
        """The serving generation from the database (the truth after any failure or restart),
        created empty at position 0 the first time the projection runs."""
        generations = await self._rows()
        serving = next((g for g in generations if g.serving), None)
        if serving is None:
            serving = self._new_generation(generations, serving=True)
            views = [self._view(stable, physical) for stable, physical in serving.tables.items()]
            try:
                await self._db.transaction([*self._create(serving), *views])
            except Exception:
                # Replicas starting together on an empty database: one creates the generation,
                # the others' transactions fail on it (rolled back whole) and take it from there.
                created = next((g for g in await self._rows() if g.serving), None)
                if created is None:
                    raise
                serving = created
            else:
                log.info("projection.created", projection=self.name, generation=serving.number)
        self._serving = serving
        # A generation of another version is only a stand-in: readers running this code expect
        # this version's tables, so read-your-writes waits for the rebuild.
        if serving.version == self._projection.version:
            self._progress.advance(serving.position)
        return serving

    async def _building_generation(self) -> _Generation:
        generations = await self._rows()
        version = self._projection.version
        candidates = [g for g in generations if not g.serving and g.version == version]
        resumed = candidates[-1] if candidates else None
        stale = [g for g in generations if not g.serving and g is not resumed]
        statements = [statement for g in stale for statement in self._drop(g)]
        if resumed is None:
            resumed = self._new_generation(generations, serving=False)
            statements += self._create(resumed, indexes=False)
        if statements:
            await self._db.transaction(statements)
        return resumed

    def _new_generation(self, existing: Sequence[_Generation], *, serving: bool) -> _Generation:
        number = max((g.number for g in existing), default=0) + 1
        tables = [table.name for table in self._projection.tables]
        return _generation(number, self._projection.version, tables, 0, serving)

    def _create(self, generation: _Generation, *, indexes: bool = True) -> list[Statement]:
        statements = [
            Statement(
                f"INSERT INTO {REGISTRY_TABLE} (projection, generation, version, tables, position, serving) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                (
                    self.name,
                    generation.number,
                    generation.version,
                    ",".join(generation.tables),
                    generation.position,
                    int(generation.serving),
                ),
            )
        ]
        statements += [
            Statement(f"CREATE TABLE {generation.tables[table.name]} ({table.columns})")
            for table in self._projection.tables
        ]
        if indexes:
            statements += self._indexes(generation)
        return statements

    def _indexes(self, generation: _Generation, *, if_not_exists: bool = False) -> list[Statement]:
        """The secondary indexes (``Table.indexes``; keys and unique constraints are part of the
        columns, so rows conflict the same with or without these)."""
        create = "CREATE INDEX IF NOT EXISTS" if if_not_exists else "CREATE INDEX"
        return [
            Statement(f"{create} {physical}__i{n} ON {physical} ({columns})")
            for table in self._projection.tables
            for physical in (generation.tables[table.name],)
            for n, columns in enumerate(table.indexes)
        ]

    def _drop(self, generation: _Generation) -> list[Statement]:
        return [
            Statement(
                f"DELETE FROM {REGISTRY_TABLE} WHERE projection = $1 AND generation = $2",
                (self.name, generation.number),
                expect_rows=1,
            ),
            *(Statement(f"DROP TABLE IF EXISTS {physical}") for physical in generation.tables.values()),
        ]

    @staticmethod
    def _view(stable: str, physical: str) -> Statement:
        return Statement(f"CREATE VIEW {stable} AS SELECT * FROM {physical}")

    async def _swap(self, old: _Generation, new: _Generation) -> None:
        key = (self.name, new.number, new.position)
        await self._db.transaction(
            [
                # Guards first: the swap fails if either generation moved behind this runner's back.
                Statement(
                    f"UPDATE {REGISTRY_TABLE} SET serving = 1 "
                    "WHERE projection = $1 AND generation = $2 AND position = $3 AND serving = 0",
                    key,
                    expect_rows=1,
                ),
                Statement(
                    f"DELETE FROM {REGISTRY_TABLE} "
                    "WHERE projection = $1 AND generation = $2 AND position = $3",
                    (self.name, old.number, old.position),
                    expect_rows=1,
                ),
                *[Statement(f"DROP VIEW {stable}") for stable in old.tables],
                *[self._view(stable, physical) for stable, physical in new.tables.items()],
                *[Statement(f"DROP TABLE {physical}") for physical in old.tables.values()],
            ]
        )
        new.serving = True
        self._serving = new
        self._progress.advance(new.position)

    # -- applying events --------------------------------------------------------------------

    async def _advance(self, generation: _Generation, until: int) -> None:
        """Apply the store's events after the generation's checkpoint, up to ``until`` included.

        Three pages are in flight at once: the next one is read (the store's connection) while
        the projection folds the current one into statements (the event loop) while the previous
        one's transaction runs (the read model's connection). Transactions still run one at a
        time and in order, each with its checkpoint; only ``apply``, which is pure, runs ahead."""
        if generation.position >= until:
            return
        read: Callable[[int, int], Awaitable[Sequence[Event]]] = (
            self._store.read_all_raw if self._raw_projection is not None else self._store.read_all
        )
        page_size = self._rebuild_batch_size
        reading = asyncio.ensure_future(read(generation.position, page_size))
        writing: asyncio.Future[None] | None = None
        try:
            while True:
                page = await reading
                events = (
                    [event for event in page if event.position <= until]
                    if page and page[-1].position > until
                    else page
                )
                if not events:
                    break
                if events[-1].position < until:
                    reading = asyncio.ensure_future(read(events[-1].position, page_size))
                try:
                    statements: Sequence[Statement] | None = self._statements(generation, events)
                except Exception:
                    statements = None  # _apply calls apply again and names the failing event
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self._apply(generation, events, statements))
                # Let the transaction start (reach its connection) before folding the next page:
                # awaiting a page that is already read would not yield to it.
                await asyncio.sleep(0)
                if events[-1].position >= until:
                    break
            if writing is not None:
                await writing
        finally:
            for pending in (reading, writing):
                if pending is not None and not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)

    def _statements(self, generation: _Generation, events: Sequence[Event]) -> Sequence[Statement]:
        # The runner reads raw events exactly when its projection folds them (``__init__``), so
        # a batch is all of the kind the projection takes.
        if self._raw_projection is not None:
            return self._raw_projection.apply_raw(cast(Sequence[RawEvent], events), generation.tables)
        return self._projection.apply(cast(Sequence[RecordedEvent], events), generation.tables)

    async def _apply(
        self, generation: _Generation, events: Sequence[Event], statements: Sequence[Statement] | None = None
    ) -> None:
        try:
            await self._apply_batch(generation, events, statements)
        except CheckpointMoved:
            raise
        except Exception as exc:
            if len(events) == 1:
                raise EventProcessingFailed(f"projection:{self.name}", events[0]) from exc
            # Retry one event per transaction: the events before the culprit are kept and
            # the error names the event that fails.
            for event in events:
                try:
                    await self._apply_batch(generation, [event])
                except CheckpointMoved:
                    raise
                except Exception as single:
                    raise EventProcessingFailed(f"projection:{self.name}", event) from single
            log.warning("projection.batch_failed_but_events_applied", projection=self.name, exc_info=exc)

    async def _apply_batch(
        self, generation: _Generation, events: Sequence[Event], statements: Sequence[Statement] | None = None
    ) -> None:
        position = events[-1].position
        checkpoint = Statement(
            f"UPDATE {REGISTRY_TABLE} SET position = $1 "
            "WHERE projection = $2 AND generation = $3 AND position = $4",
            (position, self.name, generation.number, generation.position),
            expect_rows=1,
        )
        if statements is None:
            statements = self._statements(generation, events)
        try:
            # The checkpoint guard goes first: on PostgreSQL its row lock also serialises a
            # second runner of the same projection, which then finds the position moved.
            await self._db.transaction([checkpoint, *statements])
        except RowCountMismatch as exc:
            if exc.statement is checkpoint:
                raise CheckpointMoved(self.name, generation.number, generation.position) from exc
            raise
        generation.position = position
        if generation.serving:
            self._progress.advance(position)

    async def _checksum(self, generation: _Generation) -> Checksum:
        names = sorted(generation.tables)
        queries = [Statement(f"SELECT * FROM {generation.tables[name]}") for name in names]
        results = await self._db.read(queries)
        return Checksum(generation.position, digest_tables(zip(names, results, strict=True)))
