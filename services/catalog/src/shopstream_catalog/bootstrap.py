"""The catalog service's composition root: the only place that reads configuration and wires the
domain to the kit (routes, consumed topics, internal events, projections, the stock policy and
the ticker that gives up on orders whose deal never arrives)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shopstream_contracts.topics import LIVE_SESSION, ORDERS_ORDER
from shopstream_service.runtime import PolicyBinding, ServiceContext, ServiceSpec, Ticker
from shopstream_service.settings import ServiceSettings

from .api import router
from .events import INTERNAL_EVENTS
from .handlers import CatalogHandlers
from .policies import StockPolicy
from .projections import CatalogView, StockView

SERVICE = "catalog"

CONSUMES = (ORDERS_ORDER.name, LIVE_SESSION.name)
"""Orders (placed ⇒ reserve, cancelled/refunded ⇒ release) and live sessions (flash deals)."""

LONGEST_WAIT_FOR_A_DEAL = timedelta(seconds=60)
"""How long an order may wait for its flash deal to reach the catalog. The deal normally arrives
within milliseconds (it is on live's topic, the order on orders'); a minute covers a catalog
catching up after a restart, and then the order is refused rather than left unanswered."""


def build(settings: ServiceSettings) -> ServiceSpec:
    # Everything the service configures comes through the kit's settings (store, Kafka, JWT,
    # clock control); nothing here depends on them yet.
    del settings

    def policies(context: ServiceContext) -> Sequence[PolicyBinding]:
        return [PolicyBinding(StockPolicy(), CatalogHandlers(context).on_issued)]

    async def expire_waiting(context: ServiceContext) -> None:
        await CatalogHandlers(context).expire_waiting(LONGEST_WAIT_FOR_A_DEAL)

    return ServiceSpec(
        name=SERVICE,
        routers=[router],
        consumes=CONSUMES,
        internal_events=INTERNAL_EVENTS,
        projections=[CatalogView(), StockView()],
        policies=policies,
        tickers=[Ticker("expire-waiting-orders", 5.0, expire_waiting)],
    )
