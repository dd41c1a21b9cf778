"""Deciding a whole group commit in memory, so that a SQL adapter writes it with a fixed handful
of statements (read what the group touches, insert every event, upsert every stream) instead of
several statements per append.

The adapter holds the store's write lock, reads the stored copies of the group's event ids and
the versions of its streams, and hands them to a ``GroupPlan``. The plan decides each unit in
order against that state plus what the units before it added, with the same rules as one append
at a time (``_versioning``). A unit that fails leaves no trace in the plan. A unit that reuses an
event id an earlier unit of the group is writing is *deferred* to the next group, where it sees
that event stored (a retry racing its original is rare, and this keeps the rules in one place).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from ._groupcommit import PendingUnit
from ._versioning import check_expected, retry_result
from .errors import DuplicateEventId, EventStoreError
from .model import AppendRequest, AppendResult, NewEvent


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an event id is already stored."""

    stream_id: str
    stream_version: int
    position: int


@dataclass(frozen=True, slots=True)
class PlannedRow:
    event: NewEvent
    stream_id: str
    stream_version: int


@dataclass(frozen=True, slots=True)
class _Appended:
    """A result whose position is the one its last row will get (or, at ``-1``, the head of the
    store before the group)."""

    stream_id: str
    version: int
    row: int


def group_ids(group: Sequence[PendingUnit]) -> list[UUID]:
    return [event.event_id for unit in group for request in unit.requests for event in request.events]


def group_streams(group: Sequence[PendingUnit]) -> list[str]:
    return list(dict.fromkeys(request.stream_id for unit in group for request in unit.requests))


class GroupPlan:
    def __init__(self, stored: Mapping[UUID, Stored], versions: Mapping[str, int]) -> None:
        self._stored = stored
        self.versions: dict[str, int] = dict(versions)
        """Every stream's version after the plan; the adapter upserts ``written_streams``."""
        self.rows: list[PlannedRow] = []
        """The events to insert, in position order."""
        self.written_streams: dict[str, int] = {}
        self._planned_ids: set[UUID] = set()
        self._undo: list[tuple[str, int | None, int | None]] = []
        """(stream, version, written version) before each change of the unit being added."""
        self._outcomes: list[tuple[PendingUnit, list[AppendResult | _Appended]]] = []

    def add(self, unit: PendingUnit) -> bool:
        """Decide ``unit``: planned, or failed with ``unit.error``. False when it is deferred."""
        ids = [event.event_id for request in unit.requests for event in request.events]
        if not self._planned_ids.isdisjoint(ids):
            return False
        rows = len(self.rows)
        self._undo = []
        try:
            if len(set(ids)) != len(ids):
                twice = next(i for i in ids if ids.count(i) > 1)
                raise DuplicateEventId(twice, "appears twice in one append")
            results = [self._add_request(request) for request in unit.requests]
        except EventStoreError as exc:
            del self.rows[rows:]
            for stream_id, version, written in reversed(self._undo):
                _restore(self.versions, stream_id, version)
                _restore(self.written_streams, stream_id, written)
            unit.error = exc
            return True
        self._planned_ids.update(ids)
        self._outcomes.append((unit, results))
        return True

    def _add_request(self, request: AppendRequest) -> AppendResult | _Appended:
        stream_id = request.stream_id
        ids = [event.event_id for event in request.events]
        found = [(i, *self._where(i)) for i in ids if i in self._stored]
        retry = retry_result(stream_id, ids, found)
        if retry is not None:
            return retry
        current = self.versions.get(stream_id)
        check_expected(stream_id, request.expected_version, current)
        if not ids:
            return _Appended(stream_id, -1 if current is None else current, len(self.rows) - 1)
        first = 0 if current is None else current + 1
        self.rows += [PlannedRow(event, stream_id, first + n) for n, event in enumerate(request.events)]
        last = first + len(ids) - 1
        self._undo.append((stream_id, current, self.written_streams.get(stream_id)))
        self.versions[stream_id] = self.written_streams[stream_id] = last
        return _Appended(stream_id, last, len(self.rows) - 1)

    def _where(self, event_id: UUID) -> tuple[str, int, int]:
        stored = self._stored[event_id]
        return stored.stream_id, stored.stream_version, stored.position

    def finish(self, position_of_row: Callable[[int], int]) -> None:
        """Give every planned unit its results once the rows are written: ``position_of_row(n)``
        is the position of ``rows[n]`` (``-1``: the head before the group)."""
        for unit, results in self._outcomes:
            unit.results = [
                AppendResult(r.stream_id, r.version, position_of_row(r.row))
                if isinstance(r, _Appended)
                else r
                for r in results
            ]


def _restore(versions: dict[str, int], stream_id: str, version: int | None) -> None:
    if version is None:
        versions.pop(stream_id, None)
    else:
        versions[stream_id] = version


def plan_group(
    group: Iterable[PendingUnit], stored: Mapping[UUID, Stored], versions: Mapping[str, int]
) -> tuple[GroupPlan, list[PendingUnit]]:
    """The plan of the group's units, and the units deferred to the next group."""
    plan = GroupPlan(stored, versions)
    deferred = [unit for unit in group if not plan.add(unit)]
    return plan, deferred
