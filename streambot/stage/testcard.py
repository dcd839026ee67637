"""A test card whose frame number survives H.264, scaling and a screenshot.

Frame ``k`` carries ``k`` as a row of black/white cells across the top (16 bits of counter and
4 bits of check, between a white and a black reference cell), big enough that encoding,
decoding and OBS's scaling cannot flip a cell; below it a moving pattern that makes every frame
different, so a screenshot can also be compared with the frame that was sent. Used to check
that OBS shows the host's frames and to measure the latency from the presenter to OBS.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

COUNTER_BITS = 16
CHECK_BITS = 4
_CELLS = 2 + COUNTER_BITS + CHECK_BITS  # white reference, black reference, data
_STRIP = 1 / 6  # the counter strip's share of the frame height
_PERIOD = 50  # frames before the moving pattern repeats


def _check(k: int) -> int:
    return bin(k).count("1") % (1 << CHECK_BITS)


def _bits(k: int) -> list[int]:
    value = (k << CHECK_BITS) | _check(k)
    return [(value >> (COUNTER_BITS + CHECK_BITS - 1 - i)) & 1 for i in range(_CELLS - 2)]


def _strip_height(height: int) -> int:
    return max(1, round(height * _STRIP))


def _cell_span(cell: int, width: int) -> tuple[int, int]:
    return cell * width // _CELLS, (cell + 1) * width // _CELLS


def draw_test_card(k: int, width: int, height: int) -> np.ndarray:
    """Frame ``k`` (0 <= k < 65536) as an RGB uint8 array of ``height`` x ``width``."""
    if not 0 <= k < 1 << COUNTER_BITS:
        raise ValueError(f"frame number {k} does not fit in {COUNTER_BITS} bits")
    frame = _pattern(k % _PERIOD, width, height).copy()
    strip = _strip_height(height)
    for cell, bit in enumerate([1, 0, *_bits(k)]):
        x0, x1 = _cell_span(cell, width)
        frame[:strip, x0:x1] = 255 if bit else 0
    return frame


@lru_cache(maxsize=_PERIOD)
def _pattern(phase_index: int, width: int, height: int) -> np.ndarray:
    """The moving background (cached: drawing it takes longer than a frame period)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = 2 * np.pi * phase_index / _PERIOD
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 128 + 100 * np.sin(x / 37 + phase)
    frame[..., 1] = 128 + 100 * np.sin(y / 23 - 1.3 * phase)
    frame[..., 2] = 128 + 100 * np.sin((x + y) / 51 + 0.7 * phase)
    frame.flags.writeable = False
    return frame


def read_test_card(image: np.ndarray) -> int | None:
    """The frame number in a (possibly scaled, lossy) test card, or ``None`` if unreadable."""
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    height, width = image.shape
    strip = _strip_height(height)
    levels = []
    for cell in range(_CELLS):
        # The centre of each cell: away from edges the encoder blurred.
        x0, x1 = _cell_span(cell, width)
        mx, my = max(1, (x1 - x0) // 4), max(1, strip // 4)
        levels.append(float(image[my : strip - my, x0 + mx : x1 - mx].mean()))
    white, black = levels[0], levels[1]
    if white - black < 64:
        return None  # not a test card (or a blank frame)
    threshold = (white + black) / 2
    value = 0
    for level in levels[2:]:
        value = (value << 1) | (level > threshold)
    k, check = value >> CHECK_BITS, value & ((1 << CHECK_BITS) - 1)
    return k if check == _check(k) else None
