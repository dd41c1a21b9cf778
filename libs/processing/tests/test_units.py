"""The pure parts: SQL placeholder rewriting, checksums, ids, backoff, awaitable progress."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shopstream_eventstore import EventMetadata, RecordedEvent
from shopstream_processing import Backoff, IssuedCommand, ProjectionRunner, Table, command_id
from shopstream_processing.checksum import digest_tables, row_digest
from shopstream_processing.readmodel import sqlite_sql
from shopstream_processing.supervision import Progress

from .stockdemo import StockProjection

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def recorded(event_id: uuid.UUID | None = None, correlation_id: str | None = None) -> RecordedEvent:
    return RecordedEvent(
        event_id=event_id or uuid.uuid4(),
        stream_id="order-1",
        stream_version=0,
        position=7,
        type="shopstream.test.OrderPlaced",
        data_version=1,
        data={},
        metadata=EventMetadata(occurred_at=T0, correlation_id=correlation_id),
        recorded_at=T0,
    )


# -- $N ⇒ ?N ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("portable", "sqlite"),
    [
        ("SELECT * FROM t WHERE a = $1 AND b = $2", "SELECT * FROM t WHERE a = ?1 AND b = ?2"),
        ("UPDATE t SET a = $2 WHERE k = $1 OR j = $1", "UPDATE t SET a = ?2 WHERE k = ?1 OR j = ?1"),
        ("VALUES ($10, $9)", "VALUES (?10, ?9)"),
        ("SELECT '$1', 'it''s $2', $3", "SELECT '$1', 'it''s $2', ?3"),
        ('SELECT "$1col" FROM t WHERE x = $1', 'SELECT "$1col" FROM t WHERE x = ?1'),
        ("SELECT $1 -- not $2\n, /* nor $3 */ $4", "SELECT ?1 -- not $2\n, /* nor $3 */ ?4"),
        ("CREATE TABLE t (a text)", "CREATE TABLE t (a text)"),
    ],
)
def test_numbered_parameters_are_rewritten_only_outside_literals_and_comments(
    portable: str, sqlite: str
) -> None:
    assert sqlite_sql(portable) == sqlite


# -- checksums ------------------------------------------------------------------------------------


def test_checksum_ignores_row_order_but_not_content() -> None:
    rows = [("a", 1, 2), ("b", 3, 4), ("c", 5, 6)]
    same = digest_tables([("stock", rows)])
    assert digest_tables([("stock", list(reversed(rows)))]) == same
    assert digest_tables([("stock", [("a", 1, 2), ("b", 3, 4), ("c", 5, 7)])]) != same
    assert digest_tables([("stock", rows[:2])]) != same
    assert digest_tables([("stock", [*rows, rows[0]])]) != same, "a duplicated row must show"


def test_checksum_covers_table_names_and_ignores_table_order() -> None:
    a, b = ("a", [(1,)]), ("b", [(2,)])
    assert digest_tables([a, b]) == digest_tables([b, a])
    assert digest_tables([("a", [(2,)]), ("b", [(1,)])]) != digest_tables([a, b])


def test_checksum_values_are_unambiguous() -> None:
    assert row_digest(("ab", "c")) != row_digest(("a", "bc"))
    assert row_digest((1,)) != row_digest(("1",))
    assert row_digest((None,)) != row_digest(("",))
    assert row_digest((1.0,)) != row_digest((1,))


def test_checksum_encodes_values_as_both_backends_store_them() -> None:
    # SQLite has no boolean or uuid type: it stores 1 and the uuid's text.
    ident = uuid.uuid4()
    assert row_digest((True, ident)) == row_digest((1, str(ident)))
    assert row_digest((Decimal("1.50"),)) == row_digest((Decimal("1.5"),))
    with pytest.raises(TypeError):
        row_digest((object(),))


# -- policies -----------------------------------------------------------------------------------


def test_command_ids_are_derived_from_policy_event_and_index() -> None:
    event_id = uuid.uuid4()
    first = command_id("reserve-on-order", event_id)
    assert first == command_id("reserve-on-order", event_id, 0)
    assert first.version == 5
    assert len({first, command_id("reserve-on-order", event_id, 1), command_id("other", event_id)}) == 3
    assert command_id("reserve-on-order", uuid.uuid4()) != first


def test_issued_command_event_ids_and_metadata() -> None:
    cause = recorded(correlation_id="checkout-9")
    issued = IssuedCommand("reserve", command_id("p", cause.event_id), cause)
    assert issued.event_id() == issued.command_id
    assert len({issued.event_id(0), issued.event_id(1), issued.event_id(2)}) == 3
    meta = issued.metadata(T0)
    assert (meta.causation_id, meta.correlation_id) == (str(cause.event_id), "checkout-9")
    uncorrelated = recorded()
    meta = IssuedCommand("reserve", uuid.uuid4(), uncorrelated).metadata(T0)
    assert meta.correlation_id == str(uncorrelated.event_id), "a chain starts its own correlation"


# -- runners' pure parts --------------------------------------------------------------------------


def test_backoff_grows_then_caps() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, factor=2.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_progress_wakes_waiters_and_times_out() -> None:
    progress = Progress()
    await progress.wait_until(0, timeout=0)
    waiter = asyncio.create_task(progress.wait_until(5, timeout=5))
    # Scheduler yields, not timing: the waiter blocks, is woken by 3, re-checks and blocks again.
    await asyncio.sleep(0)
    progress.advance(3)
    await asyncio.sleep(0)
    assert not waiter.done()
    progress.advance(5)
    await waiter
    progress.advance(2)
    assert progress.position == 5, "a checkpoint never goes back"
    with pytest.raises(TimeoutError):
        await progress.wait_until(6, timeout=0.01)


def test_projection_names_must_be_safe_sql_identifiers() -> None:
    class Evil(StockProjection):
        tables = (Table("stock; DROP TABLE events", "sku text"),)

    with pytest.raises(ValueError, match="identifier"):
        ProjectionRunner(None, None, Evil(), service="test")  # type: ignore[arg-type]
