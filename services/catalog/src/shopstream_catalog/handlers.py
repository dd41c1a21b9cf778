"""Executing the catalog's commands: which stream and decider a command goes to, with which id,
and when its effect is readable.

One stream per aggregate: ``brand-<brand id>``, ``product-<product id>``, ``stock-<sku id>``.
The kit's handler appends at the expected version and decides again on a concurrent write,
which is what serialises reservations of one SKU: two OrderPlaced for the last unit cannot both
be decided on the same state.

A user's command carries the request's Idempotency-Key when there is one: its command id is
then a uuid5 of (user, request, key), so a retried receipt is stored once and a retried creation
answers like the first. Every command returns once the projections show its effect
(read-your-writes); creating a product also waits for the stock policy to register its SKUs, so
stock can be received for them at once.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from shopstream_processing import IssuedCommand, PolicyRunner
from shopstream_service.commands import Outcome
from shopstream_service.domain import Decider, DomainError
from shopstream_service.runtime import ServiceContext

from .commands import (
    AdjustStock,
    CreateProduct,
    ExpireDeferredReservations,
    OnboardBrand,
    ReceiveStock,
    SetListPrice,
    StockCommand,
)
from .domain import BRAND, PRODUCT, STOCK
from .policies import STOCK_POLICY
from .projections import waiting_since

S = TypeVar("S")
C = TypeVar("C")

# Fixed forever: changing it would turn every retried request into a new command.
REQUEST_NAMESPACE = uuid.UUID("5d0f3c2a-7b61-5e8f-a1c4-0c2e9b7d4f31")


def brand_stream(brand_id: str) -> str:
    return f"brand-{brand_id}"


def product_stream(product_id: str) -> str:
    return f"product-{product_id}"


def stock_stream(sku_id: str) -> str:
    return f"stock-{sku_id}"


def derived_id(*parts: str) -> uuid.UUID:
    # A separator that cannot occur in any part (ids, paths and keys are printable ASCII).
    return uuid.uuid5(REQUEST_NAMESPACE, "\n".join(parts))


def command_id_for(user_id: str, request: str, idempotency_key: str | None) -> uuid.UUID:
    """The id of a user's command: derived from their Idempotency-Key, else new."""
    return uuid.uuid4() if idempotency_key is None else derived_id(user_id, request, idempotency_key)


class ProjectionLagging(DomainError):
    """The command took effect but the read model has not shown it in time; retrying the same
    request with the same Idempotency-Key is safe."""

    status = 503


class CatalogHandlers:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def brand_onboarded(self, brand_id: str) -> bool:
        state, _ = await self._context.handler.load(BRAND, brand_stream(brand_id))
        return state.onboarded is not None

    async def onboard_brand(self, command: OnboardBrand, command_id: uuid.UUID, correlation_id: str) -> None:
        outcome = await self._create(
            BRAND, brand_stream(command.brand_id), command, command_id, correlation_id
        )
        await self._visible(outcome)

    async def create_product(
        self, command: CreateProduct, command_id: uuid.UUID, correlation_id: str
    ) -> None:
        stream = product_stream(command.product_id)
        outcome = await self._create(PRODUCT, stream, command, command_id, correlation_id)
        await self._visible(outcome, self._context.policies[STOCK_POLICY])

    async def set_list_price(self, command: SetListPrice, command_id: uuid.UUID, correlation_id: str) -> None:
        outcome = await self._context.handler.execute(
            PRODUCT,
            product_stream(command.product_id),
            command,
            command_id=command_id,
            correlation_id=correlation_id,
        )
        await self._visible(outcome)

    async def change_stock(
        self, command: ReceiveStock | AdjustStock, command_id: uuid.UUID, correlation_id: str
    ) -> None:
        outcome = await self._context.handler.execute(
            STOCK, stock_stream(command.sku_id), command, command_id=command_id, correlation_id=correlation_id
        )
        await self._visible(outcome)

    async def on_issued(self, issued: IssuedCommand[StockCommand]) -> Outcome:
        """The stock policy's command handler (id and causation from the causing event).

        A policy cannot read the clock, so its commands carry the cause's time; the decision is
        taken now, by this service's clock."""
        stamped = replace(issued, command=replace(issued.command, at=self._context.clock.now()))
        return await self._context.handler.execute_issued(STOCK, stock_stream(issued.command.sku_id), stamped)

    async def expire_waiting(self, longest_wait: timedelta) -> None:
        """Refuse the orders that waited longer than ``longest_wait`` for a deal never announced
        to their SKU (a ticker's work). Repeating it is harmless: the decider answers an order
        once, and the command id is fixed by the SKU and the cut-off."""
        now = self._context.clock.now()
        cutoff = now - longest_wait
        for sku_id, oldest in (await waiting_since(self._context.readmodel)).items():
            if oldest < cutoff:
                command = ExpireDeferredReservations(sku_id, deferred_before=cutoff, at=now)
                command_id = derived_id("expire-waiting", sku_id, cutoff.isoformat())
                await self._context.handler.execute(
                    STOCK, stock_stream(sku_id), command, command_id=command_id
                )

    async def _create(
        self, decider: Decider[S, C], stream: str, command: C, command_id: uuid.UUID, correlation_id: str
    ) -> Outcome:
        """Execute a command that starts a stream. Retrying it (same Idempotency-Key, hence the
        same command id) after it succeeded answers as a success that wrote nothing, not as
        "already exists"."""
        try:
            return await self._context.handler.execute(
                decider, stream, command, command_id=command_id, correlation_id=correlation_id
            )
        except DomainError:
            recorded = await self._context.store.read_stream(stream)
            if recorded and recorded[0].event_id == command_id:
                return Outcome((), recorded[-1].stream_version, recorded[-1].position, duplicate=True)
            raise

    async def _visible(self, outcome: Outcome, *policies: PolicyRunner[Any]) -> None:
        try:
            for policy in policies:
                await policy.wait_until(outcome.position, 10.0)
            await self._context.wait_for(outcome.position)
        except TimeoutError:
            raise ProjectionLagging(
                "projection_lagging",
                "the change was recorded but is not readable yet; retry the same request",
            ) from None
