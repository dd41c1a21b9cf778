"""The expected-version and idempotency rules, stated once for every SQL adapter."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from .errors import DuplicateEventId, WrongExpectedVersion
from .model import AppendResult, ExpectedVersion, StreamState


def check_expected(stream_id: str, expected: ExpectedVersion, actual: int | None) -> None:
    if expected is StreamState.ANY:
        return
    if expected is StreamState.NO_STREAM:
        ok = actual is None
    elif expected is StreamState.EXISTS:
        ok = actual is not None
    else:
        ok = actual == expected
    if not ok:
        raise WrongExpectedVersion(stream_id, expected, actual)


def retry_result(
    stream_id: str, wanted: Sequence[UUID], found: Sequence[tuple[UUID, str, int, int]]
) -> AppendResult | None:
    """Decide what an append whose event ids are partly or wholly stored means.

    ``found`` holds (event_id, stream_id, stream_version, position) of the ids already stored.
    Every id stored in this stream is a retry of a successful append: answer as that append did.
    Anything else would silently drop or duplicate an event, so it is an error.
    """
    if not found:
        return None
    for event_id, other_stream, _, _ in found:
        if other_stream != stream_id:
            raise DuplicateEventId(event_id, f"already stored in stream {other_stream!r}")
    if len(found) != len(set(wanted)):
        stored = {row[0] for row in found}
        missing = next(e for e in wanted if e not in stored)
        raise DuplicateEventId(
            missing, f"append to {stream_id!r} mixes stored and new event ids; it is not a retry"
        )
    last = max(found, key=lambda row: row[2])
    return AppendResult(stream_id=stream_id, next_expected_version=last[2], position=last[3], duplicate=True)
