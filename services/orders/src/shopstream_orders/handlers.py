"""Executing the orders service's commands: resolve what the decider needs, run it, make the
result readable.

Placing an order is idempotent per (buyer, Idempotency-Key): both the order id and the command
id are uuid5 of that pair, so a double click, a client retry or two concurrent requests with one
key make one order. The price snapshot and attribution are resolved here, from the service's
own projections, and travel inside the command; the decider stays pure. A refund made with an
Idempotency-Key gets its id (and its command id) from the order and the key the same way.

Every command returns once the projections show its effect (read-your-writes), so the API
answers from the same read model the queries use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shopstream_processing import IssuedCommand
from shopstream_service.domain import DomainError
from shopstream_service.runtime import ServiceContext

from .commands import (
    Actor,
    CancelOrder,
    ConfirmOrder,
    OrderCommand,
    OrderRequest,
    PlaceOrder,
    Quote,
    RefundOrder,
    RejectOrder,
    ShipOrder,
)
from .domain import OrderDecider, ensure_same_request
from .pricing import quote
from .projections import LiveContext, live_context, sku_snapshot

# Fixed forever: changing any of them would turn every retried request into a new order or refund.
ORDER_NAMESPACE = uuid.UUID("0b9a4b8e-4a51-5f0c-9d0e-6a3f1f1c2e01")
PLACE_NAMESPACE = uuid.UUID("0b9a4b8e-4a51-5f0c-9d0e-6a3f1f1c2e02")
REFUND_NAMESPACE = uuid.UUID("0b9a4b8e-4a51-5f0c-9d0e-6a3f1f1c2e03")
REFUND_COMMAND_NAMESPACE = uuid.UUID("0b9a4b8e-4a51-5f0c-9d0e-6a3f1f1c2e04")

decider = OrderDecider()


def stream_of(order_id: str) -> str:
    return f"order-{order_id}"


def _pair(first: str, second: str) -> str:
    # A separator that cannot occur in either part (ids and keys are printable ASCII).
    return f"{first}\n{second}"


def order_id_for(buyer_id: str, idempotency_key: str) -> str:
    return str(uuid.uuid5(ORDER_NAMESPACE, _pair(buyer_id, idempotency_key)))


class ProjectionLagging(DomainError):
    """The command took effect but the read model has not shown it in time; retrying the same
    request (same Idempotency-Key) is safe and answers from the read model."""

    status = 503


@dataclass(frozen=True, slots=True)
class Placed:
    order_id: str
    created: bool
    """False when the key had already placed this order: nothing new was written."""


@dataclass(frozen=True, slots=True)
class Refunded:
    refund_id: str
    created: bool


class OrderHandlers:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def quote(self, request: OrderRequest, at: datetime) -> Quote:
        db = self._context.readmodel
        sku = await sku_snapshot(db, request.sku_id, request.market)
        live = (
            LiveContext(None, (), None)
            if request.live_id is None
            else await live_context(db, request.live_id, request.sku_id, request.terms_id)
        )
        return quote(request, sku=sku, live=live.live, deals=live.deals, terms=live.terms, at=at)

    async def place(
        self, buyer_id: str, idempotency_key: str, request: OrderRequest, correlation_id: str
    ) -> Placed:
        order_id = order_id_for(buyer_id, idempotency_key)
        stream = stream_of(order_id)
        existing, _ = await self._context.handler.load(decider, stream)
        if existing is not None:
            # Answer a retry without pricing again: the deal may have ended since, the order stands.
            ensure_same_request(existing, buyer_id, request)
            await self._visible(stream, 0)
            return Placed(order_id, created=False)
        at = self._context.clock.now()
        command = PlaceOrder(order_id, buyer_id, request, await self.quote(request, at), at)
        command_id = uuid.uuid5(PLACE_NAMESPACE, _pair(buyer_id, idempotency_key))
        created = await self._execute(stream, command, command_id, correlation_id)
        return Placed(order_id, created)

    async def cancel(self, order_id: str, actor: Actor, reason: str | None, correlation_id: str) -> None:
        command = CancelOrder(order_id, actor, reason, self._context.clock.now())
        await self._execute(stream_of(order_id), command, uuid.uuid4(), correlation_id)

    async def ship(self, order_id: str, actor: Actor, correlation_id: str) -> None:
        command = ShipOrder(order_id, actor, self._context.clock.now())
        await self._execute(stream_of(order_id), command, uuid.uuid4(), correlation_id)

    async def refund(
        self,
        order_id: str,
        actor: Actor,
        *,
        quantity: int,
        amount: int | None,
        reason: str | None,
        idempotency_key: str | None,
        correlation_id: str,
    ) -> Refunded:
        if idempotency_key is None:
            refund_id, command_id = str(uuid.uuid4()), uuid.uuid4()
        else:
            pair = _pair(order_id, idempotency_key)
            refund_id = str(uuid.uuid5(REFUND_NAMESPACE, pair))
            command_id = uuid.uuid5(REFUND_COMMAND_NAMESPACE, pair)
        command = RefundOrder(order_id, refund_id, actor, quantity, amount, reason, self._context.clock.now())
        created = await self._execute(stream_of(order_id), command, command_id, correlation_id)
        return Refunded(refund_id, created)

    async def on_stock_answer(self, issued: IssuedCommand[ConfirmOrder | RejectOrder]) -> object:
        """The saga policy's command handler (ids and causation from the catalog's answer)."""
        return await self._context.handler.execute_issued(decider, stream_of(issued.command.order_id), issued)

    async def _execute(
        self, stream: str, command: OrderCommand, command_id: uuid.UUID, correlation_id: str
    ) -> bool:
        handler = self._context.handler
        outcome = await handler.execute(
            decider, stream, command, command_id=command_id, correlation_id=correlation_id
        )
        if outcome.duplicate:
            # The same command id already wrote its events, perhaps for a different request under
            # the same key (two concurrent requests): deciding again on what is stored tells a
            # harmless repeat (no events) from a reused key (refused).
            state, _ = await handler.load(decider, stream)
            decider.decide(command, state)
        await self._visible(stream, outcome.position)
        return bool(outcome.events) and not outcome.duplicate

    async def _visible(self, stream: str, position: int) -> None:
        """Wait until the projections show the stream up to ``position``, or up to its last event
        when this command wrote nothing."""
        if position == 0:
            recorded = await self._context.store.read_stream(stream)
            position = recorded[-1].position if recorded else 0
        try:
            await self._context.wait_for(position)
        except TimeoutError:
            raise ProjectionLagging(
                "projection_lagging",
                "the change was recorded but is not readable yet; retry the same request",
            ) from None
