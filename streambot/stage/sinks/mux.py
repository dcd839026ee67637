"""The PyAV encoding the muxing sinks (file, stream) share: one H.264 and one AAC mono stream
in a container, each frame stamped with the presenter's timestamps (video pts = index at
1/fps, audio pts = index * samples_per_frame at 1/sample_rate), so no wall clock is involved."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

from streambot.stage.sinks.base import StreamFormat


class AvEncoder:
    """Adds the two streams to ``container``; each sink then sets its own codec options on
    ``video`` and ``audio`` and opens, closes and handles errors of the container itself."""

    def __init__(self, container: Any, fmt: StreamFormat, audio_rate: int | None = None) -> None:
        self.container, self.fmt = container, fmt
        video = container.add_stream("libx264", rate=fmt.fps)
        video.width, video.height, video.pix_fmt = fmt.width, fmt.height, "yuv420p"
        video.codec_context.time_base = Fraction(1, fmt.fps)
        audio = container.add_stream("aac", rate=audio_rate or fmt.sample_rate)
        audio.layout = "mono"
        self.video, self.audio = video, audio
        self._video_tb = Fraction(1, fmt.fps)
        self._audio_tb = Fraction(1, fmt.sample_rate)

    def encode(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        """Encode and mux frame ``index``: its picture and its samples."""
        # Wrapped, not copied: from_ndarray copies the picture holding the GIL, and beside it
        # the presenter's clock thread waited up to 358 ms for the GIL (a burst of late
        # frames). The picture is read only inside this call: the encoder gets the yuv420p
        # frame PyAV reformats it into.
        vf = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(frame), format="rgb24")
        vf.pts, vf.time_base = index, self._video_tb
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        af.sample_rate = self.fmt.sample_rate
        af.pts, af.time_base = index * self.fmt.samples_per_frame, self._audio_tb
        for packet in self.video.encode(vf):
            self.container.mux(packet)
        for packet in self.audio.encode(af):
            self.container.mux(packet)

    def flush(self) -> None:
        """Drain both encoders into the container (before it is closed)."""
        for stream in (self.video, self.audio):
            for packet in stream.encode(None):
                self.container.mux(packet)
