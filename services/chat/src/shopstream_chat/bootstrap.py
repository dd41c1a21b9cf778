"""The chat service's composition root: the only place that reads configuration.

Besides the kit's ``SHOPSTREAM_*`` settings, the chat service reads
``SHOPSTREAM_CHAT_BANNED_WORDS``: the comma-separated default banned-word list, published as
version 1 the first time a room needs a list (admins publish later versions with
``PUT /banned-words``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopstream_contracts.topics import LIVE_SESSION
from shopstream_processing import IssuedCommand
from shopstream_service.runtime import PolicyBinding, ServiceContext, ServiceSpec
from shopstream_service.settings import ServiceSettings

from .api import build_router
from .events import INTERNAL_EVENTS
from .handlers import ChatHandlers, LifecycleCommand
from .policies import RoomLifecycle
from .projections import PROJECTIONS

SERVICE = "chat"


class ChatSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_CHAT_", extra="ignore")

    banned_words: str = Field(
        default="replicas,counterfeit,fake brand,scam,spamshop",
        description="Default banned-word list (comma-separated terms), version 1 of the list.",
    )

    def default_banned_words(self) -> tuple[str, ...]:
        return tuple(term.strip() for term in self.banned_words.split(",") if term.strip())


def build(settings: ServiceSettings, chat: ChatSettings | None = None) -> ServiceSpec:
    handlers = ChatHandlers((chat or ChatSettings()).default_banned_words())

    def policies(context: ServiceContext) -> Sequence[PolicyBinding]:
        async def open_or_close(issued: IssuedCommand[LifecycleCommand]) -> object:
            return await handlers.on_live_event(context, issued)

        return [PolicyBinding(RoomLifecycle(), open_or_close)]

    return ServiceSpec(
        name=SERVICE,
        routers=[build_router(handlers)],
        consumes=[LIVE_SESSION.name],
        internal_events=INTERNAL_EVENTS,
        projections=PROJECTIONS,
        policies=policies,
    )
