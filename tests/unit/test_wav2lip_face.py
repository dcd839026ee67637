import asyncio
from pathlib import Path

import numpy as np
import pytest
from needs import need_torch

cv2 = pytest.importorskip("cv2")
torch = need_torch()

from streambot.face.avatar import PreparedAvatar  # noqa: E402
from streambot.face.wav2lip import Wav2LipFace  # noqa: E402
from streambot.models.wav2lip import Wav2Lip  # noqa: E402
from streambot.runtime.torch_engine import TorchEngine  # noqa: E402
from streambot.timing import FACE_RATE, samples_per_frame  # noqa: E402
from tests.unit.test_wav2lip_model import TINY  # noqa: E402

SPF = samples_per_frame(25, FACE_RATE)  # 640

BOX = (40, 136, 50, 130)  # y1, y2, x1, x2 in a 200x160 (H x W) avatar frame


def make_avatar(n: int = 6) -> PreparedAvatar:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, 200, 160, 3), dtype=np.uint8)
    y1, y2, x1, x2 = BOX
    faces = np.stack([cv2.resize(f[y1:y2, x1:x2], (96, 96)) for f in frames])
    boxes = np.tile(np.array(BOX, np.int32), (n, 1))
    loop = np.arange(n, dtype=np.int32)
    return PreparedAvatar(frames, boxes, faces, loop, "test", 25, Path("."))


class RecordingEngine:
    """Stands in for the network at the Engine boundary: returns a white face, keeps inputs."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[dict[str, np.ndarray]] = []

    def run(self, inputs):
        self.calls.append(inputs)
        return {"frame": np.ones((len(inputs["mel"]), 3, 96, 96), np.float32)}


async def collect(face, pcm, start=0):
    return [b async for b in face.render(pcm, start)]


@pytest.mark.parametrize("n_frames", [1, 2, 4, 5, 17, 33])
def test_one_frame_per_640_samples_with_a_real_tiny_model(n_frames):
    engine = TorchEngine(Wav2Lip(TINY), ["mel", "face"], ["frame"], device="cpu")
    face = Wav2LipFace(engine, make_avatar(), 320, 240, 25, first_batch=2, batch=8)
    pcm = np.random.default_rng(n_frames).uniform(-0.3, 0.3, n_frames * SPF).astype(np.float32)
    batches = asyncio.run(collect(face, pcm))
    assert sum(len(b) for b in batches) == n_frames
    assert len(batches[0]) == min(2, n_frames)  # small first batch for latency
    assert all(b.shape[1:] == (240, 320, 3) and b.dtype == np.uint8 for b in batches)


def test_inputs_are_masked_crop_then_reference_in_bgr():
    engine = RecordingEngine()
    avatar = make_avatar()
    face = Wav2LipFace(engine, avatar, 160, 200, 25, first_batch=3, batch=3)
    asyncio.run(collect(face, np.zeros(3 * SPF, np.float32), start=2))
    feed = engine.calls[0]
    assert feed["mel"].shape == (3, 1, 80, 16) and feed["face"].shape == (3, 6, 96, 96)
    reference = avatar.faces[2][..., ::-1].transpose(2, 0, 1) / 255.0  # frame 2, BGR
    assert np.allclose(feed["face"][0, 3:], reference)
    assert np.allclose(feed["face"][0, :3, :48], reference[:, :48])  # upper half kept
    assert not feed["face"][:, :3, 48:].any()  # lower half masked


def test_paste_back_changes_only_the_inside_of_the_face_box():
    avatar = make_avatar()
    face = Wav2LipFace(RecordingEngine(), avatar, 160, 200, 25)  # output size == avatar size
    frames = np.concatenate(asyncio.run(collect(face, np.zeros(4 * SPF, np.float32))))
    y1, y2, x1, x2 = BOX
    for i, out in enumerate(frames):
        source = avatar.frames[i]
        outside = np.ones(out.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(out[outside], source[outside])
        # the box edge itself is untouched (feathered to zero): no visible seam
        assert np.array_equal(out[y1, x1:x2], source[y1, x1:x2])
        assert np.array_equal(out[y2 - 1, x1:x2], source[y2 - 1, x1:x2])
        mouth = out[y1 + 65 : y1 + 80, x1 + 30 : x1 + 50]
        assert mouth.min() > 240  # the (white) prediction is blended in over the lower face


def test_avatar_is_letterboxed_into_the_output_frame():
    face = Wav2LipFace(RecordingEngine(), make_avatar(), 640, 360, 25)
    idle = face.idle(0)
    assert idle.shape == (360, 640, 3)
    p = face.placement
    assert (p.h, p.w) == (360, 288) and p.x == (640 - 288) // 2
    assert (idle[:, : p.x] == face._background).all()


def test_partial_frames_are_refused():
    face = Wav2LipFace(RecordingEngine(), make_avatar(), 160, 200, 25)
    with pytest.raises(ValueError, match="whole frames of 640"):
        asyncio.run(collect(face, np.zeros(1000, np.float32)))
