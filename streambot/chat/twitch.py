"""Twitch chat over EventSub websockets, with Helix (tokens, subscriptions, replies) by twitchio v3.

What runs where:

* Helix and OAuth go through twitchio's ``ManagedHTTPClient``: ``add_token`` validates the user
  token (``GET /oauth2/validate``), ``create_eventsub_subscription`` and ``post_chat_message``
  build the requests, and a 401 "Invalid OAuth token" is answered by twitchio's own refresh
  (``POST /oauth2/token`` with the refresh token) and a retry. twitchio hard-codes its base URLs
  as class variables (``Route.BASE``, ``Route.ID_BASE``); to point one source at other URLs
  (a loopback test server) without changing them for the whole process, the client below rewrites
  each of its own routes before sending.
* The EventSub websocket is spoken here, with aiohttp, not by ``twitchio.eventsub.Websocket``:
  its URL is a module global (``WSS``), it checks keepalives no faster than every 10 s plus a
  fixed 5 s margin, and on ``session_reconnect`` its old socket's listener cancels itself once
  the new socket is welcomed, so notifications already buffered on the old socket are lost and
  one delivered on both sockets is dispatched twice. Here: welcome -> subscribe with the session
  id -> notifications; ``session_reconnect`` connects to ``reconnect_url`` while the old socket
  keeps being read, then closes it; no message within ``keepalive_timeout_seconds`` + margin ->
  a fresh connection and new subscriptions; every notification is de-duplicated by its EventSub
  ``message_id``.

Payloads are normalised from the wire JSON (twitchio's models need an HTTP client and drop
nothing we need, but the raw dict is what Twitch documents). Scopes the user token needs:
``user:read:chat`` (plus ``user:bot``/``channel:bot`` when the bot is not the broadcaster),
``bits:read``, ``channel:read:subscriptions``, and ``user:write:chat`` for replies.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from pydantic import SecretStr
from twitchio.authentication import ManagedHTTPClient, OAuth
from twitchio.eventsub import SubscriptionType
from twitchio.exceptions import HTTPException
from twitchio.http import Route

from streambot.backoff import Backoff
from streambot.chat.twitch_events import message_time, normalise
from streambot.events import ChatMessage, Kind
from streambot.logs import redact, register_secret
from streambot.tasks import first_of

if TYPE_CHECKING:
    from twitchio.types_.conduits import Condition

log = logging.getLogger(__name__)

EVENTSUB_URL = "wss://eventsub.wss.twitch.tv/ws"
KEEPALIVE_SECONDS = 30  # asked for in the URL; Twitch allows 10-600
RECONNECT_BASE_S = 1.0  # the first retry after a failed connect; doubles up to max_backoff
# Twitch's replay guard: a notification older than this is refused, and message ids are
# remembered for this long (a redelivery comes within the window, a replay after it is stale).
REPLAY_WINDOW_S = 600.0
_MAX_SEEN_IDS = 500_000  # a memory bound only: far above any channel's 10 minutes of events
_PAID = {Kind.SUPERCHAT, Kind.CHEER, Kind.MEMBERSHIP, Kind.RAID}  # never dropped when full


def _rebase(route: Route, helix: str | None, auth: str | None) -> None:
    """Point one twitchio route at other base URLs (idempotent)."""
    for default, override in ((Route.BASE, helix), (Route.ID_BASE, auth)):
        if override and route.url.startswith(default):
            route._url = override + route.url[len(default) :]
            route._base_url = override + route.base_url[len(default) :]


class _RebasedOAuth(OAuth):
    def __init__(self, *, helix: str | None, auth: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bases = (helix, auth)

    async def request(self, route: Route) -> Any:
        _rebase(route, *self._bases)
        return await super().request(route)


class _Helix(ManagedHTTPClient):
    """twitchio's token-managing Helix client, on configurable base URLs."""

    def __init__(
        self, *, client_id: str, client_secret: str, helix: str | None, auth: str | None
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret)
        self._bases = (helix, auth)
        # twitchio validates and refreshes tokens through a private OAuth instance: give it the
        # same base URLs (it has opened no session yet, so nothing is leaked by replacing it).
        self._ManagedHTTPClient__isolated = _RebasedOAuth(
            helix=helix, auth=auth, client_id=client_id, client_secret=client_secret
        )

    async def request(self, route: Route) -> Any:
        _rebase(route, *self._bases)
        return await super().request(route)

    def _find_token(self, route: Route) -> Any:
        # twitchio 3.3 returns "no token" for a route without an Authorization header whenever
        # no app token is loaded (None == None), so ``token_for`` alone never picks the user
        # token; the bot needs no app token, so look the user token up first.
        if not route.headers.get("Authorization") and route.token_for in self._tokens:
            return self._tokens[route.token_for]
        return super()._find_token(route)

    def _dispatch_event(self, user_id: str, payload: Any) -> None:
        # Called by twitchio whenever it refreshed a user token: the new ones are secrets too.
        register_secret(payload.access_token)
        register_secret(payload.refresh_token)
        log.info("twitch: refreshed the access token of user %s", user_id)
        super()._dispatch_event(user_id, payload)


def _base(url: str | None) -> str | None:
    return None if url is None else url.rstrip("/") + "/"


class _Lost(Exception):
    """The websocket session ended; reconnect with a fresh session and subscribe again."""


class TwitchChatSource:
    """ChatSource for a Twitch channel (EventSub websocket in, Helix replies out)."""

    name = "twitch"

    def __init__(
        self,
        client_id: str,
        client_secret: SecretStr,
        bot_user_id: str,
        broadcaster_user_id: str,
        *,
        access_token: SecretStr,
        refresh_token: SecretStr | None = None,
        reply_in_chat: bool = False,
        eventsub_url: str | None = None,
        helix_url: str | None = None,
        auth_url: str | None = None,
        buffer: int = 1024,
        keepalive_seconds: int = KEEPALIVE_SECONDS,
        keepalive_margin: float = 5.0,
        max_backoff: float = 60.0,
        shared_chat: Literal["answer", "ignore"] = "ignore",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        for secret in (client_secret, access_token, refresh_token):
            if secret is not None:
                register_secret(secret.get_secret_value())
        self._client_id = client_id
        self._client_secret = client_secret
        self._access_token = access_token
        self._refresh_token = refresh_token
        self.bot_user_id = str(bot_user_id)
        self.broadcaster_user_id = str(broadcaster_user_id)
        self.reply_in_chat = reply_in_chat
        self._eventsub_url = eventsub_url or EVENTSUB_URL
        self._keepalive_seconds = keepalive_seconds
        self._keepalive_margin = keepalive_margin
        self._helix = _Helix(
            client_id=client_id,
            client_secret=client_secret.get_secret_value(),
            helix=_base(helix_url),
            auth=_base(auth_url),
        )
        self._authed = False
        self._auth_lock = asyncio.Lock()
        self._maxsize = max(1, buffer)
        self._queue: collections.deque[ChatMessage] = collections.deque()
        self._ready = asyncio.Event()
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()  # id -> at
        self.shared_chat = shared_chat
        self._clock = wall_clock
        self.dropped: collections.Counter[str] = collections.Counter()
        self.session_id: str | None = None
        self.connected = asyncio.Event()  # set while a welcomed, subscribed session is open
        self.reconnects: collections.Counter[str] = collections.Counter()  # reason -> count
        self._http_session: aiohttp.ClientSession | None = None
        self._backoff = Backoff(RECONNECT_BASE_S, max_backoff)
        self._was_connected = False

    # --- subscriptions ---------------------------------------------------------------------

    def subscriptions(self) -> list[tuple[SubscriptionType, Condition]]:
        channel: Condition = {"broadcaster_user_id": self.broadcaster_user_id}
        return [
            (
                SubscriptionType.ChannelChatMessage,
                {**channel, "user_id": self.bot_user_id},
            ),
            (SubscriptionType.ChannelCheer, channel),
            (SubscriptionType.ChannelSubscribe, channel),
            (SubscriptionType.ChannelSubscriptionMessage, channel),
            (SubscriptionType.ChannelSubscriptionGift, channel),
            (SubscriptionType.ChannelRaid, {"to_broadcaster_user_id": self.broadcaster_user_id}),
        ]

    async def _ensure_auth(self) -> None:
        async with self._auth_lock:
            if self._authed:
                return
            refresh = self._refresh_token.get_secret_value() if self._refresh_token else ""
            valid = await self._helix.add_token(self._access_token.get_secret_value(), refresh)
            if valid.user_id and str(valid.user_id) != self.bot_user_id:
                log.error(
                    "twitch: the access token belongs to user %s, not the bot user %s",
                    valid.user_id,
                    self.bot_user_id,
                )
            self._authed = True

    async def _subscribe(self, session_id: str) -> None:
        await self._ensure_auth()
        for sub_type, condition in self.subscriptions():
            try:
                await self._helix.create_eventsub_subscription(
                    type=sub_type,
                    version="1",
                    condition=condition,
                    transport={"method": "websocket", "session_id": session_id},
                    token_for=self.bot_user_id,
                )
            except HTTPException as exc:
                if exc.status == 409:  # already subscribed on this session
                    continue
                log.error(
                    "twitch: cannot subscribe to %s (HTTP %s): %s",
                    sub_type.value,
                    exc.status,
                    redact(str(exc.extra))[:300],
                )

    # --- the queue -------------------------------------------------------------------------

    def _put(self, msg: ChatMessage) -> None:
        if len(self._queue) >= self._maxsize:
            victim = next((m for m in self._queue if m.kind not in _PAID), None)
            if victim is not None:
                self._queue.remove(victim)
            elif msg.kind not in _PAID:
                victim = msg
            if victim is not None:
                self.dropped["queue full: oldest chat dropped"] += 1
                log.warning(
                    "twitch: queue full (%d), dropped a chat message from %s (%d dropped so far)",
                    self._maxsize,
                    victim.user,
                    sum(self.dropped.values()),
                )
                if victim is msg:
                    return
            # else: only paid events are queued and this is one too; never drop it
        self._queue.append(msg)
        self._ready.set()

    def _handle(self, data: dict) -> None:
        metadata = data.get("metadata") or {}
        message_id = str(metadata.get("message_id") or "")
        now = self._clock()
        sent = message_time(metadata.get("message_timestamp"))
        if sent is not None and now - sent > REPLAY_WINDOW_S:
            self.dropped["replay guard: older than 10 minutes"] += 1
            log.debug("twitch: notification %s from %.0fs ago refused", message_id, now - sent)
            return
        if message_id:
            while self._seen and now - next(iter(self._seen.values())) > REPLAY_WINDOW_S:
                self._seen.popitem(last=False)
            if message_id in self._seen:
                log.debug("twitch: duplicate EventSub message %s ignored", message_id)
                return
            self._seen[message_id] = now
            while len(self._seen) > _MAX_SEEN_IDS:
                self._seen.popitem(last=False)
        sub_type = metadata.get("subscription_type") or ""
        event = (data.get("payload") or {}).get("event")
        if not isinstance(event, dict):
            self._put(
                ChatMessage(
                    self.name, "?", json.dumps(data)[:200], malformed=f"{sub_type}: no event"
                )
            )
            return
        if sub_type == "channel.chat.message" and str(event.get("chatter_user_id")) == str(
            self.bot_user_id
        ):
            return  # our own reply coming back
        try:
            msg = normalise(sub_type, event)
        except (TypeError, ValueError, AttributeError) as exc:
            msg = ChatMessage(
                self.name, "?", json.dumps(event)[:200], malformed=f"{sub_type}: {exc}"
            )
        if msg is not None:
            msg.meta.setdefault("eventsub_message_id", message_id)
            shared_from = msg.meta.get("shared_chat_from")
            if shared_from and self.shared_chat == "ignore":
                # Shared Chat: another channel's viewer, seen here too. Kept and counted, not
                # answered ([chat.twitch] shared_chat = "answer" answers them).
                msg.kind = Kind.INTERACTION
                msg.meta["action"] = (
                    f"shared chat from {shared_from.get('login') or 'another channel'}"
                )
            self._put(msg)

    # --- the websocket ---------------------------------------------------------------------

    async def _open(
        self, http: aiohttp.ClientSession, url: str
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
        ws = await http.ws_connect(url, autoping=True)
        try:
            first = await ws.receive(timeout=10)
            if first.type is not aiohttp.WSMsgType.TEXT:
                raise _Lost(f"no welcome (got {first.type.name})")
            data = json.loads(first.data)
            if data.get("metadata", {}).get("message_type") != "session_welcome":
                raise _Lost("the first message was not session_welcome")
            return ws, data["payload"]["session"]
        except BaseException:
            await ws.close()
            raise

    def _timeout(self, session: dict) -> float:
        seconds = session.get("keepalive_timeout_seconds") or self._keepalive_seconds
        return float(seconds) + self._keepalive_margin

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, timeout: float
    ) -> AsyncIterator[dict]:
        """Decoded control and notification messages until the socket ends (then _Lost)."""
        while True:
            try:
                raw = await ws.receive(timeout=timeout)
            except TimeoutError:
                raise _Lost(f"no message for {timeout:.1f} s (keepalive lost)") from None
            if raw.type is aiohttp.WSMsgType.TEXT:
                try:
                    data = json.loads(raw.data)
                except json.JSONDecodeError:
                    log.warning("twitch: a websocket frame was not JSON; ignored")
                    continue
                if isinstance(data, dict):
                    yield data
                continue
            if raw.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            raise _Lost(f"websocket closed (code {ws.close_code})")

    async def _drain(self, ws: aiohttp.ClientWebSocketResponse, timeout: float) -> None:
        """Keep handling the old socket's notifications during a session_reconnect."""
        try:
            async for data in self._read(ws, timeout):
                if data.get("metadata", {}).get("message_type") == "notification":
                    self._handle(data)
        except (_Lost, aiohttp.ClientError):
            pass

    async def _session(self, http: aiohttp.ClientSession) -> None:
        """One session: welcome, subscribe, read, follow session_reconnects; raises _Lost."""
        ws, session = await self._open(http, self._connect_url())
        try:
            self.session_id = session["id"]
            await self._subscribe(session["id"])
            log.info("twitch: EventSub session %s subscribed", session["id"])
            self.connected.set()
            self._backoff.reset()
            self._was_connected = True
            while True:
                moved = await self._follow(ws, self._timeout(session))
                old, (ws, session) = ws, moved
                self.session_id = session["id"]
                log.info("twitch: EventSub session moved to %s", session["id"])
                await old.close()
        finally:
            self.connected.clear()
            await ws.close()

    async def _follow(
        self, ws: aiohttp.ClientWebSocketResponse, timeout: float
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
        """Read one socket until Twitch moves the session; returns the welcomed new socket."""
        async for data in self._read(ws, timeout):
            metadata = data.get("metadata") or {}
            kind = metadata.get("message_type")
            if kind == "notification":
                self._handle(data)
            elif kind == "session_keepalive":
                pass
            elif kind == "session_reconnect":
                url = (data.get("payload") or {}).get("session", {}).get("reconnect_url")
                if not url:
                    raise _Lost("session_reconnect without a reconnect_url")
                log.info("twitch: EventSub asked to reconnect")
                drain = asyncio.create_task(self._drain(ws, timeout))
                try:
                    assert self._http_session is not None
                    # Subscriptions move with the session: no new ones on the new socket.
                    new_ws, session = await self._open(self._http_session, url)
                    await asyncio.wait({drain}, timeout=1.0)  # let the old socket finish
                finally:
                    drain.cancel()
                return new_ws, session
            elif kind == "revocation":
                sub = (data.get("payload") or {}).get("subscription") or {}
                log.warning(
                    "twitch: subscription %s revoked (%s)", sub.get("type"), sub.get("status")
                )
            elif kind == "session_welcome":
                pass
            else:
                log.debug("twitch: unknown EventSub message type %r", kind)
        raise _Lost("websocket ended")

    def _connect_url(self) -> str:
        sep = "&" if "?" in self._eventsub_url else "?"
        if "keepalive_timeout_seconds=" in self._eventsub_url:
            return self._eventsub_url
        seconds = max(10, min(600, self._keepalive_seconds))
        return f"{self._eventsub_url}{sep}keepalive_timeout_seconds={seconds}"

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            self._http_session = http
            while True:
                self._was_connected = False
                try:
                    await self._session(http)
                except _Lost as exc:
                    reason = str(exc)
                    self.reconnects[reason.split(" (")[0]] += 1
                    log.warning("twitch: %s; reconnecting", reason)
                except Exception as exc:  # network, HTTP, token: back off and try again
                    self.reconnects[type(exc).__name__] += 1
                    log.error(
                        "twitch: connection failed: %s", redact(f"{type(exc).__name__}: {exc}")
                    )
                if self._was_connected:
                    continue  # a session that worked reconnects at once, then backs off
                await asyncio.sleep(self._backoff.next_delay())

    async def messages(self) -> AsyncIterator[ChatMessage]:
        runner = asyncio.create_task(self._run(), name="twitch-eventsub")
        try:
            while True:
                while not self._queue:
                    self._ready.clear()
                    if runner.done():
                        runner.result()  # surface a crash rather than hang
                    await first_of(runner, self._ready.wait())
                yield self._queue.popleft()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await self._helix.close()

    async def close(self) -> None:
        """Close the Helix client (``messages()`` does this itself when it ends)."""
        await self._helix.close()

    # --- replies ---------------------------------------------------------------------------

    async def send(self, text: str, reply_to: str | None = None) -> bool:
        """Post ``text`` into the channel's chat as the bot (a reply when ``reply_to`` is set).

        Returns whether Twitch accepted it; does nothing unless ``reply_in_chat`` is on.
        """
        if not self.reply_in_chat:
            return False
        try:
            await self._ensure_auth()
            resp = await self._helix.post_chat_message(
                broadcaster_id=self.broadcaster_user_id,
                sender_id=self.bot_user_id,
                message=text[:500],
                token_for=self.bot_user_id,
                reply_to_message_id=reply_to,
            )
        except (HTTPException, aiohttp.ClientError) as exc:
            log.error("twitch: sending to chat failed: %s", redact(str(exc))[:300])
            return False
        data = (resp.get("data") or [{}])[0]
        if not data.get("is_sent", False):
            log.warning("twitch: chat message not sent: %s", data.get("drop_reason"))
            return False
        return True
