"""MP4 recording: H.264 video and AAC audio through PyAV, timestamps from the presenter."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av.error import FFmpegError

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat
from streambot.stage.sinks.mux import AvEncoder


class FileSink:
    name = "file"
    live = False

    def __init__(self, path: str | Path, preset: str = "veryfast", crf: int = 23) -> None:
        self.path = Path(path)
        self._preset, self._crf = preset, crf
        self._container = None

    def open(self, fmt: StreamFormat) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.path), mode="w")
        except (OSError, FFmpegError) as exc:
            raise SinkUnavailable(f"cannot write {self.path}: {exc}") from exc
        encoder = AvEncoder(container, fmt)
        encoder.video.options = {
            "preset": self._preset,
            "crf": str(self._crf),
            "g": str(2 * fmt.fps),
        }
        self._container, self._encoder = container, encoder

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        self._encoder.encode(index, frame, pcm)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            self._encoder.flush()
        finally:
            self._container.close()
            self._container = None
