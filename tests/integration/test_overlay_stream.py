"""The daemon's frames carry the overlays: the AI label on every frame, the card and caption
while a question about a product is answered, nothing when ``[overlay] enabled = false``."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from streambot import app as app_module
from streambot.app import App
from streambot.stage.overlay.compositor import Compositor
from streambot.stage.overlay.draw import Painter
from streambot.stage.overlay.fonts import FontSet, find_font
from streambot.stage.overlay.layer import Layer, blend_reference


class FrameSink:
    name, live = "frames", False

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def open(self, fmt) -> None:
        pass

    def write(self, index, frame, pcm) -> None:
        self.frames.append(frame.copy())

    def close(self) -> None:
        pass


def run_app(config, tmp_path, monkeypatch) -> tuple[App, FrameSink, list[np.ndarray]]:
    """Run 6 s of stream; the frames at the sink, and each as the face drew it."""
    sink, drawn = FrameSink(), []
    monkeypatch.setattr(app_module, "build_sinks", lambda cfg: [sink])
    compose = Compositor.compose

    def recording(self, frame):
        drawn.append(frame.copy())
        return compose(self, frame)

    monkeypatch.setattr(Compositor, "compose", recording)
    replay = tmp_path / "chat.jsonl"
    replay.write_text(json.dumps({"at": 0.2, "user": "ann", "text": "how much is the lamp?"}))
    config.chat.local.replay = str(replay)
    config.stream.width, config.stream.height = 640, 360
    app = App(config)
    asyncio.run(app.run(6.0))
    return app, sink, drawn


def region(frame: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    return frame[y : y + h, x : x + w]


def with_layer(frame: np.ndarray, image, box) -> np.ndarray:
    """``image`` blended over ``frame`` at ``box``, by the reference (float) blend."""
    layer = Layer.from_image(image, 0, 0)
    layer.place(box[0] - layer.dx, box[1] - layer.dy)
    return blend_reference(frame, layer)


def test_the_ai_label_is_on_every_frame_and_the_card_while_a_product_is_discussed(
    fast_config, tmp_path, monkeypatch
):
    app, sink, drawn = run_app(fast_config, tmp_path, monkeypatch)
    assert len(sink.frames) == len(drawn) == 150
    painter = Painter(FontSet(find_font()), 640, 360)
    label = painter.label(fast_config.overlay.label.text)
    box = app.overlay.compositor.box("label")
    assert box[2:] == label.size  # the label's panel has no transparent margin
    for shown, face in zip(sink.frames, drawn, strict=True):
        assert np.array_equal(region(shown, box), region(with_layer(face, label, box), box))
    # The lamp's card was on screen while its question was answered, and went after.
    lamp = app.catalog.current.find("lamp")[0]
    card = painter.card(lamp, "en", None)
    m = app.overlay.compositor.margin
    box = (m, m, *card.size)
    with_card = [
        np.array_equal(region(shown, box), region(with_layer(face, card, box), box))
        for shown, face in zip(sink.frames, drawn, strict=True)
    ]
    assert sum(with_card) > 25 and not with_card[-1]
    assert app.presenter.stats.late_frames == 0


def test_overlays_off_leave_the_picture_as_the_face_drew_it(fast_config, tmp_path, monkeypatch):
    fast_config.overlay.enabled = False
    app, sink, drawn = run_app(fast_config, tmp_path, monkeypatch)
    assert not drawn  # nothing was composed
    assert app.overlay is None and app.presenter.compositor is None
    idle = app.face.idle(0)
    assert any(np.array_equal(frame, idle) for frame in sink.frames)
