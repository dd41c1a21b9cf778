"""Version 1 of the chat service's public events (topic ``shopstream.chat.room``).

Each live has one chat room: it opens when the live starts and closes when it ends. Everything
in it happens during the live, so every event carries ``live_offset_ms``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from shopstream_contracts.base import (
    ContractModel,
    Count,
    Event,
    EventContract,
    Id,
    LiveOffsetMs,
    OccurredAt,
    PositiveCount,
    Text,
    UtcDateTime,
)
from shopstream_contracts.topics import CHAT_ROOM

_ROOM_ID = "The chat room (the Kafka key)."
_LIVE_ID = "The live the room belongs to."

MessageText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Role = Literal["viewer", "influencer", "brand", "moderator", "admin"]


def _contract(name: str) -> EventContract:
    return EventContract(type=f"shopstream.chat.{name}", version=1, topic=CHAT_ROOM)


class Author(ContractModel):
    """Who wrote a message, as they appear in the room."""

    user_id: Id = Field(description="The author's user id (token subject).")
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=80)] = Field(
        description="Name shown next to the message."
    )
    role: Role = Field(description="The author's role in this room (a live's host is 'influencer').")


class ChatRoomOpened(Event):
    """The live started, so its chat room opened for messages."""

    contract: ClassVar[EventContract] = _contract("ChatRoomOpened")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    slow_mode_interval_ms: Count = Field(
        description="Minimum time between two messages of one participant; 0 means slow mode is off."
    )
    banned_words_version: PositiveCount = Field(
        description="Version of the banned-word list the room moderates with."
    )
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class MessagePosted(Event):
    """A message was accepted and is shown to everyone in the room."""

    contract: ClassVar[EventContract] = _contract("MessagePosted")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    message_id: Id = Field(description="The message.")
    author: Author = Field(description="Who wrote it.")
    text: MessageText = Field(description="The message as shown.")
    reply_to_message_id: Id | None = Field(default=None, description="The message it replies to, if any.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class MessageBlocked(Event):
    """A message was refused by moderation; it is shown only to its author."""

    contract: ClassVar[EventContract] = _contract("MessageBlocked")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    message_id: Id = Field(description="The blocked message.")
    author: Author = Field(description="Who wrote it.")
    text: MessageText = Field(description="The message as written.")
    reason: Literal["banned_word", "slow_mode", "muted"] = Field(
        description="banned_word: it contains a word of the banned-word list; slow_mode: its author "
        "posted again before the slow-mode interval elapsed; muted: its author is muted."
    )
    banned_words_version: PositiveCount | None = Field(
        default=None, description="Version of the banned-word list that matched (reason banned_word)."
    )
    matched_terms: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, description="The banned terms found in the text (reason banned_word)."
    )
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class MessageRemoved(Event):
    """A host or moderator took a posted message down."""

    contract: ClassVar[EventContract] = _contract("MessageRemoved")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    message_id: Id = Field(description="The removed message.")
    removed_by: Id = Field(description="Host or moderator who removed it.")
    reason: Text | None = Field(default=None, description="Why, as given by the moderator, if any.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class QuestionAsked(Event):
    """A posted message was marked as a question for the hosts."""

    contract: ClassVar[EventContract] = _contract("QuestionAsked")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    question_id: Id = Field(description="The question; answers reference it.")
    message_id: Id = Field(description="The message that is the question.")
    asked_by: Id = Field(description="Author of the message.")
    marked_by: Id = Field(description="Who marked it as a question: its author, a host or a moderator.")
    text: MessageText = Field(description="The question as posted.")
    product_id: Id | None = Field(default=None, description="The product it is about, if known.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class QuestionAnswered(Event):
    """A host or moderator answered a question."""

    contract: ClassVar[EventContract] = _contract("QuestionAnswered")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    question_id: Id = Field(description="The question answered.")
    answered_by: Id = Field(description="Host or moderator who answered.")
    answer: MessageText = Field(description="The answer as shown.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class ParticipantMuted(Event):
    """A participant may not post until ``muted_until``."""

    contract: ClassVar[EventContract] = _contract("ParticipantMuted")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    participant_id: Id = Field(description="The muted user.")
    muted_by: Id = Field(description="Host or moderator who muted them.")
    duration_ms: PositiveCount = Field(description="Length of the mute.")
    muted_until: UtcDateTime = Field(description="End of the mute (UTC): occurred_at + duration_ms.")
    reason: Text | None = Field(default=None, description="Why, as given by the moderator, if any.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class SlowModeChanged(Event):
    """The minimum interval between two messages of one participant changed."""

    contract: ClassVar[EventContract] = _contract("SlowModeChanged")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    interval_ms: Count = Field(description="The new minimum interval; 0 turns slow mode off.")
    changed_by: Id = Field(description="Host or moderator who changed it.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class ChatRoomClosed(Event):
    """The live ended, so the room refuses new messages; its history stays readable."""

    contract: ClassVar[EventContract] = _contract("ChatRoomClosed")

    room_id: Id = Field(description=_ROOM_ID)
    live_id: Id = Field(description=_LIVE_ID)
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


EVENTS: tuple[type[Event], ...] = (
    ChatRoomOpened,
    MessagePosted,
    MessageBlocked,
    MessageRemoved,
    QuestionAsked,
    QuestionAnswered,
    ParticipantMuted,
    SlowModeChanged,
    ChatRoomClosed,
)
