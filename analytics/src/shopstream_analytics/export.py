"""Export the selected history of one or several stores to JSONL, CSV or Parquet.

Rows are the CloudEvents the owners publish (``formats.ENVELOPE`` + ``data``). Memory is
bounded by a page per store and a row group, however long the history. The stores are read raw
(``sources.read_range_stored``): ``data`` is written as the JSON text the store holds (on SQLite
the very bytes an encoding of the decoded payload gives; PostgreSQL's jsonb text has its own
spacing and key order), and JSON is decoded only where a row or a filter needs a value.

Nothing half-written ever sits under the final name: the export writes ``<out>.partial`` (a
directory of per-type files with ``flatten``) and renames it at the end. After every row group
it saves ``<out>.progress.json``: per store the read range and the position up to which every
selected event is in the partial output, and per file how much of it counts. An interrupted
export (Ctrl-C, a failure, a kill) is continued with ``resume=True``: the partial files are cut
back to the checkpoint and each store is read again right after its checkpointed position, so
every event is exported exactly once. A Parquet file that was never closed (the process was
killed) cannot be read back: the resumed export then starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from shopstream_contracts import REGISTRY
from shopstream_contracts.errors import UnknownEventType, UnknownEventVersion
from shopstream_observability import get_logger

from .envelope import row as _row
from .flatten import Flattener
from .formats import DATA, ENVELOPE, FORMATS, CannotResume, Column, Format, Writer, open_writer, suffix
from .history import History, LiveNotFound
from .selection import Selection
from .sources import StoredEvent, StoreRef, read_range_stored

log = get_logger(__name__)

COLUMNS: tuple[Column, ...] = (*ENVELOPE, DATA)
"""The columns of an export without ``flatten``."""

RowOf = Callable[[str, StoredEvent], Sequence[Any]]


class ExportError(Exception):
    """An export that cannot be done as asked; the message says why (shown as is)."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    out: Path
    format: Format
    exported: int
    """Events in the output (including those of the interrupted run a resume continued)."""
    scanned: int
    """Store positions read by this run."""
    positions: dict[str, int]
    """Per store, the last position read."""
    files: list[Path] = field(default_factory=list)
    resumed: bool = False


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.json")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


async def export_events(
    refs: Sequence[StoreRef],
    selection: Selection,
    out: Path,
    fmt: Literal["jsonl", "csv", "parquet"],
    *,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    page: int = 5000,
    flatten: bool = False,
    row_group: int | None = None,
) -> ExportSummary:
    """Write the events ``selection`` takes from the stores ``refs`` to ``out``.

    ``progress`` is called with the number of store positions scanned since its last call (the
    bar's length is ``count_to_scan``). ``flatten`` (CSV, Parquet) makes ``out`` a directory
    with one file per event type and version, payload fields as columns. ``row_group`` rows
    (default ``4 × page``) are buffered between checkpoints.
    """
    check_output(out, fmt, flatten)
    checkpoint = progress_path(out)
    options = {
        "format": fmt,
        "flatten": flatten,
        "selection": selection.describe(),
        "services": [ref.service for ref in refs],
    }
    saved = _load_checkpoint(checkpoint, options) if resume else None
    partial = partial_path(out)
    sink: _Sink | None = None
    if saved is not None:
        try:
            sink = _Sink(partial, fmt, flatten, saved)
        except CannotResume as error:
            log.warning("export.restarting", out=str(out), reason=str(error))
            saved = None
    if sink is None:
        _discard(partial, checkpoint, partial.with_name(partial.name + ".prev"))
        sink = _Sink(partial, fmt, flatten, None)
    exported = 0 if saved is None else int(saved["exported"])
    scanned = 0

    def counted(count: int) -> None:
        nonlocal scanned
        scanned += count
        if progress is not None:
            progress(count)

    threshold = row_group or 4 * page
    history = History(
        refs,
        selection,
        read_range_stored,
        resume=None if saved is None else saved["stores"],
        page=page,
        progress=counted,
    )

    opened = False

    def state(files: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        files = sink.flush() if files is None else files
        return {**options, "stores": history.state(), "files": files, "exported": exported}

    try:
        async with history:
            opened = True
            async for service, events in history.runs():
                sink.write(service, events)
                exported += len(events)
                if sink.buffered >= threshold:
                    # Off the loop: the next pages are read meanwhile (Parquet encodes without the GIL).
                    flushed = await asyncio.to_thread(sink.flush)
                    await asyncio.to_thread(_save_checkpoint, checkpoint, state(flushed))
            positions = {name: stored["position"] for name, stored in history.state().items()}
    except LiveNotFound:
        sink.close()
        _discard(partial, checkpoint)
        raise
    except BaseException:
        _interrupted(
            sink, partial, checkpoint, state if opened else None, started=saved is not None or exported > 0
        )
        raise
    sink.close()
    files = _publish(partial, out, checkpoint, flatten)
    return ExportSummary(out, fmt, exported, scanned, positions, files, resumed=saved is not None)


def _interrupted(
    sink: _Sink,
    partial: Path,
    checkpoint: Path,
    state: Callable[[], dict[str, Any]] | None,
    *,
    started: bool,
) -> None:
    """Keep what is done for a resume, unless nothing is (then leave no trace at all)."""
    if not (started or checkpoint.exists()):
        with contextlib.suppress(Exception):
            sink.close()
        _discard(partial, checkpoint)
        return
    if state is not None:
        with contextlib.suppress(Exception):
            _save_checkpoint(checkpoint, state())
    with contextlib.suppress(Exception):
        sink.close()


def _publish(partial: Path, out: Path, checkpoint: Path, flatten: bool) -> list[Path]:
    if out.is_dir():
        shutil.rmtree(out)
    os.replace(partial, out)
    checkpoint.unlink(missing_ok=True)
    return sorted(out.iterdir()) if flatten else [out]


def _discard(*paths: Path) -> None:
    for path in paths:
        _remove(path)


def check_output(out: Path, fmt: str, flatten: bool) -> None:
    """Refuse, before anything is read, an output that cannot be written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
    if flatten and fmt == "jsonl":
        raise ExportError("flatten applies to csv and parquet (JSONL keeps each payload as one object)")
    parent = out.parent
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: directory {parent} is not writable")
    if flatten and out.exists() and not out.is_dir():
        raise ExportError(f"cannot write {out}: with flatten the output is a directory, and {out} is a file")
    if not flatten and out.is_dir():
        raise ExportError(f"cannot write {out}: it is a directory")


def default_format(out: Path) -> Format:
    """The format named by the output's suffix."""
    for fmt in FORMATS:
        if out.suffix.lower() == suffix(fmt):
            return fmt
    raise ExportError(f"cannot tell the format from {out.name!r}: name it *.jsonl, *.csv or *.parquet")


class _Sink:
    """The partial output: one file, or one per event type and version with ``flatten``."""

    def __init__(self, partial: Path, fmt: Format, flatten: bool, saved: dict[str, Any] | None) -> None:
        self._partial = partial
        self._fmt = fmt
        self._flatten = flatten
        self._states: dict[str, dict[str, Any]] = {} if saved is None else dict(saved["files"])
        self._writers: dict[str, tuple[Writer, RowOf]] = {}
        if flatten:
            partial.mkdir(exist_ok=True)
            # Files of the checkpoint are reopened (and cut back) now, not when their type recurs.
            for name in list(self._states):
                self._open_flat(name)
        else:
            self._writers[partial.name] = (self._open(partial, COLUMNS, partial.name), _row)

    @property
    def buffered(self) -> int:
        return sum(writer.buffered for writer, _ in self._writers.values())

    def write(self, service: str, events: Sequence[StoredEvent]) -> None:
        # Rows first, then the writers: a run is taken whole or not at all.
        if not self._flatten:
            writer, row = self._writers[self._partial.name]
            for built in [row(service, event) for event in events]:
                writer.add(built)
            return
        rows = []
        for event in events:
            name = f"{event.type}.v{event.data_version}{suffix(self._fmt)}"
            writer, row = self._writers.get(name) or self._open_flat(name)
            rows.append((writer, row(service, event)))
        for writer, built in rows:
            writer.add(built)

    def flush(self) -> dict[str, dict[str, Any]]:
        for name, (writer, _) in self._writers.items():
            self._states[name] = writer.flush()
        return dict(self._states)

    def close(self) -> None:
        for writer, _ in self._writers.values():
            writer.close()

    def _open(self, path: Path, columns: Sequence[Column], name: str) -> Writer:
        try:
            return open_writer(self._fmt, path, columns, self._states.get(name))
        except CannotResume:
            raise
        except OSError as error:
            raise ExportError(f"cannot write {path}: {error.strerror or error}") from error

    def _open_flat(self, name: str) -> tuple[Writer, RowOf]:
        event_type, version = name.removesuffix(suffix(self._fmt)).rsplit(".v", 1)
        flattener = _flattener(event_type, int(version))
        if flattener is None:
            entry: tuple[Writer, RowOf] = (self._open(self._partial / name, COLUMNS, name), _row)
        else:
            columns = [*ENVELOPE, *flattener.columns]
            entry = (self._open(self._partial / name, columns, name), functools.partial(_flat_row, flattener))
        self._writers[name] = entry
        return entry


def _flat_row(flattener: Flattener, service: str, event: StoredEvent) -> Sequence[Any]:
    row = _row(service, event)
    return (*row[:-1], *flattener.values(event.data))


@functools.cache
def _flattener(event_type: str, version: int) -> Flattener | None:
    """None for internal events: without a contract model their payload stays one JSON column."""
    try:
        return Flattener(REGISTRY.model(event_type, version))
    except (UnknownEventType, UnknownEventVersion):
        return None


def _load_checkpoint(path: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    saved: dict[str, Any] = orjson.loads(path.read_bytes())
    for key, value in options.items():
        if saved.get(key) != value:
            raise ExportError(
                f"the interrupted export at {path} was made with another {key} "
                f"({saved.get(key)!r}); run it with the same options, or without --resume to start over"
            )
    return saved


def _save_checkpoint(path: Path, doc: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(doc))
    os.replace(temporary, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
