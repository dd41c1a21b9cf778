"""Clock-driven work: flash deals that reach their deadline, audience windows that close.

Both are safe to repeat and to run in several places at once: deciding again on a stream that
already has the effect yields nothing (an ended deal stays ended, a recorded window is skipped).
"""

from __future__ import annotations

import uuid

from shopstream_observability import get_logger
from shopstream_service.domain import DomainError
from shopstream_service.runtime import ServiceContext

from . import handlers, queries
from .audience import AudienceBoard
from .commands import ExpireFlashDeals, RecordAudienceSample
from .projections import ts

log = get_logger(__name__)

_AUDIENCE_IDS = uuid.UUID("3c5b1f7e-2d4a-5e8b-9f10-7a6c4d2e1b90")
"""Namespace of audience-window command ids; fixed forever."""


async def expire_deals(context: ServiceContext) -> None:
    now = context.clock.now()
    for live_id in await queries.lives_with_due_deals(context.readmodel, now):
        await handlers.execute(context, ExpireFlashDeals(live_id, now))


class AudienceRecorder:
    """Opens a tally for every live on air, closes the windows that ended and records them."""

    def __init__(self, board: AudienceBoard) -> None:
        self._board = board

    async def __call__(self, context: ServiceContext) -> None:
        board = self._board
        now = context.clock.now()
        for target in await queries.audience_targets(context.readmodel, board.live_ids()):
            if target.status == "live" and target.started_at is not None:
                board.open(
                    target.live_id,
                    started_at=target.started_at,
                    last_window_end=target.last_window_end,
                    now=now,
                )
            elif target.ended_at is not None:
                board.end(target.live_id, target.ended_at)
        board.close_until(now)
        for live_id, window in board.pending():
            command = RecordAudienceSample(
                live_id,
                window.window_start,
                window.window_end,
                window.concurrent_viewers,
                window.peak_concurrent_viewers,
                now,
                joins=window.joins,
                likes=window.likes,
            )
            command_id = uuid.uuid5(_AUDIENCE_IDS, f"{live_id}/{ts(window.window_start)}")
            try:
                await handlers.execute(context, command, command_id=command_id)
            except DomainError as refused:
                # Another process counted this live too (heartbeats not routed by live id): its
                # window won. Dropping ours keeps the rest of this live's windows flowing.
                log.warning(
                    "audience.window_refused", live_id=live_id, code=refused.code, reason=refused.message
                )
            board.recorded(live_id, window)
