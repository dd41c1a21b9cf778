"""Which events of the history an export or a backfill takes: event types, a stream category
(stream id prefix: ``order-``, ``live-``, ``room-``, ``stock-``, ``account-`` …), a live, a time
range on ``occurred_at`` and a global position range (per store, since each store numbers its
own events).

By default only a store's *own* events are taken (inbox copies of other services' events are
skipped, so every event of the platform comes once, from its owner) and only public contract
events (internal event types only on request).

A live is matched by what the events say: ``live_id`` at the top of the payload or in
``attribution.live_id`` (orders). Events that name only an order (``OrderRejected``,
``StockReserved``, ``CommissionReversed`` …) belong to the live of that order: a store's reader
learns the live's order ids from the events that tie them to it (its own, and the inbox copies
it holds), in position order, so an order's later events follow it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .sources import Event, is_inbox_copy, owner_of

_owner = functools.cache(owner_of)


class SelectionError(ValueError):
    """A selection that cannot be right (malformed instant, reversed range …); shown as is."""


def parse_instant(text: str, option: str = "time") -> datetime:
    """An ISO-8601 instant with an offset (``2025-05-01T20:00:00Z``, ``…+02:00``)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SelectionError(
            f"{option} {text!r} is not an ISO-8601 instant (e.g. 2025-05-01T20:00:00Z)"
        ) from None
    if moment.utcoffset() is None:
        example = moment.isoformat() + "Z"
        raise SelectionError(f"{option} {text!r} has no UTC offset: add Z or +hh:mm (e.g. {example})")
    return moment


@dataclass(frozen=True, slots=True)
class Selection:
    """``since`` is inclusive and ``until`` exclusive (``[since, until)`` on ``occurred_at``);
    ``from_position`` and ``to_position`` are both inclusive."""

    types: frozenset[str] = frozenset()
    """Event types to take; empty means every type."""
    stream_prefix: str | None = None
    live_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    from_position: int | None = None
    to_position: int | None = None
    include_inbox: bool = False
    include_internal: bool = False

    def __post_init__(self) -> None:
        for name, moment in (("since", self.since), ("until", self.until)):
            if moment is not None and moment.utcoffset() is None:
                raise SelectionError(f"{name} {moment.isoformat()} has no UTC offset")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise SelectionError(
                f"empty time range: since {self.since.isoformat()} "
                f"is not before until {self.until.isoformat()}"
            )
        for name, position in (("from position", self.from_position), ("to position", self.to_position)):
            if position is not None and position < 1:
                raise SelectionError(f"{name} {position} must be ≥ 1 (positions start at 1)")
        if (
            self.from_position is not None
            and self.to_position is not None
            and self.from_position > self.to_position
        ):
            raise SelectionError(
                f"empty position range: from {self.from_position} is after to {self.to_position}"
            )
        if self.live_id is not None and not self.live_id.strip():
            raise SelectionError("the live id is empty")

    @classmethod
    def of(
        cls,
        *,
        types: Iterable[str] = (),
        stream_prefix: str | None = None,
        live_id: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        from_position: int | None = None,
        to_position: int | None = None,
        include_inbox: bool = False,
        include_internal: bool = False,
    ) -> Selection:
        """A selection from user input: instants may be ISO-8601 text."""
        return cls(
            types=frozenset(types),
            stream_prefix=stream_prefix or None,
            live_id=live_id,
            since=parse_instant(since, "since") if isinstance(since, str) else since,
            until=parse_instant(until, "until") if isinstance(until, str) else until,
            from_position=from_position,
            to_position=to_position,
            include_inbox=include_inbox,
            include_internal=include_internal,
        )

    @property
    def after(self) -> int:
        """The position a store is read after."""
        return 0 if self.from_position is None else self.from_position - 1

    def takes(self, event: Event) -> bool:
        """Every criterion but the live (which needs a ``LiveTracker``)."""
        if self.types and event.type not in self.types:
            return False
        if not self.include_inbox and is_inbox_copy(event):
            return False
        if not self.include_internal and _owner(event.type) is None:
            return False
        if self.stream_prefix is not None and not event.stream_id.startswith(self.stream_prefix):
            return False
        if self.since is None and self.until is None:
            return True
        occurred = event.metadata.occurred_at
        if self.since is not None and occurred < self.since:
            return False
        return self.until is None or occurred < self.until

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: a resumed export must continue the same selection."""
        return {
            "types": sorted(self.types),
            "stream_prefix": self.stream_prefix,
            "live_id": self.live_id,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "from_position": self.from_position,
            "to_position": self.to_position,
            "include_inbox": self.include_inbox,
            "include_internal": self.include_internal,
        }


@dataclass(slots=True)
class LiveTracker:
    """Ties one store's events to a live, reading them in position order (see the module doc).
    Its memory is the live's order ids, whatever the length of the history."""

    live_id: str
    orders: set[str] = field(default_factory=set)
    mentioned: bool = False
    """Whether any event read so far names the live."""

    def belongs(self, data: Mapping[str, Any]) -> bool:
        attribution = data.get("attribution")
        named = data.get("live_id") == self.live_id or (
            isinstance(attribution, Mapping) and attribution.get("live_id") == self.live_id
        )
        order = data.get("order_id")
        if named:
            self.mentioned = True
            if isinstance(order, str):
                self.orders.add(order)
            return True
        return isinstance(order, str) and order in self.orders

    def state(self) -> dict[str, Any]:
        return {"orders": sorted(self.orders), "mentioned": self.mentioned}

    @classmethod
    def restore(cls, live_id: str, state: Mapping[str, Any]) -> LiveTracker:
        return cls(live_id, set(state["orders"]), bool(state["mentioned"]))
