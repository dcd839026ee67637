"""Exact-ratio polyphase resampling between the pipeline's fixed rates (docs/ARCHITECTURE.md,
"The timing contract")."""

from __future__ import annotations

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
