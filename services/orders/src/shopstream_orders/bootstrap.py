"""The orders service's composition root: the only place that reads configuration and wires the
domain to the kit (routes, the topics it consumes, projections, the saga policy)."""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_contracts.topics import CATALOG_PRODUCT, CATALOG_STOCK, LIVE_SESSION
from shopstream_service.runtime import PolicyBinding, ServiceContext, ServiceSpec
from shopstream_service.settings import ServiceSettings

from .api import router
from .events import INTERNAL_EVENTS
from .handlers import OrderHandlers
from .policies import OrderSaga
from .projections import OrderPricing, OrdersView

SERVICE = "orders"

CONSUMES = (CATALOG_PRODUCT.name, CATALOG_STOCK.name, LIVE_SESSION.name)
"""Catalog products (SKUs, list prices) and stock (reservation answers); live sessions (hosts,
brands, start and end, flash deals, payment terms)."""


def build(settings: ServiceSettings) -> ServiceSpec:
    # Everything the service configures comes through the kit's settings (store, Kafka, JWT,
    # clock control); nothing here depends on them yet.
    del settings

    def policies(context: ServiceContext) -> Sequence[PolicyBinding]:
        return [PolicyBinding(OrderSaga(), OrderHandlers(context).on_stock_answer)]

    return ServiceSpec(
        name=SERVICE,
        routers=[router],
        consumes=CONSUMES,
        internal_events=INTERNAL_EVENTS,
        projections=[OrderPricing(), OrdersView()],
        policies=policies,
    )
