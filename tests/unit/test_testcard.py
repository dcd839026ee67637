"""The test card's frame number survives H.264 at a low bitrate and OBS-style scaling."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from streambot.stage.testcard import draw_test_card, read_test_card


def _h264_round_trip(frames: list[np.ndarray], bitrate: int) -> list[np.ndarray]:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt, stream.bit_rate = "yuv420p", bitrate
        stream.options = {"tune": "zerolatency", "preset": "veryfast"}
        for i, frame in enumerate(frames):
            video = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video.pts = i
            out.mux(stream.encode(video))
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as decoded:
        return [f.to_ndarray(format="rgb24") for f in decoded.decode(video=0)]


def test_frame_numbers_survive_a_low_bitrate_h264_stream():
    numbers = [0, 1, 2, 99, 4097, 65_535, *range(300, 320)]
    frames = [draw_test_card(k, 640, 360) for k in numbers]
    decoded = _h264_round_trip(frames, 300_000)
    assert [read_test_card(f) for f in decoded] == numbers


@pytest.mark.parametrize("size", [(1280, 720), (320, 180), (500, 281)])
def test_frame_numbers_survive_scaling(size):
    card = Image.fromarray(draw_test_card(12_345, 640, 360)).resize(size, Image.BILINEAR)
    assert read_test_card(np.asarray(card)) == 12_345


def test_frames_differ_and_non_cards_read_as_none():
    a, b = draw_test_card(10, 320, 180), draw_test_card(15, 320, 180)
    below = slice(40, None)  # under the counter strip
    assert np.abs(a[below].astype(int) - b[below].astype(int)).mean() > 20
    assert read_test_card(np.zeros((180, 320, 3), np.uint8)) is None
    noise = np.random.default_rng(0).integers(0, 256, (180, 320, 3), dtype=np.uint8)
    assert read_test_card(noise) is None
    with pytest.raises(ValueError, match="does not fit"):
        draw_test_card(70_000, 320, 180)
