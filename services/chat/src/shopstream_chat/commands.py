"""What can be asked of the chat service. Pure data: everything a decision needs that is not in
the room's state (who acts and with which roles, the time, generated ids) travels in here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user behind a command (token subject and roles)."""

    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class BannedWordList:
    """One version of the platform's banned-word list. Terms are matched as whole words
    (a term of several words as a phrase), ignoring case and accents."""

    version: int
    terms: tuple[str, ...]


# -- the room's lifecycle, driven by the live's events ---------------------------------------


@dataclass(frozen=True, slots=True)
class PrepareRoom:
    """The live was scheduled: remember its hosts, who may moderate its room."""

    live_id: str
    host_ids: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class OpenRoom:
    """The live started (``live_started_at`` is time zero of its timeline)."""

    live_id: str
    live_started_at: datetime
    at: datetime
    slow_mode_interval_ms: int = 0


@dataclass(frozen=True, slots=True)
class CloseRoom:
    """The live ended or was cancelled."""

    live_id: str
    at: datetime


# -- participants and moderation --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostMessage:
    room_id: str
    message_id: str
    actor: Actor
    display_name: str
    text: str
    at: datetime
    reply_to_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveMessage:
    room_id: str
    message_id: str
    actor: Actor
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MarkQuestion:
    room_id: str
    message_id: str
    question_id: str
    actor: Actor
    at: datetime
    product_id: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerQuestion:
    room_id: str
    question_id: str
    answer: str
    actor: Actor
    at: datetime


@dataclass(frozen=True, slots=True)
class MuteParticipant:
    room_id: str
    participant_id: str
    duration_ms: int
    actor: Actor
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SetSlowMode:
    room_id: str
    interval_ms: int
    actor: Actor
    at: datetime


RoomCommand = (
    PrepareRoom
    | OpenRoom
    | CloseRoom
    | PostMessage
    | RemoveMessage
    | MarkQuestion
    | AnswerQuestion
    | MuteParticipant
    | SetSlowMode
)


# -- the platform's banned-word list ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishBannedWords:
    """An admin replaces the banned-word list with a new version."""

    terms: tuple[str, ...]
    actor: Actor
    at: datetime


@dataclass(frozen=True, slots=True)
class SeedBannedWords:
    """Publish the configured default list as version 1 unless a list was ever published."""

    terms: tuple[str, ...]
    at: datetime


BannedWordsCommand = PublishBannedWords | SeedBannedWords
