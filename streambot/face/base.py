"""The Face role: 16 kHz speech in, exactly one video frame per 640 samples out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from streambot.runtime.base import Engine


class Face(Protocol):
    width: int
    height: int

    def render(
        self, pcm16k: np.ndarray, start_index: int, visemes: Sequence[str] | None = None
    ) -> AsyncIterator[np.ndarray]:
        """Yield (B, H, W, 3) uint8 batches: len(pcm16k) / samples_per_frame frames in all.

        ``visemes``, when given, holds one mouth shape per frame (see streambot/visemes.py).
        """
        ...

    def idle(self, index: int) -> np.ndarray:
        """The idle-loop frame for global frame ``index`` (read-only; callers must not modify)."""
        ...

    def reset(self) -> None:
        """Forget smoothing state between turns."""
        ...


# What some faces declare besides, checked with isinstance.
@runtime_checkable
class PiecewiseFace(Face, Protocol):
    """A face whose frames depend only on their own audio, so a sentence may be rendered
    piece by piece as the voice streams it (the mouth face; Wav2Lip's mel window reaches
    into the next piece)."""

    renders_in_pieces: bool


@runtime_checkable
class EngineFace(Face, Protocol):
    """A face that runs a model engine: its render rate is kept under the engine's name."""

    engine: Engine


@dataclass
class SlowFacePolicy:
    """What the host does with a face that renders under ``floor`` x real time: "wait"
    (start each sentence later: long pauses, never a broken voice) or "mouth" (finish the
    turn with ``fallback``, the cheap mouth face)."""

    mode: str = "wait"
    floor: float = 0.5
    fallback: Face | None = None
