"""The chat HTTP API: requests ⇒ commands and queries, no business rules.

Authorization (every route needs a valid bearer token, else 401):

- Reading a room, its messages, questions and live feed, and posting (and marking one's own
  message as a question): any authenticated user.
- Moderating (remove a message, mute, slow mode, answer a question, mark someone else's message
  as a question): the live's hosts, role ``moderator`` or admins; the decider refuses anyone
  else with 403 ``not_a_moderator`` (or ``not_author_or_moderator``).
- ``GET /rooms/{room_id}/mutes``: the room's moderators (same rule, 403 ``not_a_moderator``).
- ``GET /rooms/{room_id}/blocked``: the caller's own blocked messages only; blocked messages
  and mute notices reach the live feed of their author (the muted participant) only.
- ``GET /rooms`` and ``GET /banned-words``: role ``moderator`` (or admin); ``PUT /banned-words``:
  admins (403 ``not_an_admin``).

The live feed is Server-Sent Events: each event's ``id`` is its feed position, so a client that
reconnects with ``Last-Event-ID`` (browsers do it by themselves) gets exactly what followed.
Without it the feed first replays the last ``backlog`` entries. A late joiner may instead read
``GET .../messages`` and resume the feed after its ``last_event_id``. The feed ends after the
room closes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from shopstream_contracts.base import Id, Text
from shopstream_contracts.chat.v1 import MessageBlocked, MessagePosted, MessageText, ParticipantMuted
from shopstream_service.auth import Authenticated, Principal, require_roles
from shopstream_service.domain import Forbidden, NotFound
from shopstream_service.http import context_of, correlation_id
from shopstream_service.runtime import ServiceContext

from .commands import (
    Actor,
    AnswerQuestion,
    MarkQuestion,
    MuteParticipant,
    PostMessage,
    PublishBannedWords,
    RemoveMessage,
    SetSlowMode,
)
from .domain import MAX_BANNED_TERMS, MAX_MUTE_MS, MAX_SLOW_MODE_INTERVAL_MS, moderates, room_id_for
from .feed import Feeds
from .handlers import ChatHandlers, post_ids
from .projections import (
    FEED_PROJECTION,
    BannedWordsView,
    BlockedView,
    MessagePage,
    MuteView,
    QuestionFilter,
    QuestionView,
    RoomView,
    active_mutes,
    all_rooms,
    blocked_messages,
    current_banned_words,
    feed_start,
    find_blocked,
    find_message,
    find_question,
    find_room,
    questions,
    recent_messages,
)

FINAL_ROOM_STATUSES = frozenset({"closed", "cancelled"})

RoomId = Annotated[str, Path(pattern=r"^[!-~]{1,128}$", description="The chat room.")]
LiveId = Annotated[str, Path(pattern=r"^[!-~]{1,128}$", description="The live whose room it is.")]
MessageId = Annotated[str, Path(pattern=r"^[!-~]{1,128}$", description="A message of the room.")]
QuestionId = Annotated[str, Path(pattern=r"^[!-~]{1,128}$", description="A question of the room.")]
Moderator = Annotated[Principal, Depends(require_roles("moderator"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="Client-chosen key of this post (a UUID is best): the same key again returns the "
        "same message instead of posting twice.",
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,18}$",
        description="Resume the feed after this event id (sent by EventSource when it reconnects).",
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostIn(_In):
    text: MessageText = Field(description="The message (surrounding spaces are trimmed).")
    display_name: Annotated[str, Field(min_length=1, max_length=80)] | None = Field(
        default=None, description="Name shown next to the message; the user id when omitted."
    )
    reply_to_message_id: Id | None = Field(default=None, description="A message of the room it replies to.")


class PostOut(BaseModel):
    message_id: str
    status: Literal["posted", "blocked"] = Field(
        description="posted: shown to everyone; blocked: refused by moderation, shown to its author only."
    )
    reason: Literal["banned_word", "slow_mode", "muted"] | None = None
    matched_terms: list[str] = Field(default_factory=list)
    banned_words_version: int | None = None

    @classmethod
    def blocked(cls, message_id: str, block: MessageBlocked | BlockedView) -> PostOut:
        return cls(
            message_id=message_id,
            status="blocked",
            reason=block.reason,
            matched_terms=block.matched_terms,
            banned_words_version=block.banned_words_version,
        )


class MarkQuestionIn(_In):
    product_id: Id | None = Field(default=None, description="The product the question is about, if known.")


class AnswerIn(_In):
    answer: MessageText


class MuteIn(_In):
    participant_id: Id
    duration_ms: int = Field(ge=1, le=MAX_MUTE_MS, description="How long the participant may not post.")
    reason: Text | None = None


class SlowModeIn(_In):
    interval_ms: int = Field(
        ge=0,
        le=MAX_SLOW_MODE_INTERVAL_MS,
        description="Minimum time between two messages of one participant; 0 = off.",
    )


class BannedWordsIn(_In):
    terms: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        max_length=MAX_BANNED_TERMS,
        description="The whole new list. Terms match whole words, ignoring case and accents; a term of "
        "several words matches them in sequence.",
    )


def build_router(handlers: ChatHandlers) -> APIRouter:
    router = APIRouter(tags=["chat"])
    feeds = Feeds()

    def actor(principal: Principal) -> Actor:
        return Actor(principal.subject, principal.roles)

    async def room_or_404(context: ServiceContext, room_id: str) -> RoomView:
        room = await find_room(context.readmodel, room_id)
        if room is None:
            raise NotFound("room_not_found", "no chat room is known for this id")
        return room

    @router.get("/rooms", response_model=list[RoomView])
    async def list_rooms(
        _: Moderator, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> list[RoomView]:
        return await all_rooms(context_of(request).readmodel, limit)

    @router.get("/rooms/{room_id}", response_model=RoomView)
    async def get_room(room_id: RoomId, _: Authenticated, request: Request) -> RoomView:
        return await room_or_404(context_of(request), room_id)

    @router.get("/lives/{live_id}/room", response_model=RoomView)
    async def get_room_of_live(live_id: LiveId, _: Authenticated, request: Request) -> RoomView:
        return await room_or_404(context_of(request), room_id_for(live_id))

    @router.get("/rooms/{room_id}/messages", response_model=MessagePage)
    async def last_messages(
        room_id: RoomId,
        _: Authenticated,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500, description="How many of the latest messages.")] = 50,
        before: Annotated[int | None, Query(ge=1, description="Only messages before this event id.")] = None,
    ) -> MessagePage:
        context = context_of(request)
        await room_or_404(context, room_id)
        return await recent_messages(context.readmodel, room_id, limit, before)

    @router.post("/rooms/{room_id}/messages", response_model=PostOut, status_code=201)
    async def post_message(
        room_id: RoomId,
        body: PostIn,
        principal: Authenticated,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> PostOut:
        context = context_of(request)
        message_id, command_id = post_ids(room_id, principal.subject, idempotency_key)
        command = PostMessage(
            room_id,
            message_id,
            actor(principal),
            body.display_name or principal.subject[:80],
            body.text,
            context.clock.now(),
            reply_to_message_id=body.reply_to_message_id,
        )
        outcome = await handlers.room(
            context, room_id, command, command_id=command_id, correlation_id=correlation_id(request)
        )
        if not outcome.duplicate:
            for event in outcome.events:
                if isinstance(event, MessagePosted):
                    return PostOut(message_id=message_id, status="posted")
                if isinstance(event, MessageBlocked):
                    return PostOut.blocked(message_id, event)
        # A retried post: answer with what the first attempt did.
        await context.wait_for(await context.store.head_position())
        if await find_message(context.readmodel, room_id, message_id) is not None:
            return PostOut(message_id=message_id, status="posted")
        blocked = await find_blocked(context.readmodel, room_id, message_id, principal.subject)
        if blocked is None:
            raise NotFound("message_not_found", "no message with this id was posted in this room")
        return PostOut.blocked(message_id, blocked)

    @router.delete("/rooms/{room_id}/messages/{message_id}", status_code=204)
    async def remove_message(
        room_id: RoomId,
        message_id: MessageId,
        principal: Authenticated,
        request: Request,
        reason: Annotated[str | None, Query(min_length=1, max_length=5000)] = None,
    ) -> Response:
        context = context_of(request)
        command = RemoveMessage(room_id, message_id, actor(principal), context.clock.now(), reason=reason)
        await handlers.room(
            context, room_id, command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
        )
        return Response(status_code=204)

    @router.get("/rooms/{room_id}/blocked", response_model=list[BlockedView])
    async def my_blocked_messages(
        room_id: RoomId,
        principal: Authenticated,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[BlockedView]:
        context = context_of(request)
        await room_or_404(context, room_id)
        return await blocked_messages(context.readmodel, room_id, principal.subject, limit)

    @router.post(
        "/rooms/{room_id}/messages/{message_id}/question", response_model=QuestionView, status_code=201
    )
    async def mark_question(
        room_id: RoomId,
        message_id: MessageId,
        body: MarkQuestionIn,
        principal: Authenticated,
        request: Request,
        response: Response,
    ) -> QuestionView:
        context = context_of(request)
        command = MarkQuestion(
            room_id,
            message_id,
            f"q_{uuid.uuid4().hex}",
            actor(principal),
            context.clock.now(),
            product_id=body.product_id,
        )
        outcome = await handlers.room(
            context, room_id, command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
        )
        if not outcome.events:
            response.status_code = 200  # it already was a question, maybe marked a moment ago
            await context.wait_for(await context.store.head_position())
        message = await find_message(context.readmodel, room_id, message_id)
        question_id = message.question_id if message is not None else None
        question = await find_question(context.readmodel, room_id, question_id) if question_id else None
        if question is None:
            raise NotFound("question_not_found", "the message's question is not readable yet; retry")
        return question

    @router.get("/rooms/{room_id}/questions", response_model=list[QuestionView])
    async def list_questions(
        room_id: RoomId,
        _: Authenticated,
        request: Request,
        state: Annotated[QuestionFilter, Query(description="all, open (unanswered) or answered")] = "all",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[QuestionView]:
        context = context_of(request)
        await room_or_404(context, room_id)
        return await questions(context.readmodel, room_id, state, limit)

    @router.post(
        "/rooms/{room_id}/questions/{question_id}/answer", response_model=QuestionView, status_code=201
    )
    async def answer_question(
        room_id: RoomId, question_id: QuestionId, body: AnswerIn, principal: Authenticated, request: Request
    ) -> QuestionView:
        context = context_of(request)
        command = AnswerQuestion(room_id, question_id, body.answer, actor(principal), context.clock.now())
        await handlers.room(
            context, room_id, command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
        )
        question = await find_question(context.readmodel, room_id, question_id)
        if question is None:
            raise NotFound("question_not_found", "no question with this id was asked in this room")
        return question

    @router.post("/rooms/{room_id}/mutes", response_model=MuteView, status_code=201)
    async def mute(room_id: RoomId, body: MuteIn, principal: Authenticated, request: Request) -> MuteView:
        context = context_of(request)
        command = MuteParticipant(
            room_id,
            body.participant_id,
            body.duration_ms,
            actor(principal),
            context.clock.now(),
            reason=body.reason,
        )
        outcome = await handlers.room(
            context, room_id, command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
        )
        muted = next(event for event in outcome.events if isinstance(event, ParticipantMuted))
        return MuteView(
            participant_id=muted.participant_id,
            muted_until=muted.muted_until,
            muted_by=muted.muted_by,
            reason=muted.reason,
            muted_at=muted.occurred_at,
        )

    @router.get("/rooms/{room_id}/mutes", response_model=list[MuteView])
    async def list_mutes(room_id: RoomId, principal: Authenticated, request: Request) -> list[MuteView]:
        context = context_of(request)
        room = await room_or_404(context, room_id)
        if not moderates(room.host_ids, actor(principal)):
            raise Forbidden(
                "not_a_moderator", "only the live's hosts, moderators and admins see the room's mutes"
            )
        return await active_mutes(context.readmodel, room_id, context.clock.now())

    @router.put("/rooms/{room_id}/slow-mode", response_model=RoomView)
    async def set_slow_mode(
        room_id: RoomId, body: SlowModeIn, principal: Authenticated, request: Request
    ) -> RoomView:
        context = context_of(request)
        command = SetSlowMode(room_id, body.interval_ms, actor(principal), context.clock.now())
        await handlers.room(
            context, room_id, command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
        )
        return await room_or_404(context, room_id)

    @router.get("/banned-words", response_model=BannedWordsView)
    async def get_banned_words(_: Moderator, request: Request) -> BannedWordsView:
        return await _banned_words(context_of(request))

    @router.put("/banned-words", response_model=BannedWordsView)
    async def publish_banned_words(
        body: BannedWordsIn, principal: Authenticated, request: Request
    ) -> BannedWordsView:
        context = context_of(request)
        command = PublishBannedWords(tuple(body.terms), actor(principal), context.clock.now())
        await handlers.banned_word_list(
            context, command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
        )
        return await _banned_words(context)

    async def _banned_words(context: ServiceContext) -> BannedWordsView:
        await handlers.banned_words(context)  # publishes the configured default the first time
        await context.wait_for(await context.store.head_position())
        view = await current_banned_words(context.readmodel)
        if view is None:
            raise NotFound("banned_words_not_found", "no banned-word list is published yet; retry")
        return view

    feed_description = (
        "Server-Sent Events: `id` is the event id (resume with Last-Event-ID), `event` the kind "
        "(message, message_removed, question_asked, question_answered, slow_mode_changed, room_opened, "
        "room_closed, room_cancelled; message_blocked and participant_muted to their subject only), "
        "`data` the event's JSON."
    )

    @router.get(
        "/rooms/{room_id}/feed",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
        description=feed_description,
    )
    async def room_feed(
        room_id: RoomId,
        principal: Authenticated,
        request: Request,
        last_event_id: LastEventId = None,
        backlog: Annotated[
            int, Query(ge=0, le=500, description="Entries replayed first without Last-Event-ID.")
        ] = 50,
    ) -> StreamingResponse:
        return await _feed(context_of(request), room_id, principal, last_event_id, backlog)

    @router.get(
        "/lives/{live_id}/feed",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
        description=feed_description,
    )
    async def live_feed(
        live_id: LiveId,
        principal: Authenticated,
        request: Request,
        last_event_id: LastEventId = None,
        backlog: Annotated[int, Query(ge=0, le=500)] = 50,
    ) -> StreamingResponse:
        return await _feed(context_of(request), room_id_for(live_id), principal, last_event_id, backlog)

    async def _feed(
        context: ServiceContext, room_id: str, principal: Principal, last_event_id: str | None, backlog: int
    ) -> StreamingResponse:
        room = await room_or_404(context, room_id)
        db, viewer = context.readmodel, principal.subject
        start = (
            int(last_event_id)
            if last_event_id is not None
            else await feed_start(db, room_id, viewer, backlog)
        )
        stream = feeds.stream(
            db,
            context.projections[FEED_PROJECTION],
            room_id,
            viewer,
            start,
            ended=room.status in FINAL_ROOM_STATUSES,
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
