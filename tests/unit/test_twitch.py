"""TwitchChatSource against a loopback EventSub websocket + Helix + OAuth stub (real formats)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web
from pydantic import SecretStr

from streambot.chat.twitch import TwitchChatSource
from streambot.events import ChatMessage, Kind

CLIENT_ID = "cl1entidxyz"
SECRET = "cl1entsecretQWERTY123"
ACCESS = "accesstokenAAAA1111bbbb"
REFRESH = "refreshtokenRRRR2222cccc"
NEW_ACCESS = "newaccesstokenNNNN3333"
NEW_REFRESH = "newrefreshtokenMMMM4444"
BOT, CHANNEL = "1001", "2002"
TYPES = {
    "channel.chat.message": {"broadcaster_user_id": CHANNEL, "user_id": BOT},
    "channel.cheer": {"broadcaster_user_id": CHANNEL},
    "channel.subscribe": {"broadcaster_user_id": CHANNEL},
    "channel.subscription.message": {"broadcaster_user_id": CHANNEL},
    "channel.subscription.gift": {"broadcaster_user_id": CHANNEL},
    "channel.raid": {"to_broadcaster_user_id": CHANNEL},
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _meta(message_type: str, message_id: str | None = None, sub_type: str | None = None) -> dict:
    meta = {
        "message_id": message_id or str(uuid.uuid4()),
        "message_type": message_type,
        "message_timestamp": _now(),
    }
    if sub_type:
        meta |= {"subscription_type": sub_type, "subscription_version": "1"}
    return meta


def notification(sub_type: str, event: dict, message_id: str | None = None) -> dict:
    return {
        "metadata": _meta("notification", message_id, sub_type),
        "payload": {
            "subscription": {
                "id": str(uuid.uuid4()),
                "status": "enabled",
                "type": sub_type,
                "version": "1",
                "cost": 0,
                "condition": TYPES[sub_type],
                "transport": {"method": "websocket", "session_id": "s"},
                "created_at": _now(),
            },
            "event": event,
        },
    }


def chat(text: str, user: str = "Viewer", user_id: str = "42", **extra) -> dict:
    return {
        "broadcaster_user_id": CHANNEL,
        "broadcaster_user_login": "chan",
        "broadcaster_user_name": "Chan",
        "chatter_user_id": user_id,
        "chatter_user_login": user.lower(),
        "chatter_user_name": user,
        "message_id": f"msg-{text}",
        "message": {"text": text, "fragments": [{"type": "text", "text": text}]},
        "message_type": "text",
        "badges": [{"set_id": "subscriber", "id": "12", "info": "16"}],
        "cheer": None,
        "color": "#00FF00",
        "reply": None,
        "channel_points_custom_reward_id": None,
        **extra,
    }


@dataclass
class Conn:
    path: str
    query: dict
    session_id: str
    ws: web.WebSocketResponse
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class FakeTwitch:
    def __init__(self) -> None:
        self.conns: asyncio.Queue[Conn] = asyncio.Queue()
        self.subs: list[tuple[dict, dict]] = []  # (headers, body)
        self.chat_posts: list[tuple[dict, dict]] = []
        self.refreshes: list[dict] = []
        self.helix_tokens = {ACCESS}
        self.keepalive = 10
        self.sub_event = asyncio.Event()
        app = web.Application()
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/ws2", self.websocket)
        app.router.add_post("/helix/eventsub/subscriptions", self.subscribe)
        app.router.add_post("/helix/chat/messages", self.chat_message)
        app.router.add_get("/oauth2/validate", self.validate)
        app.router.add_post("/oauth2/token", self.token)
        self.runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"127.0.0.1:{self.port}"

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(request.path, dict(request.query), f"session-{uuid.uuid4().hex[:8]}", ws)
        await ws.send_json(
            {
                "metadata": _meta("session_welcome"),
                "payload": {
                    "session": {
                        "id": conn.session_id,
                        "status": "connected",
                        "connected_at": _now(),
                        "keepalive_timeout_seconds": self.keepalive,
                        "reconnect_url": None,
                    }
                },
            }
        )
        await self.conns.put(conn)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:  # Twitch closes with 4001 on client messages
                await ws.close(code=4001)
        conn.closed.set()
        return ws

    def _bearer_ok(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") in self.helix_tokens and auth.startswith("Bearer ")

    @staticmethod
    def _unauthorised() -> web.Response:
        body = {"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}
        return web.json_response(body, status=401)

    async def subscribe(self, request: web.Request) -> web.Response:
        if not self._bearer_ok(request):
            return self._unauthorised()
        body = await request.json()
        self.subs.append((request.headers.copy(), body))
        self.sub_event.set()
        data = {
            "id": str(uuid.uuid4()),
            "status": "enabled",
            "type": body["type"],
            "version": body["version"],
            "condition": body["condition"],
            "created_at": _now(),
            "transport": {**body["transport"], "connected_at": _now()},
            "cost": 0,
        }
        payload = {"data": [data], "total": 1, "total_cost": 0, "max_total_cost": 10}
        return web.json_response(payload, status=202)

    async def chat_message(self, request: web.Request) -> web.Response:
        if not self._bearer_ok(request):
            return self._unauthorised()
        self.chat_posts.append((request.headers.copy(), await request.json()))
        data = {"message_id": str(uuid.uuid4()), "is_sent": True, "drop_reason": None}
        return web.json_response({"data": [data]})

    async def validate(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") not in (f"OAuth {ACCESS}", f"OAuth {NEW_ACCESS}"):
            return web.json_response({"status": 401, "message": "invalid access token"}, 401)
        return web.json_response(
            {
                "client_id": CLIENT_ID,
                "login": "streambot",
                "scopes": ["user:read:chat", "user:write:chat"],
                "user_id": BOT,
                "expires_in": 14000,
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.refreshes.append(query)
        if query.get("grant_type") != "refresh_token" or query.get("refresh_token") != REFRESH:
            return web.json_response({"status": 400, "message": "Invalid refresh token"}, 400)
        self.helix_tokens.add(NEW_ACCESS)
        return web.json_response(
            {
                "access_token": NEW_ACCESS,
                "refresh_token": NEW_REFRESH,
                "expires_in": 14000,
                "scope": ["user:read:chat", "user:write:chat"],
                "token_type": "bearer",
            }
        )

    def subs_for(self, session_id: str) -> list[dict]:
        return [b for _, b in self.subs if b["transport"]["session_id"] == session_id]

    async def subscribed(self, session_id: str, n: int = len(TYPES)) -> None:
        async with asyncio.timeout(5):
            while len(self.subs_for(session_id)) < n:
                self.sub_event.clear()
                await self.sub_event.wait()

    async def next_conn(self) -> Conn:
        return await asyncio.wait_for(self.conns.get(), 5)


@pytest.fixture
async def twitch():
    server = FakeTwitch()
    await server.start()
    yield server
    await server.runner.cleanup()


def make_source(server: FakeTwitch, **kwargs) -> TwitchChatSource:
    kwargs.setdefault("keepalive_margin", 0.3)
    return TwitchChatSource(
        CLIENT_ID,
        SecretStr(SECRET),
        BOT,
        CHANNEL,
        access_token=SecretStr(ACCESS),
        refresh_token=SecretStr(REFRESH),
        eventsub_url=f"ws://{server.base}/ws",
        helix_url=f"http://{server.base}/helix",
        auth_url=f"http://{server.base}",
        **kwargs,
    )


async def take(stream, n: int) -> list[ChatMessage]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(n)]


async def test_subscribes_and_normalises_every_event(twitch: FakeTwitch) -> None:
    source = make_source(twitch)
    stream = source.messages()
    first = asyncio.ensure_future(anext(stream))
    conn = await twitch.next_conn()
    assert conn.query == {"keepalive_timeout_seconds": "30"}
    await twitch.subscribed(conn.session_id)

    assert len(twitch.subs) == len(TYPES)
    for headers, body in twitch.subs:
        assert headers["Authorization"] == f"Bearer {ACCESS}"
        assert headers["Client-Id"] == CLIENT_ID
        assert body["version"] == "1"
        assert body["condition"] == TYPES[body["type"]]
        assert body["transport"] == {"method": "websocket", "session_id": conn.session_id}
    assert sorted(b["type"] for _, b in twitch.subs) == sorted(TYPES)

    user = {"user_id": "7", "user_login": "alice", "user_name": "Alice"}
    channel = {"broadcaster_user_id": CHANNEL, "broadcaster_user_login": "chan"}
    for sub_type, event in [
        ("channel.chat.message", chat("hello there")),
        ("channel.chat.message", chat("my own reply", user="Bot", user_id=BOT)),  # skipped
        (
            "channel.cheer",
            {**user, **channel, "is_anonymous": False, "message": "Cheer100 hi", "bits": 100},
        ),
        ("channel.subscribe", {**user, **channel, "tier": "1000", "is_gift": False}),
        ("channel.subscribe", {**user, **channel, "tier": "1000", "is_gift": True}),  # skipped
        (
            "channel.subscription.message",
            {
                **user,
                **channel,
                "tier": "2000",
                "message": {"text": "two years!", "emotes": None},
                "cumulative_months": 24,
                "streak_months": None,
                "duration_months": 1,
            },
        ),
        (
            "channel.subscription.gift",
            {
                **user,
                **channel,
                "tier": "1000",
                "total": 5,
                "cumulative_total": 9,
                "is_anonymous": False,
            },
        ),
        (
            "channel.raid",
            {
                "from_broadcaster_user_id": "55",
                "from_broadcaster_user_login": "raider",
                "from_broadcaster_user_name": "Raider",
                "to_broadcaster_user_id": CHANNEL,
                "to_broadcaster_user_login": "chan",
                "to_broadcaster_user_name": "Chan",
                "viewers": 123,
            },
        ),
    ]:
        await conn.ws.send_json(notification(sub_type, event))

    got = [await asyncio.wait_for(first, 5), *await take(stream, 5)]
    hello, cheer, sub, resub, gift, raid = got
    assert (hello.source, hello.kind, hello.user, hello.text) == (
        "twitch",
        Kind.CHAT,
        "Viewer",
        "hello there",
    )
    assert hello.user_id == "42"
    assert hello.meta["badges"] == ["subscriber"] and hello.meta["message_id"] == "msg-hello there"
    assert (cheer.kind, cheer.amount, cheer.currency, cheer.text, cheer.user) == (
        Kind.CHEER,
        100.0,
        "BITS",
        "Cheer100 hi",
        "Alice",
    )
    assert (sub.kind, sub.user, sub.user_id, sub.count) == (Kind.MEMBERSHIP, "Alice", "7", 1)
    assert (resub.kind, resub.text, resub.meta["cumulative_months"]) == (
        Kind.MEMBERSHIP,
        "two years!",
        24,
    )
    assert (gift.kind, gift.count, gift.meta["event"]) == (Kind.MEMBERSHIP, 5, "gift")
    assert (raid.kind, raid.count, raid.user, raid.user_id) == (Kind.RAID, 123, "Raider", "55")
    await stream.aclose()
    await asyncio.wait_for(conn.closed.wait(), 5)


async def test_session_reconnect_loses_and_duplicates_nothing(twitch: FakeTwitch) -> None:
    source = make_source(twitch)
    stream = source.messages()
    first = asyncio.ensure_future(anext(stream))
    old = await twitch.next_conn()
    await twitch.subscribed(old.session_id)

    await old.ws.send_json(notification("channel.chat.message", chat("A")))
    await old.ws.send_json(
        {
            "metadata": _meta("session_reconnect"),
            "payload": {
                "session": {
                    "id": old.session_id,
                    "status": "reconnecting",
                    "keepalive_timeout_seconds": None,
                    "reconnect_url": f"ws://{twitch.base}/ws2?token=abc",
                    "connected_at": _now(),
                }
            },
        }
    )
    b = notification("channel.chat.message", chat("B"))
    await old.ws.send_json(b)  # still on the old socket, after the reconnect message
    new = await twitch.next_conn()
    assert new.path == "/ws2" and new.query == {"token": "abc"}
    await old.ws.close(code=4004)  # Twitch closes the old one once the new one is welcomed
    await new.ws.send_json(notification("channel.chat.message", chat("C")))
    await new.ws.send_json(b)  # the same EventSub message_id, delivered again
    await new.ws.send_json(notification("channel.chat.message", chat("D")))
    await new.ws.send_json(notification("channel.chat.message", chat("E")))

    got = [await asyncio.wait_for(first, 5), *await take(stream, 4)]
    assert [m.text for m in got] == ["A", "B", "C", "D", "E"]
    assert len(twitch.subs) == len(TYPES)  # subscriptions move with the session
    assert source.session_id == new.session_id
    assert old.closed.is_set()
    await stream.aclose()


async def test_lost_keepalive_reconnects_and_resubscribes(twitch: FakeTwitch) -> None:
    twitch.keepalive = 1  # welcome says 1 s; the stub then stays silent
    source = make_source(twitch)
    stream = source.messages()
    first = asyncio.ensure_future(anext(stream))
    silent = await twitch.next_conn()
    await twitch.subscribed(silent.session_id)
    twitch.keepalive = 10
    await silent.ws.send_json({"metadata": _meta("session_keepalive"), "payload": {}})

    fresh = await twitch.next_conn()  # after 1 s + 0.3 s margin with nothing received
    assert fresh.session_id != silent.session_id and fresh.path == "/ws"
    await twitch.subscribed(fresh.session_id)
    assert sorted(b["type"] for b in twitch.subs_for(fresh.session_id)) == sorted(TYPES)
    await asyncio.wait_for(silent.closed.wait(), 5)
    await fresh.ws.send_json(notification("channel.chat.message", chat("still here")))
    assert (await asyncio.wait_for(first, 5)).text == "still here"
    assert sum(source.reconnects.values()) == 1
    await stream.aclose()


async def test_reply_posts_to_helix_and_refreshes_on_401(twitch: FakeTwitch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    source = make_source(twitch, reply_in_chat=True)
    assert await source.send("hi!", reply_to="msg-123")
    twitch.helix_tokens = {"someone-elses-token"}  # the access token has now expired
    assert await source.send("second")
    await source.close()

    (h1, first), (h2, second) = twitch.chat_posts
    assert first == {
        "broadcaster_id": CHANNEL,
        "sender_id": BOT,
        "message": "hi!",
        "reply_parent_message_id": "msg-123",
    }
    assert second == {"broadcaster_id": CHANNEL, "sender_id": BOT, "message": "second"}
    assert h1["Authorization"] == f"Bearer {ACCESS}" and h1["Client-Id"] == CLIENT_ID
    assert h2["Authorization"] == f"Bearer {NEW_ACCESS}"
    assert twitch.refreshes[0]["refresh_token"] == REFRESH

    quiet = make_source(twitch)  # replies off: nothing is posted
    assert not await quiet.send("nope")
    await quiet.close()
    assert len(twitch.chat_posts) == 2

    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert caplog.records
    for secret in (SECRET, ACCESS, REFRESH, NEW_ACCESS, NEW_REFRESH):
        assert secret not in text


async def test_tokens_never_logged_while_streaming(twitch: FakeTwitch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    twitch.helix_tokens = {"not-ours"}  # subscribing first gets 401, then refreshes
    source = make_source(twitch)
    stream = source.messages()
    first = asyncio.ensure_future(anext(stream))
    conn = await twitch.next_conn()
    await twitch.subscribed(conn.session_id)
    assert all(h["Authorization"] == f"Bearer {NEW_ACCESS}" for h, _ in twitch.subs)
    await conn.ws.send_json(notification("channel.chat.message", chat("ok")))
    assert (await asyncio.wait_for(first, 5)).text == "ok"
    await stream.aclose()
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in (SECRET, ACCESS, REFRESH, NEW_ACCESS, NEW_REFRESH):
        assert secret not in text


def test_full_queue_drops_oldest_chat_never_paid() -> None:
    source = TwitchChatSource(
        CLIENT_ID, SecretStr(SECRET), BOT, CHANNEL, access_token=SecretStr(ACCESS), buffer=2
    )
    chat1, chat2, chat3 = (ChatMessage("twitch", "u", t) for t in ("c1", "c2", "c3"))
    cheers = [ChatMessage("twitch", "u", f"b{i}", Kind.CHEER, amount=1.0) for i in range(3)]
    for msg in (chat1, cheers[0], chat2, cheers[1], cheers[2], chat3):
        source._put(msg)
    assert [m.text for m in source._queue] == ["b0", "b1", "b2"]
    assert sum(source.dropped.values()) == 3


async def test_hype_chat_is_a_superchat() -> None:
    from streambot.chat.twitch_events import normalise

    msg = normalise(
        "channel.chat.message",
        chat("pay me", hype_chat={"amount": 500, "exponent": 2, "currency": "usd", "level": "ONE"}),
    )
    assert msg is not None
    assert (msg.kind, msg.amount, msg.currency) == (Kind.SUPERCHAT, 5.0, "USD")


# -- replay guard and Shared Chat -----------------------------------------------------------
def _offline_source(clock: list[float], **kwargs) -> TwitchChatSource:
    return TwitchChatSource(
        CLIENT_ID,
        SecretStr(SECRET),
        BOT,
        CHANNEL,
        access_token=SecretStr(ACCESS),
        wall_clock=lambda: clock[0],
        **kwargs,
    )


def _stamped(event: dict, sent: float, message_id: str | None = None) -> dict:
    data = notification("channel.chat.message", event, message_id)
    when = datetime.datetime.fromtimestamp(sent, datetime.UTC)
    # RFC 3339 with nanoseconds, as EventSub sends it
    data["metadata"]["message_timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return data


def test_the_replay_guard_refuses_stale_notifications_and_remembers_ids_for_ten_minutes():
    clock = [1_800_000_000.0]
    source = _offline_source(clock)
    source._handle(_stamped(chat("old news"), clock[0] - 601))  # older than 10 minutes
    source._handle(_stamped(chat("fresh"), clock[0] - 5, message_id="m-0"))
    assert [m.text for m in source._queue] == ["fresh"]
    assert source.dropped["replay guard: older than 10 minutes"] == 1
    for i in range(1, 3000):  # more than the old fixed 2,048 ids, all within the window
        clock[0] += 0.1
        source._handle(_stamped(chat(f"n{i}"), clock[0], message_id=f"m-{i}"))
    source._queue.clear()
    source._handle(_stamped(chat("fresh"), clock[0], message_id="m-0"))  # redelivered
    assert list(source._queue) == []  # still remembered: a duplicate
    clock[0] += 601
    source._handle(_stamped(chat("later"), clock[0], message_id="m-new"))
    assert len(source._seen) == 1  # ids past the window are forgotten, not kept by count


def _shared(text: str) -> dict:
    return chat(
        text,
        source_broadcaster_user_id="99999",
        source_broadcaster_user_login="otherchan",
        source_broadcaster_user_name="OtherChan",
        source_message_id="src-1",
        source_badges=[],
    )


def test_shared_chat_from_another_channel_is_kept_but_not_answered_by_default():
    from streambot.config import TriageConfig
    from streambot.triage import Triage

    clock = [1_800_000_000.0]
    source = _offline_source(clock)
    source._handle(_stamped(_shared("how much is the lamp?"), clock[0]))
    source._handle(
        _stamped(chat("how much is the lamp?", source_broadcaster_user_id=CHANNEL), clock[0])
    )
    other, ours = source._queue
    shared = {"id": "99999", "login": "otherchan", "name": "OtherChan", "message_id": "src-1"}
    assert other.meta["shared_chat_from"] == shared
    decision = Triage(TriageConfig()).decide(other, 0.0)
    assert not decision.accepted and "shared chat from otherchan" in decision.reason
    assert "shared_chat_from" not in ours.meta  # our own channel's message in the session
    assert Triage(TriageConfig()).decide(ours, 0.0).accepted


def test_shared_chat_can_be_answered_when_the_config_says_so():
    clock = [1_800_000_000.0]
    source = _offline_source(clock, shared_chat="answer")
    source._handle(_stamped(_shared("how much is the lamp?"), clock[0]))
    (msg,) = source._queue
    assert msg.kind == Kind.CHAT and msg.meta["shared_chat_from"]["login"] == "otherchan"


# -- normalise: the branches the end-to-end test above does not reach ---------------------------
def test_a_chat_message_keeps_its_reply_parent_and_cheer_bits() -> None:
    from streambot.chat.twitch_events import normalise

    msg = normalise(
        "channel.chat.message",
        chat("Cheer50 nice", reply={"parent_message_id": "p-1"}, cheer={"bits": 50}),
    )
    assert msg is not None and msg.kind == Kind.CHAT and msg.amount is None
    assert msg.meta["reply_parent_message_id"] == "p-1" and msg.meta["bits"] == 50
    # A paid message that spells its exponent decimal_places is a superchat too.
    paid = normalise("channel.chat.message", chat("tip", paid={"amount": 250, "decimal_places": 2}))
    assert paid is not None and (paid.kind, paid.amount, paid.currency) == (Kind.SUPERCHAT, 2.5, "")


def test_anonymous_cheers_and_gifts_name_nobody() -> None:
    from streambot.chat.twitch_events import normalise

    user = {"user_id": "7", "user_login": "alice", "user_name": "Alice"}
    cheer = normalise("channel.cheer", {**user, "is_anonymous": True, "bits": 5, "message": ""})
    assert cheer is not None and (cheer.user, cheer.amount, cheer.meta["is_anonymous"]) == (
        "anonymous",
        5.0,
        True,
    )
    gift = normalise("channel.subscription.gift", {**user, "is_anonymous": True, "tier": "3000"})
    assert gift is not None
    assert (gift.user, gift.user_id, gift.count, gift.text) == (
        "anonymous",
        "",
        1,
        "gifted 1 tier 3 sub",
    )


def test_subs_without_text_get_one_and_unknown_events_are_not_messages() -> None:
    from streambot.chat.twitch_events import normalise

    user = {"user_id": "7", "user_login": "alice"}  # no display name: the login is used
    sub = normalise("channel.subscribe", {**user, "tier": "2000", "is_gift": False})
    assert sub is not None and (sub.user, sub.text) == ("alice", "subscribed at tier 2")
    resub = normalise("channel.subscription.message", {**user, "cumulative_months": 3})
    assert resub is not None and resub.text == "resubscribed for 3 months"
    assert resub.meta["event"] == "resub"
    assert normalise("channel.follow", {**user}) is None
