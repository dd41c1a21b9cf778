"""Composition root: the only place that reads configuration and wires the service together."""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_contracts.topics import ORDERS_ORDER
from shopstream_service.runtime import PolicyBinding, ServiceContext, ServiceSpec
from shopstream_service.settings import ServiceSettings

from .api import router
from .events import INTERNAL_EVENTS
from .handlers import CommissionHandlers
from .policies import OrderCommissionPolicy
from .projections import PROJECTIONS
from .tickers import TICKERS

SERVICE = "commission"


def build(settings: ServiceSettings) -> ServiceSpec:
    def policies(context: ServiceContext) -> Sequence[PolicyBinding]:
        handlers = CommissionHandlers(context.handler, context.clock)
        return [PolicyBinding(OrderCommissionPolicy(), handlers.on_order)]

    return ServiceSpec(
        name=SERVICE,
        routers=[router],
        consumes=[ORDERS_ORDER.name],
        internal_events=INTERNAL_EVENTS,
        projections=PROJECTIONS,
        policies=policies,
        tickers=TICKERS,
    )
