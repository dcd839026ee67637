"""A voice spoken by a TTS server with an OpenAI-compatible ``POST /v1/audio/speech``: a cloned
voice from CosyVoice, GPT-SoVITS or Fish Speech front-ends, or OpenAI itself.

Each sentence is one request (its prices and units rewritten as words first); the audio is
read as it arrives, WAV or raw 16-bit PCM (at the rate the server states), and handed on
piece by piece at the server's rate (the host resamples it to the pipeline's). The stream
never waits long on a server: no audio (a piece of real samples, not a byte) within
``first_byte_timeout`` of the request, or none for ``idle_timeout`` after it, is a failure,
retried before any audio was handed on, and then the sentence is spoken by the local voice;
so is audio that is not finite or far beyond full scale. A circuit breaker stops asking a
server that keeps failing and tries it again after ``open_seconds``. A server that breaks
off mid-sentence ends that sentence where it broke (its audio cannot be taken back), and so
does one that never ends: a sentence's audio is bounded by a length its text could need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp
import numpy as np
from pydantic import SecretStr

from streambot.circuit import CircuitBreaker
from streambot.http_session import LazySession
from streambot.logs import redact
from streambot.remote import RemoteFailure, ResilientStream, RetryPolicy, retryable_status
from streambot.resample import resample
from streambot.text import is_cjk
from streambot.voice.audio_stream import AudioFormatError, WavStream, stated_pcm
from streambot.voice.base import AudioPiece, Voice, pieces_of
from streambot.voice.normalize import normalize_text

log = logging.getLogger(__name__)
MIN_PIECE_S = 0.02  # pieces shorter than this wait for more (a 3-byte network chunk is no piece)


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
        response_format: str = "wav",
        pcm_rate: int = 24_000,
        speed: float = 1.0,
        extra: Mapping[str, Any] | None = None,
        connect_timeout: float = 2.0,
        first_byte_timeout: float = 4.0,
        idle_timeout: float = 2.0,
        total_timeout: float = 30.0,
        max_audio_floor: float = 3.0,
        max_audio_per_char: float = 0.15,
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
        self.max_audio_floor, self.max_audio_per_char = max_audio_floor, max_audio_per_char
        self.retry = RetryPolicy(retries, backoff_base, backoff_max)
        self.circuit = CircuitBreaker(
            "TTS server", failure_threshold, open_seconds, "the local voice speaks"
        )
        self.requests = 0
        self.fallbacks = 0  # sentences the local voice spoke instead
        self.broken_off = 0  # sentences the server broke off after some audio
        self.session = LazySession(connect_timeout)

    # -- the Voice role -------------------------------------------------------------------
    async def speak(self, text: str, lang: str | None = None) -> AsyncGenerator[np.ndarray, None]:
        """The sentence's whole audio at ``sample_rate``."""
        pieces = [
            resample(p.pcm, p.rate, self.sample_rate) async for p in self.speak_pieces(text, lang)
        ]
        if pieces:
            yield np.concatenate(pieces)

    async def speak_pieces(
        self, text: str, lang: str | None = None
    ) -> AsyncGenerator[AudioPiece, None]:
        """The sentence's audio as it arrives from the server, else from the local voice."""
        if not text.strip():
            return
        admitted, trial = self.circuit.admit()
        if not admitted:
            async for piece in self._fallback(text, lang):
                yield piece
            return
        said = speakable(text, lang)
        body, longest = self._body(said), self.longest_audio(said)
        stream = ResilientStream(
            lambda: self._request(body, longest),
            self.retry,
            self.circuit,
            trial,
            name="the TTS server",
            redact=redact,
        )
        rate: int | None = None  # the rate of the audio handed on, once there is some
        async with contextlib.aclosing(stream.items()) as pieces:
            async for piece in pieces:
                rate = piece.rate
                yield piece
        if stream.outcome == "broken" and rate is not None:  # the sentence ends where it broke
            self.broken_off += 1
            yield AudioPiece(np.zeros(0, np.float32), rate, True)
        elif stream.outcome == "failed":
            log.warning("the local voice speaks this sentence")
            async for piece in self._fallback(text, lang):
                yield piece

    def longest_audio(self, text: str) -> float:
        """The most seconds of audio ``text`` can need (see ``[voice.http]
        max_audio_s_per_char``): a CJK ideograph is a syllable, about three letters' time."""
        chars = sum(3 if is_cjk(c) else 1 for c in text)
        return (self.max_audio_floor + self.max_audio_per_char * chars) / self.speed

    def health(self) -> dict[str, Any]:
        """The server as /healthz, /metrics and the panel show it: down while the breaker
        keeps it out (open, or half-open until its trial succeeds)."""
        breaker = self.circuit.state
        return {
            "name": "tts server",
            "backend": "http",
            "state": "up" if breaker == "closed" else "down",
            "breaker": breaker,
            "requests": self.requests,
            "fallbacks": self.fallbacks,
            "broken_off": self.broken_off,
            "failures": self.circuit.failures,
        }

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

    async def _request(
        self, body: dict[str, Any], longest: float
    ) -> AsyncGenerator[AudioPiece, None]:
        """One request's audio, piece by piece, at most ``longest`` seconds of it; RemoteFailure
        says what went wrong."""
        self.requests += 1
        waits = _Waits(self, longest)
        data = json.dumps(body, ensure_ascii=False)
        try:
            resp = await waits.wait(
                self.session.get().post(self.url, data=data, headers=self._headers())
            )
        except aiohttp.ClientError as exc:
            raise RemoteFailure(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from None
        async with resp:
            await _refuse_unless_audio(resp, waits)
            try:
                decoder = (
                    WavStream()
                    if self.response_format == "wav"
                    else stated_pcm(resp.headers, self.pcm_rate)
                )
            except AudioFormatError as exc:
                raise RemoteFailure(f"bad audio: {exc}", retryable=False) from None
            held = np.zeros(0, np.float32)
            received = 0  # samples, handed on or held
            while True:
                try:
                    chunk = await waits.wait(resp.content.readany())
                except aiohttp.ClientError as exc:
                    raise RemoteFailure(f"connection lost: {type(exc).__name__}: {exc}") from None
                try:
                    samples = decoder.finish() if not chunk else decoder.feed(chunk)
                except AudioFormatError as exc:
                    raise RemoteFailure(f"bad audio: {exc}", retryable=False) from None
                rate = decoder.rate or self.pcm_rate
                allowed = max(0, round(longest * rate) - received)
                over = samples.size > allowed
                samples = samples[:allowed]
                received += samples.size
                held = np.concatenate([held, samples]) if held.size else samples
                if not chunk:
                    if not waits.got_audio and not held.size:
                        raise RemoteFailure("the server sent no audio")
                    yield AudioPiece(held, rate, True)
                    return
                if held.size >= MIN_PIECE_S * rate or (over and held.size):
                    waits.audio()
                    yield AudioPiece(held, rate, False)
                    held = np.zeros(0, np.float32)
                if over:  # a stream that never ends (a TTS that missed its end token)
                    raise RemoteFailure(
                        f"the audio ran past {longest:.1f} s, the most its text could need",
                        retryable=False,
                    )


class _Waits:
    """The time limits of one request. Waiting is the time spent awaiting the server, not
    the time the host holds a piece (backpressure while the face renders):

    - the first audio (a piece of real samples: bytes of a header or a trickle do not count)
      within ``first_byte_timeout`` of the request (nothing is handed on before it, so the
      wall clock is all waiting);
    - then ``idle_timeout`` of waiting at most between pieces of audio;
    - ``total_timeout`` of waiting in all;
    - and ``total_timeout`` plus twice the sentence's longest audio from the request, wall
      clock: a backstop for a server that keeps the rest at bay. The host holds the stream
      about as long as it takes to play what is queued ahead (the presenter's buffer, the
      previous sentence, on a slow face up to twice their length) and this sentence itself,
      so backpressure alone stays well inside it; the audio bound (``longest``) does not
      depend on it at all.
    """

    def __init__(self, voice: HttpSpeechVoice, longest: float) -> None:
        self.voice, self.began = voice, time.monotonic()
        self.wall = voice.total_timeout + 2 * longest
        self.waited = 0.0  # in all
        self.since_audio = 0.0  # since the last piece of audio
        self.got_audio = False

    def audio(self) -> None:
        self.got_audio, self.since_audio = True, 0.0

    async def wait(self, awaitable):
        v, now = self.voice, time.monotonic()
        limits = [
            (v.total_timeout - self.waited, f"over the total limit ({v.total_timeout:g} s)"),
            (self.began + self.wall - now, f"past the sentence's {self.wall:.0f} s"),
        ]
        if self.got_audio:
            limits.append(
                (v.idle_timeout - self.since_audio, f"the audio stalled ({v.idle_timeout:g} s)")
            )
        else:
            limits.append(
                (
                    self.began + v.first_byte_timeout - now,
                    f"no audio within {v.first_byte_timeout:g} s",
                )
            )
        step, why = min(limits)
        try:
            async with asyncio.timeout(max(step, 0.0)):
                return await awaitable
        except TimeoutError:
            raise RemoteFailure(why) from None
        finally:
            took = time.monotonic() - now
            self.waited += took
            self.since_audio += took


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


async def _refuse_unless_audio(resp: aiohttp.ClientResponse, waits: _Waits) -> None:
    """A RemoteFailure, with what the server said, for an error status or an answer that is
    not audio (a JSON or HTML error page sent with 200)."""
    if resp.status != 200:
        raw = await waits.wait(resp.content.read(4096))
        retryable = retryable_status(resp.status)
        raise RemoteFailure(f"HTTP {resp.status}: {_error_text(raw)}", retryable=retryable)
    if resp.content_type in ("application/json", "text/plain", "text/html"):
        raw = await waits.wait(resp.content.read(4096))
        raise RemoteFailure(f"HTTP 200 but {resp.content_type}, not audio: {_error_text(raw)}")
