"""Read models of the chat service, and the queries the API serves from them.

- ``chat-rooms``: one row per room (status, hosts, slow mode, list version, tallies) and the
  mutes of each room.
- ``chat-feed``: the room's feed as an ordered log whose ids are store positions, so a Server-
  Sent-Events client resumes exactly after the last entry it saw; plus the posted messages (for
  "last N messages"), the questions and the blocked messages (each visible to its author only).
  A removal hides the message (and its question and answer) from every later read or replay and
  adds a ``message_removed`` entry, so a client that already showed it takes it down.
- ``chat-banned-words``: every version of the platform's banned-word list.

Every apply is a pure function of the events (no clock, no reads), so any of them can be
dropped and rebuilt from position 0 with the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    SlowModeChanged,
)
from shopstream_eventstore import RecordedEvent
from shopstream_processing import ReadModelDb, Row, Statement, Table, TableNames

from .events import BannedWordListPublished, BannedWordsApplied, RoomCancelled, RoomPrepared

FEED_PROJECTION = "chat-feed"

_OPENED = ChatRoomOpened.contract.type
_POSTED = MessagePosted.contract.type
_BLOCKED = MessageBlocked.contract.type
_REMOVED = MessageRemoved.contract.type
_ASKED = QuestionAsked.contract.type
_ANSWERED = QuestionAnswered.contract.type
_MUTED = ParticipantMuted.contract.type
_SLOW_MODE = SlowModeChanged.contract.type
_CLOSED = ChatRoomClosed.contract.type

Apply = Callable[[RecordedEvent, TableNames], list[Statement]]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _dispatch(
    handlers: dict[str, Apply], events: Sequence[RecordedEvent], tables: TableNames
) -> list[Statement]:
    statements: list[Statement] = []
    for event in events:
        handle = handlers.get(event.type)
        if handle is not None:
            statements += handle(event, tables)
    return statements


# -- rooms ----------------------------------------------------------------------------------

_BLOCK_COLUMNS = {
    "banned_word": "blocked_banned_word",
    "slow_mode": "blocked_slow_mode",
    "muted": "blocked_muted",
}


class RoomsProjection:
    name = "chat-rooms"
    version = 1
    tables = (
        Table(
            "chat_rooms",
            "room_id text PRIMARY KEY, live_id text NOT NULL, status text NOT NULL, "
            "host_ids text NOT NULL, slow_mode_interval_ms bigint NOT NULL DEFAULT 0, "
            "banned_words_version bigint NOT NULL DEFAULT 0, opened_at text, closed_at text, "
            "messages bigint NOT NULL DEFAULT 0, blocked_banned_word bigint NOT NULL DEFAULT 0, "
            "blocked_slow_mode bigint NOT NULL DEFAULT 0, blocked_muted bigint NOT NULL DEFAULT 0, "
            "removed bigint NOT NULL DEFAULT 0, questions bigint NOT NULL DEFAULT 0, "
            "answered bigint NOT NULL DEFAULT 0, mutes bigint NOT NULL DEFAULT 0",
            indexes=("live_id",),
        ),
        Table(
            "chat_mutes",
            "room_id text NOT NULL, participant_id text NOT NULL, muted_until text NOT NULL, "
            "muted_by text NOT NULL, reason text, muted_at text NOT NULL, "
            "PRIMARY KEY (room_id, participant_id)",
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        return _dispatch(
            {
                RoomPrepared.type_name: self._prepared,
                _OPENED: self._opened,
                BannedWordsApplied.type_name: self._words_applied,
                _POSTED: lambda e, t: self._count(e, t, "messages"),
                _BLOCKED: lambda e, t: self._count(e, t, _BLOCK_COLUMNS[e.data["reason"]]),
                _REMOVED: lambda e, t: self._count(e, t, "removed"),
                _ASKED: lambda e, t: self._count(e, t, "questions"),
                _ANSWERED: lambda e, t: self._count(e, t, "answered"),
                _MUTED: self._muted,
                _SLOW_MODE: self._slow_mode,
                _CLOSED: self._closed,
                RoomCancelled.type_name: self._cancelled,
            },
            events,
            tables,
        )

    @staticmethod
    def _prepared(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d, rooms = event.data, tables["chat_rooms"]
        return [
            Statement(
                f"INSERT INTO {rooms} (room_id, live_id, status, host_ids) VALUES ($1, $2, 'pending', $3) "
                "ON CONFLICT (room_id) DO UPDATE SET host_ids = excluded.host_ids",
                (d["room_id"], d["live_id"], _json(d["host_ids"])),
            )
        ]

    @staticmethod
    def _opened(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d, rooms = event.data, tables["chat_rooms"]
        return [
            Statement(
                f"INSERT INTO {rooms} (room_id, live_id, status, host_ids, slow_mode_interval_ms, "
                "banned_words_version, opened_at) VALUES ($1, $2, 'open', '[]', $3, $4, $5) "
                "ON CONFLICT (room_id) DO UPDATE SET status = 'open', "
                "slow_mode_interval_ms = excluded.slow_mode_interval_ms, "
                "banned_words_version = excluded.banned_words_version, opened_at = excluded.opened_at",
                (
                    d["room_id"],
                    d["live_id"],
                    d["slow_mode_interval_ms"],
                    d["banned_words_version"],
                    d["occurred_at"],
                ),
            )
        ]

    @staticmethod
    def _words_applied(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        return [
            Statement(
                f"UPDATE {tables['chat_rooms']} SET banned_words_version = $2 WHERE room_id = $1",
                (d["room_id"], d["list_version"]),
            )
        ]

    @staticmethod
    def _count(event: RecordedEvent, tables: TableNames, column: str) -> list[Statement]:
        return [
            Statement(
                f"UPDATE {tables['chat_rooms']} SET {column} = {column} + 1 WHERE room_id = $1",
                (event.data["room_id"],),
            )
        ]

    def _muted(self, event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        return [
            *self._count(event, tables, "mutes"),
            Statement(
                f"INSERT INTO {tables['chat_mutes']} (room_id, participant_id, muted_until, muted_by, "
                "reason, muted_at) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (room_id, participant_id) DO UPDATE SET muted_until = excluded.muted_until, "
                "muted_by = excluded.muted_by, reason = excluded.reason, muted_at = excluded.muted_at",
                (
                    d["room_id"],
                    d["participant_id"],
                    d["muted_until"],
                    d["muted_by"],
                    d["reason"],
                    d["occurred_at"],
                ),
            ),
        ]

    @staticmethod
    def _slow_mode(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        return [
            Statement(
                f"UPDATE {tables['chat_rooms']} SET slow_mode_interval_ms = $2 WHERE room_id = $1",
                (d["room_id"], d["interval_ms"]),
            )
        ]

    @staticmethod
    def _closed(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        return [
            Statement(
                f"UPDATE {tables['chat_rooms']} SET status = 'closed', closed_at = $2 WHERE room_id = $1",
                (d["room_id"], d["occurred_at"]),
            )
        ]

    @staticmethod
    def _cancelled(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d, rooms = event.data, tables["chat_rooms"]
        return [
            Statement(
                f"INSERT INTO {rooms} (room_id, live_id, status, host_ids, closed_at) "
                "VALUES ($1, $2, 'cancelled', '[]', $3) "
                "ON CONFLICT (room_id) DO UPDATE SET status = 'cancelled', closed_at = excluded.closed_at",
                (d["room_id"], d["live_id"], d["occurred_at"]),
            )
        ]


# -- the feed -------------------------------------------------------------------------------

FeedKind = Literal[
    "room_opened",
    "message",
    "message_blocked",
    "message_removed",
    "question_asked",
    "question_answered",
    "participant_muted",
    "slow_mode_changed",
    "room_closed",
    "room_cancelled",
]
FINAL_KINDS: frozenset[str] = frozenset({"room_closed", "room_cancelled"})
"""After these, nothing more is posted in the room: a live feed ends with them."""


class FeedProjection:
    name = FEED_PROJECTION
    version = 1
    tables = (
        Table(
            "chat_feed",
            "position bigint PRIMARY KEY, room_id text NOT NULL, kind text NOT NULL, message_id text, "
            "visible_to text, hidden integer NOT NULL DEFAULT 0, data text NOT NULL",
            indexes=("room_id, position", "room_id, message_id"),
        ),
        Table(
            "chat_messages",
            "room_id text NOT NULL, message_id text NOT NULL, position bigint NOT NULL, "
            "author_id text NOT NULL, display_name text NOT NULL, role text NOT NULL, text text NOT NULL, "
            "reply_to_message_id text, question_id text, live_offset_ms bigint NOT NULL, "
            "posted_at text NOT NULL, removed integer NOT NULL DEFAULT 0, "
            "PRIMARY KEY (room_id, message_id)",
            indexes=("room_id, position",),
        ),
        Table(
            "chat_questions",
            "room_id text NOT NULL, question_id text NOT NULL, message_id text NOT NULL, "
            "position bigint NOT NULL, asked_by text NOT NULL, marked_by text NOT NULL, text text NOT NULL, "
            "product_id text, live_offset_ms bigint NOT NULL, asked_at text NOT NULL, answer text, "
            "answered_by text, answered_at text, removed integer NOT NULL DEFAULT 0, "
            "PRIMARY KEY (room_id, question_id)",
            indexes=("room_id, position", "room_id, message_id"),
        ),
        Table(
            "chat_blocked",
            "room_id text NOT NULL, message_id text NOT NULL, position bigint NOT NULL, "
            "author_id text NOT NULL, display_name text NOT NULL, text text NOT NULL, reason text NOT NULL, "
            "matched_terms text NOT NULL, banned_words_version bigint, live_offset_ms bigint NOT NULL, "
            "blocked_at text NOT NULL, PRIMARY KEY (room_id, message_id)",
            indexes=("room_id, author_id, position",),
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        return _dispatch(
            {
                _OPENED: lambda e, t: [self._entry(e, t, "room_opened")],
                _POSTED: self._posted,
                _BLOCKED: self._blocked,
                _REMOVED: self._removed,
                _ASKED: self._asked,
                _ANSWERED: self._answered,
                _MUTED: lambda e, t: [
                    self._entry(e, t, "participant_muted", visible_to=e.data["participant_id"])
                ],
                _SLOW_MODE: lambda e, t: [self._entry(e, t, "slow_mode_changed")],
                _CLOSED: lambda e, t: [self._entry(e, t, "room_closed")],
                RoomCancelled.type_name: lambda e, t: [self._entry(e, t, "room_cancelled")],
            },
            events,
            tables,
        )

    @staticmethod
    def _entry(
        event: RecordedEvent,
        tables: TableNames,
        kind: FeedKind,
        *,
        message_id: str | None = None,
        visible_to: str | None = None,
    ) -> Statement:
        return Statement(
            f"INSERT INTO {tables['chat_feed']} (position, room_id, kind, message_id, visible_to, data) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            (event.position, event.data["room_id"], kind, message_id, visible_to, _json(event.data)),
        )

    def _posted(self, event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        author = d["author"]
        return [
            self._entry(event, tables, "message", message_id=d["message_id"]),
            Statement(
                f"INSERT INTO {tables['chat_messages']} (room_id, message_id, position, author_id, "
                "display_name, role, text, reply_to_message_id, live_offset_ms, posted_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                (
                    d["room_id"],
                    d["message_id"],
                    event.position,
                    author["user_id"],
                    author["display_name"],
                    author["role"],
                    d["text"],
                    d.get("reply_to_message_id"),
                    d["live_offset_ms"],
                    d["occurred_at"],
                ),
            ),
        ]

    def _blocked(self, event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        author = d["author"]
        return [
            self._entry(
                event, tables, "message_blocked", message_id=d["message_id"], visible_to=author["user_id"]
            ),
            Statement(
                f"INSERT INTO {tables['chat_blocked']} (room_id, message_id, position, author_id, "
                "display_name, text, reason, matched_terms, banned_words_version, live_offset_ms, "
                "blocked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                (
                    d["room_id"],
                    d["message_id"],
                    event.position,
                    author["user_id"],
                    author["display_name"],
                    d["text"],
                    d["reason"],
                    _json(d.get("matched_terms", [])),
                    d.get("banned_words_version"),
                    d["live_offset_ms"],
                    d["occurred_at"],
                ),
            ),
        ]

    def _removed(self, event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        key = (d["room_id"], d["message_id"])
        return [
            Statement(
                f"UPDATE {tables['chat_feed']} SET hidden = 1 WHERE room_id = $1 AND message_id = $2 "
                "AND kind IN ('message', 'question_asked', 'question_answered')",
                key,
            ),
            Statement(
                f"UPDATE {tables['chat_messages']} SET removed = 1 WHERE room_id = $1 AND message_id = $2",
                key,
            ),
            Statement(
                f"UPDATE {tables['chat_questions']} SET removed = 1 WHERE room_id = $1 AND message_id = $2",
                key,
            ),
            self._entry(event, tables, "message_removed", message_id=d["message_id"]),
        ]

    def _asked(self, event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        return [
            self._entry(event, tables, "question_asked", message_id=d["message_id"]),
            Statement(
                f"INSERT INTO {tables['chat_questions']} (room_id, question_id, message_id, position, "
                "asked_by, marked_by, text, product_id, live_offset_ms, asked_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                (
                    d["room_id"],
                    d["question_id"],
                    d["message_id"],
                    event.position,
                    d["asked_by"],
                    d["marked_by"],
                    d["text"],
                    d.get("product_id"),
                    d["live_offset_ms"],
                    d["occurred_at"],
                ),
            ),
            Statement(
                f"UPDATE {tables['chat_messages']} SET question_id = $3 "
                "WHERE room_id = $1 AND message_id = $2",
                (d["room_id"], d["message_id"], d["question_id"]),
            ),
        ]

    @staticmethod
    def _answered(event: RecordedEvent, tables: TableNames) -> list[Statement]:
        d = event.data
        questions = tables["chat_questions"]
        return [
            # The answer carries its question's message id, so removing the message hides it too.
            Statement(
                f"INSERT INTO {tables['chat_feed']} (position, room_id, kind, message_id, visible_to, data) "
                f"VALUES ($1, $2, 'question_answered', "
                f"(SELECT message_id FROM {questions} WHERE room_id = $2 AND question_id = $3), NULL, $4)",
                (event.position, d["room_id"], d["question_id"], _json(d)),
            ),
            Statement(
                f"UPDATE {questions} SET answer = $3, answered_by = $4, answered_at = $5 "
                "WHERE room_id = $1 AND question_id = $2",
                (d["room_id"], d["question_id"], d["answer"], d["answered_by"], d["occurred_at"]),
            ),
        ]


# -- the banned-word list -------------------------------------------------------------------


class BannedWordsProjection:
    name = "chat-banned-words"
    version = 1
    tables = (
        Table(
            "chat_banned_words",
            "list_version bigint PRIMARY KEY, terms text NOT NULL, published_by text NOT NULL, "
            "published_at text NOT NULL",
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        return [
            Statement(
                f"INSERT INTO {tables['chat_banned_words']} "
                "(list_version, terms, published_by, published_at) VALUES ($1, $2, $3, $4)",
                (
                    e.data["list_version"],
                    _json(e.data["terms"]),
                    e.data["published_by"],
                    e.data["occurred_at"],
                ),
            )
            for e in events
            if e.type == BannedWordListPublished.type_name
        ]


PROJECTIONS = (RoomsProjection(), FeedProjection(), BannedWordsProjection())


# -- queries --------------------------------------------------------------------------------


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class RoomTallies(View):
    messages: int = Field(description="Messages shown in the room (removed ones included).")
    blocked_banned_word: int
    blocked_slow_mode: int
    blocked_muted: int
    removed: int
    questions: int
    answered: int
    mutes: int


class RoomView(View):
    room_id: str
    live_id: str
    status: Literal["pending", "open", "closed", "cancelled"]
    host_ids: list[str]
    slow_mode_interval_ms: int
    banned_words_version: int = Field(
        description="Version of the banned-word list the room applies (0: not open yet)."
    )
    opened_at: datetime | None
    closed_at: datetime | None
    tallies: RoomTallies


class MessageView(View):
    message_id: str
    author: Author
    text: str
    reply_to_message_id: str | None
    question_id: str | None
    live_offset_ms: int
    posted_at: datetime
    event_id: int = Field(description="Feed position of the message (an SSE id).")


class MessagePage(View):
    room_id: str
    messages: list[MessageView] = Field(description="Oldest first; removed messages are left out.")
    last_event_id: int = Field(
        description="Resume the feed after this event id (SSE Last-Event-ID) to get what follows, "
        "exactly once."
    )


class BlockedView(View):
    message_id: str
    text: str
    reason: Literal["banned_word", "slow_mode", "muted"]
    matched_terms: list[str]
    banned_words_version: int | None
    live_offset_ms: int
    blocked_at: datetime


class QuestionView(View):
    question_id: str
    message_id: str
    asked_by: str
    marked_by: str
    text: str
    product_id: str | None
    live_offset_ms: int
    asked_at: datetime
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None


class MuteView(View):
    participant_id: str
    muted_until: datetime
    muted_by: str
    reason: str | None
    muted_at: datetime


class BannedWordsView(View):
    version: int
    terms: list[str]
    published_by: str
    published_at: datetime


class FeedEntry(View):
    event_id: int
    kind: FeedKind
    data: dict[str, Any]


_ROOM_COLUMNS = (
    "room_id, live_id, status, host_ids, slow_mode_interval_ms, banned_words_version, opened_at, closed_at, "
    "messages, blocked_banned_word, blocked_slow_mode, blocked_muted, removed, questions, answered, mutes"
)


def _room(row: Row) -> RoomView:
    tallies = dict(zip(RoomTallies.model_fields, row[8:], strict=True))
    return RoomView(
        room_id=row[0],
        live_id=row[1],
        status=row[2],
        host_ids=json.loads(row[3]),
        slow_mode_interval_ms=row[4],
        banned_words_version=row[5],
        opened_at=row[6],
        closed_at=row[7],
        tallies=RoomTallies(**tallies),
    )


async def find_room(db: ReadModelDb, room_id: str) -> RoomView | None:
    rows = await db.fetch(f"SELECT {_ROOM_COLUMNS} FROM chat_rooms WHERE room_id = $1", room_id)
    return _room(rows[0]) if rows else None


async def all_rooms(db: ReadModelDb, limit: int) -> list[RoomView]:
    rows = await db.fetch(f"SELECT {_ROOM_COLUMNS} FROM chat_rooms ORDER BY room_id LIMIT $1", limit)
    return [_room(row) for row in rows]


_MESSAGE_COLUMNS = (
    "message_id, author_id, display_name, role, text, reply_to_message_id, question_id, live_offset_ms, "
    "posted_at, position"
)


def _message(row: Row) -> MessageView:
    return MessageView(
        message_id=row[0],
        author=Author(user_id=row[1], display_name=row[2], role=row[3]),
        text=row[4],
        reply_to_message_id=row[5],
        question_id=row[6],
        live_offset_ms=row[7],
        posted_at=row[8],
        event_id=row[9],
    )


async def recent_messages(db: ReadModelDb, room_id: str, limit: int, before: int | None) -> MessagePage:
    """The last ``limit`` messages shown (before feed position ``before``, if given), and the
    feed position they were read at, in one snapshot: resuming the feed after that position
    misses nothing and repeats nothing."""
    messages, head = await db.read(
        [
            Statement(
                f"SELECT {_MESSAGE_COLUMNS} FROM chat_messages WHERE room_id = $1 AND removed = 0 "
                "AND position < $2 ORDER BY position DESC LIMIT $3",
                (room_id, before if before is not None else 2**62, limit),
            ),
            Statement("SELECT max(position) FROM chat_feed WHERE room_id = $1", (room_id,)),
        ]
    )
    return MessagePage(
        room_id=room_id,
        messages=[_message(row) for row in reversed(messages)],
        last_event_id=head[0][0] or 0,
    )


async def find_message(db: ReadModelDb, room_id: str, message_id: str) -> MessageView | None:
    rows = await db.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM chat_messages WHERE room_id = $1 AND message_id = $2",
        room_id,
        message_id,
    )
    return _message(rows[0]) if rows else None


_BLOCKED_COLUMNS = "message_id, text, reason, matched_terms, banned_words_version, live_offset_ms, blocked_at"


def _blocked(row: Row) -> BlockedView:
    return BlockedView(
        message_id=row[0],
        text=row[1],
        reason=row[2],
        matched_terms=json.loads(row[3]),
        banned_words_version=row[4],
        live_offset_ms=row[5],
        blocked_at=row[6],
    )


async def blocked_messages(db: ReadModelDb, room_id: str, author_id: str, limit: int) -> list[BlockedView]:
    rows = await db.fetch(
        f"SELECT {_BLOCKED_COLUMNS} FROM chat_blocked WHERE room_id = $1 AND author_id = $2 "
        "ORDER BY position DESC LIMIT $3",
        room_id,
        author_id,
        limit,
    )
    return [_blocked(row) for row in reversed(rows)]


async def find_blocked(db: ReadModelDb, room_id: str, message_id: str, author_id: str) -> BlockedView | None:
    rows = await db.fetch(
        f"SELECT {_BLOCKED_COLUMNS} FROM chat_blocked "
        "WHERE room_id = $1 AND message_id = $2 AND author_id = $3",
        room_id,
        message_id,
        author_id,
    )
    return _blocked(rows[0]) if rows else None


_QUESTION_COLUMNS = (
    "question_id, message_id, asked_by, marked_by, text, product_id, live_offset_ms, asked_at, answer, "
    "answered_by, answered_at"
)
QuestionFilter = Literal["all", "open", "answered"]
_QUESTION_FILTERS: dict[QuestionFilter, str] = {
    "all": "",
    "open": " AND answer IS NULL",
    "answered": " AND answer IS NOT NULL",
}


def _question(row: Row) -> QuestionView:
    return QuestionView(**dict(zip(QuestionView.model_fields, row, strict=True)))


async def questions(db: ReadModelDb, room_id: str, which: QuestionFilter, limit: int) -> list[QuestionView]:
    rows = await db.fetch(
        f"SELECT {_QUESTION_COLUMNS} FROM chat_questions WHERE room_id = $1 AND removed = 0"
        f"{_QUESTION_FILTERS[which]} ORDER BY position LIMIT $2",
        room_id,
        limit,
    )
    return [_question(row) for row in rows]


async def find_question(db: ReadModelDb, room_id: str, question_id: str) -> QuestionView | None:
    rows = await db.fetch(
        f"SELECT {_QUESTION_COLUMNS} FROM chat_questions WHERE room_id = $1 AND question_id = $2",
        room_id,
        question_id,
    )
    return _question(rows[0]) if rows else None


async def active_mutes(db: ReadModelDb, room_id: str, now: datetime) -> list[MuteView]:
    rows = await db.fetch(
        "SELECT participant_id, muted_until, muted_by, reason, muted_at FROM chat_mutes WHERE room_id = $1 "
        "ORDER BY participant_id",
        room_id,
    )
    mutes = [MuteView(**dict(zip(MuteView.model_fields, row, strict=True))) for row in rows]
    # Compared as instants, not as text: stored times may differ in their fraction digits.
    return [mute for mute in mutes if mute.muted_until > now]


async def current_banned_words(db: ReadModelDb) -> BannedWordsView | None:
    rows = await db.fetch(
        "SELECT list_version, terms, published_by, published_at FROM chat_banned_words "
        "ORDER BY list_version DESC LIMIT 1"
    )
    if not rows:
        return None
    version, terms, by, at = rows[0]
    return BannedWordsView(version=version, terms=json.loads(terms), published_by=by, published_at=at)


_VISIBLE = "room_id = $1 AND hidden = 0 AND (visible_to IS NULL OR visible_to = $2)"


async def feed_start(db: ReadModelDb, room_id: str, viewer: str, backlog: int) -> int:
    """The position to start a new feed from so that it first replays the last ``backlog``
    entries the viewer may see."""
    rows = await db.fetch(
        f"SELECT position FROM chat_feed WHERE {_VISIBLE} ORDER BY position DESC LIMIT 1 OFFSET $3",
        room_id,
        viewer,
        backlog,
    )
    return int(rows[0][0]) if rows else 0


async def feed_after(db: ReadModelDb, room_id: str, viewer: str, after: int, limit: int) -> list[FeedEntry]:
    rows = await feed_rows(db, room_id, after, limit, viewer)
    return [
        FeedEntry(event_id=position, kind=kind, data=json.loads(data)) for position, kind, _, data in rows
    ]


async def feed_rows(db: ReadModelDb, room_id: str, after: int, limit: int, viewer: str | None) -> list[Row]:
    """``(position, kind, visible_to, data)`` of the entries after ``after``, ``data`` as the JSON
    text it is stored as: what ``viewer`` may see, or every viewer's entries when ``None``."""
    columns = "SELECT position, kind, visible_to, data FROM chat_feed"
    if viewer is None:
        return await db.fetch(
            f"{columns} WHERE room_id = $1 AND hidden = 0 AND position > $2 ORDER BY position LIMIT $3",
            room_id,
            after,
            limit,
        )
    return await db.fetch(
        f"{columns} WHERE {_VISIBLE} AND position > $3 ORDER BY position LIMIT $4",
        room_id,
        viewer,
        after,
        limit,
    )


async def feed_head(db: ReadModelDb, room_id: str) -> int:
    """The position of the room's last feed entry (0: none yet)."""
    rows = await db.fetch("SELECT max(position) FROM chat_feed WHERE room_id = $1", room_id)
    return int(rows[0][0] or 0)
