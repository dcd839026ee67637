"""The Sink role: where the presenter's timestamped frames and audio go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from streambot.timing import samples_per_frame


class SinkUnavailable(RuntimeError):
    """A sink cannot start here; the message tells the user how to fix it."""


@dataclass(frozen=True)
class StreamFormat:
    width: int
    height: int
    fps: int
    sample_rate: int

    @property
    def samples_per_frame(self) -> int:
        return samples_per_frame(self.fps, self.sample_rate)


class Sink(Protocol):
    name: str
    # A live sink (camera, audio device) would rather lose a frame than fall behind;
    # a recording sink (file) must get every frame, so the presenter waits for it.
    live: bool

    def open(self, fmt: StreamFormat) -> None: ...

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        """Frame ``index`` (pts = index / fps) and its samples [index*spf, (index+1)*spf)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PictureSink(Sink, Protocol):
    """A sink that shows the picture without the voice (the virtual camera): when an audio
    sink plays the voice it is held back by the sound card's delay."""

    picture_only: bool
