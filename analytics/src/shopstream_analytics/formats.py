"""The export file formats, each written in bounded chunks and resumable from a checkpoint.

Every writer takes rows (tuples in ``columns`` order), buffers them, and on ``flush`` writes them
out and returns its *state*: what a resumed export needs to continue this very file (a byte
length for JSONL and CSV, a row-group count for Parquet). ``close`` completes the file.

- JSONL: one CloudEvent per line in structured mode (the CloudEvents JSON format); the store
  facts (``service``, ``stream_id``, ``stream_version``, ``position``, ``recorded_at``,
  ``internal``) are extra attributes of the same object, ``data`` the payload object.
- CSV: a header, then one row per event; instants in ISO-8601 UTC, booleans ``true``/``false``,
  null as an empty field, JSON columns as JSON text.
- Parquet: typed columns (``timestamp[us, tz=UTC]``, ``int64``, ``bool``, ``string``), one row
  group per flush, JSON columns as JSON text (DuckDB: ``data->>'$.order_id'``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")

Kind = Literal["string", "int", "bool", "timestamp", "json"]
Column = tuple[str, Kind]

ENVELOPE: tuple[Column, ...] = (
    ("id", "string"),
    ("source", "string"),
    ("type", "string"),
    ("specversion", "string"),
    ("time", "timestamp"),
    ("subject", "string"),
    ("dataversion", "int"),
    ("correlationid", "string"),
    ("causationid", "string"),
    ("internal", "bool"),
    ("service", "string"),
    ("stream_id", "string"),
    ("stream_version", "int"),
    ("position", "int"),
    ("recorded_at", "timestamp"),
)
"""The columns every export row starts with; ``time`` is the event's ``occurred_at``."""

DATA: Column = ("data", "json")

_ARROW: dict[Kind, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
}


class CannotResume(Exception):
    """The partial file does not match its checkpoint (e.g. a Parquet file never closed)."""


class Writer(Protocol):
    def add(self, row: Sequence[Any]) -> None: ...

    @property
    def buffered(self) -> int: ...

    def flush(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def suffix(fmt: Format) -> str:
    return {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}[fmt]


def open_writer(fmt: Format, path: Path, columns: Sequence[Column], state: dict[str, Any] | None) -> Writer:
    """A writer of a fresh file (``state`` None) or one continuing a checkpointed file."""
    if fmt == "parquet":
        return ParquetWriter(path, columns, state)
    return TextWriter(path, columns, state, _jsonl_lines if fmt == "jsonl" else _csv_lines)


def _json(value: Any) -> bytes | None:
    return None if value is None else orjson.dumps(value)


class TextWriter:
    """JSONL and CSV: lines appended to one file; the state is the file's length."""

    def __init__(
        self,
        path: Path,
        columns: Sequence[Column],
        state: dict[str, Any] | None,
        render: Callable[[Sequence[Column], list[Sequence[Any]], bool], bytes],
    ) -> None:
        self._columns = columns
        self._render = render
        self._rows: list[Sequence[Any]] = []
        if state is None:
            self._file = path.open("wb")
            self._header = True
        else:
            length = int(state["bytes"])
            if not path.is_file() or path.stat().st_size < length:
                raise CannotResume(f"{path} is shorter than its checkpoint")
            # Whatever was written after the last checkpoint is written again by the resumed run.
            os.truncate(path, length)
            self._file = path.open("ab")
            self._header = False

    def add(self, row: Sequence[Any]) -> None:
        self._rows.append(row)

    @property
    def buffered(self) -> int:
        return len(self._rows)

    def flush(self) -> dict[str, Any]:
        if self._rows or self._header:
            self._file.write(self._render(self._columns, self._rows, self._header))
            self._header = False
            self._rows = []
        self._file.flush()
        return {"bytes": self._file.tell()}

    def close(self) -> None:
        self.flush()
        self._file.close()


def _jsonl_lines(columns: Sequence[Column], rows: list[Sequence[Any]], _header: bool) -> bytes:
    names = [name for name, _ in columns]
    option = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
    return b"".join(
        orjson.dumps(
            {"datacontenttype": "application/json", **dict(zip(names, row, strict=True))}, option=option
        )
        for row in rows
    )


def _csv_cell(kind: Kind) -> Callable[[Any], Any]:
    if kind == "timestamp":
        return lambda value: None if value is None else value.isoformat()
    if kind == "json":
        return lambda value: None if value is None else orjson.dumps(value).decode()
    if kind == "bool":
        return lambda value: None if value is None else ("true" if value else "false")
    return lambda value: value


def _csv_lines(columns: Sequence[Column], rows: list[Sequence[Any]], header: bool) -> bytes:
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    if header:
        out.writerow([name for name, _ in columns])
    if rows:
        cells = [
            list(map(_csv_cell(kind), values))
            for (_, kind), values in zip(columns, zip(*rows, strict=True), strict=True)
        ]
        out.writerows(zip(*cells, strict=True))
    return text.getvalue().encode()


class ParquetWriter:
    """One row group per flush; the state is the number of row groups written. A resumed file
    is rewritten: the row groups of the checkpoint are copied from the previous (closed) file."""

    def __init__(self, path: Path, columns: Sequence[Column], state: dict[str, Any] | None) -> None:
        self._columns = columns
        self._schema = pa.schema([pa.field(name, _ARROW[kind]) for name, kind in columns])
        self._rows: list[Sequence[Any]] = []
        self._groups = 0
        previous: pq.ParquetFile | None = None
        if state is not None:
            groups = int(state["row_groups"])
            kept = path.with_name(path.name + ".prev")
            try:
                os.replace(path, kept)
                previous = pq.ParquetFile(kept)
            except (OSError, pa.ArrowException) as error:
                raise CannotResume(f"{path} cannot be read back ({error})") from error
            if previous.metadata.num_row_groups < groups or previous.schema_arrow != self._schema:
                raise CannotResume(f"{path} does not hold the {groups} row groups of its checkpoint")
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        if previous is not None:
            for group in range(int(state["row_groups"]) if state else 0):
                self._writer.write_table(previous.read_row_group(group))
                self._groups += 1
            previous.close()
            kept.unlink()

    def add(self, row: Sequence[Any]) -> None:
        self._rows.append(row)

    @property
    def buffered(self) -> int:
        return len(self._rows)

    def flush(self) -> dict[str, Any]:
        if self._rows:
            values = zip(*self._rows, strict=True)
            arrays = [
                pa.array([_json(v) for v in column] if kind == "json" else column, type=_ARROW[kind])
                for (_, kind), column in zip(self._columns, values, strict=True)
            ]
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
            self._groups += 1
            self._rows = []
        return {"row_groups": self._groups}

    def close(self) -> None:
        self.flush()
        self._writer.close()
