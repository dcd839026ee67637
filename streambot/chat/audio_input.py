"""Audio in for the co-host's microphone: a sound card through PortAudio (sounddevice), or a
WAV file, as 1-D float32 chunks at the input's own rate. A missing card or PortAudio library is
``MicUnavailable`` (the source retries); a bad file is ``MicError`` (not retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("streambot.chat.mic")

RETRY_CAP_S = 60.0  # the longest wait before reopening a dropped input
_PORTAUDIO_FIX = (
    "install the PortAudio library: `sudo apt install libportaudio2` (Debian/Ubuntu), "
    "`sudo dnf install portaudio` (Fedora) or `brew install portaudio` (macOS)"
)


class MicError(RuntimeError):
    """A configuration problem (model, file): not retried."""


class MicUnavailable(RuntimeError):
    """The audio input cannot be opened or stopped delivering; the source retries."""


class AudioSource(Protocol):
    """Mono float32 audio in chunks. ``sample_rate`` is set before the first chunk is yielded."""

    name: str
    sample_rate: int | None

    def chunks(self) -> AsyncIterator[np.ndarray]:
        """Yield 1-D float32 chunks; raise MicUnavailable when the input is (temporarily) gone."""
        ...


# --------------------------------------------------------------------------- audio sources


def _import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the module imports, but PortAudio itself is missing
        raise MicUnavailable(f"no PortAudio library ({exc}); {_PORTAUDIO_FIX}") from exc
    except ImportError as exc:
        raise MicUnavailable(
            "the sounddevice package is missing: pip install 'streambot[chat]'"
        ) from exc
    return sounddevice


def list_input_devices() -> list[str]:
    """``"index: name (rate Hz)"`` for every input device PortAudio sees."""
    sd = _import_sounddevice()
    return [
        f"{i}: {d['name']} ({d['default_samplerate']:.0f} Hz)"
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]


class SoundDeviceSource:
    """A sound card input through sounddevice/PortAudio, at the device's default rate."""

    name = "sounddevice"

    def __init__(
        self,
        device: str | int | None = None,
        sample_rate: int | None = None,
        block_ms: int = 100,
        max_queue_s: float = 10.0,
        stall_s: float = 3.0,
    ) -> None:
        self.device = device
        self._rate = sample_rate
        self._block_ms = block_ms
        self._max_blocks = max(1, int(max_queue_s * 1000 / block_ms))
        self._stall_s = stall_s
        self.sample_rate: int | None = None
        self.dropped_blocks = 0  # blocks lost because the consumer fell behind

    def _probe(self) -> tuple[Any, int]:
        sd = _import_sounddevice()
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            try:
                devices = list_input_devices()
            except Exception:  # pragma: no cover - PortAudio half-broken
                devices = []
            choices = "; ".join(devices) if devices else "none found (plug one in, or pass "
            choices += "" if devices else "/dev/snd or the PulseAudio socket into the container)"
            raise MicUnavailable(
                f"no audio input device {self.device!r} ({exc}); set chat.mic.device to one of: "
                f"{choices}"
            ) from exc
        return sd, int(self._rate or info["default_samplerate"])

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        sd, rate = self._probe()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=self._max_blocks)

        def offer(block: np.ndarray) -> None:
            try:
                queue.put_nowait(block)
            except asyncio.QueueFull:
                self.dropped_blocks += 1

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio's thread: hand over a copy, never block; RuntimeError: the loop closed
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(offer, indata[:, 0].astype(np.float32, copy=True))

        try:
            stream = sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=rate,
                dtype="float32",
                blocksize=max(1, rate * self._block_ms // 1000),
                callback=callback,
            )
            stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise MicUnavailable(
                f"cannot open audio input {self.device!r} at {rate} Hz ({exc}); pick another "
                f"chat.mic.device or sample rate"
            ) from exc
        self.sample_rate = rate
        log.info("mic: capturing %r at %d Hz", self.device, rate)
        try:
            while True:
                try:
                    block = await asyncio.wait_for(queue.get(), timeout=self._stall_s)
                except TimeoutError:
                    raise MicUnavailable(
                        f"no audio from input {self.device!r} for {self._stall_s:.0f} s "
                        f"(active={stream.active}); device unplugged?"
                    ) from None
                yield block
        finally:
            stream.close(ignore_errors=True)


def _decode_pcm(frames: bytes, width: int, channels: int) -> np.ndarray:
    raw = np.frombuffer(frames, dtype=np.uint8)
    if width == 1:
        pcm = (raw.astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        pcm = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = raw.reshape(-1, 3).astype(np.int32)
        val = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8  # sign-extend via the top byte
        pcm = (val >> 8).astype(np.float32) / 8388608.0
    else:
        pcm = np.frombuffer(frames, dtype="<i4").astype(np.float32) / 2147483648.0
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return pcm.astype(np.float32, copy=False)


class FileAudioSource:
    """A PCM WAV file streamed in chunks; ``realtime`` paces it like a live microphone."""

    name = "file"

    def __init__(self, path: str | Path, realtime: bool = False, chunk_ms: int = 100) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self._chunk_ms = chunk_ms
        self.sample_rate: int | None = None

    def _open(self) -> wave.Wave_read:
        try:
            return wave.open(str(self.path), "rb")
        except FileNotFoundError as exc:
            raise MicError(f"audio file not found: {self.path}") from exc
        except (wave.Error, EOFError) as exc:
            raise MicError(
                f"{self.path} is not a PCM WAV file ({exc}); convert it with "
                f"`ffmpeg -i IN -ac 1 -c:a pcm_s16le OUT.wav`"
            ) from exc

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        with self._open() as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            if width not in (1, 2, 3, 4):
                raise MicError(f"{self.path}: unsupported sample width {width} bytes")
            self.sample_rate = rate
            per_chunk = max(1, rate * self._chunk_ms // 1000)
            start, sent = time.perf_counter(), 0
            while frames := wav.readframes(per_chunk):
                pcm = _decode_pcm(frames, width, channels)
                sent += pcm.size
                if self.realtime:  # a chunk exists once its last sample was "recorded"
                    await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
                else:
                    await asyncio.sleep(0)
                yield pcm
