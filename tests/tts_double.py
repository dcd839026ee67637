"""A loopback OpenAI-compatible speech server (``POST /v1/audio/speech``), as strict as the
real one: it checks the JSON body and the key, answers errors with OpenAI's error object, and
streams audio in chunked transfer encoding (or sends it whole with a Content-Length).

It can also behave as the servers that broke the host did: a float WAV of NaN (an fp16
vocoder that overflowed), a stream that never ends (an autoregressive TTS that missed its end
token), a trickle of bytes, and raw PCM at the voice's own rate, stated the way Piper's HTTP
server states it (an ``x-sample-rate`` header) or in the Content-Type (``rate=``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
import time
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

MAX_INPUT = 4096  # OpenAI's limit on "input"


def tone(seconds: float, rate: int, freq: float = 180.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")


def wav_header(rate: int, data_size: int, channels: int = 1, float32: bool = False) -> bytes:
    """A 16-bit PCM (or 32-bit IEEE float) WAV header; ``data_size`` 0xFFFFFFFF for a stream
    of unknown length."""
    riff = 0xFFFFFFFF if data_size == 0xFFFFFFFF else 36 + data_size
    tag, width = (3, 4) if float32 else (1, 2)
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * width * channels, width * channels, 8 * width
    )
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"LIST"
        + struct.pack("<I", 4)
        + b"INFO"  # a chunk to skip, as ffmpeg writes
        + b"data"
        + struct.pack("<I", data_size)
    )


def error(status: int, message: str, kind: str = "invalid_request_error", code=None):
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


@dataclass
class SpeechServer:
    key: str | None = None
    voices: tuple[str, ...] = ("alloy", "my-clone")
    seconds: float = 0.6  # audio per request
    rate: int = 24_000
    chunk_ms: int = 40
    chunk_delay_s: float = 0.0
    chunk_bytes: int = 0  # bytes per chunk instead of chunk_ms of audio (2: a trickle)
    first_chunk_ms: int = 0  # the first chunk: this much audio (after a WAV's header)
    mode: str = "stream"  # stream | whole | break | json200 | endless (the tone, repeated)
    float_wav: bool = False  # wav as 32-bit float samples, times gain (nan: all NaN)
    gain: float = 1.0
    states_rate: str = ""  # pcm's rate stated in an x-sample-rate "header" | "content-type"
    first_byte_delay_s: float = 0.0
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before audio
    requests: list[dict] = field(default_factory=list)
    first_chunk_at: list[float] = field(default_factory=list)  # server's perf_counter
    received_at: list[float] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set: hold the rest after the first chunk

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        self.received_at.append(time.perf_counter())
        wanted = f"Bearer {self.key}"
        if self.key is not None and request.headers.get("Authorization") != wanted:
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        if request.content_type != "application/json":
            return error(400, "Unsupported content type; send application/json.")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        self.requests.append(body)
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            return error(400, "'input' is a required property", code=None)
        if len(text) > MAX_INPUT:
            return error(400, f"'input' is longer than {MAX_INPUT} characters")
        if body.get("voice") not in self.voices:
            return error(400, f"Invalid voice {body.get('voice')!r}")
        fmt = body.get("response_format", "mp3")
        if fmt not in ("pcm", "wav"):
            return error(400, f"this server sends pcm or wav, not {fmt!r}")
        if self.fail_next:
            status = self.fail_next.pop(0)
            if status >= 500:
                return error(
                    status,
                    "The server had an error while processing your request.",
                    kind="server_error",
                )
            return error(status, "Rate limit reached." if status == 429 else "Bad request.")
        if self.first_byte_delay_s:
            await asyncio.sleep(self.first_byte_delay_s)
        samples = tone(self.seconds, self.rate)
        if fmt == "wav" and self.float_wav:
            samples = (samples.astype(np.float32) / 32768.0 * self.gain).astype("<f4")
        samples = samples.tobytes()
        if self.mode == "json200":
            return web.json_response({"error": {"message": "model is loading"}})
        headers: dict[str, str] = {}
        if fmt == "wav":
            size = len(samples) if self.mode == "whole" else 0xFFFFFFFF
            payload = wav_header(self.rate, size, float32=self.float_wav) + samples
            headers["Content-Type"] = "audio/wav"
        else:
            payload, headers["Content-Type"] = samples, "audio/pcm"
            if self.states_rate == "header":
                headers["x-sample-rate"] = str(self.rate)
            elif self.states_rate == "content-type":
                headers["Content-Type"] = f"audio/L16; rate={self.rate}; channels=1"
        if self.mode == "whole":
            self.first_chunk_at.append(time.perf_counter())
            return web.Response(body=payload, headers=headers)
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if self.mode == "endless":  # the header, then the tone over and over, as fast as read
            self.first_chunk_at.append(time.perf_counter())
            await resp.write(payload[: len(payload) - len(samples)])
            with contextlib.suppress(ConnectionResetError):  # until the client hangs up
                while True:
                    await resp.write(samples)
                    await asyncio.sleep(self.chunk_delay_s)
            return resp
        step = self.chunk_bytes or self.rate * 2 * self.chunk_ms // 1000
        # odd offsets: a sample split across two chunks must still decode
        cuts = [0, *range(step + 1, len(payload), step), len(payload)]
        if self.first_chunk_ms:  # some real audio at once, then chunk_bytes at a time
            first = len(payload) - len(samples) + self.rate * 2 * self.first_chunk_ms // 1000
            cuts = [0, *range(first, len(payload), step), len(payload)]
        for i, (a, b) in enumerate(itertools.pairwise(cuts)):
            if i == 0:
                self.first_chunk_at.append(time.perf_counter())
            await resp.write(payload[a:b])
            if i == 0 and self.gate is not None:
                await self.gate.wait()
            if self.mode == "break" and i == 2:
                request.transport.close()  # the server dies mid-sentence
                return resp
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await resp.write_eof()
        return resp
