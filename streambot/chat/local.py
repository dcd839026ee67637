"""Local chat sources: an HTTP endpoint, stdin lines, and a timed replay file.

HTTP: ``POST /chat`` with JSON ``{"user": ..., "text": ..., "kind": "chat"|"superchat"|"command"}``
on 127.0.0.1; when the configured token variable is set, requests need
``Authorization: Bearer <token>``. Replay: JSONL, one object per line with ``at`` (seconds from
the start, on the pipeline clock), ``user``, ``text`` and optionally ``kind``.

Input that cannot be parsed is not dropped silently: it becomes a ChatMessage with
``malformed`` set, so it is stored with its reason like every other message.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from streambot.events import ChatMessage, Kind
from streambot.stage.clock import Clock

log = logging.getLogger(__name__)
_KINDS = {Kind.CHAT, Kind.SUPERCHAT, Kind.COMMAND}


def message_from_json(data: object, source: str) -> ChatMessage:
    """Build a ChatMessage from a decoded JSON object, or a malformed one naming the problem."""
    if not isinstance(data, dict):
        return ChatMessage(source, "?", repr(data)[:200], malformed="expected a JSON object")
    user, text, kind = data.get("user"), data.get("text"), data.get("kind", Kind.CHAT)
    if not isinstance(user, str) or not user.strip():
        return ChatMessage(
            source, "?", repr(data)[:200], malformed="'user' must be a non-empty string"
        )
    if not isinstance(text, str):
        return ChatMessage(source, user, repr(data)[:200], malformed="'text' must be a string")
    if kind not in _KINDS:
        return ChatMessage(source, user, text, malformed=f"unknown kind {kind!r}")
    return ChatMessage(source, user.strip()[:64], text, kind)


def junk_message(raw: bytes, source: str, why: str) -> ChatMessage:
    return ChatMessage(source, "?", repr(raw[:200]), malformed=why)


class HttpChatSource:
    name = "http"

    def __init__(
        self,
        host: str,
        port: int,
        token: SecretStr | None = None,
        max_body_bytes: int = 256 * 1024,
        buffer: int = 1024,
    ) -> None:
        self._host, self._port = host, port
        self._token = token
        self._max_body = max_body_bytes
        self._queue: asyncio.Queue[ChatMessage] = asyncio.Queue(maxsize=buffer)
        self.port: int | None = None  # the bound port, once listening
        self.ready = asyncio.Event()

    def _authorised(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        expected = f"Bearer {self._token.get_secret_value()}"
        return hmac.compare_digest(request.headers.get("Authorization", ""), expected)

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        raw = await request.read()
        try:
            msg = message_from_json(json.loads(raw.decode("utf-8")), self.name)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = junk_message(raw, self.name, f"body is not UTF-8 JSON ({exc})")
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            return web.json_response({"error": "busy, retry later"}, status=503)
        if msg.malformed:
            return web.json_response({"error": msg.malformed}, status=400)
        return web.json_response({"queued": True}, status=202)

    async def messages(self) -> AsyncIterator[ChatMessage]:
        app = web.Application(client_max_size=self._max_body)
        app.router.add_post("/chat", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("local chat: POST http://%s:%d/chat", self._host, self.port)
        self.ready.set()
        try:
            while True:
                yield await self._queue.get()
        finally:
            await runner.cleanup()


def parse_stdin_line(line: str) -> ChatMessage:
    """``user: text``, a JSON object, or plain text from the operator."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            return message_from_json(json.loads(stripped), "stdin")
        except json.JSONDecodeError as exc:
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
                except (UnicodeDecodeError, json.JSONDecodeError):
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
