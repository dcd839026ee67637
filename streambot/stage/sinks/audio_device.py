"""The host's voice on a sound device (sounddevice / PortAudio), beside the virtual camera.

OBS captures it like a microphone (Audio Input Capture) while the picture comes from the
virtual camera. Without PortAudio or without the device this sink is unavailable with a
message that says how to fix it, and the other sinks go on.

The card pulls samples through a PortAudio callback from a small buffer that ``write`` fills
without blocking. The callback counts every sample the card takes, played or padded with
silence: that count is the card's clock, and the app paces the presenter on it
(``DeviceClock``), so the stream runs exactly as fast as the card plays and the buffer neither
drains nor grows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from typing import Any

import numpy as np

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat

log = logging.getLogger(__name__)

PORTAUDIO_HINT = (
    "PortAudio is missing: sudo apt install libportaudio2 (Debian/Ubuntu), "
    "sudo dnf install portaudio (Fedora) or brew install portaudio (macOS)"
)


class PlaybackBuffer:
    """A ring of mono float32 samples between the sink's writer thread and the card.

    ``callback`` has PortAudio's signature and runs on its audio thread. Playing starts once
    ``lead`` samples are buffered (again after an underrun, so one clean gap replaces a run of
    clicks); a shortfall is padded with silence and counted. A writer that gets ``slack``
    samples ahead of the lead (the card stalled, or a burst after a stall) loses its oldest
    samples, so the delay to the speakers stays ``lead``.
    """

    def __init__(self, rate: int, lead: int, slack: int, max_gap: float = 0.0) -> None:
        self.rate = rate
        self.lead = lead
        self.max_gap = max_gap  # the device's own buffer: it may call back that far apart
        self._max_fill = lead + slack
        self._ring = np.zeros(self._max_fill, np.float32)
        self._read = 0  # ring index of the oldest buffered sample
        self._fill = 0
        self._priming = True
        self._lock = threading.Lock()
        self._closed = False
        self.position = 0  # samples the card has taken, silence included: its clock
        self.played = 0  # samples of the stream it has played
        self.underruns = 0
        self.underrun_samples = 0
        self.trimmed_samples = 0
        self.device_underflows = 0  # PortAudio's own report: the callback came too late
        # (position, monotonic time) swapped as one tuple, so a reader never sees a torn pair.
        self._tick: tuple[int, float] = (0, time.monotonic())

    @property
    def fill(self) -> int:
        return self._fill

    def tick(self) -> tuple[int, float] | None:
        return None if self._closed else self._tick

    def close(self) -> None:
        self._closed = True

    def write(self, pcm: np.ndarray) -> None:
        """Queue samples after the ones buffered; never blocks."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        with self._lock:
            total = self._fill + pcm.size
            if total > self._max_fill:
                excess = total - self.lead  # keep the newest ``lead`` samples
                old = min(excess, self._fill)
                self._read = (self._read + old) % self._ring.size
                self._fill -= old
                pcm = pcm[excess - old :]
                self.trimmed_samples += excess
            start = (self._read + self._fill) % self._ring.size
            first = min(pcm.size, self._ring.size - start)
            self._ring[start : start + first] = pcm[:first]
            self._ring[: pcm.size - first] = pcm[first:]
            self._fill += pcm.size

    def callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        out = outdata[:, 0] if outdata.ndim == 2 else outdata
        with self._lock:
            if status is not None and getattr(status, "output_underflow", False):
                self.device_underflows += 1
            if self._priming and self._fill >= self.lead:
                self._priming = False
            take = 0 if self._priming else min(self._fill, frames)
            first = min(take, self._ring.size - self._read)
            out[:first] = self._ring[self._read : self._read + first]
            out[first:take] = self._ring[: take - first]
            out[take:] = 0.0
            self._read = (self._read + take) % self._ring.size
            self._fill -= take
            if not self._priming and take < frames:
                self.underruns += 1
                self.underrun_samples += frames - take
                self._priming = True
            self.played += take
            self.position += frames
            self._tick = (self.position, now)


class AudioDeviceSink:
    name = "audio_device"
    live = True

    def __init__(
        self, device: str | int | None = None, latency: float = 0.1, lead_frames: int = 3
    ) -> None:
        self._device, self._latency, self._lead_frames = device, latency, lead_frames
        self._stream = None
        self.buffer: PlaybackBuffer | None = None  # the card's clock, once open

    def open(self, fmt: StreamFormat) -> None:
        try:
            import sounddevice as sd
        except ImportError as exc:
            raise SinkUnavailable(
                "audio output needs sounddevice: pip install sounddevice"
            ) from exc
        except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
            raise SinkUnavailable(f"audio output unavailable ({exc}); {PORTAUDIO_HINT}") from exc
        spf = fmt.samples_per_frame
        try:
            self._stream = sd.OutputStream(
                samplerate=fmt.sample_rate,
                channels=1,
                dtype="float32",
                device=self._device,
                blocksize=spf,
                latency=self._latency,
                callback=self._callback,
            )
        except Exception as exc:  # PortAudioError, ValueError for an unknown device
            raise self._unavailable(sd, exc) from exc
        # The lead absorbs the presenter's wake-up jitter and a host API that asks for its
        # whole buffer (the device latency) in one burst of callbacks: at least three frames,
        # a frame more than that buffer; two more of slack before old samples are dropped.
        latency = self._device_latency_s()
        device_frames = math.ceil(latency * fmt.sample_rate / spf)
        lead = max(self._lead_frames, device_frames + 1) * spf
        self.buffer = PlaybackBuffer(fmt.sample_rate, lead, 2 * spf, latency)
        try:
            self._stream.start()
        except Exception as exc:  # a device that is busy or went away
            with contextlib.suppress(Exception):
                self._stream.close()
            self._stream, self.buffer = None, None
            raise self._unavailable(sd, exc) from exc
        log.info(
            "audio device %s open: %.0f ms device latency + %.0f ms buffered",
            self._device if self._device is not None else "(default)",
            latency * 1000,
            lead / fmt.sample_rate * 1000,
        )

    @property
    def output_delay_s(self) -> float:
        """From handing a frame's samples over to hearing them: the lead plus the device's
        latency (0 until open)."""
        if self._stream is None or self.buffer is None:
            return 0.0
        return self.buffer.lead / self.buffer.rate + self._device_latency_s()

    def _device_latency_s(self) -> float:
        # sounddevice types every stream's latency as float | (input, output); an output
        # stream's is one float
        latency = self._stream.latency if self._stream is not None else 0.0
        return float(latency[1] if isinstance(latency, tuple) else latency)

    def _unavailable(self, sd: Any, exc: Exception) -> SinkUnavailable:
        devices = ", ".join(
            f"{i}: {d['name']}"
            for i, d in enumerate(sd.query_devices())
            if d.get("max_output_channels", 0) > 0
        )
        return SinkUnavailable(
            f"cannot open audio output {self._device!r} ({exc}); "
            f"set sinks.audio_device.device to one of: {devices or 'none found'}"
        )

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if (buffer := self.buffer) is None:  # a last call from the card while it closes
            outdata.fill(0)
            return
        buffer.callback(outdata, frames, time_info, status)

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        # Never blocks: the card takes samples at its own pace, and the presenter is paced by
        # that same pace (DeviceClock), so the buffer stays near its lead.
        if self.buffer is None:
            raise SinkUnavailable(f"audio output {self._device!r} is not open")
        self.buffer.write(pcm)

    def close(self) -> None:
        b = self.buffer
        if b is not None:
            b.close()  # first, so the clock carries on without taking the stop for a stall
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None
        if b is not None and (b.underruns or b.trimmed_samples or b.device_underflows):
            log.info(
                "audio device: %d underruns (%.2f s of silence), %.2f s dropped behind, "
                "%d late callbacks",
                b.underruns,
                b.underrun_samples / b.rate,
                b.trimmed_samples / b.rate,
                b.device_underflows,
            )
