"""Bilibili live chat: the web danmaku websocket, and the official open platform (开放平台).

Web mode (:class:`BilibiliChatSource`): the room id is resolved to the real one
(``room_init``), a ``buvid3`` is fetched (``finger/spi``), ``getDanmuInfo`` is called with a
WBI signature (keys from ``nav``) for the token and the host list, then the websocket gets the
auth packet (op 7) at once, must answer it (op 8, ``{"code": 0}``) within ``auth_timeout``, and
gets a heartbeat (op 2) every ``heartbeat_interval``. Any disconnect, error, auth failure or
missing auth reply reconnects with capped exponential backoff and full jitter. A login cookie
(``SESSDATA=...``, see ``bilibili_auth.cookie_from_env``) is optional, sent as the Cookie
header and never logged.

Open-platform mode (:class:`BilibiliOpenPlatformSource`): ``/v2/app/start`` with the
streamer's 身份码, HMAC-SHA256-signed requests, an app heartbeat every 20 s, ``/v2/app/end`` on
close; the websocket speaks the same packet format with the ``auth_body`` the start call gave.

Frames that cannot be decoded and known commands with bad fields become ChatMessages with
``malformed`` set, so they are stored with their reason; the connection carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import yarl
from pydantic import SecretStr

from streambot.backoff import Backoff, full_jitter
from streambot.chat.bilibili_auth import (
    cookie_value,
    open_platform_headers,
    wbi_key_from_url,
    wbi_query,
)
from streambot.chat.bilibili_commands import (
    SOURCE,
    object_at,
    packet_to_message,
)
from streambot.chat.bilibili_packets import (
    OP_AUTH_REPLY,
    OP_COMMAND,
    OP_HEARTBEAT_REPLY,
    DecodeError,
    Packet,
    PacketDecoder,
    auth_packet,
    heartbeat_packet,
)
from streambot.events import ChatMessage

log = logging.getLogger(__name__)

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
DEFAULT_HOST = "broadcastlv.chat.bilibili.com"


class AuthFailed(Exception):
    """The danmaku server answered the auth packet with a non-zero code."""


class ApiError(Exception):
    """An HTTP API answered with a non-zero code or an unexpected shape."""


# -- WBI ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DanmakuTiming:
    """Seconds that govern a danmaku connection (tests shorten them)."""

    heartbeat_interval: float = 30.0
    auth_timeout: float = 5.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    http_timeout: float = 10.0


class _DanmakuClient:
    name = SOURCE

    def __init__(self, timing: DanmakuTiming | None, max_queue: int = 4096) -> None:
        timing = timing or DanmakuTiming()
        self.heartbeat_interval = timing.heartbeat_interval
        self.auth_timeout = timing.auth_timeout
        self.backoff_base, self.backoff_max = timing.backoff_base, timing.backoff_max
        self._timeout = aiohttp.ClientTimeout(total=timing.http_timeout)
        self.decoder = PacketDecoder()
        self.popularity: int | None = None
        self.connected = asyncio.Event()  # set while authenticated
        self.stats = {
            "connects": 0,
            "auth_ok": 0,
            "auth_failures": 0,
            "disconnects": 0,
            "heartbeat_replies": 0,
            "commands": 0,
            "ignored": 0,
            "malformed": 0,
        }

    def _backoff(self) -> Backoff:
        """Full jitter: the n-th retry waits uniform in [0, min(max, base * 2**n)]."""
        return Backoff(self.backoff_base, self.backoff_max, full_jitter)

    def _handle(self, item: Packet | DecodeError) -> ChatMessage | None:
        if isinstance(item, DecodeError):
            self.stats["malformed"] += 1
            log.warning("bilibili: undecodable packet: %s", item.reason)
            return ChatMessage(self.name, "?", repr(item.raw), malformed=item.reason)
        if item.op == OP_COMMAND:
            self.stats["commands"] += 1
            msg = packet_to_message(item, self.name)
            if msg is None:
                self.stats["ignored"] += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("bilibili: ignored command %r", item.body[:80])
            elif msg.malformed:
                self.stats["malformed"] += 1
                log.warning("bilibili: malformed command: %s", msg.malformed)
            return msg
        if item.op == OP_HEARTBEAT_REPLY:
            self.stats["heartbeat_replies"] += 1
            self.popularity = item.popularity()
            return None
        log.debug("bilibili: op %d packet ignored", item.op)
        return None

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await ws.send_bytes(heartbeat_packet())
            await asyncio.sleep(self.heartbeat_interval)

    async def _authenticated(
        self, ws: aiohttp.ClientWebSocketResponse
    ) -> list[Packet | DecodeError]:
        """Wait (``auth_timeout``) for the auth reply and check its code (``AuthFailed``
        unless 0); what came with it is kept, to be handled once authenticated."""
        pending: list[Packet | DecodeError] = []
        async with asyncio.timeout(self.auth_timeout):
            while True:
                frame = await ws.receive()
                if frame.type != aiohttp.WSMsgType.BINARY:
                    raise ConnectionError(f"no auth reply: got a {frame.type.name} frame")
                items = self.decoder.decode(frame.data)
                reply = next(
                    (i for i in items if isinstance(i, Packet) and i.op == OP_AUTH_REPLY), None
                )
                pending.extend(i for i in items if i is not reply)
                if reply is not None:
                    break
        try:
            code = json.loads(reply.body).get("code", 0) if reply.body else 0
        except (ValueError, AttributeError):
            code = None
        if code != 0:
            self.stats["auth_failures"] += 1
            raise AuthFailed(f"auth reply code {code!r}")
        return pending

    async def _session(
        self,
        http: aiohttp.ClientSession,
        url: str,
        auth: dict | str,
        headers: Mapping[str, str],
    ) -> AsyncIterator[ChatMessage]:
        """One websocket connection: auth, then messages until it closes (then return)."""
        self.stats["connects"] += 1
        async with http.ws_connect(
            url, headers=dict(headers), heartbeat=None, autoping=True, max_msg_size=4 << 20
        ) as ws:
            await ws.send_bytes(auth_packet(auth))
            pending = await self._authenticated(ws)
            self.stats["auth_ok"] += 1
            self.connected.set()
            log.info("bilibili: connected and authenticated")
            beats = asyncio.create_task(self._heartbeats(ws))
            try:
                for item in pending:
                    if (msg := self._handle(item)) is not None:
                        yield msg
                while True:
                    frame = await ws.receive()
                    if frame.type == aiohttp.WSMsgType.BINARY:
                        for item in self.decoder.decode(frame.data):
                            if (msg := self._handle(item)) is not None:
                                yield msg
                    elif frame.type == aiohttp.WSMsgType.TEXT:
                        msg = ChatMessage(
                            self.name, "?", frame.data[:200], malformed="text frame, not binary"
                        )
                        self.stats["malformed"] += 1
                        yield msg
                    elif frame.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                    ):
                        log.info("bilibili: server closed the connection (%s)", ws.close_code)
                        return
                    elif frame.type == aiohttp.WSMsgType.ERROR:
                        raise ConnectionError(f"websocket error: {ws.exception()!r}")
            finally:
                self.connected.clear()
                beats.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await beats


# -- web danmaku ----------------------------------------------------------------------------


class BilibiliChatSource(_DanmakuClient):
    """A Bilibili live room's chat over the web danmaku websocket (see the module docstring)."""

    def __init__(
        self,
        room_id: int,
        *,
        cookie: SecretStr | None = None,
        api_base: str = "https://api.live.bilibili.com",
        nav_base: str = "https://api.bilibili.com",
        ws_url_override: str | None = None,
        timing: DanmakuTiming | None = None,
    ) -> None:
        super().__init__(timing)
        self.room_id = int(room_id)
        self._cookie = cookie
        self.api_base, self.nav_base = api_base.rstrip("/"), nav_base.rstrip("/")
        self.ws_url_override = ws_url_override
        self.real_room_id: int | None = None

    def __repr__(self) -> str:  # never shows the cookie
        return f"BilibiliChatSource(room_id={self.room_id}, logged_in={self._cookie is not None})"

    async def _get(self, http: aiohttp.ClientSession, url: str | yarl.URL) -> dict:
        async with http.get(url, timeout=self._timeout) as resp:
            resp.raise_for_status()
            body = await resp.json(content_type=None)
        if not isinstance(body, dict):
            raise ApiError(f"{str(url).split('?')[0]}: not a JSON object")
        return body

    async def _connect_info(self, http: aiohttp.ClientSession, cookie: str) -> tuple[str, dict]:
        """(websocket URL, auth body) for one connection."""
        init = await self._get(http, f"{self.api_base}/room/v1/Room/room_init?id={self.room_id}")
        data = init.get("data")
        if init.get("code") != 0 or not isinstance(data, dict) or "room_id" not in data:
            raise ApiError(f"room_init: code {init.get('code')!r} {init.get('message', '')!r}")
        self.real_room_id = int(data["room_id"])

        buvid = cookie_value(cookie, "buvid3")
        if not buvid:
            spi = await self._get(http, f"{self.nav_base}/x/frontend/finger/spi")
            spi_data = spi.get("data")
            buvid = spi_data.get("b_3", "") if isinstance(spi_data, dict) else ""

        nav = await self._get(http, f"{self.nav_base}/x/web-interface/nav")
        nav_data = object_at(nav, "data")
        wbi = object_at(nav_data, "wbi_img")
        img_url, sub_url = wbi.get("img_url"), wbi.get("sub_url")
        if not isinstance(img_url, str) or not isinstance(sub_url, str):
            raise ApiError("nav: no wbi_img keys")
        uid = nav_data.get("mid", 0) if nav_data.get("isLogin") else 0

        query = wbi_query(
            {"id": self.real_room_id, "type": 0},
            wbi_key_from_url(img_url),
            wbi_key_from_url(sub_url),
        )
        info = await self._get(
            http,
            yarl.URL(f"{self.api_base}/xlive/web-room/v1/index/getDanmuInfo?{query}", encoded=True),
        )
        info_data = info.get("data")
        if info.get("code") != 0 or not isinstance(info_data, dict):
            raise ApiError(f"getDanmuInfo: code {info.get('code')!r} {info.get('message', '')!r}")
        token = info_data.get("token", "")
        hosts = [
            h
            for h in info_data.get("host_list") or []
            if isinstance(h, dict) and isinstance(h.get("host"), str)
        ]
        if self.ws_url_override:
            url = self.ws_url_override
        else:
            host = random.choice(hosts) if hosts else {"host": DEFAULT_HOST, "wss_port": 443}
            url = f"wss://{host['host']}:{int(host.get('wss_port', 443))}/sub"
        auth = {
            "uid": int(uid) if isinstance(uid, int) else 0,
            "roomid": self.real_room_id,
            "protover": 3,
            "platform": "web",
            "type": 2,
            "buvid": buvid or "",
            "key": token if isinstance(token, str) else "",
        }
        return url, auth

    async def messages(self) -> AsyncIterator[ChatMessage]:
        cookie = self._cookie.get_secret_value() if self._cookie is not None else ""
        headers = {
            "User-Agent": USER_AGENT,
            "Referer": "https://live.bilibili.com/",
            "Origin": "https://live.bilibili.com",
        }
        if cookie:
            headers["Cookie"] = cookie
        backoff = self._backoff()
        async with aiohttp.ClientSession(headers=headers, timeout=self._timeout) as http:
            while True:
                authed_before = self.stats["auth_ok"]
                try:
                    url, auth = await self._connect_info(http, cookie)
                    ws_headers = dict(headers)
                    if auth["buvid"] and not cookie_value(cookie, "buvid3"):
                        ws_headers["Cookie"] = "; ".join(
                            p for p in (cookie, f"buvid3={auth['buvid']}") if p
                        )
                    async for msg in self._session(http, url, auth, ws_headers):
                        yield msg
                    self.stats["disconnects"] += 1
                except AuthFailed as exc:
                    log.warning("bilibili room %d: auth failed (%s), retrying", self.room_id, exc)
                except TimeoutError:
                    self.stats["disconnects"] += 1
                    log.warning("bilibili room %d: timed out, reconnecting", self.room_id)
                except (aiohttp.ClientError, ApiError, ConnectionError, ValueError) as exc:
                    self.stats["disconnects"] += 1
                    log.warning(
                        "bilibili room %d: %s: %s, reconnecting",
                        self.room_id,
                        type(exc).__name__,
                        exc,
                    )
                if self.stats["auth_ok"] > authed_before:
                    backoff.reset()  # it connected: the next drop starts the backoff over
                delay = backoff.next_delay()
                log.info("bilibili room %d: reconnecting in %.1fs", self.room_id, delay)
                await asyncio.sleep(delay)


# -- the official open platform -------------------------------------------------------------


class BilibiliOpenPlatformSource(_DanmakuClient):
    """A room's chat through the official open platform, started with the streamer's 身份码."""

    def __init__(
        self,
        app_id: int,
        access_key_id: str,
        access_key_secret: SecretStr,
        code: str,
        *,
        api_base: str = "https://live-open.biliapi.com",
        ws_url_override: str | None = None,
        app_heartbeat_interval: float = 20.0,
        timing: DanmakuTiming | None = None,
    ) -> None:
        super().__init__(timing)
        self.app_id = int(app_id)
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self._code = code
        self.api_base = api_base.rstrip("/")
        self.ws_url_override = ws_url_override
        self.app_heartbeat_interval = app_heartbeat_interval
        self.game_id: str | None = None

    def __repr__(self) -> str:
        return f"BilibiliOpenPlatformSource(app_id={self.app_id})"

    async def _post(self, http: aiohttp.ClientSession, path: str, payload: dict) -> dict:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = open_platform_headers(body, self.access_key_id, self._secret)
        async with http.post(
            self.api_base + path, data=body, headers=headers, timeout=self._timeout
        ) as resp:
            resp.raise_for_status()
            answer = await resp.json(content_type=None)
        if not isinstance(answer, dict) or answer.get("code") != 0:
            code = answer.get("code") if isinstance(answer, dict) else None
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise ApiError(f"{path}: code {code!r} {message!r}")
        return object_at(answer, "data")

    async def _app_heartbeats(self, http: aiohttp.ClientSession, game_id: str) -> None:
        while True:
            await asyncio.sleep(self.app_heartbeat_interval)
            try:
                await self._post(http, "/v2/app/heartbeat", {"game_id": game_id})
            except (aiohttp.ClientError, ApiError, TimeoutError) as exc:
                log.warning("bilibili open platform: app heartbeat failed: %s", exc)

    async def _end(self, http: aiohttp.ClientSession, game_id: str) -> None:
        try:
            await self._post(http, "/v2/app/end", {"game_id": game_id, "app_id": self.app_id})
        except (aiohttp.ClientError, ApiError, TimeoutError) as exc:
            log.warning("bilibili open platform: app end failed: %s", exc)

    async def messages(self) -> AsyncIterator[ChatMessage]:
        backoff = self._backoff()
        async with aiohttp.ClientSession(timeout=self._timeout) as http:
            while True:
                authed_before = self.stats["auth_ok"]
                game_id: str | None = None
                beats: asyncio.Task | None = None
                try:
                    data = await self._post(
                        http, "/v2/app/start", {"code": self._code, "app_id": self.app_id}
                    )
                    game = object_at(data, "game_info")
                    ws_info = data.get("websocket_info")
                    if not isinstance(ws_info, dict) or not isinstance(
                        ws_info.get("auth_body"), str
                    ):
                        raise ApiError("/v2/app/start: no websocket_info.auth_body")
                    game_id = str(game.get("game_id", ""))
                    self.game_id = game_id
                    links = [u for u in ws_info.get("wss_link") or [] if isinstance(u, str)]
                    url = self.ws_url_override or (links[0] if links else None)
                    if not url:
                        raise ApiError("/v2/app/start: no wss_link")
                    if game_id:
                        beats = asyncio.create_task(self._app_heartbeats(http, game_id))
                    async for msg in self._session(http, url, ws_info["auth_body"], {}):
                        yield msg
                    self.stats["disconnects"] += 1
                except AuthFailed as exc:
                    log.warning("bilibili open platform: auth failed (%s), retrying", exc)
                except TimeoutError:
                    self.stats["disconnects"] += 1
                    log.warning("bilibili open platform: timed out, reconnecting")
                except (aiohttp.ClientError, ApiError, ConnectionError, ValueError) as exc:
                    self.stats["disconnects"] += 1
                    log.warning("bilibili open platform: %s: %s", type(exc).__name__, exc)
                finally:
                    if beats is not None:
                        beats.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await beats
                    if game_id:
                        await asyncio.shield(self._end(http, game_id))
                        self.game_id = None
                if self.stats["auth_ok"] > authed_before:
                    backoff.reset()  # it connected: the next drop starts the backoff over
                delay = backoff.next_delay()
                await asyncio.sleep(delay)
