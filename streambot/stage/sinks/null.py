"""A sink that discards everything (benchmarks, headless runs)."""

from __future__ import annotations

import numpy as np

from streambot.stage.sinks.base import StreamFormat


class NullSink:
    name = "null"
    live = True

    def __init__(self) -> None:
        self.frames = 0

    def open(self, fmt: StreamFormat) -> None:
        self.frames = 0

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        self.frames += 1

    def close(self) -> None:
        pass
