"""A deterministic digest of a projection's rows, to compare a rebuilt projection with a live one.

Order-independent: each row is hashed on its own and the row hashes are sorted, so the result
depends neither on physical row order nor on a backend's collation (``ORDER BY`` of text differs
between SQLite and PostgreSQL). Values are encoded by kind, not by Python type, where the two
backends differ only in representation (a boolean is an integer in SQLite, a UUID is text), so
rows of integer, text, boolean and uuid columns give the same digest on both backends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from uuid import UUID

from .readmodel import Row


@dataclass(frozen=True, slots=True)
class Checksum:
    position: int
    """The checkpoint the rows were read at."""
    digest: str


def digest_tables(tables: Iterable[tuple[str, Sequence[Row]]]) -> str:
    """SHA-256 over the tables (sorted by name), each with its row count and sorted row hashes."""
    total = hashlib.sha256()
    for name, rows in sorted(tables, key=lambda table: table[0]):
        total.update(_field(b"t", name.encode()))
        total.update(_field(b"n", str(len(rows)).encode()))
        for row_hash in sorted(row_digest(row) for row in rows):
            total.update(row_hash)
    return total.hexdigest()


def row_digest(row: Row) -> bytes:
    return hashlib.sha256(b"".join(_value(value) for value in row)).digest()


def _value(value: object) -> bytes:
    # bool before int: bool is an int subclass, and SQLite stores booleans as 0/1.
    if value is None:
        return _field(b"N", b"")
    if isinstance(value, bool | int):
        return _field(b"i", str(int(value)).encode())
    if isinstance(value, float):
        return _field(b"f", repr(value).encode())
    if isinstance(value, Decimal):
        return _field(b"d", str(value.normalize()).encode())
    if isinstance(value, str):
        return _field(b"s", value.encode())
    if isinstance(value, UUID):
        return _field(b"s", str(value).encode())
    if isinstance(value, bytes | bytearray | memoryview):
        return _field(b"b", bytes(value))
    if isinstance(value, datetime | date | time):
        return _field(b"s", value.isoformat().encode())
    raise TypeError(f"cannot checksum a {type(value).__name__} column value")


def _field(kind: bytes, payload: bytes) -> bytes:
    # Length-prefixed so that ("ab", "c") and ("a", "bc") cannot hash alike.
    return kind + len(payload).to_bytes(8, "big") + payload
