"""The Face role: 16 kHz speech in, exactly one video frame per 640 samples out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import numpy as np


class Face(Protocol):
    width: int
    height: int

    def render(
        self, pcm16k: np.ndarray, start_index: int, visemes: Sequence[str] | None = None
    ) -> AsyncIterator[np.ndarray]:
        """Yield (B, H, W, 3) uint8 batches: len(pcm16k) / samples_per_frame frames in all.

        ``visemes``, when given, holds one mouth shape per frame (see voice/visemes.py).
        """
        ...

    def idle(self, index: int) -> np.ndarray:
        """The idle-loop frame for global frame ``index`` (read-only; callers must not modify)."""
        ...

    def reset(self) -> None:
        """Forget smoothing state between turns."""
        ...
