"""Decode a HiFi-GAN latent in chunks whose joined audio equals decoding it whole.

A HiFi-GAN decoder is convolutions only: output sample n depends on the latent frames within
its receptive field and on nothing else. A chunk decoded with that many frames of context on
each side (``receptive_frames``), and cut back to its own span, is therefore the same audio as
that span of the whole decode; at the latent's ends the chunk sees the same zero padding the
whole decode does. The first chunk is small, so the first audio leaves early; later chunks
grow, so the context decoded twice costs little.

The same holds one stage earlier: the VITS flow that turns the prior's frames into the
latent is convolutions along time too, so ``FlowedLatent`` computes the latent window by
window, only as far as the decoder's next chunk needs it, and the first audio does not wait
for the flow of the whole sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the model module imports torch; span arithmetic must not need it
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


class FlowedLatent:
    """A latent computed on demand from the flow's inputs, window by window, exactly.

    ``inputs`` are the flow's inputs by name; those that run along time (last axis ``frames``
    long) are cut to each window, the others (a speaker embedding) pass whole. ``flow`` maps
    such inputs to the latent (1, channels, frames); ``context`` is its receptive field in
    frames on each side. Windows are asked for left to right, as chunked decoding does."""

    def __init__(
        self,
        flow: Callable[[dict[str, np.ndarray]], np.ndarray],
        inputs: Mapping[str, np.ndarray],
        frames: int,
        context: int,
    ) -> None:
        self.flow, self.inputs, self.context = flow, dict(inputs), context
        self.frames = frames
        self._parts: list[np.ndarray] = []
        self._ready = 0  # latent frames [0, _ready) are computed

    def _extend(self, to: int) -> None:
        lo, hi = max(0, self._ready - self.context), min(self.frames, to + self.context)
        feeds = {
            name: np.ascontiguousarray(x[..., lo:hi]) if x.shape[-1] == self.frames else x
            for name, x in self.inputs.items()
        }
        out = self.flow(feeds)
        self._parts.append(out[..., self._ready - lo : to - lo])
        self._ready = to

    def window(self, lo: int, hi: int) -> np.ndarray:
        if hi > self._ready:
            self._extend(hi)
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts, axis=-1)]
        return np.ascontiguousarray(self._parts[0][..., lo:hi])


def decode_chunks(
    decode: Callable[[np.ndarray], np.ndarray],
    latent: np.ndarray | FlowedLatent,
    samples_per_frame: int,
    context: int,
    first: int = FIRST_CHUNK_FRAMES,
    largest: int = MAX_CHUNK_FRAMES,
) -> Iterator[tuple[np.ndarray, bool]]:
    """The audio of ``latent`` (1, channels, T), chunk by chunk, each with whether it is the
    last; ``decode`` maps a latent to its samples (T * samples_per_frame of them)."""
    if isinstance(latent, FlowedLatent):
        total, window = latent.frames, latent.window
    else:
        total, window = latent.shape[-1], lambda lo, hi: latent[..., lo:hi]
    for start, end in chunk_spans(total, first, largest):
        lo, hi = max(0, start - context), min(total, end + context)
        audio = decode(np.ascontiguousarray(window(lo, hi))).reshape(-1)
        cut = audio[(start - lo) * samples_per_frame : (end - lo) * samples_per_frame]
        yield cut, end >= total
