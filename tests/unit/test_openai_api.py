"""OpenAIChatBrain against a real loopback server speaking the SSE wire format."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import SecretStr

from streambot.brain.catalog import CatalogBrain
from streambot.brain.openai_api import (
    CLOSING_EN,
    CLOSING_ZH,
    CONTINUE_EN,
    OpenAIChatBrain,
    SSEParser,
    closing_for,
)
from streambot.config import CatalogBrainConfig
from streambot.events import ChatMessage
from streambot.turn import Turn

KEY = "sk-test-SECRET-4242"
DELTAS = ["The grinder ", "is ", "great", " ☕", ". It costs", " less than you think!"]
TEXT = "".join(DELTAS)
QUESTION = "how much is the grinder?"
PRICE = "$89.99"


def event(data: object) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def chunk(content: str | None = None, finish: str | None = None, role: bool = False) -> bytes:
    delta: dict[str, str] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return event(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": "test-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


class FakeServer:
    """An OpenAI-compatible chat server whose behaviour each test picks with ``mode``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.disconnected = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        # handler_cancellation: a client that hangs up cancels its handler, as in production
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.json()))
        if self.mode == "http500":
            return web.json_response({"error": {"message": "engine dead"}}, status=500)
        if self.mode == "http401":
            # a careless proxy that echoes the credentials back in its error body
            auth = request.headers.get("Authorization", "")
            return web.Response(status=401, text=f"invalid credentials: {auth}")
        if self.mode == "json":  # a server that ignores "stream": true
            message = {"role": "assistant", "content": TEXT}
            return web.json_response({"choices": [{"index": 0, "message": message}]})
        if self.mode == "stall_headers":
            await asyncio.sleep(30)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        try:
            await self._stream(request, resp)
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return resp

    async def _stream(self, request: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk(role=True))  # the first chunk carries only the role
        await resp.write(b": keep-alive\n\n")
        if self.mode == "stall_body":
            await asyncio.sleep(30)
        if self.mode == "empty":
            await resp.write(chunk(finish="stop") + b"data: [DONE]\n\n")
            return
        if self.mode == "no_done":  # ends after finish_reason without the [DONE] line
            await resp.write(chunk(TEXT) + chunk(finish="stop"))
            return
        if self.mode == "slow":
            for i in range(400):
                await resp.write(chunk(f"word{i} "))
                await asyncio.sleep(0.02)
            return
        if self.mode in ("cut", "error"):
            for delta in DELTAS[:2]:
                await resp.write(chunk(delta))
                await asyncio.sleep(0.02)
            if self.mode == "cut":
                assert request.transport is not None
                request.transport.close()  # the connection drops mid-stream
                await asyncio.sleep(0.05)
                return
            await resp.write(event({"error": {"message": "CUDA out of memory", "code": 500}}))
            await resp.write(b"data: [DONE]\n\n")
            return
        for i, delta in enumerate(DELTAS):
            data = chunk(delta)
            if i == 1:
                # one event split across two writes, and even inside a UTF-8 character
                await resp.write(data[:7])
                await asyncio.sleep(0.02)
                await resp.write(data[7:])
            elif i == 3:
                raw = data.replace(b"\n\n", b"\r\n\r\n")  # CRLF line ends, split at the CR
                cut = raw.index("☕".encode()) + 1
                await resp.write(b"event: message\nid: 7\n" + raw[:cut])
                await asyncio.sleep(0.02)
                await resp.write(raw[cut:])
            else:
                await resp.write(data)
            await asyncio.sleep(0.01)
        await resp.write(chunk(finish="stop"))
        await resp.write(event({"choices": [], "usage": {"total_tokens": 12}}))
        await resp.write(b"data: [DONE]\n\n")


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    s = FakeServer()
    await s.start()
    yield s
    await s.stop()


def make_brain(server: FakeServer, **tuning: float) -> OpenAIChatBrain:
    params: dict = dict(
        connect_timeout=0.5,
        first_token_timeout=0.2,
        idle_timeout=0.2,
        total_timeout=3.0,
        retries=2,
        backoff_base=0.02,
        failure_threshold=3,
        open_seconds=0.3,
    )
    params.update(tuning)
    return OpenAIChatBrain(
        server.url,
        "test-model",
        SecretStr(KEY),
        lambda turn: [{"role": "user", "content": turn.message.text}],
        CatalogBrain(CatalogBrainConfig()),
        **params,
    )


def ask(text: str = QUESTION, lang: str = "en", turn_id: int = 1) -> Turn:
    return Turn(turn_id, "answer", ChatMessage("test", "viewer", text), lang=lang)


async def collect(brain: OpenAIChatBrain, turn: Turn) -> list[str]:
    return [delta async for delta in brain.reply(turn)]


async def test_streams_deltas_in_order_and_sends_the_request(server):
    brain = make_brain(server)
    try:
        deltas = await collect(brain, ask())
    finally:
        await brain.close()
    assert "".join(deltas) == TEXT
    assert deltas == DELTAS  # one delta per event, none merged or lost
    headers, body = server.requests[0]
    assert body["model"] == "test-model"
    assert body["messages"] == [{"role": "user", "content": QUESTION}]
    assert body["stream"] is True
    assert body["temperature"] == 0.7 and body["max_tokens"] == 160
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert brain.state == "closed" and brain.failures == 0 and brain.fallbacks == 0


@pytest.mark.parametrize("mode", ["stall_headers", "stall_body"])
async def test_stall_before_first_token_retries_then_falls_back(server, mode):
    server.mode = mode
    brain = make_brain(server)
    start = time.perf_counter()
    try:
        text = "".join(await collect(brain, ask()))
    finally:
        await brain.close()
    elapsed = time.perf_counter() - start
    assert PRICE in text  # the catalog's own answer
    assert len(server.requests) == 3  # the first try and two retries
    # three first-token limits of 0.2 s plus two short backoffs, and some slack
    assert 0.6 <= elapsed < 1.5
    assert brain.fallbacks == 1 and brain.failures == 1


@pytest.mark.parametrize("mode", ["cut", "error"])
async def test_failure_mid_stream_closes_the_sentence(server, mode):
    server.mode = mode
    brain = make_brain(server)
    try:
        deltas = await collect(brain, ask())
    finally:
        await brain.close()
    assert deltas[:2] == DELTAS[:2]
    # the partial text ends in a space already, so the closing does not add another
    assert "".join(deltas) == "The grinder is " + CLOSING_EN.lstrip()
    assert len(server.requests) == 1  # no retry once words are out
    assert brain.failures == 1 and brain.fallbacks == 0


async def test_failure_mid_stream_in_chinese_closes_in_chinese(server):
    server.mode = "cut"
    brain = make_brain(server)
    try:
        deltas = await collect(brain, ask("磨豆机多少钱？", lang="zh"))
    finally:
        await brain.close()
    assert deltas[-1] == CLOSING_ZH


@pytest.mark.parametrize("mode", ["json", "no_done"])
async def test_tolerated_variants_of_the_protocol(server, mode):
    server.mode = mode
    brain = make_brain(server)
    try:
        assert "".join(await collect(brain, ask())) == TEXT
    finally:
        await brain.close()
    assert brain.failures == 0 and len(server.requests) == 1


async def test_an_empty_reply_falls_back(server):
    server.mode = "empty"
    brain = make_brain(server, retries=0)
    try:
        assert PRICE in "".join(await collect(brain, ask()))
    finally:
        await brain.close()
    assert brain.failures == 1 and brain.fallbacks == 1


def test_closing_only_when_the_sentence_is_unfinished():
    assert closing_for("It costs", "en") == CLOSING_EN == " Sorry, let me get back to you on that."
    assert closing_for("It costs ", "en") == CLOSING_EN.lstrip()
    assert closing_for("It is $89.99!", "en") == ""
    assert closing_for('She said "great."  ', "en") == ""
    assert closing_for("价格是", "zh") == CLOSING_ZH
    assert closing_for("价格是89美元。", "zh") == ""


async def test_http_500_falls_back_to_the_catalog(server, caplog):
    server.mode = "http500"
    brain = make_brain(server)
    with caplog.at_level(logging.WARNING, logger="streambot.brain.openai_api"):
        try:
            text = "".join(await collect(brain, ask()))
        finally:
            await brain.close()
    assert PRICE in text
    assert len(server.requests) == 3  # 5xx is worth retrying
    assert "HTTP 500" in caplog.text and "engine dead" in caplog.text
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1  # one line per failed turn, not per attempt


async def test_circuit_opens_then_a_half_open_trial_closes_it(server):
    server.mode = "http500"
    brain = make_brain(server, retries=0, failure_threshold=2, open_seconds=0.3)
    try:
        for turn_id in (1, 2):
            assert PRICE in "".join(await collect(brain, ask(turn_id=turn_id)))
        assert brain.state == "open" and len(server.requests) == 2

        # while open, turns go straight to the catalog without touching the server
        assert PRICE in "".join(await collect(brain, ask(turn_id=3)))
        assert len(server.requests) == 2 and brain.fallbacks == 3

        # a failed trial opens it again
        await asyncio.sleep(0.35)
        assert brain.state == "half-open"
        assert PRICE in "".join(await collect(brain, ask(turn_id=4)))
        assert len(server.requests) == 3 and brain.state == "open"

        # a successful trial closes it
        await asyncio.sleep(0.35)
        server.mode = "ok"
        assert "".join(await collect(brain, ask(turn_id=5))) == TEXT
        assert brain.state == "closed" and brain.consecutive_failures == 0
        assert len(server.requests) == 4 and brain.failures == 3 and brain.fallbacks == 4
    finally:
        await brain.close()


async def test_cancelling_the_consumer_closes_the_connection(server):
    server.mode = "slow"
    brain = make_brain(server, idle_timeout=1.0, total_timeout=10.0)
    got_two = asyncio.Event()

    async def consume() -> None:
        n = 0
        async for _ in brain.reply(ask()):
            n += 1
            if n == 2:
                got_two.set()

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(got_two.wait(), 2.0)
        left = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.disconnected.wait(), 1.0)
        assert time.perf_counter() - left < 1.0
        assert brain.failures == 0 and brain.state == "closed"  # leaving is not a failure
    finally:
        await brain.close()


async def test_a_consumer_that_breaks_off_and_closes_the_stream(server):
    server.mode = "slow"
    brain = make_brain(server, idle_timeout=1.0, total_timeout=10.0)
    try:
        stream = brain.reply(ask())
        async for delta in stream:
            assert delta.startswith("word")
            break
        await stream.aclose()
        await asyncio.wait_for(server.disconnected.wait(), 1.0)
    finally:
        await brain.close()


async def test_the_api_key_never_reaches_the_log(server, caplog):
    caplog.set_level(logging.DEBUG)
    requests = {}
    for mode in ("http401", "http500", "stall_body", "cut", "error"):
        server.mode = mode
        before = len(server.requests)
        brain = make_brain(server, retries=1)
        try:
            await collect(brain, ask())
        finally:
            await brain.close()
        requests[mode] = len(server.requests) - before
    assert "invalid credentials" in caplog.text  # the echoing body was logged...
    assert KEY not in caplog.text  # ...with the key taken out
    assert "SECRET" not in caplog.text
    assert requests["http401"] == 1  # a bad key is not retried: it will not get better
    assert requests["http500"] == 2


async def test_a_slow_consumer_does_not_count_as_a_stalled_server(server):
    brain = make_brain(server, idle_timeout=0.1, total_timeout=0.5)
    try:
        deltas = []
        async for delta in brain.reply(ask()):
            deltas.append(delta)
            await asyncio.sleep(0.15)  # longer than the idle limit, like a busy voice
    finally:
        await brain.close()
    assert "".join(deltas) == TEXT
    assert brain.failures == 0


async def test_pitch_topics_come_from_the_fallback(server):
    brain = make_brain(server)
    assert brain.pitch_topics() == CatalogBrain(CatalogBrainConfig()).pitch_topics()
    assert brain.state == "closed"
    await brain.close()


async def test_unreachable_server_falls_back_quickly():
    brain = OpenAIChatBrain(
        "http://127.0.0.1:9/v1",  # discard port: nothing listens
        "m",
        None,
        lambda turn: [{"role": "user", "content": turn.message.text}],
        CatalogBrain(CatalogBrainConfig()),
        connect_timeout=0.2,
        first_token_timeout=0.3,
        retries=1,
        backoff_base=0.01,
    )
    start = time.perf_counter()
    try:
        text = "".join(await collect(brain, ask()))
    finally:
        await brain.close()
    assert PRICE in text and time.perf_counter() - start < 1.5
    assert brain.requests == 2 and brain.fallbacks == 1


def test_sse_parser_handles_the_wire_format_byte_by_byte():
    wire = (
        ": comment\r\n"
        "retry: 1000\r\n"
        'data: {"a": "磨豆"}\r\n\r\n'
        "event: error\rdata: line1\rdata: line2\r\r"
        "id: 3\ndata:no-space\n\n"
        "data: [DONE]\n\n"
        "data: unfinished"
    ).encode()
    parser = SSEParser()
    events = [e for i in range(len(wire)) for e in parser.feed(wire[i : i + 1])]
    assert [(e.event, e.data) for e in events] == [
        ("message", '{"a": "磨豆"}'),
        ("error", "line1\nline2"),
        ("message", "no-space"),
        ("message", "[DONE]"),
    ]


async def test_after_the_answer_first_the_server_is_asked_to_continue(server):
    brain = make_brain(server)
    first = "The AeroBrew Coffee Grinder is $89.99."
    try:
        text = "".join([d async for d in brain.reply(ask(), prefill=first)])
    finally:
        await brain.close()
    assert text == TEXT  # only what the server added: the answer was said already
    messages = server.requests[0][1]["messages"]
    assert messages[-2:] == [
        {"role": "assistant", "content": first},
        {"role": "user", "content": CONTINUE_EN},
    ]


@pytest.mark.parametrize("mode", ["empty", "http500"])
async def test_after_the_answer_first_nothing_or_a_failure_adds_nothing(server, mode):
    server.mode = mode
    brain = make_brain(server, retries=0)
    try:
        text = "".join([d async for d in brain.reply(ask(), prefill="The grinder is $89.99.")])
    finally:
        await brain.close()
    assert text == "" and brain.fallbacks == 0  # the catalog's answer is not said twice
