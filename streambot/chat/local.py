"""Local chat sources: an HTTP endpoint, stdin lines, and a timed replay file.

HTTP: ``POST /chat`` with JSON ``{"user": ..., "text": ..., "kind": "chat"|"superchat"|"command"}``
on 127.0.0.1; when the configured token variable is set, requests need
``Authorization: Bearer <token>``; who may send is decided in ``streambot.http_guard``.
Replay: JSONL, one object per line with ``at`` (seconds from the start, on the pipeline
clock), ``user``, ``text`` and optionally ``kind``.

Input that cannot be parsed is not dropped silently: it becomes a ChatMessage with
``malformed`` set, so it is stored with its reason like every other message.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from streambot.chat.hygiene import preview
from streambot.clock import Clock
from streambot.events import ChatMessage, Kind
from streambot.http_guard import Guard, origin_allowed

log = logging.getLogger(__name__)
_KINDS = {Kind.CHAT, Kind.SUPERCHAT, Kind.COMMAND}


def message_from_json(data: object, source: str) -> ChatMessage:
    """Build a ChatMessage from a decoded JSON object, or a malformed one naming the problem."""
    if not isinstance(data, dict):
        return ChatMessage(source, "?", preview(data), malformed="expected a JSON object")
    user, text, kind = data.get("user"), data.get("text"), data.get("kind", Kind.CHAT)
    if not isinstance(user, str) or not user.strip():
        return ChatMessage(
            source, "?", preview(data), malformed="'user' must be a non-empty string"
        )
    if not isinstance(text, str):
        return ChatMessage(source, user[:64], preview(data), malformed="'text' must be a string")
    if not isinstance(kind, str) or kind not in _KINDS:
        return ChatMessage(source, user[:64], text, malformed=f"unknown kind {preview(kind)}")
    return ChatMessage(source, user.strip()[:64], text, kind)


def parse_json_body(raw: bytes, source: str) -> ChatMessage:
    """One request body or replay line: a message, or a malformed one saying why."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return junk_message(raw, source, f"body is not UTF-8 JSON ({exc.reason})")
    except RecursionError:
        return junk_message(raw, source, "body is not UTF-8 JSON (nested too deeply)")
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        return junk_message(raw, source, f"body is not UTF-8 JSON ({exc})")
    return message_from_json(data, source)


def junk_message(raw: bytes, source: str, why: str) -> ChatMessage:
    return ChatMessage(source, "?", repr(raw[:200]), malformed=why)


class ReceiptExpired(Exception):
    """The message was not stored in time; it is not acknowledged (the client retries)."""


def _expire(receipt: asyncio.Future) -> None:
    if not receipt.done():
        receipt.set_exception(ReceiptExpired())


class _Busy(asyncio.Protocol):
    """Answers a connection over the cap with a 503 and closes it (the client may retry)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            b"Retry-After: 1\r\nConnection: close\r\n\r\n"
        )
        transport.close()


class HttpChatSource:
    """``POST /chat`` on a local port. A 202 means the message is in the store: the request
    waits for its receipt from the pump (``ChatMessage.receipt``).

    Hardened against the web pages the streamer opens and against strangers on the network:
    only a ``Host`` of this computer or ``allowed_hosts`` (DNS rebinding), only
    ``application/json`` bodies (a cross-origin page cannot send those without a CORS
    preflight, which is never granted), no ``Origin`` other than a loopback one, operator
    commands only with the token, a cap on connections, and idle and body-read timeouts.
    """

    name = "http"

    def __init__(
        self,
        host: str,
        port: int,
        token: SecretStr | None = None,
        max_body_bytes: int = 256 * 1024,
        buffer: int = 1024,
        token_env: str = "STREAMBOT_CHAT_TOKEN",
        max_connections: int = 256,
        idle_timeout_s: float = 15.0,
        read_timeout_s: float = 10.0,
        receipt_timeout_s: float = 10.0,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self._host, self._port = host, port
        self._token = token
        self._token_env = token_env
        self._max_body = max_body_bytes
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout_s
        self._read_timeout = read_timeout_s
        self._receipt_timeout = receipt_timeout_s
        self._queue: asyncio.Queue[ChatMessage] = asyncio.Queue(maxsize=buffer)
        self._guard = Guard("chat", host, allowed_hosts, log)
        self.port: int | None = None  # the bound port, once listening
        self.ready = asyncio.Event()

    def waiting(self) -> int:
        """Messages received and not yet taken by the pump (it stores a burst at once)."""
        return self._queue.qsize()

    def _refusal(self, request: web.Request) -> web.Response | None:
        """A response for a request refused before its body is read, or None."""
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.headers.get("Host")):
            self._guard.refused("web page", "refused a chat request from a web page at %r", origin)
            return web.json_response(
                {"error": "requests from web pages other than this computer's are refused"},
                status=403,
            )
        if request.content_type != "application/json":
            self._guard.refused(
                "content type", "refused a chat request of type %r", request.content_type
            )
            return web.json_response({"error": "Content-Type must be application/json"}, status=415)
        if self._token is None:
            return None
        header = request.headers.get("Authorization", "")
        expected = f"Bearer {self._token.get_secret_value()}".encode()
        if not hmac.compare_digest(header.encode("utf-8", "surrogateescape"), expected):
            self._guard.refused("token", "refused a chat request without the right bearer token")
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            raw = await asyncio.wait_for(request.read(), self._read_timeout)
        except TimeoutError:
            return web.json_response({"error": "body not received in time"}, status=408)
        msg = parse_json_body(raw, self.name)
        status = 400
        if msg.kind == Kind.COMMAND and not msg.malformed and self._token is None:
            log.warning(
                "refused an operator command over HTTP: no token is configured (set %s)",
                self._token_env,
            )
            msg.malformed = f"operator commands over HTTP need a token: set {self._token_env}"
            status = 403
        loop = asyncio.get_running_loop()
        receipt = msg.receipt = loop.create_future()
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            return web.json_response({"error": "busy, retry later"}, status=503)
        # A timer rather than wait_for(shield(...)): this runs thousands of times a second.
        expiry = loop.call_later(self._receipt_timeout, _expire, receipt)
        try:
            await receipt
        except ReceiptExpired:
            return web.json_response({"error": "not stored in time, retry later"}, status=503)
        except Exception as exc:  # the store failed: not acknowledged, so the client retries
            return web.json_response({"error": f"not stored ({exc}), retry later"}, status=503)
        finally:
            expiry.cancel()
        if msg.malformed:
            return web.json_response({"error": msg.malformed, "id": msg.id}, status=status)
        return web.json_response({"queued": True, "id": msg.id}, status=202)

    async def messages(self) -> AsyncIterator[ChatMessage]:
        app = self._guard.application(client_max_size=self._max_body)
        app.router.add_post("/chat", self._handle)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self._idle_timeout)
        await runner.setup()
        factory = runner.server
        assert factory is not None

        def protocol() -> asyncio.BaseProtocol:
            if len(factory.connections) >= self._max_connections:
                self._guard.refused(
                    "connection cap", "refused a chat connection: %d open", self._max_connections
                )
                return _Busy()
            return factory()

        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, self._host, self._port)
        self.port = server.sockets[0].getsockname()[1]
        log.info("local chat: POST http://%s:%d/chat", self._host, self.port)
        self.ready.set()
        try:
            while True:
                yield await self._queue.get()
        finally:
            server.close()
            await runner.cleanup()  # the guard sums up the last window's refusals


def parse_stdin_line(line: str) -> ChatMessage:
    """``user: text``, a JSON object, or plain text from the operator."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            return message_from_json(json.loads(stripped), "stdin")
        except (ValueError, RecursionError) as exc:
            return ChatMessage("stdin", "?", stripped[:200], malformed=f"bad JSON: {exc}")
    user, sep, text = stripped.partition(":")
    if sep and user and " " not in user.strip():
        return ChatMessage("stdin", user.strip(), text.strip())
    return ChatMessage("stdin", "operator", stripped)


class StdinChatSource:
    name = "stdin"

    async def messages(self) -> AsyncIterator[ChatMessage]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                yield junk_message(line, self.name, "line is not UTF-8")
                continue
            if text.strip():
                yield parse_stdin_line(text)


class ReplayChatSource:
    name = "replay"

    def __init__(self, path: str | Path, clock: Clock, loop: bool = False) -> None:
        self._path = Path(path)
        self._clock = clock
        self._loop = loop

    async def messages(self) -> AsyncIterator[ChatMessage]:
        lines = self._path.read_bytes().split(b"\n")
        start = self._clock.now()
        while True:
            last_at = 0.0
            for number, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    yield junk_message(raw, self.name, f"replay line {number}: not UTF-8 JSON")
                    continue
                at = data.get("at", last_at) if isinstance(data, dict) else last_at
                if isinstance(at, int | float) and at >= last_at:
                    last_at = float(at)
                await self._clock.sleep_until(start + last_at)
                yield message_from_json(data, self.name)
            if not self._loop:
                return
            start += last_at + 5.0
            await self._clock.sleep_until(start)
