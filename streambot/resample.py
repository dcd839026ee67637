"""Exact-ratio polyphase resampling between the pipeline's fixed rates (docs/ARCHITECTURE.md,
"The timing contract"): of a whole signal (``resample``), and of one that arrives in pieces
(``StreamResampler``: a streaming voice, a microphone), whose output joined is the same."""

from __future__ import annotations

import math
from math import gcd

import numpy as np
from scipy.signal import resample_poly


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono float audio from ``src_rate`` to ``dst_rate`` with an exact integer ratio.

    22 050 -> 48 000 is 320/147 and 48 000 -> 16 000 is 1/3; the output has
    ceil(len * dst / src) samples.
    """
    pcm = np.asarray(pcm, dtype=np.float32)
    if src_rate == dst_rate or pcm.size == 0:
        return pcm.copy()
    g = gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    return resample_poly(pcm, up, down).astype(np.float32)


# scipy's resample_poly filter reaches 10 x max(up, down) samples of the upsampled signal
# each side of an output sample (its default Kaiser window).
_FILTER_HALF_WIDTH = 10


class StreamResampler:
    """``resample`` for a signal that arrives in pieces: ``push`` returns the output samples
    that no later input can change, ``flush`` the rest. Joined, they equal resampling the
    whole signal at once."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate, self.dst_rate = src_rate, dst_rate
        g = gcd(src_rate, dst_rate)
        self.up, self.down = dst_rate // g, src_rate // g
        # input samples an output sample may depend on, each side (and two for rounding)
        self.margin = math.ceil(_FILTER_HALF_WIDTH * max(self.up, self.down) / self.up) + 2
        self._kept = np.zeros(0, np.float32)  # input from absolute index _base on
        self._base = 0
        self._received = 0
        self._emitted = 0  # output samples handed out

    def push(self, pcm: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        self._kept = np.concatenate([self._kept, pcm])
        self._received += pcm.size
        safe = max(0, self._received - self.margin) * self.up // self.down
        return self._emit(safe)

    def flush(self) -> np.ndarray:
        return self._emit(-(-self._received * self.up // self.down))

    def _emit(self, end: int) -> np.ndarray:
        if end <= self._emitted:
            return np.zeros(0, np.float32)
        if self.up == self.down:
            out = self._kept[self._emitted - self._base : end - self._base].copy()
        else:
            # resample from an input index that is a multiple of ``down`` (so the output grid
            # lines up) and far enough before the next output that its implied silence is
            # out of the filter's reach
            first_input = self._emitted * self.down // self.up - self.margin
            start = max(0, first_input // self.down * self.down)
            window = self._kept[start - self._base :]
            offset = start * self.up // self.down
            out = resample_poly(window, self.up, self.down).astype(np.float32)
            out = out[self._emitted - offset : end - offset]
            self._trim(start)
        self._emitted = end
        return out

    def _trim(self, start: int) -> None:
        if start > self._base:
            self._kept = self._kept[start - self._base :]
            self._base = start
