"""Composition root of the live service: the only place that reads configuration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopstream_contracts.topics import CATALOG_STOCK
from shopstream_processing import IssuedCommand
from shopstream_service.runtime import PolicyBinding, ServiceContext, ServiceSpec, Ticker
from shopstream_service.settings import ServiceSettings

from . import handlers
from .api import build_router
from .audience import AudienceBoard
from .commands import DealSoldOut
from .policies import SoldOutDeals
from .projections import LivesProjection
from .tickers import AudienceRecorder, expire_deals

NAME = "live"


class LiveSettings(BaseSettings):
    """The live service's own settings (env ``SHOPSTREAM_LIVE_*``)."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_LIVE_", extra="ignore")

    audience_window_seconds: float = Field(default=60, gt=0, description="Length of an audience window.")
    audience_presence_seconds: float = Field(
        default=45, gt=0, description="How long a viewer counts as connected after a heartbeat."
    )
    audience_tick_seconds: float = Field(
        default=1, gt=0, description="How often audience windows are closed."
    )
    deal_tick_seconds: float = Field(default=0.5, gt=0, description="How often deal deadlines are checked.")


def build(settings: ServiceSettings, live: LiveSettings | None = None) -> ServiceSpec:
    live = live or LiveSettings()
    board = AudienceBoard(
        window=timedelta(seconds=live.audience_window_seconds),
        presence_ttl=timedelta(seconds=live.audience_presence_seconds),
    )

    def policies(context: ServiceContext) -> Sequence[PolicyBinding]:
        async def end_sold_out(issued: IssuedCommand[DealSoldOut]) -> object:
            return await handlers.end_sold_out_deal(context, issued)

        return [PolicyBinding(SoldOutDeals(), end_sold_out)]

    return ServiceSpec(
        name=NAME,
        routers=[build_router(board)],
        consumes=[CATALOG_STOCK.name],
        projections=[LivesProjection()],
        policies=policies,
        tickers=[
            Ticker("expire-deals", live.deal_tick_seconds, expire_deals),
            Ticker("audience-windows", live.audience_tick_seconds, AudienceRecorder(board)),
        ],
    )
