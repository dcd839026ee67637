"""MP4 recording: H.264 video and AAC audio through PyAV, timestamps from the presenter."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat


class FileSink:
    name = "file"
    live = False

    def __init__(self, path: str | Path, preset: str = "veryfast", crf: int = 23) -> None:
        self.path = Path(path)
        self._preset, self._crf = preset, crf
        self._container = None

    def open(self, fmt: StreamFormat) -> None:
        self._fmt = fmt
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.path), mode="w")
        except (OSError, av.FFmpegError) as exc:
            raise SinkUnavailable(f"cannot write {self.path}: {exc}") from exc
        video = container.add_stream("libx264", rate=fmt.fps)
        video.width, video.height, video.pix_fmt = fmt.width, fmt.height, "yuv420p"
        video.codec_context.time_base = Fraction(1, fmt.fps)
        video.options = {"preset": self._preset, "crf": str(self._crf), "g": str(2 * fmt.fps)}
        audio = container.add_stream("aac", rate=fmt.sample_rate)
        audio.layout = "mono"
        self._container, self._video, self._audio = container, video, audio
        self._video_tb = Fraction(1, fmt.fps)
        self._audio_tb = Fraction(1, fmt.sample_rate)

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts, vf.time_base = index, self._video_tb
        for packet in self._video.encode(vf):
            self._container.mux(packet)
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        af.sample_rate = self._fmt.sample_rate
        af.pts, af.time_base = index * self._fmt.samples_per_frame, self._audio_tb
        for packet in self._audio.encode(af):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for stream in (self._video, self._audio):
                for packet in stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
