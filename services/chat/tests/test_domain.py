"""Given/when/then tests of the room and banned-word-list deciders, plus properties of the
moderation rules over arbitrary command sequences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream_chat.commands import (
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
from shopstream_chat.domain import (
    MAX_BANNED_TERMS,
    MAX_MUTE_MS,
    MAX_SLOW_MODE_INTERVAL_MS,
    BannedWordMatcher,
    BannedWordsDecider,
    RoomDecider,
    RoomState,
    RoomStatus,
    room_id_for,
)
from shopstream_chat.events import BannedWordListPublished, BannedWordsApplied, RoomCancelled, RoomPrepared
from shopstream_contracts.chat.v1 import (
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
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound, fold

pytestmark = pytest.mark.unit

LIVE = "liv_01HZX3K9QF"
ROOM = room_id_for(LIVE)
START = datetime(2025, 5, 1, 20, 0, 0, tzinfo=UTC)
WORDS_V1 = BannedWordList(1, ("replicas", "dot com"))
WORDS_V2 = BannedWordList(2, ("replicas", "dot com", "scam"))

ROOMS = RoomDecider(WORDS_V1)
LISTS = BannedWordsDecider()

HOST = Actor("usr_host", frozenset({"influencer"}))
CO_HOST = Actor("usr_cohost", frozenset({"influencer"}))
MOD = Actor("usr_mod", frozenset({"moderator"}))
ADMIN = Actor("usr_admin", frozenset({"admin"}))
ANA = Actor("usr_ana", frozenset({"viewer"}))
BOB = Actor("usr_bob", frozenset({"viewer"}))
BRAND = Actor("usr_brand", frozenset({"brand"}))
OTHER_INFLUENCER = Actor("usr_other_inf", frozenset({"influencer"}))


def ms(n: int) -> timedelta:
    return timedelta(milliseconds=n)


def run(*commands: RoomCommand, words: BannedWordList = WORDS_V1) -> RoomState:
    """The state after deciding each command in turn (the given part of a test), with ``words``
    the newest banned-word list the service knows."""
    decider = RoomDecider(words)
    state = decider.initial_state()
    for command in commands:
        for event in decider.decide(command, state):
            state = decider.evolve(state, event)
    return state


def when(state: RoomState, command: RoomCommand, words: BannedWordList = WORDS_V1) -> Sequence[DomainEvent]:
    return RoomDecider(words).decide(command, state)


def prepare(at: datetime = START - timedelta(hours=1)) -> PrepareRoom:
    return PrepareRoom(LIVE, (HOST.user_id, CO_HOST.user_id), at)


def open_room(at: datetime = START, slow_ms: int = 0) -> OpenRoom:
    return OpenRoom(LIVE, START, at, slow_mode_interval_ms=slow_ms)


def close(at: datetime) -> CloseRoom:
    return CloseRoom(LIVE, at)


def post(
    actor: Actor,
    message_id: str,
    at: datetime,
    text: str = "hello!",
    *,
    reply_to: str | None = None,
    name: str | None = None,
) -> PostMessage:
    return PostMessage(
        ROOM,
        message_id,
        actor,
        name if name is not None else actor.user_id.removeprefix("usr_").title(),
        text,
        at,
        reply_to_message_id=reply_to,
    )


def mute(actor: Actor, who: str, at: datetime, duration_ms: int = 60_000) -> MuteParticipant:
    return MuteParticipant(ROOM, who, duration_ms, actor, at, reason="Spam")


def opened(*more: RoomCommand, slow_ms: int = 0) -> RoomState:
    return run(prepare(), open_room(slow_ms=slow_ms), *more)


def only(events: Sequence[DomainEvent]) -> DomainEvent:
    assert len(events) == 1, events
    return events[0]


# -- room identity and lifecycle ------------------------------------------------------------


def test_room_id_is_derived_from_the_live_id_and_is_a_valid_id() -> None:
    assert room_id_for(LIVE) == room_id_for(LIVE)
    assert room_id_for(LIVE) != room_id_for("liv_other")
    long_live_id = "l" * 128
    assert len(room_id_for(long_live_id)) <= 128
    assert room_id_for(LIVE).startswith("room_")


def test_prepare_records_the_hosts_once() -> None:
    command = PrepareRoom(LIVE, ("usr_host", "usr_cohost", "usr_host"), START)
    event = only(when(run(), command))
    assert event == RoomPrepared(
        room_id=ROOM, live_id=LIVE, host_ids=["usr_host", "usr_cohost"], occurred_at=START
    )
    state = run(command)
    assert state.status is RoomStatus.PENDING
    assert state.host_ids == {"usr_host", "usr_cohost"}
    assert when(state, command) == []


def test_prepare_with_other_hosts_replaces_them() -> None:
    state = run(prepare())
    event = only(when(state, PrepareRoom(LIVE, ("usr_new",), START)))
    assert isinstance(event, RoomPrepared)
    assert event.host_ids == ["usr_new"]


def test_open_room_publishes_opened_and_records_the_list_it_applies() -> None:
    events = when(run(prepare()), open_room(at=START + ms(250), slow_ms=3000))
    assert events == [
        ChatRoomOpened(
            room_id=ROOM,
            live_id=LIVE,
            slow_mode_interval_ms=3000,
            banned_words_version=1,
            live_offset_ms=250,
            occurred_at=START + ms(250),
        ),
        BannedWordsApplied(
            room_id=ROOM, list_version=1, terms=["replicas", "dot com"], occurred_at=START + ms(250)
        ),
    ]
    state = run(prepare(), open_room(at=START + ms(250), slow_ms=3000))
    assert state.status is RoomStatus.OPEN
    assert state.started_at == START
    assert state.slow_mode_interval_ms == 3000
    assert state.banned_words == WORDS_V1


def test_open_room_without_the_schedule_opens_a_room_without_hosts() -> None:
    state = run(open_room())
    assert state.status is RoomStatus.OPEN
    assert state.host_ids == frozenset()
    assert state.room_id == ROOM


@pytest.mark.parametrize(
    "history",
    [
        pytest.param((prepare(), open_room()), id="already-open"),
        pytest.param((prepare(), open_room(), close(START + timedelta(hours=1))), id="closed"),
        pytest.param((prepare(), close(START)), id="cancelled"),
    ],
)
def test_a_room_opens_only_once(history: tuple[RoomCommand, ...]) -> None:
    assert when(run(*history), open_room(at=START + ms(5))) == []


def test_open_room_needs_a_published_banned_word_list() -> None:
    with pytest.raises(RuntimeError):
        when(run(prepare()), open_room(), words=BannedWordList(0, ()))


def test_open_room_refuses_a_slow_mode_out_of_range() -> None:
    with pytest.raises(Invalid) as refused:
        when(run(prepare()), open_room(slow_ms=MAX_SLOW_MODE_INTERVAL_MS + 1))
    assert (refused.value.code, refused.value.field) == (
        "slow_mode_interval_out_of_range",
        "slow_mode_interval_ms",
    )


def test_closing_an_open_room_publishes_closed_with_the_live_offset() -> None:
    end = START + timedelta(hours=1, milliseconds=7)
    assert when(opened(), close(end)) == [
        ChatRoomClosed(room_id=ROOM, live_id=LIVE, live_offset_ms=3_600_007, occurred_at=end)
    ]
    assert run(prepare(), open_room(), close(end)).status is RoomStatus.CLOSED


@pytest.mark.parametrize("history", [(), (prepare(),)], ids=["unknown", "pending"])
def test_closing_a_room_that_never_opened_cancels_it(history: tuple[RoomCommand, ...]) -> None:
    assert when(run(*history), close(START)) == [RoomCancelled(room_id=ROOM, live_id=LIVE, occurred_at=START)]
    assert run(*history, close(START)).status is RoomStatus.CANCELLED


@pytest.mark.parametrize(
    "history",
    [(prepare(), open_room(), close(START + ms(9))), (prepare(), close(START))],
    ids=["closed", "cancelled"],
)
def test_closing_twice_changes_nothing(history: tuple[RoomCommand, ...]) -> None:
    assert when(run(*history), close(START + ms(99))) == []


# -- posting --------------------------------------------------------------------------------


def test_a_viewer_posts_a_message() -> None:
    at = START + ms(611_200)
    event = only(when(opened(), post(ANA, "msg_1", at, "  Does it work for sensitive skin? ")))
    assert isinstance(event, MessagePosted)
    assert event.model_dump() == {
        "room_id": ROOM,
        "live_id": LIVE,
        "message_id": "msg_1",
        "author": {"user_id": "usr_ana", "display_name": "Ana", "role": "viewer"},
        "text": "Does it work for sensitive skin?",
        "reply_to_message_id": None,
        "live_offset_ms": 611_200,
        "occurred_at": at,
    }


@pytest.mark.parametrize(
    ("actor", "role"),
    [
        (HOST, "influencer"),
        (OTHER_INFLUENCER, "viewer"),
        (MOD, "moderator"),
        (ADMIN, "admin"),
        (BRAND, "brand"),
        (Actor("usr_x", frozenset({"moderator", "admin"})), "admin"),
    ],
)
def test_the_author_appears_with_their_role_in_this_room(actor: Actor, role: str) -> None:
    event = only(when(opened(), post(actor, "msg_1", START)))
    assert isinstance(event, MessagePosted)
    assert event.author.role == role


def test_a_reply_references_a_message_of_the_room() -> None:
    state = opened(post(ANA, "msg_1", START))
    event = only(when(state, post(BOB, "msg_2", START + ms(1), reply_to="msg_1")))
    assert isinstance(event, MessagePosted)
    assert event.reply_to_message_id == "msg_1"


@pytest.mark.parametrize(
    ("history", "code", "error"),
    [
        ((), "room_not_found", NotFound),
        ((prepare(),), "room_not_open", DomainError),
        ((prepare(), open_room(), close(START + ms(5))), "room_closed", DomainError),
        ((prepare(), close(START)), "room_cancelled", DomainError),
    ],
    ids=["unknown", "not-started", "closed", "cancelled"],
)
def test_posting_needs_an_open_room(
    history: tuple[RoomCommand, ...], code: str, error: type[DomainError]
) -> None:
    with pytest.raises(error) as refused:
        when(run(*history), post(ANA, "msg_1", START + ms(10)))
    assert refused.value.code == code
    assert type(refused.value) is error
    assert refused.value.status == {NotFound: 404, DomainError: 409}[error]


@pytest.mark.parametrize(
    ("text", "name", "code", "field"),
    [
        ("   ", "Ana", "text_empty", "text"),
        ("x" * 2001, "Ana", "text_too_long", "text"),
        ("hi", " ", "display_name_empty", "display_name"),
        ("hi", "n" * 81, "display_name_too_long", "display_name"),
    ],
)
def test_posting_refuses_bad_text_or_name(text: str, name: str, code: str, field: str) -> None:
    with pytest.raises(Invalid) as refused:
        when(opened(), post(ANA, "msg_1", START, text, name=name))
    assert (refused.value.code, refused.value.field, refused.value.status) == (code, field, 422)


def test_a_message_of_exactly_the_maximum_length_is_posted() -> None:
    assert isinstance(only(when(opened(), post(ANA, "msg_1", START, "x" * 2000))), MessagePosted)


@pytest.mark.parametrize(
    "history",
    [(), (post(ANA, "msg_1", START), RemoveMessage(ROOM, "msg_1", MOD, START + ms(1)))],
    ids=["unknown", "removed"],
)
def test_a_reply_to_a_message_not_in_the_feed_is_refused(history: tuple[RoomCommand, ...]) -> None:
    with pytest.raises(Invalid) as refused:
        when(opened(*history), post(BOB, "msg_2", START + ms(5), reply_to="msg_1"))
    assert (refused.value.code, refused.value.field) == ("reply_to_unknown_message", "reply_to_message_id")


def test_reposting_the_same_message_id_is_a_no_op_for_its_author_and_refused_for_others() -> None:
    state = opened(post(ANA, "msg_1", START))
    assert when(state, post(ANA, "msg_1", START + ms(5))) == []
    with pytest.raises(DomainError) as refused:
        when(state, post(BOB, "msg_1", START + ms(5)))
    assert (refused.value.code, refused.value.status) == ("message_id_taken", 409)


def test_a_muted_participant_is_blocked_until_the_mute_ends() -> None:
    state = opened(mute(MOD, ANA.user_id, START, duration_ms=60_000))
    blocked = only(when(state, post(ANA, "msg_1", START + ms(59_999))))
    assert isinstance(blocked, MessageBlocked)
    assert (blocked.reason, blocked.banned_words_version, blocked.matched_terms) == ("muted", None, [])
    assert blocked.text == "hello!"
    assert isinstance(only(when(state, post(ANA, "msg_1", START + ms(60_000)))), MessagePosted)
    assert isinstance(only(when(state, post(BOB, "msg_2", START + ms(1)))), MessagePosted)


def test_slow_mode_blocks_a_second_message_within_the_interval() -> None:
    state = opened(post(ANA, "msg_1", START), slow_ms=5000)
    blocked = only(when(state, post(ANA, "msg_2", START + ms(4999))))
    assert isinstance(blocked, MessageBlocked)
    assert blocked.reason == "slow_mode"
    assert isinstance(only(when(state, post(ANA, "msg_2", START + ms(5000)))), MessagePosted)
    assert isinstance(only(when(state, post(BOB, "msg_3", START + ms(1)))), MessagePosted)


def test_a_blocked_message_does_not_restart_the_slow_mode_interval() -> None:
    state = opened(post(ANA, "msg_1", START), post(ANA, "msg_2", START + ms(4000)), slow_ms=5000)
    assert isinstance(only(when(state, post(ANA, "msg_3", START + ms(5000)))), MessagePosted)


@pytest.mark.parametrize("actor", [HOST, MOD, ADMIN])
def test_hosts_and_moderators_are_exempt_from_slow_mode(actor: Actor) -> None:
    state = opened(post(actor, "msg_1", START), slow_ms=5000)
    assert isinstance(only(when(state, post(actor, "msg_2", START + ms(1)))), MessagePosted)


def test_slow_mode_turned_on_later_applies_to_the_next_message() -> None:
    state = opened(post(ANA, "msg_1", START), SetSlowMode(ROOM, 10_000, MOD, START + ms(1)))
    blocked = only(when(state, post(ANA, "msg_2", START + ms(9_000))))
    assert isinstance(blocked, MessageBlocked)
    assert blocked.reason == "slow_mode"


def test_a_message_with_a_banned_term_is_blocked_with_the_list_version_and_terms() -> None:
    text = "cheap RÉPLICAS at spamshop Dot   Com, real replicas"
    blocked = only(when(opened(), post(BOB, "msg_1", START + ms(702_010), text)))
    assert isinstance(blocked, MessageBlocked)
    assert blocked.reason == "banned_word"
    assert blocked.banned_words_version == 1
    assert blocked.matched_terms == ["replicas", "dot com"]
    assert blocked.text == text
    assert blocked.live_offset_ms == 702_010


@pytest.mark.parametrize(
    "text",
    ["classy replicasx", "dot-commerce is fine", "the dot is here, com later", "com dot"],
)
def test_banned_terms_match_whole_words_only(text: str) -> None:
    assert isinstance(only(when(opened(), post(ANA, "msg_1", START, text))), MessagePosted)


def test_a_blocked_message_never_enters_the_feed() -> None:
    state = opened(post(ANA, "msg_1", START, "replicas here"))
    assert "msg_1" not in state.messages
    with pytest.raises(NotFound):
        when(state, MarkQuestion(ROOM, "msg_1", "q_1", ANA, START + ms(1)))


def test_a_newer_banned_word_list_is_applied_before_the_message_is_judged() -> None:
    events = when(opened(), post(ANA, "msg_1", START + ms(3), "total scam"))
    assert isinstance(only(events), MessagePosted)  # version 1 has no "scam"
    events = when(opened(), post(ANA, "msg_1", START + ms(3), "total scam"), words=WORDS_V2)
    assert len(events) == 2
    applied, blocked = events
    assert applied == BannedWordsApplied(
        room_id=ROOM, list_version=2, terms=["replicas", "dot com", "scam"], occurred_at=START + ms(3)
    )
    assert isinstance(blocked, MessageBlocked)
    assert (blocked.banned_words_version, blocked.matched_terms) == (2, ["scam"])


def test_a_stale_banned_word_list_never_takes_the_room_back() -> None:
    state = run(prepare(), open_room(), post(ANA, "msg_1", START, "hi"), words=WORDS_V2)
    assert state.banned_words == WORDS_V2
    blocked = only(when(state, post(BOB, "msg_2", START + ms(1), "a scam"), words=WORDS_V1))
    assert isinstance(blocked, MessageBlocked)
    assert blocked.banned_words_version == 2


def test_the_mute_is_checked_before_slow_mode_and_banned_words() -> None:
    state = opened(post(ANA, "msg_1", START), mute(MOD, ANA.user_id, START + ms(1)), slow_ms=5000)
    blocked = only(when(state, post(ANA, "msg_2", START + ms(2), "replicas")))
    assert isinstance(blocked, MessageBlocked)
    assert blocked.reason == "muted"


def test_a_post_stamped_before_the_live_start_has_offset_zero() -> None:
    event = only(when(opened(), post(ANA, "msg_1", START - ms(40))))
    assert isinstance(event, MessagePosted)
    assert event.live_offset_ms == 0


# -- removing -------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [HOST, CO_HOST, MOD, ADMIN])
def test_hosts_and_moderators_remove_a_message(actor: Actor) -> None:
    state = opened(post(ANA, "msg_1", START))
    at = START + ms(745_000)
    assert when(state, RemoveMessage(ROOM, "msg_1", actor, at, reason=" Off-topic link ")) == [
        MessageRemoved(
            room_id=ROOM,
            live_id=LIVE,
            message_id="msg_1",
            removed_by=actor.user_id,
            reason="Off-topic link",
            live_offset_ms=745_000,
            occurred_at=at,
        )
    ]


@pytest.mark.parametrize("actor", [ANA, BOB, BRAND, OTHER_INFLUENCER])
def test_others_may_not_remove_a_message_even_their_own(actor: Actor) -> None:
    state = opened(post(ANA, "msg_1", START))
    with pytest.raises(Forbidden) as refused:
        when(state, RemoveMessage(ROOM, "msg_1", actor, START + ms(1)))
    assert (refused.value.code, refused.value.status) == ("not_a_moderator", 403)


def test_removing_an_unknown_message_is_not_found_and_twice_is_a_no_op() -> None:
    state = opened(post(ANA, "msg_1", START), RemoveMessage(ROOM, "msg_1", MOD, START + ms(1), reason="  "))
    assert state.messages["msg_1"].removed
    assert when(state, RemoveMessage(ROOM, "msg_1", MOD, START + ms(2))) == []
    with pytest.raises(NotFound) as refused:
        when(state, RemoveMessage(ROOM, "msg_404", MOD, START + ms(2)))
    assert refused.value.code == "message_not_found"


def test_a_blank_removal_reason_is_no_reason() -> None:
    event = only(
        when(opened(post(ANA, "msg_1", START)), RemoveMessage(ROOM, "msg_1", MOD, START, reason=" "))
    )
    assert isinstance(event, MessageRemoved)
    assert event.reason is None


def test_a_message_can_still_be_removed_once_the_room_closed() -> None:
    state = opened(post(ANA, "msg_1", START), close(START + ms(10)))
    assert isinstance(only(when(state, RemoveMessage(ROOM, "msg_1", MOD, START + ms(20)))), MessageRemoved)


# -- questions ------------------------------------------------------------------------------


def test_the_author_marks_their_message_as_a_question() -> None:
    state = opened(post(ANA, "msg_1", START, "Is it vegan?"))
    at = START + ms(640_000)
    assert when(state, MarkQuestion(ROOM, "msg_1", "q_1", ANA, at, product_id="prd_serum")) == [
        QuestionAsked(
            room_id=ROOM,
            live_id=LIVE,
            question_id="q_1",
            message_id="msg_1",
            asked_by="usr_ana",
            marked_by="usr_ana",
            text="Is it vegan?",
            product_id="prd_serum",
            live_offset_ms=640_000,
            occurred_at=at,
        )
    ]


@pytest.mark.parametrize("actor", [HOST, MOD, ADMIN])
def test_hosts_and_moderators_mark_anyones_message_as_a_question(actor: Actor) -> None:
    event = only(when(opened(post(ANA, "msg_1", START)), MarkQuestion(ROOM, "msg_1", "q_1", actor, START)))
    assert isinstance(event, QuestionAsked)
    assert (event.asked_by, event.marked_by) == ("usr_ana", actor.user_id)


def test_another_viewer_may_not_mark_a_message_as_a_question() -> None:
    with pytest.raises(Forbidden) as refused:
        when(opened(post(ANA, "msg_1", START)), MarkQuestion(ROOM, "msg_1", "q_1", BOB, START))
    assert refused.value.code == "not_author_or_moderator"


def test_marking_refusals() -> None:
    state = opened(
        post(ANA, "msg_1", START),
        post(ANA, "msg_2", START + ms(1)),
        MarkQuestion(ROOM, "msg_2", "q_2", ANA, START + ms(2)),
        post(ANA, "msg_3", START + ms(3)),
        RemoveMessage(ROOM, "msg_3", MOD, START + ms(4)),
    )
    with pytest.raises(NotFound) as unknown:
        when(state, MarkQuestion(ROOM, "msg_404", "q_9", ANA, START + ms(5)))
    assert unknown.value.code == "message_not_found"
    with pytest.raises(DomainError) as removed:
        when(state, MarkQuestion(ROOM, "msg_3", "q_9", MOD, START + ms(5)))
    assert (removed.value.code, removed.value.status) == ("message_removed", 409)
    with pytest.raises(DomainError) as taken:
        when(state, MarkQuestion(ROOM, "msg_1", "q_2", ANA, START + ms(5)))
    assert taken.value.code == "question_id_taken"
    assert when(state, MarkQuestion(ROOM, "msg_2", "q_other", MOD, START + ms(5))) == []


def test_a_question_cannot_be_marked_once_the_room_closed() -> None:
    state = opened(post(ANA, "msg_1", START), close(START + ms(10)))
    with pytest.raises(DomainError) as refused:
        when(state, MarkQuestion(ROOM, "msg_1", "q_1", ANA, START + ms(11)))
    assert refused.value.code == "room_closed"


def test_a_product_id_the_contract_refuses_is_a_precise_422() -> None:
    with pytest.raises(Invalid) as refused:
        when(opened(post(ANA, "msg_1", START)), MarkQuestion(ROOM, "msg_1", "q_1", ANA, START, "bad id"))
    assert (refused.value.code, refused.value.field, refused.value.status) == (
        "invalid_product_id",
        "product_id",
        422,
    )


def asked() -> RoomState:
    return opened(post(ANA, "msg_1", START, "Is it vegan?"), MarkQuestion(ROOM, "msg_1", "q_1", ANA, START))


@pytest.mark.parametrize("actor", [HOST, CO_HOST, MOD, ADMIN])
def test_hosts_and_moderators_answer_a_question(actor: Actor) -> None:
    at = START + ms(688_000)
    assert when(asked(), AnswerQuestion(ROOM, "q_1", " Yes, 100% vegan. ", actor, at)) == [
        QuestionAnswered(
            room_id=ROOM,
            live_id=LIVE,
            question_id="q_1",
            answered_by=actor.user_id,
            answer="Yes, 100% vegan.",
            live_offset_ms=688_000,
            occurred_at=at,
        )
    ]


@pytest.mark.parametrize("actor", [ANA, BOB, BRAND])
def test_viewers_may_not_answer_even_their_own_question(actor: Actor) -> None:
    with pytest.raises(Forbidden) as refused:
        when(asked(), AnswerQuestion(ROOM, "q_1", "yes", actor, START))
    assert refused.value.code == "not_a_moderator"


def test_answering_refusals() -> None:
    state = run(
        prepare(),
        open_room(),
        post(ANA, "msg_1", START),
        MarkQuestion(ROOM, "msg_1", "q_1", ANA, START),
        AnswerQuestion(ROOM, "q_1", "yes", HOST, START + ms(1)),
        post(BOB, "msg_2", START),
        MarkQuestion(ROOM, "msg_2", "q_2", BOB, START),
        RemoveMessage(ROOM, "msg_2", MOD, START + ms(2)),
    )
    assert state.questions["q_1"].answered
    with pytest.raises(DomainError) as twice:
        when(state, AnswerQuestion(ROOM, "q_1", "again", MOD, START + ms(3)))
    assert (twice.value.code, twice.value.status) == ("question_already_answered", 409)
    with pytest.raises(DomainError) as removed:
        when(state, AnswerQuestion(ROOM, "q_2", "sure", MOD, START + ms(3)))
    assert removed.value.code == "message_removed"
    with pytest.raises(NotFound) as unknown:
        when(state, AnswerQuestion(ROOM, "q_404", "sure", MOD, START + ms(3)))
    assert unknown.value.code == "question_not_found"


def test_a_blank_answer_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        when(asked(), AnswerQuestion(ROOM, "q_1", "  ", MOD, START))
    assert (refused.value.code, refused.value.field) == ("answer_empty", "answer")


def test_a_question_can_be_answered_after_the_room_closed() -> None:
    state = asked()
    state = ROOMS.evolve(state, only(when(state, close(START + ms(50)))))
    assert isinstance(
        only(when(state, AnswerQuestion(ROOM, "q_1", "yes", HOST, START + ms(60)))), QuestionAnswered
    )


# -- muting and slow mode -------------------------------------------------------------------


def test_a_moderator_mutes_a_participant_until_a_time() -> None:
    at = START + ms(707_500)
    assert when(opened(), mute(MOD, ANA.user_id, at, duration_ms=600_000)) == [
        ParticipantMuted(
            room_id=ROOM,
            live_id=LIVE,
            participant_id="usr_ana",
            muted_by="usr_mod",
            duration_ms=600_000,
            muted_until=at + ms(600_000),
            reason="Spam",
            live_offset_ms=707_500,
            occurred_at=at,
        )
    ]


def test_a_second_mute_replaces_the_first() -> None:
    state = opened(mute(MOD, ANA.user_id, START, 600_000), mute(HOST, ANA.user_id, START + ms(1), 1000))
    assert isinstance(only(when(state, post(ANA, "msg_1", START + ms(1001)))), MessagePosted)


@pytest.mark.parametrize(
    ("command", "error", "code", "field"),
    [
        (mute(ANA, BOB.user_id, START), Forbidden, "not_a_moderator", None),
        (mute(OTHER_INFLUENCER, BOB.user_id, START), Forbidden, "not_a_moderator", None),
        (mute(MOD, HOST.user_id, START), Forbidden, "cannot_mute_host", None),
        (mute(MOD, MOD.user_id, START), Invalid, "cannot_mute_self", "participant_id"),
        (mute(MOD, ANA.user_id, START, 0), Invalid, "mute_duration_out_of_range", "duration_ms"),
        (
            mute(MOD, ANA.user_id, START, MAX_MUTE_MS + 1),
            Invalid,
            "mute_duration_out_of_range",
            "duration_ms",
        ),
    ],
    ids=["viewer", "not-a-host", "host", "self", "zero", "too-long"],
)
def test_mute_refusals(
    command: MuteParticipant, error: type[DomainError], code: str, field: str | None
) -> None:
    with pytest.raises(error) as refused:
        when(opened(), command)
    assert (type(refused.value), refused.value.code, refused.value.field) == (error, code, field)


def test_muting_needs_an_open_room() -> None:
    with pytest.raises(DomainError) as refused:
        when(run(prepare()), mute(MOD, ANA.user_id, START))
    assert refused.value.code == "room_not_open"


def test_a_moderator_changes_slow_mode_and_the_same_value_is_a_no_op() -> None:
    at = START + ms(1_490_000)
    assert when(opened(), SetSlowMode(ROOM, 5000, MOD, at)) == [
        SlowModeChanged(
            room_id=ROOM,
            live_id=LIVE,
            interval_ms=5000,
            changed_by="usr_mod",
            live_offset_ms=1_490_000,
            occurred_at=at,
        )
    ]
    state = opened(SetSlowMode(ROOM, 5000, MOD, at))
    assert state.slow_mode_interval_ms == 5000
    assert when(state, SetSlowMode(ROOM, 5000, HOST, at)) == []
    assert isinstance(only(when(state, SetSlowMode(ROOM, 0, HOST, at))), SlowModeChanged)


@pytest.mark.parametrize(
    ("command", "error", "code"),
    [
        (SetSlowMode(ROOM, 5000, ANA, START), Forbidden, "not_a_moderator"),
        (SetSlowMode(ROOM, -1, MOD, START), Invalid, "slow_mode_interval_out_of_range"),
        (
            SetSlowMode(ROOM, MAX_SLOW_MODE_INTERVAL_MS + 1, MOD, START),
            Invalid,
            "slow_mode_interval_out_of_range",
        ),
    ],
)
def test_slow_mode_refusals(command: SetSlowMode, error: type[DomainError], code: str) -> None:
    with pytest.raises(error) as refused:
        when(opened(), command)
    assert refused.value.code == code


# -- the banned-word list -------------------------------------------------------------------


def decide_list(history: Sequence[BannedWordsCommand], command: BannedWordsCommand) -> Sequence[DomainEvent]:
    events: list[DomainEvent] = []
    for past in history:
        events += LISTS.decide(past, fold(LISTS, events))
    return LISTS.decide(command, fold(LISTS, events))


def publish(*terms: str, actor: Actor = ADMIN) -> PublishBannedWords:
    return PublishBannedWords(terms, actor, START)


def test_an_admin_publishes_a_normalised_list_as_the_next_version() -> None:
    assert decide_list([], publish("Réplicas", "  DOT   com ", "replicas", "fake-brand")) == [
        BannedWordListPublished(
            list_version=1,
            terms=["replicas", "dot com", "fake brand"],
            published_by="usr_admin",
            occurred_at=START,
        )
    ]
    event = only(decide_list([publish("replicas")], publish("replicas", "scam")))
    assert isinstance(event, BannedWordListPublished)
    assert (event.list_version, event.terms) == (2, ["replicas", "scam"])


def test_republishing_the_same_terms_makes_no_new_version() -> None:
    assert decide_list([publish("replicas")], publish("REPLICAS")) == []


def test_an_empty_list_may_be_published_to_stop_filtering() -> None:
    event = only(decide_list([publish("replicas")], publish()))
    assert isinstance(event, BannedWordListPublished)
    assert (event.list_version, event.terms) == (2, [])


@pytest.mark.parametrize("actor", [MOD, HOST, ANA])
def test_only_admins_change_the_list(actor: Actor) -> None:
    with pytest.raises(Forbidden) as refused:
        decide_list([], publish("x", actor=actor))
    assert refused.value.code == "not_an_admin"


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        (("ok", "!!!"), "term_without_words"),
        (("x" * 201,), "term_too_long"),
        (tuple(f"w{n}" for n in range(MAX_BANNED_TERMS + 1)), "too_many_terms"),
    ],
)
def test_a_bad_list_is_refused(terms: tuple[str, ...], code: str) -> None:
    with pytest.raises(Invalid) as refused:
        decide_list([], publish(*terms))
    assert (refused.value.code, refused.value.field) == (code, "terms")


def test_seeding_publishes_version_one_only_once() -> None:
    assert decide_list([], SeedBannedWords(("replicas",), START)) == [
        BannedWordListPublished(list_version=1, terms=["replicas"], published_by="system", occurred_at=START)
    ]
    assert decide_list([publish("scam")], SeedBannedWords(("replicas",), START)) == []
    assert fold(LISTS, list(decide_list([], publish("a", "b")))) == BannedWordList(1, ("a", "b"))


def test_matching_ignores_case_accents_and_full_width_forms() -> None:
    matcher = BannedWordMatcher(["replicas", "dot com"])
    assert matcher.find("ＲＥＰＬＩＣＡＳ") == ["replicas"]
    assert matcher.find("Réplicas dot COM") == ["replicas", "dot com"]
    assert matcher.find("dot_com") == ["dot com"]
    assert matcher.find("dotcom replica") == []


# -- properties -----------------------------------------------------------------------------

USERS = [ANA, BOB, HOST, MOD]
TERMS = ("replicas", "dot com", "scam")
SIMULATED_WORDS = BannedWordList(1, TERMS)
VOCABULARY = ["hello", "dot", "com", "nice", "class", "wow", "love", "it", "replicas", "Scam!", "Réplicas"]


@dataclass(frozen=True)
class Step:
    delay_ms: int
    kind: str
    user: int
    words: tuple[str, ...]
    amount_ms: int


steps = st.lists(
    st.builds(
        Step,
        # Coarse steps, so posts land exactly on mute ends and slow-mode boundaries.
        delay_ms=st.integers(0, 4).map(lambda n: n * 500),
        kind=st.sampled_from(["post", "post", "post", "post", "mute", "slow", "remove", "question"]),
        user=st.integers(0, len(USERS) - 1),
        words=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(tuple),
        amount_ms=st.integers(1, 12).map(lambda n: n * 500),
    ),
    max_size=80,
)


def simulate(plan: list[Step], slow_ms: int) -> tuple[list[DomainEvent], int, RoomState]:
    """Runs the plan in an open room, skipping refused commands; returns the room's whole event
    log, how many posts were attempted and the state it decided the last command on."""
    rooms = RoomDecider(SIMULATED_WORDS)
    log = [*rooms.decide(prepare(), run())]
    log += rooms.decide(open_room(slow_ms=slow_ms), fold(rooms, log))
    state = fold(rooms, log)
    at = START
    posts = 0
    for n, step in enumerate(plan):
        at += ms(step.delay_ms)
        user = USERS[step.user]
        command: RoomCommand
        if step.kind == "post":
            posts += 1
            command = post(user, f"msg_{n}", at, " ".join(step.words))
        elif step.kind == "mute":
            command = mute(MOD, user.user_id, at, step.amount_ms)
        elif step.kind == "slow":
            command = SetSlowMode(ROOM, step.amount_ms % 4000, HOST, at)
        elif step.kind == "remove":
            command = RemoveMessage(ROOM, f"msg_{step.amount_ms % max(n, 1)}", MOD, at)
        else:
            command = MarkQuestion(ROOM, f"msg_{step.amount_ms % max(n, 1)}", f"q_{n}", user, at)
        try:
            events = rooms.decide(command, state)
        except DomainError:
            continue
        for event in events:
            state = rooms.evolve(state, event)
        log += events
    return log, posts, state


slow_modes = st.integers(0, 8).map(lambda n: n * 500)


@settings(max_examples=300, deadline=None)
@given(steps, slow_modes)
def test_moderation_rules_hold_over_any_sequence(plan: list[Step], slow_ms: int) -> None:
    log, posts, _ = simulate(plan, slow_ms)
    matcher = BannedWordMatcher(TERMS)
    muted_until: dict[str, datetime] = {}
    last_post: dict[str, datetime] = {}
    interval = ms(slow_ms)
    removed: set[str] = set()
    outcomes = 0
    for event in log:
        if isinstance(event, ParticipantMuted):
            muted_until[event.participant_id] = event.muted_until
        elif isinstance(event, SlowModeChanged):
            interval = ms(event.interval_ms)
        elif isinstance(event, MessageRemoved):
            removed.add(event.message_id)
        elif isinstance(event, QuestionAsked):
            assert event.message_id not in removed
        elif isinstance(event, MessageBlocked):
            outcomes += 1
        elif isinstance(event, MessagePosted):
            outcomes += 1
            user = event.author.user_id
            assert event.occurred_at >= muted_until.get(user, START), "a muted user posted"
            assert not matcher.find(event.text), "a banned term reached the feed"
            exempt = user in (HOST.user_id, MOD.user_id)
            if not exempt and user in last_post:
                assert event.occurred_at - last_post[user] >= interval, "slow mode was bypassed"
            last_post[user] = event.occurred_at
    assert outcomes == posts, "every post is either shown or blocked, exactly once"


@settings(max_examples=100, deadline=None)
@given(steps, slow_modes)
def test_replaying_the_log_rebuilds_the_state_refusals_left_untouched(plan: list[Step], slow_ms: int) -> None:
    log, _, live = simulate(plan, slow_ms)
    replayed = fold(ROOMS, log)
    assert replayed.messages == live.messages
    assert replayed.questions == live.questions
    assert replayed.muted_until == live.muted_until
    assert replayed.last_posted_at == live.last_posted_at
    assert (replayed.status, replayed.slow_mode_interval_ms, replayed.banned_words) == (
        live.status,
        live.slow_mode_interval_ms,
        live.banned_words,
    )


@given(
    st.lists(st.sampled_from(["hi", "so", "class", "dot", "commerce", "ok"]), max_size=8),
    st.lists(st.sampled_from(["hi", "so", "ok", "dot"]), max_size=8),
    st.sampled_from(TERMS),
)
def test_a_banned_term_is_found_wherever_it_is_written(
    before: list[str], after: list[str], term: str
) -> None:
    shouted = term.upper().replace("E", "É")
    found = BannedWordMatcher(TERMS).find(" ".join([*before, f"({shouted})", *after]))
    assert term in found
    assert all(set(t.split()) <= {w.casefold() for w in [*before, *term.split(), *after]} for t in found)
