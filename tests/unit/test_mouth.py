import itertools

import numpy as np
import pytest

from streambot.config import MouthFaceConfig
from streambot.face.mouth import MouthFace
from streambot.face.portrait import draw_portrait
from streambot.timing import DEFAULT_FPS, FACE_RATE, samples_per_frame
from tests.conftest import tone

SPF = samples_per_frame(DEFAULT_FPS, FACE_RATE)  # 640


@pytest.fixture(scope="module")
def face() -> MouthFace:
    return MouthFace(MouthFaceConfig(), 320, 180, DEFAULT_FPS)


def mouth_change(face: MouthFace, frame: np.ndarray) -> float:
    region = face.mouth_box.slices()
    rest = face.idle(0)[region].astype(np.float32)
    return float(np.abs(frame[region].astype(np.float32) - rest).mean())


async def test_one_frame_per_640_samples_and_mouth_follows_loudness(face):
    face.reset()
    pcm = np.concatenate([np.zeros(SPF * 10), tone(0.8), np.zeros(SPF * 15)]).astype(np.float32)
    batches = [b async for b in face.render(pcm, 0)]
    frames = np.concatenate(batches)
    assert frames.shape == (pcm.size // SPF, 180, 320, 3)
    change = [mouth_change(face, f) for f in frames]
    assert max(change[:10]) == 0.0  # silence: the mouth rests
    assert min(change[12:30]) > 5.0  # loud speech: open
    assert change[-1] == 0.0  # closes again after the speech


async def test_rejects_partial_frames(face):
    with pytest.raises(ValueError, match="whole frames of 640"):
        [b async for b in face.render(np.zeros(1000, np.float32), 0)]


def test_idle_loop_blinks_and_frames_are_read_only(face):
    states = [face.eye_state(i) for i in range(25 * 20)]
    blinks = sum(1 for a, b in itertools.pairwise(states) if a == "open" and b != "open")
    assert 3 <= blinks <= 7  # about every 3 to 5 seconds over 20 s
    assert not face.idle(0).flags.writeable
    closed = next(i for i, s in enumerate(states) if s == "closed")
    assert not np.array_equal(face.idle(closed), face.idle(0))


@pytest.mark.parametrize(("width", "height"), [(64, 64), (160, 90), (96, 64)])
def test_the_smallest_stream_sizes_the_config_allows_get_a_portrait(width, height):
    portrait = draw_portrait(width, height)
    assert portrait.base.shape[:2] == (height, width)
