"""A brain backed by any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp server).

The stream never stops mid-sentence and never goes silent: a server that fails or stalls
before its first word is retried, and then the fallback brain (the catalog) answers instead;
a server that breaks after some words gets a short closing sentence appended. A circuit
breaker stops contacting a server that keeps failing, so a dead backend costs no latency.

Timeouts are counted in *server time*: the time this brain spends waiting for the server,
not the time the consumer holds a yielded delta (the host applies backpressure while the
voice speaks, and that must not look like a stalled server).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from streambot.brain.base import Brain
from streambot.circuit import CircuitBreaker, CircuitState
from streambot.http_session import LazySession
from streambot.remote import RemoteFailure, ResilientStream, RetryPolicy, retryable_status
from streambot.sentences import ends_sentence
from streambot.turn import Turn

log = logging.getLogger(__name__)

CLOSING_EN = " Sorry, let me get back to you on that."
CLOSING_ZH = "抱歉，我稍后再回答。"

_MAX_SSE_LINE = 1 << 20  # a server that never ends a line is broken, not slow
_SNIPPET_CHARS = 200


def closing_for(text: str, lang: str) -> str:
    """The words that end a broken reply without stopping mid-sentence ("" if not needed)."""
    if ends_sentence(text):
        return ""
    if lang == "zh":
        return CLOSING_ZH
    # the closing brings its own space; do not double one the partial text already has
    return CLOSING_EN.lstrip() if text[-1:].isspace() else CLOSING_EN


CONTINUE_EN = (
    "You have said the above already; it is spoken. Add at most one short sentence that says "
    "something new and useful, without repeating it, or reply with nothing."
)
CONTINUE_ZH = (
    "上面的话你已经说过了。请最多再补充一句新的、有用的话，不要重复；没有要补充的就什么都不说。"
)


def continuation_messages(said: str, lang: str) -> list[dict[str, str]]:
    """What follows the chat when ``said`` (the catalog's answer) was spoken first: it as the
    assistant's message, and a note asking only for what to add (no server-side prefill)."""
    note = CONTINUE_ZH if lang == "zh" else CONTINUE_EN
    return [{"role": "assistant", "content": said}, {"role": "user", "content": note}]


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event`` type ("message" unless named) and its data."""

    event: str
    data: str


class SSEParser:
    """Incremental parser of the ``text/event-stream`` wire format.

    Feed it network chunks as they come; it returns the events that a blank line completed.
    Lines may end in CRLF, LF or CR, a chunk may split a line, a CRLF pair or a UTF-8
    character anywhere, comment lines (``:``) and unknown fields are ignored, and several
    ``data`` lines of one event are joined with newlines, all as the HTML standard says.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += self._decoder.decode(chunk)
        events: list[SSEEvent] = []
        pos = 0
        while True:
            cr, lf = self._buffer.find("\r", pos), self._buffer.find("\n", pos)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr + 1 == len(self._buffer):
                    break  # may be the first half of a CRLF split across chunks
                end, nxt = cr, cr + 2 if self._buffer[cr + 1] == "\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            event = self._line(self._buffer[pos:end])
            if event is not None:
                events.append(event)
            pos = nxt
        self._buffer = self._buffer[pos:]
        if len(self._buffer) > _MAX_SSE_LINE:
            raise ValueError(f"event-stream line longer than {_MAX_SSE_LINE} characters")
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:  # a blank line dispatches the event gathered so far
            event = (
                SSEEvent(self._event or "message", "\n".join(self._data)) if self._data else None
            )
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None  # a comment, such as a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "error":
            # llama.cpp's server reports a failure mid-stream as an "error:" line
            self._event, self._data = "error", [*self._data, value]
        return None  # id, retry and unknown fields do not matter here


class _ServerClock:
    """Seconds this turn has spent waiting on the server (time held by the consumer excluded)."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.held = 0.0

    def now(self) -> float:
        return time.monotonic() - self._start - self.held


class _ReadBudget:
    """How long the next wait on the server may take: before the first word the first-token
    limit, after it the idle gap, and never past the total limit."""

    def __init__(self, first: float, idle: float, total: float, clock: _ServerClock) -> None:
        self.idle, self.total, self.clock = idle, total, clock
        self.first, self.first_deadline = first, clock.now() + first
        self.got_text = False

    def limit(self) -> contextlib.AbstractAsyncContextManager[None]:
        total_left = self.total - self.clock.now()
        if self.got_text:
            step, why = self.idle, f"stalled for {self.idle:g} s"
        else:
            step = self.first_deadline - self.clock.now()
            why = f"no first token within {self.first:g} s"
        if total_left < step:
            return _limit(total_left, f"over the total limit of {self.total:g} s")
        return _limit(step, why)


@contextlib.asynccontextmanager
async def _limit(seconds: float, reason: str) -> AsyncIterator[None]:
    """Run the body within ``seconds``, turning this limit's own expiry into a failure."""
    if seconds <= 0:
        raise RemoteFailure(reason)
    cm = asyncio.timeout(seconds)
    try:
        async with cm:
            yield
    except TimeoutError:
        if cm.expired():
            raise RemoteFailure(reason) from None
        raise  # someone else's timeout, such as aiohttp's connect timeout


def _snippet(text: str) -> str:
    """A short one-line excerpt of an error body for the log."""
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "..."


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("msg") or error)
    return str(error)


class OpenAIChatBrain:
    """The Brain role against an OpenAI-compatible ``/chat/completions`` endpoint.

    ``reply(turn)`` streams the server's text deltas; see the module docstring for what
    happens when the server fails. ``state`` is the circuit breaker's state, ``failures``
    counts turns the server failed (``consecutive_failures`` the current run of them),
    ``fallbacks`` counts turns answered by the fallback brain and ``requests`` the HTTP
    requests made. Call ``close()`` when done, to close the shared HTTP session.

    A consumer that stops early should ``aclose()`` the reply stream (or cancel the task
    iterating it): that closes the HTTP response at once, and the server stops generating.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None,
        build_messages: Callable[[Turn], list[dict[str, str]]],
        fallback: Brain,
        *,
        temperature: float = 0.7,
        max_tokens: int = 160,
        connect_timeout: float = 2.0,
        first_token_timeout: float = 4.0,
        idle_timeout: float = 3.0,
        total_timeout: float = 20.0,
        retries: int = 2,
        backoff_base: float = 0.25,
        backoff_max: float = 2.0,
        failure_threshold: int = 3,
        open_seconds: float = 30.0,
    ) -> None:
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("first_token_timeout", first_token_timeout),
            ("idle_timeout", idle_timeout),
            ("total_timeout", total_timeout),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if retries < 0 or failure_threshold < 1 or open_seconds < 0 or max_tokens < 1:
            raise ValueError(
                "retries >= 0, failure_threshold >= 1, max_tokens >= 1 and "
                "open_seconds >= 0 are required"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self._build_messages = build_messages
        self.fallback = fallback
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.connect_timeout = connect_timeout
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self.retry = RetryPolicy(retries, backoff_base, backoff_max)
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds

        self.circuit = CircuitBreaker(
            "LLM", failure_threshold, open_seconds, "the fallback brain answers"
        )
        self.fallbacks = 0
        self.requests = 0
        self.session = LazySession(connect_timeout)

    # -- the Brain role ----------------------------------------------------------------

    def pitch_topics(self) -> list[str]:
        return self.fallback.pitch_topics()

    async def reply(self, turn: Turn, prefill: str = "") -> AsyncGenerator[str, None]:
        """Yield the server's reply to ``turn`` as text deltas, or the fallback's.

        ``prefill``: what was said first (the catalog's answer). Not every server continues
        a pre-filled assistant message, so it goes in as the assistant's message, with a note
        asking for what to add after it; the server may add nothing, and where it fails the
        answer has been given already (no fallback)."""
        admitted, trial = self._admit()
        if not admitted:
            log.debug("turn %d: circuit %s, answering from the fallback brain", turn.id, self.state)
            async for delta in self._fallback_reply(turn, prefill):
                yield delta
            return
        try:
            messages = self._build_messages(turn)
            if prefill:
                messages = [*messages, *continuation_messages(prefill, turn.lang)]
        except Exception:
            # a bug in the prompt code must not silence the stream; it is not the server's fault
            log.exception("turn %d: building the chat messages failed; using the fallback", turn.id)
            self.circuit.abandon()
            async for delta in self._fallback_reply(turn, prefill):
                yield delta
            return

        clock = _ServerClock()

        async def attempt() -> AsyncGenerator[str, None]:
            said = False
            async for delta in self._attempt(messages, clock):
                said = said or bool(delta)
                yield delta
            if not said and not prefill:  # after the answer, nothing is a reply
                raise RemoteFailure("the server's reply was empty")

        stream = ResilientStream(
            attempt,
            self.retry,
            self.circuit,
            trial,
            name=f"turn {turn.id}: the LLM server",
            time_left=lambda delay: clock.now() + delay < self.total_timeout,
            redact=self._redact,
        )
        text = ""
        async with contextlib.aclosing(stream.items()) as deltas:
            async for delta in deltas:
                text += delta
                yield delta
        if stream.outcome == "broken" and (closing := closing_for(text, turn.lang)):
            yield closing  # some words are out: the sentence is closed, not left hanging
        elif stream.outcome == "failed":
            async for delta in self._fallback_reply(turn, prefill):
                yield delta

    # -- circuit breaker ---------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self.circuit.state

    @property
    def failures(self) -> int:
        return self.circuit.failures

    @property
    def consecutive_failures(self) -> int:
        return self.circuit.consecutive_failures

    def _admit(self) -> tuple[bool, bool]:
        return self.circuit.admit()

    def _record(self, *, success: bool) -> None:
        self.circuit.record(success=success)

    async def _fallback_reply(self, turn: Turn, prefill: str = "") -> AsyncIterator[str]:
        if prefill:  # the answer was said first: nothing to add
            return
        self.fallbacks += 1
        stream = self.fallback.reply(turn)
        try:
            async for delta in stream:
                yield delta
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    # -- HTTP ----------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        return self.session.get()

    async def close(self) -> None:
        """Close the shared HTTP session (a later reply opens a new one)."""
        await self.session.close()

    async def __aenter__(self) -> OpenAIChatBrain:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def _redact(self, text: str) -> str:
        """Drop the API key from text bound for the log (an error body may echo it)."""
        key = self._api_key.get_secret_value() if self._api_key is not None else ""
        return text.replace(key, "***") if key else text

    async def _attempt(
        self, messages: list[dict[str, str]], clock: _ServerClock
    ) -> AsyncIterator[str]:
        """One request: yield its content deltas; raise ``RemoteFailure`` unless it ends cleanly."""
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        budget = _ReadBudget(self.first_token_timeout, self.idle_timeout, self.total_timeout, clock)
        self.requests += 1
        try:
            async with budget.limit():
                resp = await self._get_session().post(self.url, json=body, headers=self._headers())
        except aiohttp.ClientError as exc:
            raise RemoteFailure(
                f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}"
            ) from None
        clean = False
        try:
            try:
                if resp.status != 200:
                    async with budget.limit():
                        raw = await resp.content.read(4096)
                    snippet = _snippet(raw.decode("utf-8", "replace"))
                    retryable = retryable_status(resp.status)
                    raise RemoteFailure(f"HTTP {resp.status}: {snippet}", retryable=retryable)
                if resp.content_type == "application/json":
                    # a server that ignored "stream": answer with the whole message at once
                    async with budget.limit():
                        raw = await resp.content.read()
                    content = self._whole_message(raw)
                    clean = True
                    yield content
                    return
                async for delta in self._deltas(resp, budget):
                    budget.got_text = True
                    held_from = time.monotonic()
                    yield delta
                    clock.held += time.monotonic() - held_from
                clean = True
            except aiohttp.ClientError as exc:
                raise RemoteFailure(f"connection lost: {exc.__class__.__name__}: {exc}") from None
            except ValueError as exc:  # bad JSON or an endless line
                raise RemoteFailure(f"bad stream: {exc}") from None
        finally:
            # close, not release, unless the stream ended: the server should stop generating
            if clean:
                resp.release()
            else:
                resp.close()

    async def _deltas(
        self, resp: aiohttp.ClientResponse, budget: _ReadBudget
    ) -> AsyncIterator[str]:
        """The text deltas of a streamed answer, to its end ([DONE], or a finish_reason and
        the connection closed: some servers omit [DONE]); an early close is a failure."""
        parser = SSEParser()
        finished = False
        while True:
            async with budget.limit():
                chunk = await resp.content.readany()
            if not chunk:
                if finished:
                    return
                raise RemoteFailure("the connection closed before the end of the stream")
            for event in parser.feed(chunk):
                delta, done, finish = self._parse_event(event)
                finished = finished or done or finish
                if done:
                    return
                if delta:
                    yield delta

    @staticmethod
    def _parse_event(event: SSEEvent) -> tuple[str, bool, bool]:
        """(text delta, [DONE], finish_reason seen) of one event; raises on error events."""
        if event.data.strip() == "[DONE]":
            return "", True, False
        payload = json.loads(event.data) if event.data.strip() else {}
        if event.event == "error" or (isinstance(payload, dict) and "error" in payload):
            error = payload.get("error", payload) if isinstance(payload, dict) else payload
            raise RemoteFailure(f"server error mid-stream: {_snippet(_error_message(error))}")
        if not isinstance(payload, dict):
            raise ValueError(f"unexpected event data: {_snippet(event.data)}")
        choices = payload.get("choices") or []  # e.g. a final usage-only chunk has none
        if not choices or not isinstance(choices[0], dict):
            return "", False, False
        choice = choices[0]
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        return (
            (content if isinstance(content, str) else ""),
            False,
            bool(choice.get("finish_reason")),
        )

    @staticmethod
    def _whole_message(raw: bytes) -> str:
        """The content of a non-streamed completion; raises ``RemoteFailure`` on anything else."""
        try:
            payload = json.loads(raw)
            if "error" in payload:
                raise RemoteFailure(f"server error: {_snippet(_error_message(payload['error']))}")
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            raise RemoteFailure(
                f"unexpected JSON reply: {_snippet(raw.decode('utf-8', 'replace'))}"
            ) from None
        if not isinstance(content, str) or not content:
            raise RemoteFailure("the server's reply was empty")
        return content
