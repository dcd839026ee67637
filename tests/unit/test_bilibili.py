"""Bilibili chat: the packet codec, command normalisation, WBI and open-platform signing, and
the client against a loopback danmaku server (HTTP API + websocket) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import struct
import urllib.parse
import zlib

import brotli
import pytest
from aiohttp import WSMsgType, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from streambot.chat import bilibili_pb
from streambot.chat.bilibili import (
    BilibiliChatSource,
    BilibiliOpenPlatformSource,
    DanmakuTiming,
)
from streambot.chat.bilibili_auth import (
    cookie_from_env,
    mixin_key,
    open_platform_headers,
    wbi_sign,
)
from streambot.chat.bilibili_commands import (
    command_to_message,
    packet_to_message,
)
from streambot.chat.bilibili_packets import (
    MAX_FRAME_PACKETS,
    OP_COMMAND,
    OP_HEARTBEAT_REPLY,
    DecodeError,
    Packet,
    PacketDecoder,
    encode_packet,
)
from streambot.events import Kind

IMG_URL = "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png"
SUB_URL = "https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"
SHORT_ID, REAL_ID, TOKEN, BUVID = 6, 7734200, "tok-abc_123==", "B3-1234-5678-infoc"

# -- an independent encoder, written from the protocol description ---------------------------


def pkt(op: int, body: bytes | str | dict, ver: int = 0, seq: int = 1) -> bytes:
    if isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False)
    if isinstance(body, str):
        body = body.encode()
    return struct.pack(">IHHII", 16 + len(body), 16, ver, op, seq) + body


def brotli_frame(*packets: bytes) -> bytes:
    return pkt(5, brotli.compress(b"".join(packets)), ver=3, seq=0)


def zlib_frame(*packets: bytes) -> bytes:
    return pkt(5, zlib.compress(b"".join(packets)), ver=2, seq=0)


def parse(frame: bytes) -> list[tuple[int, int, bytes]]:
    out, offset = [], 0
    while offset < len(frame):
        length, _, ver, op, _ = struct.unpack_from(">IHHII", frame, offset)
        out.append((ver, op, frame[offset + 16 : offset + length]))
        offset += length
    return out


def danmu(text: str, uid: int, uname: str, masked: str | None = None) -> dict:
    """A DANMU_MSG as current servers send it (the info[0][15] user block included)."""
    head = [
        0,
        1,
        25,
        16777215,
        1718000000000,
        1718000000,
        0,
        "a1b2c3d4",
        0,
        0,
        0,
        "",
        0,
        "{}",
        "{}",
        {
            "mode": 0,
            "extra": "{}",
            "user": {
                "uid": uid,
                "base": {
                    "name": uname,
                    "face": "https://i0.hdslb.com/bfs/face/x.jpg",
                    "is_mystery": False,
                },
                "medal": None,
            },
        },
        {"activity_identity": "", "activity_source": 0, "not_show": 0},
        0,
    ]
    return {
        "cmd": "DANMU_MSG:4:0:2:2:2:0",
        "dm_v2": "",
        "info": [
            head,
            text,
            [uid, masked or uname, 0, 0, 0, 10000, 1, ""],
            [5, "粉丝团", "主播", REAL_ID, 6067854, "", 0],
            [10, 0, 9868950, ">50000", 0],
            ["", ""],
            0,
            0,
            None,
            {"ts": 1718000000, "ct": "ABCDEF"},
            0,
            0,
            None,
            None,
            0,
            105,
        ],
    }


SUPER_CHAT = {
    "cmd": "SUPER_CHAT_MESSAGE",
    "roomid": REAL_ID,
    "data": {
        "id": 9001,
        "uid": 22222,
        "price": 30,
        "message": "请问保温杯能装开水吗？",
        "time": 60,
        "user_info": {"uname": "土豪B", "face": "x"},
        "gift": {"gift_name": "醒目留言", "num": 1},
    },
}
GIFT = {
    "cmd": "SEND_GIFT",
    "data": {
        "giftName": "小花花",
        "giftId": 31036,
        "num": 3,
        "uname": "用户C",
        "uid": 33333,
        "price": 100,
        "coin_type": "gold",
        "total_coin": 300,
        "action": "投喂",
    },
}
FREE_GIFT = {
    "cmd": "SEND_GIFT",
    "data": {
        "giftName": "辣条",
        "num": 10,
        "uname": "用户F",
        "uid": 66666,
        "price": 100,
        "coin_type": "silver",
        "total_coin": 1000,
    },
}
GUARD = {
    "cmd": "GUARD_BUY",
    "data": {
        "uid": 44444,
        "username": "舰长D",
        "guard_level": 3,
        "num": 1,
        "price": 198000,
        "gift_id": 10003,
        "gift_name": "舰长",
    },
}
FOLLOW = {
    "cmd": "INTERACT_WORD",
    "data": {"uid": 55555, "uname": "路人E", "msg_type": 2, "roomid": REAL_ID},
}
IGNORED = {"cmd": "ONLINE_RANK_COUNT", "data": {"count": 12}}


# -- the loopback server --------------------------------------------------------------------

TAB = [
    46,
    47,
    18,
    2,
    53,
    8,
    23,
    32,
    15,
    50,
    10,
    31,
    58,
    3,
    45,
    35,
    27,
    43,
    5,
    49,
    33,
    9,
    42,
    19,
    29,
    28,
    14,
    39,
    12,
    38,
    41,
    13,
    37,
    48,
    7,
    16,
    24,
    55,
    40,
    61,
    26,
    17,
    0,
    1,
    60,
    51,
    30,
    4,
    22,
    25,
    54,
    21,
    56,
    59,
    6,
    63,
    57,
    62,
    11,
    36,
    20,
    34,
    44,
    52,
]


def reference_w_rid(query_items: list[tuple[str, str]], img_url: str, sub_url: str) -> str:
    """Straight from the documented steps, sharing no code with the client."""
    img = img_url.split("/")[-1].split(".")[0]
    sub = sub_url.split("/")[-1].split(".")[0]
    key = "".join((img + sub)[i] for i in TAB)[:32]
    items = sorted((k, "".join(c for c in v if c not in "!'()*")) for k, v in query_items)
    query = "&".join(f"{urllib.parse.quote(k)}={urllib.parse.quote(v, safe='')}" for k, v in items)
    return hashlib.md5((query + key).encode()).hexdigest()


class FakeBilibili:
    def __init__(self) -> None:
        self.outbox: asyncio.Queue = asyncio.Queue()  # frames (bytes) or "close", in order
        self.auth_codes: list[int | None] = []  # per connection; None: never answer
        self.auths: list[dict] = []
        self.heartbeats = 0
        self.popularity = 4242
        self.w_rid_ok: list[bool] = []
        self.cookies: list[str] = []
        self.connections = 0

    async def room_init(self, request: web.Request) -> web.Response:
        assert request.query["id"] == str(SHORT_ID)
        return web.json_response(
            {
                "code": 0,
                "msg": "ok",
                "message": "ok",
                "data": {"room_id": REAL_ID, "short_id": SHORT_ID, "uid": 12345, "live_status": 1},
            }
        )

    async def spi(self, request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "message": "ok", "data": {"b_3": BUVID, "b_4": "x"}})

    async def nav(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "code": -101,
                "message": "账号未登录",
                "data": {"isLogin": False, "wbi_img": {"img_url": IMG_URL, "sub_url": SUB_URL}},
            }
        )

    async def danmu_info(self, request: web.Request) -> web.Response:
        items = urllib.parse.parse_qsl(request.query_string)
        w_rid = dict(items).pop("w_rid", None)
        rest = [(k, v) for k, v in items if k != "w_rid"]
        self.w_rid_ok.append(
            w_rid == reference_w_rid(rest, IMG_URL, SUB_URL)
            and dict(rest).get("id") == str(REAL_ID)
            and "wts" in dict(rest)
        )
        return web.json_response(
            {
                "code": 0,
                "message": "0",
                "data": {
                    "group": "live",
                    "business_id": 0,
                    "refresh_rate": 100,
                    "max_delay": 5000,
                    "token": TOKEN,
                    "host_list": [
                        {"host": "127.0.0.1", "port": 2243, "wss_port": 443, "ws_port": 2244}
                    ],
                },
            }
        )

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.connections += 1
        self.cookies.append(request.headers.get("Cookie", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        (ver, op, body), *_ = parse(first.data)
        assert (op, ver) == (7, 1)
        self.auths.append(json.loads(body))
        code = self.auth_codes.pop(0) if self.auth_codes else 0
        if code is None:  # say nothing until the client gives up and closes
            async for _ in ws:
                pass
            return ws
        await ws.send_bytes(pkt(8, {"code": code}, ver=0))
        if code != 0:
            await ws.close()
            return ws

        async def pump() -> None:
            while True:
                item = await self.outbox.get()
                if item == "close":
                    await ws.close()
                    return
                await ws.send_bytes(item)

        pumping = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    for _ver, op, body in parse(msg.data):
                        if op == 2:
                            self.heartbeats += 1
                            # as the real server: a 20-byte reply (pack_len 20), then the echo
                            # of the client's heartbeat body, which is not a packet
                            reply = pkt(3, struct.pack(">I", self.popularity), ver=1)
                            await ws.send_bytes(reply + body)
        finally:
            pumping.cancel()
        return ws

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_get("/room/v1/Room/room_init", self.room_init)
        app.router.add_get("/x/frontend/finger/spi", self.spi)
        app.router.add_get("/x/web-interface/nav", self.nav)
        app.router.add_get("/xlive/web-room/v1/index/getDanmuInfo", self.danmu_info)
        app.router.add_get("/sub", self.ws)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"127.0.0.1:{port}"


@pytest.fixture
async def live():
    server = FakeBilibili()
    runner, hostport = await server.start()
    source = BilibiliChatSource(
        SHORT_ID,
        cookie=SecretStr("SESSDATA=secret-sess"),
        api_base=f"http://{hostport}",
        nav_base=f"http://{hostport}",
        ws_url_override=f"ws://{hostport}/sub",
        timing=DanmakuTiming(
            heartbeat_interval=0.05, auth_timeout=1.0, backoff_base=0.01, backoff_max=0.05
        ),
    )
    stream = source.messages()
    yield server, source, stream
    await stream.aclose()
    await runner.cleanup()


async def take(stream, n: int, timeout: float = 5.0) -> list:
    async def collect() -> list:
        return [await anext(stream) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# -- client against the loopback server -----------------------------------------------------


async def test_auth_heartbeats_and_a_brotli_burst(live):
    server, source, stream = live
    burst = [pkt(5, danmu(f"第{i}条 这个多少钱？", 1000 + i, f"观众{i}")) for i in range(5)]
    burst += [pkt(5, c) for c in (SUPER_CHAT, GIFT, FREE_GIFT, GUARD, FOLLOW, IGNORED)]
    await server.outbox.put(brotli_frame(*burst))
    messages = await take(stream, 10)

    auth = server.auths[0]
    assert auth == {
        "uid": 0,
        "roomid": REAL_ID,
        "protover": 3,
        "platform": "web",
        "type": 2,
        "buvid": BUVID,
        "key": TOKEN,
    }
    assert server.w_rid_ok == [True]
    assert server.cookies[0] == f"SESSDATA=secret-sess; buvid3={BUVID}"
    assert "secret" not in repr(source)

    chats = messages[:5]
    assert [m.text for m in chats] == [f"第{i}条 这个多少钱？" for i in range(5)]
    assert [(m.user, m.user_id, m.kind, m.source) for m in chats] == [
        (f"观众{i}", str(1000 + i), Kind.CHAT, "bilibili") for i in range(5)
    ]
    sc, gift, free, guard, follow = messages[5:]
    assert (sc.kind, sc.user, sc.text, sc.amount, sc.currency, sc.user_id) == (
        Kind.SUPERCHAT,
        "土豪B",
        "请问保温杯能装开水吗？",
        30.0,
        "CNY",
        "22222",
    )
    assert (gift.kind, gift.user, gift.count, gift.amount, gift.meta["gift_name"]) == (
        Kind.GIFT,
        "用户C",
        3,
        0.3,
        "小花花",
    )
    assert (free.kind, free.amount, free.count, free.meta["paid"]) == (Kind.GIFT, 0.0, 10, False)
    assert (guard.kind, guard.user, guard.amount, guard.meta["level_name"]) == (
        Kind.MEMBERSHIP,
        "舰长D",
        198.0,
        "舰长",
    )
    assert (follow.kind, follow.user, follow.meta) == (
        Kind.INTERACTION,
        "路人E",
        {"action": "follow"},
    )
    assert not any(m.malformed for m in messages)

    await wait_for(lambda: server.heartbeats >= 3)  # sent on its own, even with no reader
    await server.outbox.put(pkt(5, danmu("next", 1, "a")))
    await take(stream, 1)  # the replies queued before it are read on the way
    assert source.popularity == 4242
    assert source.stats["heartbeat_replies"] >= 1
    assert source.stats["ignored"] == 1
    assert source.stats["malformed"] == 0  # the echoed heartbeat body is no malformed packet


async def test_zlib_packet_and_masked_names(live):
    server, _, stream = live
    await server.outbox.put(zlib_frame(pkt(5, danmu("hello?", 7, "真名", masked="真***"))))
    (msg,) = await take(stream, 1)
    assert (msg.user, msg.text, msg.user_id) == ("真名", "hello?", "7")


async def test_reconnects_after_server_disconnect_without_losing_sent_packets(live):
    server, source, stream = live
    for i in range(3):
        await server.outbox.put(pkt(5, danmu(f"before {i}", i, f"u{i}")))
    await server.outbox.put("close")
    await server.outbox.put(brotli_frame(pkt(5, danmu("after", 9, "u9"))))
    messages = await take(stream, 4)
    assert [m.text for m in messages] == ["before 0", "before 1", "before 2", "after"]
    assert server.connections == 2 and len(server.auths) == 2
    assert source.stats["disconnects"] >= 1


async def test_auth_failure_is_retried(live):
    server, source, stream = live
    server.auth_codes = [-101, None, 0]  # rejected, then no reply (timeout), then accepted
    source.auth_timeout = 0.3
    await server.outbox.put(pkt(5, danmu("finally in", 1, "u1")))
    (msg,) = await take(stream, 1)
    assert msg.text == "finally in"
    assert server.connections == 3
    assert source.stats["auth_failures"] == 1 and source.stats["auth_ok"] == 1


async def test_connection_survives_a_malformed_frame(live):
    server, source, stream = live
    await server.outbox.put(b"\x00\x00\x00\x20\x00\x10junk that is not a packet")
    await server.outbox.put(pkt(5, b"{not json"))
    await server.outbox.put(pkt(5, {"cmd": "DANMU_MSG", "info": "nope"}))
    await server.outbox.put(pkt(5, danmu("still here", 3, "u3")))
    junk, not_json, bad_shape, good = await take(stream, 4)
    assert "truncated" in junk.malformed
    assert "not JSON" in not_json.malformed
    assert bad_shape.malformed.startswith("DANMU_MSG")
    assert (good.text, good.malformed) == ("still here", None)
    assert server.connections == 1
    assert source.decoder.errors == 1


# -- WBI and open-platform signing ----------------------------------------------------------


def test_wbi_pinned_vector():
    # the public documentation's example (bilibili-API-collect docs/misc/sign/wbi.md)
    img, sub = "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45"
    assert mixin_key(img, sub) == "ea1db124af3c7062474693fa704f4ff8"
    signed = wbi_sign({"foo": "114", "bar": "514", "zab": 1919810}, img, sub, wts=1702204169)
    assert signed["w_rid"] == "8f6f2b5b3d485fe1886cec6a0be8c5d4"
    assert list(signed) == ["bar", "foo", "wts", "zab", "w_rid"]


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6), st.text(max_size=12), max_size=4),
    st.integers(0, 2**31),
)
def test_wbi_matches_the_reference(params, wts):
    params.pop("wts", None)
    signed = wbi_sign(
        params, "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45", wts
    )
    w_rid = signed.pop("w_rid")
    items = [(k, str(v)) for k, v in {**params, "wts": wts}.items()]
    assert w_rid == reference_w_rid(items, IMG_URL, SUB_URL)


def test_open_platform_signature():
    body = b'{"code":"ABC","app_id":1}'
    headers = open_platform_headers(
        body, "key-id", SecretStr("s3cret"), timestamp=1700000000, nonce="n0nce"
    )
    md5 = hashlib.md5(body).hexdigest()
    to_sign = (
        "x-bili-accesskeyid:key-id\n"
        f"x-bili-content-md5:{md5}\n"
        "x-bili-signature-method:HMAC-SHA256\n"
        "x-bili-signature-nonce:n0nce\n"
        "x-bili-signature-version:1.0\n"
        "x-bili-timestamp:1700000000"
    )
    expected = hmac.new(b"s3cret", to_sign.encode(), hashlib.sha256).hexdigest()
    assert headers["Authorization"] == expected
    assert headers["x-bili-content-md5"] == md5
    assert headers["x-bili-signature-nonce"] == "n0nce"
    assert headers["Content-Type"] == headers["Accept"] == "application/json"


def test_cookie_from_env():
    assert cookie_from_env({}) is None
    assert cookie_from_env({"BILIBILI_SESSDATA": "abc"}).get_secret_value() == "SESSDATA=abc"
    assert cookie_from_env({"BILIBILI_COOKIE": "a=b"}).get_secret_value() == "a=b"


async def test_open_platform_start_heartbeat_end_and_a_dm():
    calls: list[tuple[str, dict]] = []
    auth_bodies: list[bytes] = []

    async def api(request: web.Request) -> web.Response:
        raw = await request.read()
        expected = open_platform_headers(
            raw,
            "kid",
            "sec",
            timestamp=int(request.headers["x-bili-timestamp"]),
            nonce=request.headers["x-bili-signature-nonce"],
        )
        assert request.headers["Authorization"] == expected["Authorization"]
        calls.append((request.path, json.loads(raw)))
        data = {}
        if request.path == "/v2/app/start":
            data = {
                "game_info": {"game_id": "g-1"},
                "websocket_info": {
                    "auth_body": '{"roomid":1,"key":"k"}',
                    "wss_link": ["wss://unused/sub"],
                },
                "anchor_info": {"room_id": 1, "uname": "主播"},
            }
        return web.json_response({"code": 0, "message": "0", "request_id": "r", "data": data})

    async def sub(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        auth_bodies.append(parse(first.data)[0][2])
        await ws.send_bytes(pkt(8, {"code": 0}))
        dm = {
            "cmd": "LIVE_OPEN_PLATFORM_DM",
            "data": {
                "uname": "开放用户",
                "uid": 0,
                "open_id": "oid-1",
                "msg": "主播你好",
                "room_id": 1,
                "dm_type": 0,
            },
        }
        await ws.send_bytes(brotli_frame(pkt(5, dm)))
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_post("/v2/app/{action}", api)
    app.router.add_get("/sub", sub)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    source = BilibiliOpenPlatformSource(
        42,
        "kid",
        SecretStr("sec"),
        "CODE-XYZ",
        api_base=f"http://127.0.0.1:{port}",
        ws_url_override=f"ws://127.0.0.1:{port}/sub",
        app_heartbeat_interval=0.05,
        timing=DanmakuTiming(heartbeat_interval=0.05),
    )
    stream = source.messages()
    try:
        (msg,) = await take(stream, 1)
        assert (msg.user, msg.text, msg.user_id, msg.kind) == (
            "开放用户",
            "主播你好",
            "oid-1",
            Kind.CHAT,
        )
        assert auth_bodies == [b'{"roomid":1,"key":"k"}']
        await wait_for(lambda: any(path == "/v2/app/heartbeat" for path, _ in calls))
    finally:
        await stream.aclose()
        await runner.cleanup()
    assert calls[0] == ("/v2/app/start", {"code": "CODE-XYZ", "app_id": 42})
    assert ("/v2/app/heartbeat", {"game_id": "g-1"}) in calls
    assert calls[-1] == ("/v2/app/end", {"game_id": "g-1", "app_id": 42})


# -- the decoder on hostile input -----------------------------------------------------------


def test_decoder_keeps_good_packets_before_a_bad_one():
    good = pkt(5, danmu("ok", 1, "a"))
    out = PacketDecoder().decode(good + good + b"\x00\x00\x00\x05garbage")
    assert [type(x) for x in out] == [Packet, Packet, DecodeError]
    assert "truncated" in out[2].reason


def test_decoder_caps_compression_bombs_and_nesting():
    decoder = PacketDecoder(max_packet=1 << 20)
    bomb = pkt(5, brotli.compress(b"\x00" * (8 << 20), quality=5), ver=3)  # 8 MiB of zeros, tiny
    (result,) = decoder.decode(bomb)
    assert isinstance(result, DecodeError) and "limit" in result.reason
    zbomb = pkt(5, zlib.compress(b"\x00" * (4 << 20)), ver=2)
    (result,) = decoder.decode(zbomb)
    assert isinstance(result, DecodeError) and "limit" in result.reason
    nested = pkt(5, b'{"cmd":"X"}')
    for _ in range(4):
        nested = zlib_frame(nested)
    (result,) = decoder.decode(nested)
    assert isinstance(result, DecodeError) and "nested" in result.reason
    oversized = struct.pack(">IHHII", 5 << 20, 16, 0, 5, 1) + b"x" * 100
    (result,) = decoder.decode(oversized)
    assert "oversized" in result.reason


def test_commands_with_bad_fields_are_malformed_not_errors():
    assert command_to_message({"cmd": "SEND_GIFT", "data": {"uname": "x", "num": "many"}}).malformed
    assert command_to_message({"cmd": "SUPER_CHAT_MESSAGE", "data": []}).malformed
    assert command_to_message({"nocmd": 1}).malformed
    assert command_to_message({"cmd": "WATCHED_CHANGE", "data": {}}) is None
    assert (
        command_to_message({"cmd": "INTERACT_WORD", "data": {"uname": "a", "msg_type": 9}}) is None
    )
    assert command_to_message({"cmd": "GUARD_BUY", "data": {"username": "a", "guard_level": 7}})


GOOD = pkt(5, danmu("good", 1, "a"))
BOMBS = [
    zlib.compress(b"\x00" * (3 << 20)),
    brotli.compress(b"\x01" * (3 << 20), quality=5),
    brotli.compress(brotli_frame(GOOD) * 20_000, quality=5),  # packets that decompress to packets
    zlib.compress(b"\x00" * 1000)[:-4],  # truncated
]


def _valid_header_bad_body() -> st.SearchStrategy[bytes]:
    bodies = st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=200).map(zlib.compress),
        st.binary(max_size=200).map(lambda b: brotli.compress(b)[:-1]),
        st.sampled_from(BOMBS),
    )
    return st.tuples(st.integers(0, 5), st.integers(0, 9), bodies).map(
        lambda t: pkt(t[1], t[2], ver=t[0])
    )


def _broken_lengths() -> st.SearchStrategy[bytes]:
    return st.tuples(
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**16 - 1),
        st.integers(0, 2**16 - 1),
        st.binary(max_size=64),
    ).map(lambda t: struct.pack(">IHHII", t[0], t[1], t[2], 5, 1) + t[3])


hostile = st.one_of(
    st.binary(max_size=300),
    _valid_header_bad_body(),
    _broken_lengths(),
    st.tuples(st.just(GOOD), st.binary(max_size=40)).map(lambda t: t[0][: len(t[1]) % 90]),
    st.lists(_valid_header_bad_body(), min_size=1, max_size=3).map(
        lambda ps: pkt(5, brotli.compress(b"".join(ps)), ver=3)
    ),
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_decoder_never_raises_and_always_gives_a_reason(frame):
    decoder = PacketDecoder()
    out = decoder.decode(frame)
    for item in out:
        assert isinstance(item, Packet | DecodeError)
        if isinstance(item, DecodeError):
            assert item.reason
        else:  # a packet that decoded: normalising it must not raise either
            msg = packet_to_message(item)
            assert msg is None or msg.malformed is None or msg.malformed
    assert decoder.errors == sum(isinstance(i, DecodeError) for i in out)
    if not frame:
        assert decoder.errors == 1
    after = decoder.decode(GOOD)
    assert len(after) == 1 and isinstance(after[0], Packet)
    assert command_to_message(after[0].json()).text == "good"


def test_encode_packet_round_trips_through_the_decoder():
    frame = encode_packet(5, {"cmd": "DANMU_MSG"}) + encode_packet(3, b"\x00\x00\x01\x00", ver=1)
    a, b = PacketDecoder().decode(frame)
    assert a.json() == {"cmd": "DANMU_MSG"} and b.popularity() == 256


# -- hostile frames -----------------------------------------------------------------------
def test_a_deeply_nested_heartbeat_reply_is_not_a_popularity_and_does_not_raise():
    deep = b"[" * 50_000 + b"]" * 50_000
    assert Packet(OP_HEARTBEAT_REPLY, 1, 1, deep).popularity() is None


@pytest.mark.parametrize("depth", [900, 3000, 50_000])
def test_a_deeply_nested_danmaku_becomes_a_malformed_message(depth):
    info = "[" * depth + "]" * depth
    for body in (
        f'{{"cmd":"DANMU_MSG","info":{info}}}',
        # the nesting hidden in a JSON string a handler decodes again
        json.dumps(
            {
                "cmd": "DANMU_MSG",
                "info": [
                    [0, 1, 25, 0, 0, 0, 0, "", 0, 0, 0, "", 0, "{}", "{}", {"extra": info}],
                    "hi",
                    [1, "ann"],
                ],
            }
        ),
    ):
        msg = packet_to_message(Packet(OP_COMMAND, 0, 1, body.encode()))
        assert msg is None or msg.malformed or msg.text == "hi"


def test_a_frame_of_half_a_million_empty_packets_is_cut_short():
    empty = encode_packet(OP_COMMAND, b"")
    # eight brotli packets, each inflating to just under the 1 MiB packet limit: 524,280
    # empty packets within the 8 MiB frame budget, from a frame of a few kilobytes
    body = encode_packet(OP_COMMAND, brotli.compress(empty * 65_535, quality=5), ver=3, seq=0)
    frame = body * 8
    assert len(frame) < 16 * 1024
    out = PacketDecoder().decode(frame)
    assert len(out) == MAX_FRAME_PACKETS + 1
    assert "more than 2000 packets" in out[-1].reason


def test_a_too_old_brotli_is_named_instead_of_failing_every_frame(monkeypatch):
    import streambot.chat.bilibili_packets as codec

    monkeypatch.setattr(codec.brotli, "__version__", "1.1.0")
    frame = encode_packet(OP_COMMAND, brotli.compress(encode_packet(OP_COMMAND, b"{}")), ver=3)
    (error,) = PacketDecoder().decode(frame)
    assert "brotli 1.1.0 is too old" in error.reason and "brotli>=1.2" in error.reason


# -- protobuf commands, paid amounts, linked rooms ------------------------------------------
def send_gift_v2(uname, gift, num, total_coin, coin_type="gold", box=None, box_price=0):
    """SEND_GIFT_V2 as the server sends it: the gift in ``data.pb``, our schema's encoding."""
    message = bilibili_pb.message_class("SendGiftV2")(uid=77777, uname=uname)
    message.uinfo.uid, message.uinfo.base.name = 77777, uname
    item = message.gift
    item.gift_id, item.gift_name, item.num = 31036, gift, num
    item.price = item.discount_price = total_coin // max(1, num)
    item.total_coin, item.coin_type, item.action = total_coin, coin_type, "投喂"
    if box:
        message.blind_gift.original_gift_id = 32251
        message.blind_gift.original_gift_name = box
        message.blind_gift.original_gift_price = box_price
        message.blind_gift.gift_action = "爆出"
    return {"cmd": "SEND_GIFT_V2", "data": {"dmscore": 10, "pb": bilibili_pb.encode(message)}}


def interact_v2(uname, msg_type):
    message = bilibili_pb.message_class("InteractWordV2")(
        uid=88888, uname=uname, msg_type=msg_type, roomid=REAL_ID, timestamp=1_786_116_094
    )
    message.uinfo.uid, message.uinfo.base.name = 88888, uname
    return {"cmd": "INTERACT_WORD_V2", "data": {"dmscore": 10, "pb": bilibili_pb.encode(message)}}


async def test_protobuf_gifts_and_follows_and_the_heartbeat_echo_over_the_wire(live):
    server, source, stream = live
    server.popularity = 0xFFFF_FFF0  # above 2**31: an unsigned count
    burst = [
        pkt(5, send_gift_v2("用户G", "牛哇牛哇", 5, 500)),
        # a 15 CNY blind box that opened a 16 CNY gift: the viewer paid 15
        pkt(5, send_gift_v2("用户H", "星月盲盒礼物", 1, 15_000, box="心动盲盒", box_price=15_000)),
        pkt(5, send_gift_v2("用户I", "小心心", 2, 0, coin_type="silver")),
        pkt(5, interact_v2("路人J", 2)),
        pkt(5, interact_v2("路人K", 1)),
    ]
    await server.outbox.put(brotli_frame(*burst))
    gift, box, free, follow, enter = await take(stream, 5)
    assert (gift.kind, gift.user, gift.user_id, gift.count, gift.amount) == (
        Kind.GIFT,
        "用户G",
        "77777",
        5,
        0.5,
    )
    assert (box.amount, box.meta["blind_box"], box.meta["gift_name"], box.text) == (
        15.0,
        "心动盲盒",
        "星月盲盒礼物",
        "心动盲盒 -> 星月盲盒礼物 x1",
    )
    assert (free.amount, free.meta["paid"]) == (0.0, False)
    assert (follow.kind, follow.user, follow.meta["action"]) == (
        Kind.INTERACTION,
        "路人J",
        "follow",
    )
    assert enter.meta["action"] == "enter"
    await wait_for(lambda: server.heartbeats >= 2)
    await server.outbox.put(pkt(5, danmu("next", 1, "a")))
    await take(stream, 1)
    assert source.popularity == 0xFFFF_FFF0
    assert source.stats["malformed"] == 0


def test_a_v1_blind_box_gift_counts_what_was_paid():
    gift = {
        "cmd": "SEND_GIFT",
        "data": {
            "giftName": "星月盲盒礼物",
            "num": 1,
            "uname": "用户H",
            "uid": 1,
            "price": 16000,
            "coin_type": "gold",
            "total_coin": 15000,
            "blind_gift": {
                "original_gift_name": "心动盲盒",
                "original_gift_price": 15000,
                "gift_action": "爆出",
            },
        },
    }
    msg = command_to_message(gift)
    assert (msg.amount, msg.meta["blind_box"]) == (15.0, "心动盲盒")  # not price x num = 16


def test_the_open_platform_counts_r_price_not_the_list_price():
    data = {
        "uname": "用户L",
        "open_id": "o-1",
        "gift_name": "打折礼物",
        "gift_num": 2,
        "price": 1000,
        "r_price": 800,
        "paid": True,
    }
    msg = command_to_message({"cmd": "LIVE_OPEN_PLATFORM_SEND_GIFT", "data": data})
    assert msg.amount == 1.6


@pytest.mark.parametrize(
    ("pb", "reason"),
    [
        ("", "non-empty base64"),
        ("not base64!!", "not base64"),
        ("//79/A==", "not a SendGiftV2 protobuf"),
        (base64.b64encode(b"\x08\x01").decode(), "needs uname"),
    ],
)
def test_a_bad_protobuf_gift_is_malformed_with_its_reason(pb, reason):
    msg = command_to_message({"cmd": "SEND_GIFT_V2", "data": {"pb": pb}})
    assert msg.malformed and reason in msg.malformed


def test_mirrored_danmaku_from_a_linked_room_is_stored_but_not_answered():
    from streambot.config import TriageConfig
    from streambot.triage import Triage

    mirror = {**danmu("这个多少钱？", 5, "别的房间观众"), "cmd": "DANMU_MSG_MIRROR"}
    msg = command_to_message(mirror)
    assert not msg.malformed and msg.meta["mirrored"] and msg.text == "这个多少钱？"
    decision = Triage(TriageConfig()).decide(msg, 0.0)
    assert not decision.accepted and "linked room" in decision.reason


def test_the_compiled_schema_matches_the_proto_file(tmp_path):
    grpc_tools = pytest.importorskip("grpc_tools.protoc")
    from importlib import resources

    folder = resources.files("streambot.chat.proto")
    out = tmp_path / "schema.binpb"
    args = [
        "protoc",
        f"-I{folder}",
        f"--descriptor_set_out={out}",
        str(folder / "bilibili_live.proto"),
    ]
    assert grpc_tools.main(args) == 0
    assert out.read_bytes() == folder.joinpath("bilibili_live.binpb").read_bytes(), (
        "bilibili_live.proto changed: rebuild bilibili_live.binpb (command in the .proto)"
    )
