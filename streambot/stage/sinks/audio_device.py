"""The host's voice on a sound device (sounddevice / PortAudio), beside the virtual camera.

OBS captures it like a microphone (Audio Input Capture) while the picture comes from the
virtual camera. Without PortAudio or without the device this sink is unavailable with a
message that says how to fix it, and the other sinks go on.
"""

from __future__ import annotations

import numpy as np

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat

PORTAUDIO_HINT = (
    "PortAudio is missing: sudo apt install libportaudio2 (Debian/Ubuntu), "
    "sudo dnf install portaudio (Fedora) or brew install portaudio (macOS)"
)


class AudioDeviceSink:
    name = "audio_device"
    live = True

    def __init__(self, device: str | int | None = None, latency: float = 0.1) -> None:
        self._device, self._latency = device, latency
        self._stream = None

    def open(self, fmt: StreamFormat) -> None:
        try:
            import sounddevice as sd
        except ImportError as exc:
            raise SinkUnavailable(
                "audio output needs sounddevice: pip install sounddevice"
            ) from exc
        except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
            raise SinkUnavailable(f"audio output unavailable ({exc}); {PORTAUDIO_HINT}") from exc
        try:
            self._stream = sd.OutputStream(
                samplerate=fmt.sample_rate,
                channels=1,
                dtype="float32",
                device=self._device,
                blocksize=fmt.samples_per_frame,
                latency=self._latency,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError, ValueError for an unknown device
            devices = ", ".join(
                f"{i}: {d['name']}"
                for i, d in enumerate(sd.query_devices())
                if d.get("max_output_channels", 0) > 0
            )
            raise SinkUnavailable(
                f"cannot open audio output {self._device!r} ({exc}); "
                f"set sinks.audio_device.device to one of: {devices or 'none found'}"
            ) from exc

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        # A blocking write: the device consumes samples at its own clock, so this thread is
        # paced by the sound card (the presenter never waits for it: the fanout queue drops).
        self._stream.write(np.ascontiguousarray(pcm, dtype=np.float32).reshape(-1, 1))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
