"""Events the chat service stores but never publishes: its own bookkeeping.

Public events are the models of ``shopstream_contracts.chat.v1``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime

from shopstream_service.domain import InternalEvent


class RoomPrepared(InternalEvent):
    """The live was scheduled; its hosts may moderate the room once it opens."""

    type_name: ClassVar[str] = "shopstream.chat.internal.RoomPrepared"

    room_id: str
    live_id: str
    host_ids: list[str]
    occurred_at: AwareDatetime


class RoomCancelled(InternalEvent):
    """The live was cancelled (or ended) before its room ever opened; it never will."""

    type_name: ClassVar[str] = "shopstream.chat.internal.RoomCancelled"

    room_id: str
    live_id: str
    occurred_at: AwareDatetime


class BannedWordsApplied(InternalEvent):
    """The room moderates with this version of the banned-word list from now on. The terms are
    kept in the room's own stream so its decisions replay identically whatever the list
    becomes later."""

    type_name: ClassVar[str] = "shopstream.chat.internal.BannedWordsApplied"

    room_id: str
    list_version: int
    terms: list[str]
    occurred_at: AwareDatetime


class BannedWordListPublished(InternalEvent):
    """A new version of the platform's banned-word list (terms normalised, distinct)."""

    type_name: ClassVar[str] = "shopstream.chat.internal.BannedWordListPublished"

    list_version: int
    terms: list[str]
    published_by: str
    occurred_at: AwareDatetime


INTERNAL_EVENTS: tuple[type[InternalEvent], ...] = (
    RoomPrepared,
    RoomCancelled,
    BannedWordsApplied,
    BannedWordListPublished,
)
