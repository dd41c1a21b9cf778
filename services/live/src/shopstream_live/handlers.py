"""Executing commands on a live's stream (``live-<live_id>``) with the kit's command handler."""

from __future__ import annotations

import uuid

from shopstream_observability import get_logger
from shopstream_processing import IssuedCommand
from shopstream_service.commands import Outcome
from shopstream_service.runtime import ServiceContext

from . import queries
from .commands import DealSoldOut, EndSoldOutFlashDeal, LiveCommand
from .domain import LiveDecider, stream_id
from .projections import LIVES

DECIDER = LiveDecider()
PROJECTION_WAIT_SECONDS = 30.0

log = get_logger(__name__)


async def execute(
    context: ServiceContext,
    command: LiveCommand,
    *,
    command_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
) -> Outcome:
    return await context.handler.execute(
        DECIDER,
        stream_id(command.live_id),
        command,
        command_id=command_id or uuid.uuid4(),
        correlation_id=correlation_id,
    )


async def end_sold_out_deal(context: ServiceContext, issued: IssuedCommand[DealSoldOut]) -> Outcome | None:
    """The policy's command: find the deal's live, then end the deal there."""
    # The deal started (in this store) before the catalog could reserve its units, so once the
    # projection has reached the reservation it knows the deal, if the deal is ours at all.
    await context.projections[LIVES].wait_until(issued.cause.position, PROJECTION_WAIT_SECONDS)
    deal_id = issued.command.deal_id
    live_id = await queries.live_of_deal(context.readmodel, deal_id)
    if live_id is None:
        log.warning("deal.sold_out.unknown_deal", deal_id=deal_id)
        return None
    command = EndSoldOutFlashDeal(live_id, deal_id, context.clock.now())
    return await context.handler.execute_issued(
        DECIDER, stream_id(live_id), IssuedCommand(command, issued.command_id, issued.cause)
    )
