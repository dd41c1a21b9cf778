"""Executing the chat service's commands: give the decider what it needs, run it on the right
stream, make the result readable.

A room is the stream ``room-<room_id>``; the platform's banned-word list is the stream
``banned-words-platform``. Every room command is decided with the newest list, which is
published from configuration (version 1) the first time any command needs it, and cached per
process by the list stream's version (one cheap version read per command).

Room commands go through the room's writer (``writer.RoomWriters``): decided in turn on a cached
state and appended in batches, so a busy room neither reloads its stream per command nor has its
posts collide. Commands from HTTP return once every projection shows their effect
(read-your-writes), so the API answers from the same read model as its queries.
"""

from __future__ import annotations

import uuid

from shopstream_processing import IssuedCommand
from shopstream_service.commands import Outcome
from shopstream_service.runtime import ServiceContext

from .commands import (
    BannedWordList,
    BannedWordsCommand,
    CloseRoom,
    OpenRoom,
    PrepareRoom,
    RoomCommand,
    SeedBannedWords,
)
from .domain import BannedWordsDecider, room_id_for
from .writer import RoomWriters

BANNED_WORDS_STREAM = "banned-words-platform"
# Fixed forever: the seed must be one command however many processes run it, and a retried post
# must map to the message it already created.
SEED_COMMAND_ID = uuid.UUID("5a7e2c1d-3b4f-5e60-8a9b-0c1d2e3f4a5b")
POST_NAMESPACE = uuid.UUID("5a7e2c1d-3b4f-5e60-8a9b-0c1d2e3f4a5c")

LifecycleCommand = PrepareRoom | OpenRoom | CloseRoom

_lists = BannedWordsDecider()


def room_stream(room_id: str) -> str:
    return f"room-{room_id}"


def post_ids(room_id: str, author_id: str, idempotency_key: str | None) -> tuple[str, uuid.UUID]:
    """The message id and command id of a post: derived from (room, author, key) when the client
    sent an Idempotency-Key, so a retry finds the message it already made; random otherwise."""
    if idempotency_key is None:
        command_id = uuid.uuid4()
    else:
        # Newlines cannot occur in ids or keys (printable ASCII), so the parts never run together.
        command_id = uuid.uuid5(POST_NAMESPACE, f"{room_id}\n{author_id}\n{idempotency_key}")
    return f"msg_{command_id.hex}", command_id


class ChatHandlers:
    def __init__(self, default_banned_words: tuple[str, ...]) -> None:
        self._default_banned_words = default_banned_words
        self._cached: tuple[int | None, BannedWordList] | None = None
        self._writers = RoomWriters()

    async def banned_words(self, context: ServiceContext) -> BannedWordList:
        """The newest banned-word list; the configured default becomes version 1 if none exists."""
        version = await context.store.stream_version(BANNED_WORDS_STREAM)
        if version is None:
            seed = SeedBannedWords(self._default_banned_words, context.clock.now())
            await context.handler.execute(_lists, BANNED_WORDS_STREAM, seed, command_id=SEED_COMMAND_ID)
            version = await context.store.stream_version(BANNED_WORDS_STREAM)
        if self._cached is None or self._cached[0] != version:
            current, loaded_version = await context.handler.load(_lists, BANNED_WORDS_STREAM)
            self._cached = (loaded_version, current)
        return self._cached[1]

    async def room(
        self,
        context: ServiceContext,
        room_id: str,
        command: RoomCommand,
        *,
        command_id: uuid.UUID,
        correlation_id: str | None,
    ) -> Outcome:
        outcome = await self._writers.execute(
            context,
            lambda: self.banned_words(context),
            room_stream(room_id),
            command,
            command_id=command_id,
            correlation_id=correlation_id,
        )
        await context.wait_for(outcome.position)
        return outcome

    async def banned_word_list(
        self,
        context: ServiceContext,
        command: BannedWordsCommand,
        *,
        command_id: uuid.UUID,
        correlation_id: str | None,
    ) -> Outcome:
        outcome = await context.handler.execute(
            _lists, BANNED_WORDS_STREAM, command, command_id=command_id, correlation_id=correlation_id
        )
        await context.wait_for(outcome.position)
        return outcome

    async def on_live_event(
        self, context: ServiceContext, issued: IssuedCommand[LifecycleCommand]
    ) -> Outcome:
        cause = issued.cause
        return await self._writers.execute(
            context,
            lambda: self.banned_words(context),
            room_stream(room_id_for(issued.command.live_id)),
            issued.command,
            command_id=issued.command_id,
            correlation_id=cause.metadata.correlation_id or str(cause.event_id),
            causation_id=str(cause.event_id),
        )
