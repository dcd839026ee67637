"""Decode a HiFi-GAN latent in chunks whose joined audio equals decoding it whole.

A HiFi-GAN decoder is convolutions only: output sample n depends on the latent frames within
its receptive field and on nothing else. A chunk decoded with that many frames of context on
each side (``receptive_frames``), and cut back to its own span, is therefore the same audio as
that span of the whole decode; at the latent's ends the chunk sees the same zero padding the
whole decode does. The first chunk is small, so the first audio leaves early; later chunks
grow, so the context decoded twice costs little.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from streambot.models.hifigan import HiFiGANConfig

FIRST_CHUNK_FRAMES = 16  # 16 x 256 samples at 22 050 Hz: the first 186 ms of a sentence
MAX_CHUNK_FRAMES = 256


def hop(config: HiFiGANConfig) -> int:
    """Output samples per latent frame."""
    return math.prod(config.upsample_rates)


def receptive_frames(config: HiFiGANConfig) -> int:
    """Latent frames on each side of a frame that can change its audio (an upper bound).

    Each layer widens the field by its half-kernel at its own sample rate: conv_pre (kernel 7)
    at the latent rate; each upsampling ConvTranspose1d by ceil(kernel / stride) of its input;
    the widest resblock of a stage by its dilated half-kernels at the stage's rate (parallel
    resblocks are summed, so the widest one counts); conv_post (kernel 7) at the output rate.
    """
    frames, scale = 3.0, 1
    for rate, kernel in zip(config.upsample_rates, config.upsample_kernels, strict=True):
        frames += math.ceil(kernel / rate) / scale
        scale *= rate
        widest = 0
        for size, dilations in zip(config.resblock_kernels, config.resblock_dilations, strict=True):
            half = (size - 1) // 2
            per_conv = sum(d * half for d in dilations)
            if config.resblock_type == "1":
                per_conv += half * len(dilations)  # the undilated second conv of each pair
            widest = max(widest, per_conv)
        frames += widest / scale
    frames += 3 / scale
    return math.ceil(frames) + 1  # one frame more: the bound must not be off by rounding


def chunk_spans(
    frames: int, first: int = FIRST_CHUNK_FRAMES, largest: int = MAX_CHUNK_FRAMES
) -> Iterator[tuple[int, int]]:
    """(start, end) latent frames of each chunk: ``first`` frames, then doubling to ``largest``."""
    start, size = 0, max(1, first)
    while start < frames:
        end = min(frames, start + size)
        yield start, end
        start, size = end, min(largest, size * 2)


def decode_chunks(
    decode: Callable[[np.ndarray], np.ndarray],
    latent: np.ndarray,
    samples_per_frame: int,
    context: int,
    first: int = FIRST_CHUNK_FRAMES,
    largest: int = MAX_CHUNK_FRAMES,
) -> Iterator[tuple[np.ndarray, bool]]:
    """The audio of ``latent`` (1, channels, T), chunk by chunk, each with whether it is the
    last; ``decode`` maps a latent to its samples (T * samples_per_frame of them)."""
    total = latent.shape[-1]
    for start, end in chunk_spans(total, first, largest):
        lo, hi = max(0, start - context), min(total, end + context)
        audio = decode(np.ascontiguousarray(latent[:, :, lo:hi])).reshape(-1)
        cut = audio[(start - lo) * samples_per_frame : (end - lo) * samples_per_frame]
        yield cut, end >= total
