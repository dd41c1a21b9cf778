"""The live's lifecycle drives its chat room: scheduled ⇒ prepare (learn the hosts), started ⇒
open, ended or cancelled ⇒ close.

The commands carry the live's own times (its LiveStarted is time zero of the room's timeline),
so replaying the live's events decides exactly the same. Their ids come from the causing
event, and the room's id from the live's, so processing an event twice never acts twice and a
live never gets two rooms.
"""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_contracts import REGISTRY
from shopstream_contracts.live.v1 import LiveCancelled, LiveEnded, LiveScheduled, LiveStarted
from shopstream_eventstore import RecordedEvent

from .commands import CloseRoom, OpenRoom, PrepareRoom
from .handlers import LifecycleCommand

_CONSUMED = {model.contract.type for model in (LiveScheduled, LiveStarted, LiveEnded, LiveCancelled)}


class RoomLifecycle:
    name = "chat-room-lifecycle"

    def react(self, event: RecordedEvent) -> Sequence[LifecycleCommand]:
        if event.type not in _CONSUMED:
            return []
        match REGISTRY.decode(event.type, event.data_version, event.data):
            case LiveScheduled() as live:
                return [PrepareRoom(live.live_id, tuple(live.host_ids), live.occurred_at)]
            case LiveStarted() as live:
                return [OpenRoom(live.live_id, live_started_at=live.occurred_at, at=live.occurred_at)]
            case LiveEnded() | LiveCancelled() as live:
                return [CloseRoom(live.live_id, live.occurred_at)]
        return []
