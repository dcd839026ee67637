"""The pipeline's timing contract, in one place (docs/ARCHITECTURE.md, "The timing contract").

Video runs at ``fps`` frames per second; the output audio is 48 kHz and the face's audio (what
Wav2Lip's mel is defined on) is 16 kHz. Each frame carries a whole number of samples at either
rate, ``rate // fps``: 1,920 and 640 at 25 fps, so audio and video cannot drift.

A leaf module: it imports nothing from the package, so anything may import it.
"""

from __future__ import annotations

from typing import Final

OUTPUT_RATE: Final = 48_000  # Hz: what the presenter, the sinks and the sound card carry
FACE_RATE: Final = 16_000  # Hz: what the face renders from (Wav2Lip's mel features)
DEFAULT_FPS: Final = 25


def samples_per_frame(fps: int, rate: int = OUTPUT_RATE) -> int:
    """Samples of ``rate`` audio in one frame at ``fps``; ValueError unless that is whole."""
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    if rate % fps:
        raise ValueError(f"{rate} Hz is not a whole number of samples per frame at {fps} fps")
    return rate // fps
