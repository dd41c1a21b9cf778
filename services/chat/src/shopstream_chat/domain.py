"""The chat room of a live, and the platform's banned-word list, as pure deciders.

A room is one stream. It is prepared when the live is scheduled (its hosts may moderate it),
opens when the live starts, and closes when the live ends; a live cancelled before it started
leaves a cancelled room that never opens. Messages are accepted only while the room is open.

A posted message may be blocked instead of shown, and the block is recorded (``MessageBlocked``,
shown only to its author): its author is muted, or posted again within the slow-mode interval
(hosts, moderators and admins are exempt), or it contains a term of the banned-word list the
room applies. Removals and answers also work once the room has closed: its history stays
readable and can still be curated.

The room's state is kept small (per-user last post time and mute end, message id ⇒ author,
text and question, question ⇒ answered). It is updated in place by ``evolve`` so folding a
room of N messages costs O(N), not O(N²) dictionary copies: a state must not be used again once
it has been evolved. ``decide`` never changes a state.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID, uuid5

from pydantic import ValidationError

from shopstream_contracts.base import ContractModel
from shopstream_contracts.chat.v1 import (
    Author,
    ChatRoomClosed,
    ChatRoomOpened,
    MessageBlocked,
    MessagePosted,
    MessageRemoved,
    ParticipantMuted,
    QuestionAnswered,
    QuestionAsked,
    Role,
    SlowModeChanged,
)
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound

from .commands import (
    Actor,
    AnswerQuestion,
    BannedWordList,
    BannedWordsCommand,
    CloseRoom,
    MarkQuestion,
    MuteParticipant,
    OpenRoom,
    PostMessage,
    PrepareRoom,
    PublishBannedWords,
    RemoveMessage,
    RoomCommand,
    SeedBannedWords,
    SetSlowMode,
)
from .events import BannedWordListPublished, BannedWordsApplied, RoomCancelled, RoomPrepared

ROOM_NAMESPACE = UUID("0c6f3d2e-5b7a-5e41-9f08-2d4c6a8b1e37")
"""Fixed forever: changing it would give every live a second room."""

MAX_TEXT_CHARS = 2000
MAX_DISPLAY_NAME_CHARS = 80
MAX_REASON_CHARS = 5000
MAX_SLOW_MODE_INTERVAL_MS = 10 * 60_000
MAX_MUTE_MS = 24 * 3_600_000
MAX_BANNED_TERMS = 1000
MAX_TERM_CHARS = 200

MODERATOR_ROLES = frozenset({"moderator", "admin"})
_ONE_MS = timedelta(milliseconds=1)


def room_id_for(live_id: str) -> str:
    """The live's one room: the same id however often its LiveStarted is processed."""
    return f"room_{uuid5(ROOM_NAMESPACE, live_id).hex}"


# -- banned words ---------------------------------------------------------------------------

# Letters and digits only: an underscore or punctuation separates words ("buy_replicas").
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """The words of ``text``, compared without case or accents (and with compatibility forms
    such as full-width letters folded), so "RÉPLICAS" and "replicas" are the same word."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    return tuple(_WORD.findall(plain))


def normalise_term(term: str) -> str:
    return " ".join(words(term))


class BannedWordMatcher:
    """Finds the terms of a list in a text. A term matches whole words only (so "ass" never
    matches "class"), and a term of several words matches them in sequence."""

    def __init__(self, terms: Iterable[str]) -> None:
        self._terms = tuple(terms)
        self._by_first_word: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for rank, term in enumerate(self._terms):
            term_words = tuple(term.split(" "))
            self._by_first_word.setdefault(term_words[0], []).append((rank, term_words))

    def find(self, text: str) -> list[str]:
        """The terms found in ``text``, in list order, each once."""
        found: set[int] = set()
        text_words = words(text)
        for start, word in enumerate(text_words):
            for rank, term_words in self._by_first_word.get(word, ()):
                if text_words[start : start + len(term_words)] == term_words:
                    found.add(rank)
        return [self._terms[rank] for rank in sorted(found)]


# -- the room -------------------------------------------------------------------------------


def moderates(host_ids: Iterable[str], actor: Actor) -> bool:
    """Hosts of the live, moderators and admins moderate its room."""
    return actor.user_id in host_ids or bool(actor.roles & MODERATOR_ROLES)


class RoomStatus(StrEnum):
    NONE = "none"
    """No event yet: the chat service has never heard of this live."""
    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class MessageInfo:
    author_id: str
    text: str
    question_id: str | None = None
    removed: bool = False


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    message_id: str
    answered: bool = False


NO_BANNED_WORDS = BannedWordList(version=0, terms=())


@dataclass(slots=True)
class RoomState:
    room_id: str | None = None
    live_id: str | None = None
    status: RoomStatus = RoomStatus.NONE
    host_ids: frozenset[str] = frozenset()
    started_at: datetime | None = None
    slow_mode_interval_ms: int = 0
    banned_words: BannedWordList = NO_BANNED_WORDS
    matcher: BannedWordMatcher = field(default_factory=lambda: BannedWordMatcher(()))
    last_posted_at: dict[str, datetime] = field(default_factory=dict)
    muted_until: dict[str, datetime] = field(default_factory=dict)
    messages: dict[str, MessageInfo] = field(default_factory=dict)
    questions: dict[str, QuestionInfo] = field(default_factory=dict)

    def moderates(self, actor: Actor) -> bool:
        return moderates(self.host_ids, actor)

    def role_of(self, actor: Actor) -> Role:
        """How the actor appears in this room: a host of the live as 'influencer'."""
        if actor.user_id in self.host_ids:
            return "influencer"
        if "admin" in actor.roles:
            return "admin"
        if "moderator" in actor.roles:
            return "moderator"
        if "brand" in actor.roles:
            return "brand"
        return "viewer"


M = TypeVar("M", bound=ContractModel)


def _build(model: type[M], **fields: Any) -> M:
    """Build a contract model strictly; a value the contract refuses is the request's fault."""
    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "value"
        raise Invalid(f"invalid_{name}", first["msg"], field=name) from None


def _text(value: str, field_name: str, max_chars: int) -> str:
    text = value.strip()
    if not text:
        raise Invalid(f"{field_name}_empty", f"{field_name} must not be blank", field=field_name)
    if len(text) > max_chars:
        raise Invalid(
            f"{field_name}_too_long", f"{field_name} is longer than {max_chars} characters", field=field_name
        )
    return text


def _reason(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return _text(value, "reason", MAX_REASON_CHARS)


def _offset_ms(state: RoomState, at: datetime) -> int:
    # Clocks of two services may disagree by a little: a time before the start is offset 0.
    assert state.started_at is not None, "an opened room knows when its live started"
    return max(0, (at - state.started_at) // _ONE_MS)


def _require_room(state: RoomState) -> tuple[str, str]:
    if state.status is RoomStatus.NONE or state.room_id is None or state.live_id is None:
        raise NotFound("room_not_found", "no chat room is known for this id")
    return state.room_id, state.live_id


def _require_open(state: RoomState) -> tuple[str, str]:
    ids = _require_room(state)
    if state.status is RoomStatus.PENDING:
        raise DomainError("room_not_open", "the live has not started: its chat room is not open yet")
    if state.status is RoomStatus.CLOSED:
        raise DomainError("room_closed", "the live has ended: its chat room is closed")
    if state.status is RoomStatus.CANCELLED:
        raise DomainError("room_cancelled", "the live was cancelled: its chat room will never open")
    return ids


def _require_moderator(state: RoomState, actor: Actor, action: str) -> None:
    if not state.moderates(actor):
        raise Forbidden(
            "not_a_moderator", f"only the live's hosts, moderators and admins may {action} in this room"
        )


def _check_slow_mode_interval(interval_ms: int, field_name: str) -> None:
    if not 0 <= interval_ms <= MAX_SLOW_MODE_INTERVAL_MS:
        raise Invalid(
            "slow_mode_interval_out_of_range",
            f"the slow-mode interval must be between 0 and {MAX_SLOW_MODE_INTERVAL_MS} ms",
            field=field_name,
        )


class RoomDecider:
    """Decides with ``banned_words``, the newest list the service knows: a room opens with it,
    and an open room moves to it on the next message if it is newer than the list the room
    applies (an older one never takes the room back)."""

    def __init__(self, banned_words: BannedWordList = NO_BANNED_WORDS) -> None:
        self.banned_words = banned_words

    def initial_state(self) -> RoomState:
        return RoomState()

    def evolve(self, state: RoomState, event: DomainEvent) -> RoomState:
        match event:
            case RoomPrepared():
                state.room_id, state.live_id = event.room_id, event.live_id
                state.host_ids = frozenset(event.host_ids)
                if state.status is RoomStatus.NONE:
                    state.status = RoomStatus.PENDING
            case ChatRoomOpened():
                state.room_id, state.live_id = event.room_id, event.live_id
                state.status = RoomStatus.OPEN
                state.started_at = event.occurred_at - event.live_offset_ms * _ONE_MS
                state.slow_mode_interval_ms = event.slow_mode_interval_ms
            case BannedWordsApplied():
                state.banned_words = BannedWordList(event.list_version, tuple(event.terms))
                state.matcher = BannedWordMatcher(event.terms)
            case MessagePosted():
                state.messages[event.message_id] = MessageInfo(event.author.user_id, event.text)
                state.last_posted_at[event.author.user_id] = event.occurred_at
            case MessageRemoved():
                message = state.messages[event.message_id]
                # The text is no longer needed once removed: a removed message is never asked.
                state.messages[event.message_id] = replace(message, text="", removed=True)
            case QuestionAsked():
                message = state.messages[event.message_id]
                state.messages[event.message_id] = replace(message, question_id=event.question_id)
                state.questions[event.question_id] = QuestionInfo(event.message_id)
            case QuestionAnswered():
                question = state.questions[event.question_id]
                state.questions[event.question_id] = replace(question, answered=True)
            case ParticipantMuted():
                state.muted_until[event.participant_id] = event.muted_until
            case SlowModeChanged():
                state.slow_mode_interval_ms = event.interval_ms
            case ChatRoomClosed():
                state.status = RoomStatus.CLOSED
            case RoomCancelled():
                state.room_id, state.live_id = event.room_id, event.live_id
                state.status = RoomStatus.CANCELLED
        return state

    def decide(self, command: RoomCommand, state: RoomState) -> Sequence[DomainEvent]:
        match command:
            case PrepareRoom():
                return _prepare(command, state)
            case OpenRoom():
                return _open(command, state, self.banned_words)
            case CloseRoom():
                return _close(command, state)
            case PostMessage():
                return _post(command, state, self.banned_words)
            case RemoveMessage():
                return _remove(command, state)
            case MarkQuestion():
                return _mark_question(command, state)
            case AnswerQuestion():
                return _answer(command, state)
            case MuteParticipant():
                return _mute(command, state)
            case SetSlowMode():
                return _set_slow_mode(command, state)


def _prepare(command: PrepareRoom, state: RoomState) -> list[DomainEvent]:
    hosts = list(dict.fromkeys(command.host_ids))
    if state.status is not RoomStatus.NONE and frozenset(hosts) == state.host_ids:
        return []
    return [
        RoomPrepared(
            room_id=room_id_for(command.live_id),
            live_id=command.live_id,
            host_ids=hosts,
            occurred_at=command.at,
        )
    ]


def _open(command: OpenRoom, state: RoomState, banned_words: BannedWordList) -> list[DomainEvent]:
    # A room opens once: a second LiveStarted (or a LiveStarted after a cancellation) is a no-op.
    if state.status not in (RoomStatus.NONE, RoomStatus.PENDING):
        return []
    if banned_words.version < 1:
        # The handler publishes the configured default list before any room opens.
        raise RuntimeError("a room opens with a published banned-word list")
    _check_slow_mode_interval(command.slow_mode_interval_ms, "slow_mode_interval_ms")
    room_id = room_id_for(command.live_id)
    offset = max(0, (command.at - command.live_started_at) // _ONE_MS)
    return [
        _build(
            ChatRoomOpened,
            room_id=room_id,
            live_id=command.live_id,
            slow_mode_interval_ms=command.slow_mode_interval_ms,
            banned_words_version=banned_words.version,
            live_offset_ms=offset,
            occurred_at=command.at,
        ),
        BannedWordsApplied(
            room_id=room_id,
            list_version=banned_words.version,
            terms=list(banned_words.terms),
            occurred_at=command.at,
        ),
    ]


def _close(command: CloseRoom, state: RoomState) -> list[DomainEvent]:
    if state.status is RoomStatus.OPEN:
        room_id, live_id = _require_room(state)
        return [
            _build(
                ChatRoomClosed,
                room_id=room_id,
                live_id=live_id,
                live_offset_ms=_offset_ms(state, command.at),
                occurred_at=command.at,
            )
        ]
    if state.status in (RoomStatus.NONE, RoomStatus.PENDING):
        return [
            RoomCancelled(
                room_id=room_id_for(command.live_id), live_id=command.live_id, occurred_at=command.at
            )
        ]
    return []


def _post(command: PostMessage, state: RoomState, newest: BannedWordList) -> list[DomainEvent]:
    room_id, live_id = _require_open(state)
    text = _text(command.text, "text", MAX_TEXT_CHARS)
    display_name = _text(command.display_name, "display_name", MAX_DISPLAY_NAME_CHARS)
    actor = command.actor
    existing = state.messages.get(command.message_id)
    if existing is not None:
        if existing.author_id == actor.user_id:
            return []  # a retry of a post that went through
        raise DomainError("message_id_taken", "another message has this id", field="message_id")
    if command.reply_to_message_id is not None:
        replied = state.messages.get(command.reply_to_message_id)
        if replied is None or replied.removed:
            raise Invalid(
                "reply_to_unknown_message",
                "the message replied to is not in this room (or was removed)",
                field="reply_to_message_id",
            )

    events: list[DomainEvent] = []
    banned_words, matcher = state.banned_words, state.matcher
    if newest.version > banned_words.version:
        banned_words, matcher = newest, BannedWordMatcher(newest.terms)
        events.append(
            BannedWordsApplied(
                room_id=room_id,
                list_version=banned_words.version,
                terms=list(banned_words.terms),
                occurred_at=command.at,
            )
        )

    common: dict[str, Any] = {
        "room_id": room_id,
        "live_id": live_id,
        "message_id": command.message_id,
        "author": _build(Author, user_id=actor.user_id, display_name=display_name, role=state.role_of(actor)),
        "text": text,
        "live_offset_ms": _offset_ms(state, command.at),
        "occurred_at": command.at,
    }
    muted_until = state.muted_until.get(actor.user_id)
    last_posted_at = state.last_posted_at.get(actor.user_id)
    interval = state.slow_mode_interval_ms * _ONE_MS
    if muted_until is not None and command.at < muted_until:
        events.append(_build(MessageBlocked, reason="muted", **common))
    elif (
        interval
        and last_posted_at is not None
        and not state.moderates(actor)
        and command.at - last_posted_at < interval
    ):
        events.append(_build(MessageBlocked, reason="slow_mode", **common))
    elif matched := matcher.find(text):
        events.append(
            _build(
                MessageBlocked,
                reason="banned_word",
                banned_words_version=banned_words.version,
                matched_terms=matched,
                **common,
            )
        )
    else:
        events.append(_build(MessagePosted, reply_to_message_id=command.reply_to_message_id, **common))
    return events


def _posted_message(state: RoomState, message_id: str) -> MessageInfo:
    message = state.messages.get(message_id)
    if message is None:
        raise NotFound("message_not_found", "no message with this id was posted in this room")
    return message


def _remove(command: RemoveMessage, state: RoomState) -> list[DomainEvent]:
    room_id, live_id = _require_room(state)
    _require_moderator(state, command.actor, "remove messages")
    message = _posted_message(state, command.message_id)
    if message.removed:
        return []
    return [
        _build(
            MessageRemoved,
            room_id=room_id,
            live_id=live_id,
            message_id=command.message_id,
            removed_by=command.actor.user_id,
            reason=_reason(command.reason),
            live_offset_ms=_offset_ms(state, command.at),
            occurred_at=command.at,
        )
    ]


def _mark_question(command: MarkQuestion, state: RoomState) -> list[DomainEvent]:
    room_id, live_id = _require_open(state)
    message = _posted_message(state, command.message_id)
    actor = command.actor
    if actor.user_id != message.author_id and not state.moderates(actor):
        raise Forbidden(
            "not_author_or_moderator",
            "only the message's author, the live's hosts, moderators and admins may mark it as a question",
        )
    if message.removed:
        raise DomainError("message_removed", "the message was removed", field="message_id")
    if message.question_id is not None:
        return []
    if command.question_id in state.questions:
        raise DomainError("question_id_taken", "another question has this id", field="question_id")
    return [
        _build(
            QuestionAsked,
            room_id=room_id,
            live_id=live_id,
            question_id=command.question_id,
            message_id=command.message_id,
            asked_by=message.author_id,
            marked_by=actor.user_id,
            text=message.text,
            product_id=command.product_id,
            live_offset_ms=_offset_ms(state, command.at),
            occurred_at=command.at,
        )
    ]


def _answer(command: AnswerQuestion, state: RoomState) -> list[DomainEvent]:
    room_id, live_id = _require_room(state)
    _require_moderator(state, command.actor, "answer questions")
    question = state.questions.get(command.question_id)
    if question is None:
        raise NotFound("question_not_found", "no question with this id was asked in this room")
    answer = _text(command.answer, "answer", MAX_TEXT_CHARS)
    if question.answered:
        raise DomainError("question_already_answered", "the question has already been answered")
    if state.messages[question.message_id].removed:
        raise DomainError("message_removed", "the question's message was removed")
    return [
        _build(
            QuestionAnswered,
            room_id=room_id,
            live_id=live_id,
            question_id=command.question_id,
            answered_by=command.actor.user_id,
            answer=answer,
            live_offset_ms=_offset_ms(state, command.at),
            occurred_at=command.at,
        )
    ]


def _mute(command: MuteParticipant, state: RoomState) -> list[DomainEvent]:
    room_id, live_id = _require_open(state)
    _require_moderator(state, command.actor, "mute participants")
    if command.participant_id in state.host_ids:
        raise Forbidden("cannot_mute_host", "a host of the live cannot be muted in its room")
    if command.participant_id == command.actor.user_id:
        raise Invalid("cannot_mute_self", "a moderator cannot mute themselves", field="participant_id")
    if not 1 <= command.duration_ms <= MAX_MUTE_MS:
        raise Invalid(
            "mute_duration_out_of_range",
            f"a mute lasts between 1 and {MAX_MUTE_MS} ms",
            field="duration_ms",
        )
    return [
        _build(
            ParticipantMuted,
            room_id=room_id,
            live_id=live_id,
            participant_id=command.participant_id,
            muted_by=command.actor.user_id,
            duration_ms=command.duration_ms,
            muted_until=command.at + command.duration_ms * _ONE_MS,
            reason=_reason(command.reason),
            live_offset_ms=_offset_ms(state, command.at),
            occurred_at=command.at,
        )
    ]


def _set_slow_mode(command: SetSlowMode, state: RoomState) -> list[DomainEvent]:
    room_id, live_id = _require_open(state)
    _require_moderator(state, command.actor, "change slow mode")
    _check_slow_mode_interval(command.interval_ms, "interval_ms")
    if command.interval_ms == state.slow_mode_interval_ms:
        return []
    return [
        _build(
            SlowModeChanged,
            room_id=room_id,
            live_id=live_id,
            interval_ms=command.interval_ms,
            changed_by=command.actor.user_id,
            live_offset_ms=_offset_ms(state, command.at),
            occurred_at=command.at,
        )
    ]


# -- the banned-word list -------------------------------------------------------------------


class BannedWordsDecider:
    """The platform's one banned-word list, versioned: each publication is version n + 1.
    Rooms copy the version they apply into their own stream."""

    def initial_state(self) -> BannedWordList:
        return NO_BANNED_WORDS

    def evolve(self, state: BannedWordList, event: DomainEvent) -> BannedWordList:
        if isinstance(event, BannedWordListPublished):
            return BannedWordList(event.list_version, tuple(event.terms))
        return state

    def decide(self, command: BannedWordsCommand, state: BannedWordList) -> Sequence[DomainEvent]:
        match command:
            case PublishBannedWords():
                if "admin" not in command.actor.roles:
                    raise Forbidden("not_an_admin", "only admins may change the banned-word list")
                return _publish(command.terms, command.actor.user_id, command.at, state)
            case SeedBannedWords():
                if state.version > 0:
                    return []
                return _publish(command.terms, "system", command.at, state)


def normalise_terms(terms: Iterable[str]) -> tuple[str, ...]:
    """The terms as matched (lower case, no accents, single spaces), distinct, in given order."""
    normalised: dict[str, None] = {}
    for index, term in enumerate(terms):
        if len(term) > MAX_TERM_CHARS:
            raise Invalid(
                "term_too_long", f"term {index} is longer than {MAX_TERM_CHARS} characters", field="terms"
            )
        plain = normalise_term(term)
        if not plain:
            raise Invalid("term_without_words", f"term {index} ({term!r}) contains no word", field="terms")
        normalised[plain] = None
    if len(normalised) > MAX_BANNED_TERMS:
        raise Invalid("too_many_terms", f"a list holds at most {MAX_BANNED_TERMS} terms", field="terms")
    return tuple(normalised)


def _publish(terms: Iterable[str], by: str, at: datetime, state: BannedWordList) -> list[DomainEvent]:
    normalised = normalise_terms(terms)
    if state.version > 0 and normalised == state.terms:
        return []
    return [
        BannedWordListPublished(
            list_version=state.version + 1, terms=list(normalised), published_by=by, occurred_at=at
        )
    ]
