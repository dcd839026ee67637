"""A voice spoken by a TTS server with an OpenAI-compatible ``POST /v1/audio/speech``: a cloned
voice from CosyVoice, GPT-SoVITS or Fish Speech front-ends, or OpenAI itself.

Each sentence is one request (its prices and units rewritten as words first); the audio is
read as it arrives, raw 16-bit PCM or WAV, and handed on piece by piece at the server's rate
(the host resamples it to the pipeline's). The stream never waits long on a server: no audio
within ``first_byte_timeout`` or a stall longer than ``idle_timeout`` is a failure, retried
before any audio was handed on, and then the sentence is spoken by the local voice. A circuit
breaker stops asking a server that keeps failing and tries it again after ``open_seconds``.
A server that breaks off mid-sentence ends that sentence where it broke (its audio cannot be
taken back). Timeouts count the time spent waiting for the server, not the time the host
holds a piece (it applies backpressure while the face renders).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import numpy as np
from pydantic import SecretStr

from streambot.backoff import capped_exponential, equal_jitter
from streambot.circuit import CircuitBreaker
from streambot.http_session import LazySession
from streambot.logs import redact
from streambot.voice.audio_stream import AudioFormatError, PcmStream, WavStream
from streambot.voice.base import AudioPiece, Voice, pieces_of
from streambot.voice.normalize import normalize_text
from streambot.voice.resample import resample

log = logging.getLogger(__name__)
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
MIN_PIECE_S = 0.02  # pieces shorter than this wait for more (a 3-byte network chunk is no piece)


class _Failure(Exception):
    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.retryable = retryable


def speakable(text: str, lang: str | None) -> str:
    """What the server is asked to say: prices, ranges and units as words in English text
    (a Chinese server front-end reads Chinese numbers itself)."""
    return text if lang == "zh" else normalize_text(text)


class HttpSpeechVoice:
    def __init__(
        self,
        base_url: str,
        model: str,
        voice: str,
        api_key: SecretStr | None,
        fallback: Voice,
        *,
        response_format: str = "pcm",
        pcm_rate: int = 24_000,
        speed: float = 1.0,
        extra: Mapping[str, Any] | None = None,
        connect_timeout: float = 2.0,
        first_byte_timeout: float = 4.0,
        idle_timeout: float = 2.0,
        total_timeout: float = 30.0,
        retries: int = 1,
        backoff_base: float = 0.2,
        backoff_max: float = 1.0,
        failure_threshold: int = 3,
        open_seconds: float = 30.0,
    ) -> None:
        if response_format not in ("pcm", "wav"):
            raise ValueError(f"response_format must be pcm or wav, not {response_format!r}")
        self.url = base_url.rstrip("/") + "/audio/speech"
        self.model, self.voice, self.speed = model, voice, speed
        self.response_format, self.pcm_rate = response_format, pcm_rate
        self.extra = dict(extra or {})
        self._api_key = api_key
        self.fallback = fallback
        self.sample_rate = pcm_rate if response_format == "pcm" else fallback.sample_rate
        self.connect_timeout, self.first_byte_timeout = connect_timeout, first_byte_timeout
        self.idle_timeout, self.total_timeout = idle_timeout, total_timeout
        self.retries, self.backoff_base, self.backoff_max = retries, backoff_base, backoff_max
        self.circuit = CircuitBreaker("TTS server", failure_threshold, open_seconds,
                                      "the local voice speaks")  # fmt: skip
        self.requests = 0
        self.fallbacks = 0  # sentences the local voice spoke instead
        self.broken_off = 0  # sentences the server broke off after some audio
        self.session = LazySession(connect_timeout)

    # -- the Voice role -------------------------------------------------------------------
    async def speak(self, text: str, lang: str | None = None) -> AsyncIterator[np.ndarray]:
        """The sentence's whole audio at ``sample_rate``."""
        pieces = [resample(p.pcm, p.rate, self.sample_rate)
                  async for p in self.speak_pieces(text, lang)]  # fmt: skip
        if pieces:
            yield np.concatenate(pieces)

    async def speak_pieces(self, text: str, lang: str | None = None) -> AsyncIterator[AudioPiece]:
        """The sentence's audio as it arrives from the server, else from the local voice."""
        if not text.strip():
            return
        admitted, trial = self.circuit.admit()
        if not admitted:
            async for piece in self._fallback(text, lang):
                yield piece
            return
        body = self._body(speakable(text, lang))
        attempts = 1 if trial else self.retries + 1
        reason = ""
        for attempt in range(1, attempts + 1):
            rate: int | None = None  # the rate of the audio handed on, once there is some
            try:
                async with contextlib.aclosing(self._request(body)) as request:
                    async for piece in request:
                        rate = piece.rate
                        yield piece
                self.circuit.record(success=True)
                return
            except _Failure as exc:
                reason = str(exc)
                if rate is not None:  # audio was handed on: end the sentence where it broke
                    self.broken_off += 1
                    self.circuit.record(success=False)
                    log.warning("TTS server broke off a sentence: %s", redact(reason))
                    yield AudioPiece(np.zeros(0, np.float32), rate, True)
                    return
                if not exc.retryable or attempt == attempts:
                    break
                log.info("TTS request failed (%s); retrying", redact(reason))
                await asyncio.sleep(self._backoff(attempt))
            except (asyncio.CancelledError, GeneratorExit):
                self.circuit.abandon()  # the host left (an interruption): proves nothing
                raise
        self.circuit.record(success=False)
        log.warning("TTS server failed (%s); the local voice speaks this sentence", redact(reason))
        async for piece in self._fallback(text, lang):
            yield piece

    def _backoff(self, attempt: int) -> float:
        return equal_jitter(capped_exponential(attempt - 1, self.backoff_base, self.backoff_max))

    async def _fallback(self, text: str, lang: str | None) -> AsyncIterator[AudioPiece]:
        self.fallbacks += 1
        async for piece in pieces_of(self.fallback, text, lang):
            yield piece

    # -- HTTP -----------------------------------------------------------------------------
    def _body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra,
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": self.response_format,
        }
        if self.speed != 1.0:
            body["speed"] = self.speed
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    async def close(self) -> None:
        await self.session.close()

    async def _request(self, body: dict[str, Any]) -> AsyncIterator[AudioPiece]:
        """One request's audio, piece by piece; _Failure says what went wrong."""
        self.requests += 1
        waited = 0.0  # seconds spent waiting for the server (the total budget)

        async def wait(awaitable, limit: float, why: str):
            nonlocal waited
            left = self.total_timeout - waited
            step, what = (limit, why) if limit <= left else (left, "over the total limit")
            began = time.monotonic()
            try:
                async with asyncio.timeout(max(step, 0.0)):
                    return await awaitable
            except TimeoutError:
                raise _Failure(f"{what} ({step:.1f} s)") from None
            finally:
                waited += time.monotonic() - began

        session = self.session.get()
        first = f"no audio within {self.first_byte_timeout:g} s"
        try:
            resp = await wait(session.post(self.url, data=json.dumps(body, ensure_ascii=False),
                                           headers=self._headers()), self.first_byte_timeout,
                              first)  # fmt: skip
        except aiohttp.ClientError as exc:
            raise _Failure(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from None
        async with resp:
            if resp.status != 200:
                raw = await wait(resp.content.read(4096), self.idle_timeout, "error body stalled")
                retryable = resp.status >= 500 or resp.status in _RETRYABLE_STATUS
                raise _Failure(f"HTTP {resp.status}: {_error_text(raw)}", retryable=retryable)
            if resp.content_type in ("application/json", "text/plain", "text/html"):
                raw = await wait(resp.content.read(4096), self.idle_timeout, "body stalled")
                raise _Failure(f"HTTP 200 but {resp.content_type}, not audio: {_error_text(raw)}")
            decoder = WavStream() if self.response_format == "wav" else PcmStream(self.pcm_rate)
            held = np.zeros(0, np.float32)
            got_audio = False
            while True:
                limit, why = ((self.idle_timeout, "the audio stalled") if got_audio
                              else (self.first_byte_timeout, first))  # fmt: skip
                try:
                    chunk = await wait(resp.content.readany(), limit, why)
                except aiohttp.ClientError as exc:
                    raise _Failure(f"connection lost: {type(exc).__name__}: {exc}") from None
                try:
                    samples = decoder.finish() if not chunk else decoder.feed(chunk)
                except AudioFormatError as exc:
                    raise _Failure(f"bad audio: {exc}", retryable=False) from None
                held = np.concatenate([held, samples]) if held.size else samples
                rate = decoder.rate or self.pcm_rate
                if not chunk:
                    if not got_audio and not held.size:
                        raise _Failure("the server sent no audio")
                    yield AudioPiece(held, rate, True)
                    return
                if held.size >= MIN_PIECE_S * rate:
                    got_audio = True
                    yield AudioPiece(held, rate, False)
                    held = np.zeros(0, np.float32)


def _error_text(raw: bytes) -> str:
    """An error body, short: OpenAI's ``{"error": {"message": ...}}`` or its first 200 chars."""
    text = raw.decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
    except (ValueError, AttributeError):
        pass
    text = " ".join(text.split())
    return redact(text[:200] + ("…" if len(text) > 200 else ""))
