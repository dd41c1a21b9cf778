"""The chat service end to end: real store (SQLite, and PostgreSQL for one whole room), real
Kafka, real HTTP. The live's events are produced onto Kafka as the live service's relay would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest

from shopstream_chat.bootstrap import ChatSettings, build
from shopstream_chat.domain import room_id_for
from shopstream_chat.handlers import room_stream
from shopstream_contracts.chat.v1 import ChatRoomOpened
from shopstream_contracts.live.v1 import LiveBrand, LiveCancelled, LiveEnded, LiveScheduled, LiveStarted
from shopstream_service.settings import ServiceSettings
from shopstream_service.testing import RunningService, running_service
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.integration

SETTINGS = ChatSettings(banned_words="replicas, dot com")


@pytest.fixture
async def svc(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[RunningService]:
    async with running_service(
        build(ServiceSettings(), SETTINGS),
        kafka_bootstrap=kafka_bootstrap,
        store_url=f"sqlite:///{tmp_path}/c.sqlite",
    ) as service:
        yield service


@pytest.fixture
async def pg_svc(kafka_bootstrap: str, postgres_dsn: str) -> AsyncIterator[RunningService]:
    async with running_service(
        build(ServiceSettings(), SETTINGS), kafka_bootstrap=kafka_bootstrap, store_url=postgres_dsn
    ) as service:
        yield service


class World:
    """Unique ids and tokens for one test (the session's Kafka holds other tests' events too)."""

    def __init__(self, svc: RunningService) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.svc = svc
        self.live_id = f"liv_{suffix}"
        self.room_id = room_id_for(self.live_id)
        self.host = f"usr_host_{suffix}"
        self.ana = f"usr_ana_{suffix}"
        self.bob = f"usr_bob_{suffix}"
        self.as_host = svc.headers(self.host, "influencer")
        self.as_ana = svc.headers(self.ana, "viewer")
        self.as_bob = svc.headers(self.bob, "viewer")
        self.as_mod = svc.headers(f"usr_mod_{suffix}", "moderator")
        self.as_admin = svc.headers(f"usr_root_{suffix}", "admin")
        self.as_other_influencer = svc.headers(f"usr_zoe_{suffix}", "influencer")
        self.started_at = svc.clock.now()

    @property
    def http(self) -> httpx.AsyncClient:
        return self.svc.http

    def schedule(self) -> None:
        self.svc.publish(
            LiveScheduled(
                live_id=self.live_id,
                title="Glow night",
                scheduled_start_at=self.started_at,
                host_ids=[self.host],
                brands=[LiveBrand(brand_id="brd_glow", agreement_id="agr_glow")],
                scheduled_by=self.host,
                occurred_at=self.started_at - timedelta(hours=1),
            )
        )

    def start(self) -> None:
        self.svc.publish(LiveStarted(live_id=self.live_id, started_by=self.host, occurred_at=self.started_at))

    def end(self) -> None:
        self.svc.publish(
            LiveEnded(
                live_id=self.live_id,
                ended_by=self.host,
                live_offset_ms=3_600_000,
                occurred_at=self.started_at + timedelta(hours=1),
            )
        )

    async def room(self) -> dict[str, Any]:
        reply = await self.http.get(f"/rooms/{self.room_id}", headers=self.as_ana)
        room: dict[str, Any] = reply.json() if reply.status_code == 200 else {}
        return room

    async def room_is(self, status: str) -> dict[str, Any]:
        async def reached() -> bool:
            return (await self.room()).get("status") == status

        await wait_until_async(reached, timeout=30, message=f"room {status}")
        return await self.room()

    async def open(self) -> None:
        self.schedule()
        self.start()
        await self.room_is("open")

    async def post(self, text: str, headers: dict[str, str], **extra: Any) -> httpx.Response:
        return await self.http.post(
            f"/rooms/{self.room_id}/messages", json={"text": text, **extra}, headers=headers
        )

    async def posted(self, text: str, headers: dict[str, str]) -> str:
        reply = await self.post(text, headers)
        assert reply.status_code == 201, reply.text
        assert reply.json()["status"] == "posted", reply.json()
        message_id: str = reply.json()["message_id"]
        return message_id

    async def messages(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        reply = await self.http.get(f"/rooms/{self.room_id}/messages", headers=headers or self.as_ana)
        assert reply.status_code == 200, reply.text
        page: dict[str, Any] = reply.json()
        return page


def problem(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["code"] == code, body
    return body


# -- the room follows the live --------------------------------------------------------------


async def test_a_room_opens_once_when_the_live_starts_and_closes_when_it_ends(svc: RunningService) -> None:
    world = World(svc)
    world.schedule()
    pending = await world.room_is("pending")
    assert pending["host_ids"] == [world.host]
    problem(await world.post("too early", world.as_ana), 409, "room_not_open")

    world.start()
    world.start()  # a redelivered LiveStarted, under a new event id
    room = await world.room_is("open")
    assert room["live_id"] == world.live_id
    assert room["banned_words_version"] == 1
    by_live = await svc.http.get(f"/lives/{world.live_id}/room", headers=world.as_bob)
    assert by_live.json()["room_id"] == world.room_id
    await svc.settle()
    stored = await svc.context.store.read_stream(room_stream(world.room_id))
    assert [e.type for e in stored].count(ChatRoomOpened.contract.type) == 1

    await world.posted("hello", world.as_ana)
    world.end()
    closed = await world.room_is("closed")
    assert closed["tallies"]["messages"] == 1
    problem(await world.post("too late", world.as_ana), 409, "room_closed")


async def test_a_cancelled_live_leaves_a_room_that_never_opens(svc: RunningService) -> None:
    world = World(svc)
    world.schedule()
    await world.room_is("pending")
    svc.publish(LiveCancelled(live_id=world.live_id, cancelled_by=world.host, occurred_at=svc.clock.now()))
    await world.room_is("cancelled")
    problem(await world.post("hi", world.as_ana), 409, "room_cancelled")


async def test_unknown_rooms_are_404(svc: RunningService) -> None:
    world = World(svc)
    problem(await world.post("hi", world.as_ana), 404, "room_not_found")
    problem(await svc.http.get(f"/rooms/{world.room_id}", headers=world.as_ana), 404, "room_not_found")
    problem(await svc.http.get(f"/lives/{world.live_id}/room", headers=world.as_ana), 404, "room_not_found")
    problem(await svc.http.get(f"/rooms/{world.room_id}/feed", headers=world.as_ana), 404, "room_not_found")
    problem(
        await svc.http.get(f"/rooms/{world.room_id}/messages", headers=world.as_ana), 404, "room_not_found"
    )


async def test_health_readiness_and_the_openapi_document(svc: RunningService) -> None:
    assert (await svc.http.get("/healthz")).json() == {"status": "ok"}

    async def is_ready() -> bool:
        return (await svc.http.get("/readyz")).status_code == 200

    # Ready once the inbox has joined Kafka and every projection has caught up.
    await wait_until_async(is_ready, timeout=60, message="chat ready")
    ready = await svc.http.get("/readyz")
    assert {"projection:chat-feed", "projection:chat-rooms", "policy:chat-room-lifecycle"} <= set(
        ready.json()["checks"]
    )
    paths = (await svc.http.get("/openapi.json")).json()["paths"]
    assert {
        "/rooms/{room_id}/messages",
        "/rooms/{room_id}/feed",
        "/lives/{live_id}/feed",
        "/banned-words",
    } <= set(paths)


# -- posting --------------------------------------------------------------------------------


async def test_viewers_post_and_late_joiners_read_the_last_messages(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    first = await world.posted("first", world.as_ana)
    reply = await world.post("  second  ", world.as_bob, display_name="Bob ✨", reply_to_message_id=first)
    assert reply.status_code == 201, reply.text
    host = await world.posted("welcome!", world.as_host)

    page = await world.messages()
    assert [m["text"] for m in page["messages"]] == ["first", "second", "welcome!"]
    assert page["messages"][1]["author"] == {"user_id": world.bob, "display_name": "Bob ✨", "role": "viewer"}
    assert page["messages"][1]["reply_to_message_id"] == first
    assert page["messages"][2]["author"]["role"] == "influencer"
    assert page["messages"][2]["message_id"] == host
    assert page["last_event_id"] == page["messages"][2]["event_id"]
    last_two = await svc.http.get(f"/rooms/{world.room_id}/messages?limit=2", headers=world.as_ana)
    assert [m["text"] for m in last_two.json()["messages"]] == ["second", "welcome!"]
    before = page["messages"][2]["event_id"]
    older = await svc.http.get(f"/rooms/{world.room_id}/messages?before={before}", headers=world.as_ana)
    assert [m["text"] for m in older.json()["messages"]] == ["first", "second"]


async def test_the_same_idempotency_key_posts_once(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    headers = {**world.as_ana, "Idempotency-Key": "k-1"}
    first, again = [await world.post("just once", headers) for _ in range(2)]
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    blocked_headers = {**world.as_ana, "Idempotency-Key": "k-2"}
    blocked, blocked_again = [await world.post("replicas!", blocked_headers) for _ in range(2)]
    assert blocked.json() == blocked_again.json()
    assert blocked.json()["status"] == "blocked"
    assert [m["text"] for m in (await world.messages())["messages"]] == ["just once"]
    room = await world.room()
    assert room["tallies"]["blocked_banned_word"] == 1


async def test_bad_posts_are_precise_4xx_and_change_nothing(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    assert (await svc.http.post(f"/rooms/{world.room_id}/messages", json={"text": "hi"})).status_code == 401
    forged = {"Authorization": "Bearer not.a.token"}
    assert (await svc.http.get(f"/rooms/{world.room_id}", headers=forged)).status_code == 401
    empty = await world.post("", world.as_ana)
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "body.text"
    blank = problem(await world.post("   ", world.as_ana), 422, "text_empty")
    assert blank["errors"] == [{"field": "text", "reason": "text must not be blank"}]
    long = await world.post("x" * 2001, world.as_ana)
    assert long.status_code == 422
    unknown_reply = problem(
        await world.post("hi", world.as_ana, reply_to_message_id="msg_nope"), 422, "reply_to_unknown_message"
    )
    assert unknown_reply["errors"][0]["field"] == "reply_to_message_id"
    extra = await world.post("hi", world.as_ana, colour="red")
    assert extra.status_code == 422
    bad_key = await world.post("hi", {**world.as_ana, "Idempotency-Key": "has space"})
    assert bad_key.status_code == 422
    assert (await world.messages())["messages"] == []


async def test_a_banned_word_is_blocked_and_shown_to_its_author_only(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    reply = await world.post("cheap RÉPLICAS at spamshop Dot Com", world.as_bob)
    assert reply.status_code == 201
    assert reply.json() | {"message_id": None} == {
        "message_id": None,
        "status": "blocked",
        "reason": "banned_word",
        "matched_terms": ["replicas", "dot com"],
        "banned_words_version": 1,
    }
    assert (await world.messages())["messages"] == []
    mine = await svc.http.get(f"/rooms/{world.room_id}/blocked", headers=world.as_bob)
    assert [(b["message_id"], b["reason"]) for b in mine.json()] == [
        (reply.json()["message_id"], "banned_word")
    ]
    theirs = await svc.http.get(f"/rooms/{world.room_id}/blocked", headers=world.as_ana)
    assert theirs.json() == []


# -- moderation -----------------------------------------------------------------------------


async def test_hosts_and_moderators_mute_and_muted_participants_are_blocked(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    mute = {"participant_id": world.bob, "duration_ms": 60_000, "reason": "Spam"}
    denied = problem(
        await svc.http.post(f"/rooms/{world.room_id}/mutes", json=mute, headers=world.as_ana),
        403,
        "not_a_moderator",
    )
    assert "hosts, moderators and admins" in denied["detail"]
    problem(
        await svc.http.post(f"/rooms/{world.room_id}/mutes", json=mute, headers=world.as_other_influencer),
        403,
        "not_a_moderator",
    )
    problem(
        await svc.http.post(
            f"/rooms/{world.room_id}/mutes", json={**mute, "participant_id": world.host}, headers=world.as_mod
        ),
        403,
        "cannot_mute_host",
    )
    too_long = await svc.http.post(
        f"/rooms/{world.room_id}/mutes", json={**mute, "duration_ms": 0}, headers=world.as_host
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["field"] == "body.duration_ms"

    muted = await svc.http.post(f"/rooms/{world.room_id}/mutes", json=mute, headers=world.as_host)
    assert muted.status_code == 201, muted.text
    assert muted.json()["muted_by"] == world.host
    blocked = await world.post("let me talk", world.as_bob)
    assert (blocked.json()["status"], blocked.json()["reason"]) == ("blocked", "muted")
    await world.posted("i can talk", world.as_ana)

    listed = await svc.http.get(f"/rooms/{world.room_id}/mutes", headers=world.as_mod)
    assert [m["participant_id"] for m in listed.json()] == [world.bob]
    problem(await svc.http.get(f"/rooms/{world.room_id}/mutes", headers=world.as_ana), 403, "not_a_moderator")

    await svc.advance_clock(timedelta(seconds=61))
    await world.posted("back again", world.as_bob)
    assert (await svc.http.get(f"/rooms/{world.room_id}/mutes", headers=world.as_host)).json() == []


async def test_slow_mode_set_by_a_moderator_spaces_each_participants_messages(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    url = f"/rooms/{world.room_id}/slow-mode"
    problem(await svc.http.put(url, json={"interval_ms": 5000}, headers=world.as_ana), 403, "not_a_moderator")
    invalid = await svc.http.put(url, json={"interval_ms": -1}, headers=world.as_mod)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "body.interval_ms"
    changed = await svc.http.put(url, json={"interval_ms": 5000}, headers=world.as_mod)
    assert changed.status_code == 200, changed.text
    assert changed.json()["slow_mode_interval_ms"] == 5000

    await world.posted("one", world.as_ana)
    again = await world.post("two", world.as_ana)
    assert (again.json()["status"], again.json()["reason"]) == ("blocked", "slow_mode")
    await world.posted("bob is fine", world.as_bob)
    await world.posted("hosts are exempt", world.as_host)
    await world.posted("hosts are exempt, twice", world.as_host)
    await svc.advance_clock(timedelta(seconds=5))
    await world.posted("two, later", world.as_ana)


async def test_questions_are_marked_by_their_author_and_answered_by_hosts(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    message = await world.posted("Is the serum vegan?", world.as_ana)
    url = f"/rooms/{world.room_id}/messages/{message}/question"
    problem(await svc.http.post(url, json={}, headers=world.as_bob), 403, "not_author_or_moderator")
    asked = await svc.http.post(url, json={"product_id": "prd_serum"}, headers=world.as_ana)
    assert asked.status_code == 201, asked.text
    question = asked.json()
    assert (question["asked_by"], question["text"], question["product_id"]) == (
        world.ana,
        "Is the serum vegan?",
        "prd_serum",
    )
    again = await svc.http.post(url, json={}, headers=world.as_mod)
    assert again.status_code == 200
    assert again.json()["question_id"] == question["question_id"]
    problem(
        await svc.http.post(
            f"/rooms/{world.room_id}/messages/msg_nope/question", json={}, headers=world.as_ana
        ),
        404,
        "message_not_found",
    )

    answer_url = f"/rooms/{world.room_id}/questions/{question['question_id']}/answer"
    problem(
        await svc.http.post(answer_url, json={"answer": "yes"}, headers=world.as_ana), 403, "not_a_moderator"
    )
    assert (await svc.http.post(answer_url, json={"answer": ""}, headers=world.as_host)).status_code == 422
    answered = await svc.http.post(answer_url, json={"answer": "Yes, 100% vegan."}, headers=world.as_host)
    assert answered.status_code == 201, answered.text
    assert (answered.json()["answer"], answered.json()["answered_by"]) == ("Yes, 100% vegan.", world.host)
    problem(
        await svc.http.post(answer_url, json={"answer": "again"}, headers=world.as_mod),
        409,
        "question_already_answered",
    )
    problem(
        await svc.http.post(
            f"/rooms/{world.room_id}/questions/q_nope/answer", json={"answer": "x"}, headers=world.as_mod
        ),
        404,
        "question_not_found",
    )
    open_questions = await svc.http.get(f"/rooms/{world.room_id}/questions?state=open", headers=world.as_bob)
    assert open_questions.json() == []
    answered_list = await svc.http.get(
        f"/rooms/{world.room_id}/questions?state=answered", headers=world.as_bob
    )
    assert [q["question_id"] for q in answered_list.json()] == [question["question_id"]]
    assert (
        await svc.http.get(f"/rooms/{world.room_id}/questions?state=maybe", headers=world.as_bob)
    ).status_code == 422


async def test_moderators_remove_messages_from_the_feed(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    message = await world.posted("off-topic link", world.as_bob)
    keep = await world.posted("on topic", world.as_ana)
    url = f"/rooms/{world.room_id}/messages/{message}"
    problem(await svc.http.delete(url, headers=world.as_bob), 403, "not_a_moderator")
    problem(
        await svc.http.delete(f"/rooms/{world.room_id}/messages/msg_nope", headers=world.as_mod),
        404,
        "message_not_found",
    )
    removed = await svc.http.delete(url, params={"reason": "Off-topic link"}, headers=world.as_mod)
    assert removed.status_code == 204
    assert (await svc.http.delete(url, headers=world.as_host)).status_code == 204  # already gone: no-op
    assert [m["message_id"] for m in (await world.messages())["messages"]] == [keep]
    assert (await world.room())["tallies"]["removed"] == 1


async def test_only_admins_change_the_banned_word_list(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    current = await svc.http.get("/banned-words", headers=world.as_mod)
    assert current.status_code == 200, current.text
    version = current.json()["version"]
    problem(await svc.http.get("/banned-words", headers=world.as_ana), 403, "role_required")
    terms = [*current.json()["terms"], f"scam{uuid.uuid4().hex[:6]}"]
    problem(
        await svc.http.put("/banned-words", json={"terms": terms}, headers=world.as_mod), 403, "not_an_admin"
    )
    problem(
        await svc.http.put("/banned-words", json={"terms": ["!!!"]}, headers=world.as_admin),
        422,
        "term_without_words",
    )
    published = await svc.http.put("/banned-words", json={"terms": terms}, headers=world.as_admin)
    assert published.status_code == 200, published.text
    assert published.json()["version"] == version + 1
    assert published.json()["terms"] == terms

    blocked = await world.post(f"what a {terms[-1].upper()}", world.as_ana)
    assert (blocked.json()["reason"], blocked.json()["banned_words_version"]) == ("banned_word", version + 1)
    assert (await world.room())["banned_words_version"] == version + 1


# -- the live feed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: dict[str, Any]


class FeedReader:
    """Reads Server-Sent Events off a streaming response, each read with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 20.0) -> Sse:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if "data" in fields:
                        return Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
        raise EOFError("the feed ended")

    async def take(self, count: int) -> list[Sse]:
        return [await self.next() for _ in range(count)]

    async def ended(self, timeout: float = 20.0) -> bool:
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith(("id:", "data:")):
                    return False
        return True


async def test_the_feed_streams_moderation_and_resumes_after_the_last_event_id(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    url = f"/rooms/{world.room_id}/feed"
    async with svc.http.stream("GET", url, headers=world.as_ana) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        ana = FeedReader(response)
        opened = await ana.next()
        assert (opened.event, opened.data["live_id"]) == ("room_opened", world.live_id)

        hello = await world.posted("hello", world.as_bob)
        await world.post("replicas for sale", world.as_bob)  # blocked: Bob's alone
        await world.post("replicas, me too", world.as_ana)  # blocked: Ana sees hers
        spam = await world.posted("spam", world.as_bob)
        await svc.http.delete(f"/rooms/{world.room_id}/messages/{spam}", headers=world.as_mod)
        await svc.http.put(
            f"/rooms/{world.room_id}/slow-mode", json={"interval_ms": 3000}, headers=world.as_mod
        )
        await svc.http.post(
            f"/rooms/{world.room_id}/mutes",
            json={"participant_id": world.bob, "duration_ms": 1000},
            headers=world.as_mod,
        )

        events = await ana.take(5)
        assert [e.event for e in events] == [
            "message",
            "message_blocked",
            "message",
            "message_removed",
            "slow_mode_changed",
        ]
        assert events[0].data["message_id"] == hello
        assert events[1].data["author"]["user_id"] == world.ana
        assert events[3].data["message_id"] == spam
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert opened.id < events[0].id

        # Reconnecting after the first message replays exactly what followed it, for Bob's eyes:
        # his own blocked message and mute, not Ana's; the removed message is no longer there.
        headers = {**world.as_bob, "Last-Event-ID": str(events[0].id)}
        async with svc.http.stream("GET", url, headers=headers) as resumed:
            bob = FeedReader(resumed)
            replayed = await bob.take(4)
            assert [e.event for e in replayed] == [
                "message_blocked",
                "message_removed",
                "slow_mode_changed",
                "participant_muted",
            ]
            assert replayed[0].data["author"]["user_id"] == world.bob
            assert replayed[3].data["participant_id"] == world.bob

        world.end()
        closed = await ana.next()
        assert closed.event == "room_closed"
        assert await ana.ended()

    # A late joiner of a closed room gets its last entries and the end.
    async with svc.http.stream(
        "GET", f"/lives/{world.live_id}/feed?backlog=2", headers=world.as_host
    ) as late:
        host = FeedReader(late)
        assert [e.event for e in await host.take(2)] == ["slow_mode_changed", "room_closed"]
        assert await host.ended()


async def test_a_burst_of_posts_into_one_room_is_posted_once_each_with_no_conflict(
    svc: RunningService,
) -> None:
    world = World(svc)
    await world.open()
    viewers = [svc.headers(f"usr_fan_{n}_{world.live_id}", "viewer") for n in range(40)]
    sends = [world.post(f"msg {n}", {**viewers[n % 40], "Idempotency-Key": f"burst-{n}"}) for n in range(120)]
    # The same click three times at once: one message.
    sends += [world.post("twice?", {**world.as_ana, "Idempotency-Key": "double"}) for _ in range(3)]
    replies = await asyncio.gather(*sends)

    assert [r.status_code for r in replies] == [201] * 123, [r.text for r in replies if r.status_code != 201]
    assert len({r.json()["message_id"] for r in replies[:120]}) == 120
    assert len({r.json()["message_id"] for r in replies[120:]}) == 1
    page = await svc.http.get(f"/rooms/{world.room_id}/messages?limit=500", headers=world.as_ana)
    texts = sorted(m["text"] for m in page.json()["messages"])
    assert texts == sorted([f"msg {n}" for n in range(120)] + ["twice?"])
    assert (await world.room())["tallies"]["messages"] == 121


async def test_the_feed_encodes_each_entry_once_for_all_its_subscribers(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    viewers = [world.as_ana, world.as_bob, world.as_host, world.as_mod, world.as_admin]
    url = f"/rooms/{world.room_id}/feed"
    async with contextlib.AsyncExitStack() as stack:
        readers = []
        for headers in viewers:
            response = await stack.enter_async_context(
                svc.http.stream("GET", url, headers={**headers, "Last-Event-ID": "0"})
            )
            readers.append(FeedReader(response))
        for reader in readers:
            assert (await reader.next()).event == "room_opened"
        encoded = _frames_encoded()
        for n in range(20):
            await world.posted(f"hello {n}", world.as_host)
        await world.post("replicas here", world.as_bob)  # blocked: Bob's eyes only

        streams = [[(e.id, e.event, e.data.get("text")) for e in await reader.take(20)] for reader in readers]
        assert all(stream == streams[0] for stream in streams)
        assert [text for _, _, text in streams[0]] == [f"hello {n}" for n in range(20)]
        assert (await readers[1].next()).event == "message_blocked"
        # 21 entries for five subscribers: encoded once each (a late subscriber may catch up on
        # a few from the read model), not once per subscriber.
        assert 21 <= _frames_encoded() - encoded < 2 * 21


def _frames_encoded() -> float:
    value = prometheus_client.REGISTRY.get_sample_value("shopstream_chat_feed_frames_encoded_total")
    return value or 0.0


async def test_the_feed_refuses_a_bad_last_event_id_and_anonymous_readers(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    url = f"/rooms/{world.room_id}/feed"
    bad = await svc.http.get(url, headers={**world.as_ana, "Last-Event-ID": "abc"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "header.Last-Event-ID"
    assert (await svc.http.get(url)).status_code == 401


# -- read models ----------------------------------------------------------------------------


async def test_every_projection_rebuilds_to_the_same_rows(svc: RunningService) -> None:
    world = World(svc)
    await world.open()
    message = await world.posted("Is it vegan?", world.as_ana)
    await world.post("replicas", world.as_bob)
    await svc.http.post(f"/rooms/{world.room_id}/messages/{message}/question", json={}, headers=world.as_ana)
    await svc.http.post(
        f"/rooms/{world.room_id}/mutes",
        json={"participant_id": world.bob, "duration_ms": 9000},
        headers=world.as_host,
    )
    await svc.http.delete(f"/rooms/{world.room_id}/messages/{message}", headers=world.as_host)
    world.end()
    await world.room_is("closed")
    await svc.settle()
    for name, runner in svc.context.projections.items():
        result = await runner.rebuild(verify=True)
        assert result.previous is not None, name
        assert result.previous == result.rebuilt, name
    room = await world.room()
    assert room["tallies"] | {} == {
        "messages": 1,
        "blocked_banned_word": 1,
        "blocked_slow_mode": 0,
        "blocked_muted": 0,
        "removed": 1,
        "questions": 1,
        "answered": 0,
        "mutes": 1,
    }
    assert (await world.messages())["messages"] == []


async def test_a_whole_room_on_postgresql(pg_svc: RunningService) -> None:
    world = World(pg_svc)
    await world.open()
    message = await world.posted("hello from postgres", world.as_ana)
    blocked = await world.post("replicas", world.as_bob)
    assert blocked.json()["status"] == "blocked"
    asked = await pg_svc.http.post(
        f"/rooms/{world.room_id}/messages/{message}/question", json={}, headers=world.as_ana
    )
    answer_url = f"/rooms/{world.room_id}/questions/{asked.json()['question_id']}/answer"
    assert (
        await pg_svc.http.post(answer_url, json={"answer": "hi!"}, headers=world.as_host)
    ).status_code == 201
    page = await world.messages()
    assert [m["text"] for m in page["messages"]] == ["hello from postgres"]
    world.end()
    room = await world.room_is("closed")
    assert (
        room["tallies"]["messages"],
        room["tallies"]["answered"],
        room["tallies"]["blocked_banned_word"],
    ) == (1, 1, 1)
    async with pg_svc.http.stream(
        "GET", f"/rooms/{world.room_id}/feed?backlog=3", headers=world.as_ana
    ) as response:
        feed = FeedReader(response)
        assert [e.event for e in await feed.take(3)] == ["question_asked", "question_answered", "room_closed"]
