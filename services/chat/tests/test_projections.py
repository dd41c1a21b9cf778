"""The chat projections and their queries over an in-memory SQLite database, and the room
lifecycle policy: pure, in process, milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream_chat import projections as q
from shopstream_chat.commands import (
    Actor,
    AnswerQuestion,
    BannedWordList,
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
from shopstream_chat.domain import BannedWordsDecider, RoomDecider, room_id_for
from shopstream_chat.events import INTERNAL_EVENTS
from shopstream_chat.handlers import BANNED_WORDS_STREAM, room_stream
from shopstream_chat.policies import RoomLifecycle
from shopstream_contracts import Event
from shopstream_contracts.chat.v1 import MessagePosted
from shopstream_contracts.live.v1 import (
    LiveBrand,
    LiveCancelled,
    LiveEnded,
    LiveRescheduled,
    LiveScheduled,
    LiveStarted,
)
from shopstream_eventstore import EventMetadata, RecordedEvent
from shopstream_processing import Statement
from shopstream_processing.memory import MemoryReadModel
from shopstream_service.domain import DomainEvent, fold
from shopstream_service.events import EventCatalog

pytestmark = pytest.mark.unit

DUMPED = [table.name for projection in q.PROJECTIONS for table in projection.tables]

START = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
LIVE = "liv_1"
ROOM = room_id_for(LIVE)
WORDS = BannedWordList(1, ("replicas",))
HOST = Actor("usr_host", frozenset({"influencer"}))
MOD = Actor("usr_mod", frozenset({"moderator"}))
ANA = Actor("usr_ana", frozenset({"viewer"}))
BOB = Actor("usr_bob", frozenset({"viewer"}))
CATALOG = EventCatalog(INTERNAL_EVENTS)


def ms(n: int) -> timedelta:
    return timedelta(milliseconds=n)


class Log:
    """Commands decided in turn, recorded as the store would record them."""

    def __init__(self) -> None:
        self.recorded: list[RecordedEvent] = []
        self._streams: dict[str, list[DomainEvent]] = {}

    def record(self, stream: str, events: Sequence[DomainEvent]) -> None:
        history = self._streams.setdefault(stream, [])
        for event in events:
            new = CATALOG.to_new(event, uuid.uuid4(), EventMetadata(occurred_at=START))
            self.recorded.append(
                RecordedEvent(
                    event_id=new.event_id,
                    stream_id=stream,
                    stream_version=len(history),
                    position=len(self.recorded) + 1,
                    type=new.type,
                    data_version=new.data_version,
                    data=new.data,
                    metadata=new.metadata,
                    recorded_at=START,
                )
            )
            history.append(event)

    def room(self, *commands: RoomCommand) -> Log:
        decider = RoomDecider(WORDS)
        stream = room_stream(ROOM)
        for command in commands:
            self.record(stream, decider.decide(command, fold(decider, self._streams.get(stream, []))))
        return self

    def live(self, *events: Event) -> Log:
        for event in events:
            self.record(f"inbox:shopstream.live.session:{LIVE}", [event])
        return self

    def posted_id(self, text: str) -> str:
        for recorded in self.recorded:
            if recorded.type == MessagePosted.contract.type and recorded.data["text"] == text:
                message_id: str = recorded.data["message_id"]
                return message_id
        raise KeyError(text)


def post(actor: Actor, message_id: str, at_ms: int, text: str) -> PostMessage:
    return PostMessage(ROOM, message_id, actor, actor.user_id, text, START + ms(at_ms))


def full_room() -> Log:
    return Log().room(
        PrepareRoom(LIVE, (HOST.user_id,), START - timedelta(hours=1)),
        OpenRoom(LIVE, START, START),
        post(ANA, "m1", 1000, "Is it vegan?"),
        post(BOB, "m2", 2000, "buy replicas here"),
        post(BOB, "m3", 3000, "spam spam"),
        post(ANA, "m4", 4000, "replicas?"),
        MarkQuestion(ROOM, "m1", "q1", ANA, START + ms(5000), product_id="prd_serum"),
        AnswerQuestion(ROOM, "q1", "Yes!", HOST, START + ms(6000)),
        MarkQuestion(ROOM, "m3", "q3", MOD, START + ms(6500)),
        AnswerQuestion(ROOM, "q3", "No.", HOST, START + ms(6600)),
        RemoveMessage(ROOM, "m3", MOD, START + ms(7000), reason="spam"),
        MuteParticipant(ROOM, BOB.user_id, 60_000, MOD, START + ms(8000), reason="spam"),
        post(BOB, "m5", 9000, "let me talk"),
        SetSlowMode(ROOM, 5000, HOST, START + ms(10_000)),
        post(ANA, "m6", 11_000, "great live"),
        CloseRoom(LIVE, START + ms(3_600_000)),
    )


async def project(events: Sequence[RecordedEvent], batch: int) -> MemoryReadModel:
    db = MemoryReadModel()
    for projection in q.PROJECTIONS:
        await db.transaction([Statement(f"CREATE TABLE {t.name} ({t.columns})") for t in projection.tables])
    for projection in q.PROJECTIONS:
        names = {t.name: t.name for t in projection.tables}
        for start in range(0, len(events), batch):
            await db.transaction(projection.apply(events[start : start + batch], names))
    return db


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=30))
async def test_rows_are_the_same_however_the_events_are_batched(batch: int) -> None:
    events = full_room().recorded
    one_by_one = await project(events, 1)
    assert (await project(events, batch)).dump(DUMPED) == one_by_one.dump(DUMPED)


async def test_the_room_row_tracks_status_settings_and_tallies() -> None:
    log = Log().room(PrepareRoom(LIVE, (HOST.user_id,), START))
    db = await project(log.recorded, 100)
    pending = await q.find_room(db, ROOM)
    assert pending is not None
    assert (pending.status, pending.host_ids, pending.opened_at) == ("pending", [HOST.user_id], None)

    db = await project(full_room().recorded, 100)
    room = await q.find_room(db, ROOM)
    assert room is not None
    assert (room.status, room.live_id, room.slow_mode_interval_ms, room.banned_words_version) == (
        "closed",
        LIVE,
        5000,
        1,
    )
    assert room.opened_at == START
    assert room.closed_at == START + timedelta(hours=1)
    assert room.tallies.model_dump() == {
        "messages": 3,
        "blocked_banned_word": 2,
        "blocked_slow_mode": 0,
        "blocked_muted": 1,
        "removed": 1,
        "questions": 2,
        "answered": 2,
        "mutes": 1,
    }
    assert [r.room_id for r in await q.all_rooms(db, 10)] == [ROOM]
    assert await q.find_room(db, "room_nope") is None


async def test_a_cancelled_room_is_listed_as_cancelled() -> None:
    log = Log().room(PrepareRoom(LIVE, (HOST.user_id,), START), CloseRoom(LIVE, START))
    db = await project(log.recorded, 100)
    room = await q.find_room(db, ROOM)
    assert room is not None
    assert (room.status, room.closed_at) == ("cancelled", START)
    entries = await q.feed_after(db, ROOM, ANA.user_id, 0, 100)
    assert [e.kind for e in entries] == ["room_cancelled"]


async def test_last_messages_leave_removed_ones_out_and_give_the_resume_position() -> None:
    events = full_room().recorded
    db = await project(events, 100)
    page = await q.recent_messages(db, ROOM, 10, None)
    assert [m.message_id for m in page.messages] == ["m1", "m6"]
    assert page.messages[0].question_id == "q1"
    assert page.messages[0].author.user_id == ANA.user_id
    assert page.last_event_id == events[-1].position
    two = await q.recent_messages(db, ROOM, 1, page.messages[1].event_id)
    assert [m.message_id for m in two.messages] == ["m1"]


async def test_the_feed_hides_removed_messages_and_shows_blocks_to_their_authors_only() -> None:
    db = await project(full_room().recorded, 100)
    ana = await q.feed_after(db, ROOM, ANA.user_id, 0, 100)
    assert [(e.kind, e.data.get("message_id")) for e in ana] == [
        ("room_opened", None),
        ("message", "m1"),
        ("message_blocked", "m4"),
        ("question_asked", "m1"),
        ("question_answered", None),
        ("message_removed", "m3"),
        ("slow_mode_changed", None),
        ("message", "m6"),
        ("room_closed", None),
    ]
    assert [e.event_id for e in ana] == sorted(e.event_id for e in ana)
    bob = await q.feed_after(db, ROOM, BOB.user_id, 0, 100)
    assert [e.kind for e in bob if e.kind in ("message_blocked", "participant_muted")] == [
        "message_blocked",
        "participant_muted",
        "message_blocked",
    ]
    assert all(e.data["author"]["user_id"] == BOB.user_id for e in bob if e.kind == "message_blocked")
    removed_question = [e for e in bob if e.kind == "question_asked" and e.data["message_id"] == "m3"]
    assert removed_question == []
    assert len([e for e in bob if e.kind == "question_answered"]) == 1  # the answer to m3's is hidden too


async def test_a_new_feed_starts_with_the_last_entries_the_viewer_may_see() -> None:
    db = await project(full_room().recorded, 100)
    everything = await q.feed_after(db, ROOM, ANA.user_id, 0, 100)
    start = await q.feed_start(db, ROOM, ANA.user_id, 2)
    assert [e.kind for e in await q.feed_after(db, ROOM, ANA.user_id, start, 100)] == [
        "message",
        "room_closed",
    ]
    assert await q.feed_start(db, ROOM, ANA.user_id, 0) == everything[-1].event_id
    assert await q.feed_start(db, ROOM, ANA.user_id, 500) == 0


async def test_blocked_messages_questions_and_mutes_are_queryable() -> None:
    db = await project(full_room().recorded, 100)
    bobs = await q.blocked_messages(db, ROOM, BOB.user_id, 10)
    assert [(b.message_id, b.reason, b.matched_terms) for b in bobs] == [
        ("m2", "banned_word", ["replicas"]),
        ("m5", "muted", []),
    ]
    assert bobs[0].banned_words_version == 1
    found = await q.find_blocked(db, ROOM, "m2", BOB.user_id)
    assert found is not None
    assert found.text == "buy replicas here"
    assert await q.find_blocked(db, ROOM, "m2", ANA.user_id) is None

    everything = await q.questions(db, ROOM, "all", 10)
    assert [(x.question_id, x.answer, x.product_id) for x in everything] == [("q1", "Yes!", "prd_serum")]
    assert await q.questions(db, ROOM, "open", 10) == []
    answered = await q.find_question(db, ROOM, "q1")
    assert answered is not None
    assert (answered.answered_by, answered.answered_at) == (HOST.user_id, START + ms(6000))

    mutes = await q.active_mutes(db, ROOM, START + ms(8000 + 59_999))
    assert [(m.participant_id, m.muted_until) for m in mutes] == [(BOB.user_id, START + ms(68_000))]
    assert await q.active_mutes(db, ROOM, START + ms(68_000)) == []


async def test_the_banned_word_list_view_shows_the_newest_version() -> None:
    lists = BannedWordsDecider()
    log = Log()
    log.record(BANNED_WORDS_STREAM, lists.decide(SeedBannedWords(("replicas",), START), fold(lists, [])))
    db = await project(log.recorded, 100)
    first = await q.current_banned_words(db)
    assert first is not None
    assert (first.version, first.terms, first.published_by) == (1, ["replicas"], "system")
    admin = Actor("usr_root", frozenset({"admin"}))
    state = BannedWordList(1, ("replicas",))
    log.record(
        BANNED_WORDS_STREAM, lists.decide(PublishBannedWords(("replicas", "Scam"), admin, START), state)
    )
    db = await project(log.recorded, 100)
    latest = await q.current_banned_words(db)
    assert latest is not None
    assert (latest.version, latest.terms, latest.published_by) == (2, ["replicas", "scam"], "usr_root")
    assert await q.current_banned_words(await project([], 1)) is None


# -- the policy -----------------------------------------------------------------------------


def live_events() -> Log:
    return Log().live(
        LiveScheduled(
            live_id=LIVE,
            title="Glow night",
            scheduled_start_at=START,
            host_ids=["usr_host", "usr_cohost"],
            brands=[LiveBrand(brand_id="brd", agreement_id="agr")],
            scheduled_by="usr_host",
            occurred_at=START - timedelta(days=1),
        ),
        LiveRescheduled(
            live_id=LIVE,
            scheduled_start_at=START,
            previous_scheduled_start_at=START - ms(1),
            rescheduled_by="usr_host",
            occurred_at=START - timedelta(hours=2),
        ),
        LiveStarted(live_id=LIVE, started_by="usr_host", occurred_at=START),
        LiveEnded(
            live_id=LIVE,
            ended_by="usr_host",
            live_offset_ms=3_600_000,
            occurred_at=START + timedelta(hours=1),
        ),
        LiveCancelled(live_id="liv_2", cancelled_by="usr_host", occurred_at=START),
    )


def test_the_live_lifecycle_prepares_opens_and_closes_the_room() -> None:
    policy = RoomLifecycle()
    commands = [command for event in live_events().recorded for command in policy.react(event)]
    assert commands == [
        PrepareRoom(LIVE, ("usr_host", "usr_cohost"), START - timedelta(days=1)),
        OpenRoom(LIVE, live_started_at=START, at=START),
        CloseRoom(LIVE, START + timedelta(hours=1)),
        CloseRoom("liv_2", START),
    ]


def test_the_policy_ignores_the_rooms_own_events() -> None:
    policy = RoomLifecycle()
    assert [command for event in full_room().recorded for command in policy.react(event)] == []


def test_replaying_the_live_decides_the_same_room() -> None:
    """The policy's commands carry the live's own times, so a replay opens an identical room."""
    policy = RoomLifecycle()
    decider = RoomDecider(WORDS)

    def room_events() -> list[dict[str, Any]]:
        history: list[DomainEvent] = []
        for event in live_events().recorded:
            for command in policy.react(event):
                if command.live_id == LIVE:
                    history += decider.decide(command, fold(decider, history))
        return [event.model_dump(mode="json") for event in history]

    assert room_events() == room_events()
    assert [e.get("live_offset_ms") for e in room_events()] == [None, 0, None, 3_600_000]
