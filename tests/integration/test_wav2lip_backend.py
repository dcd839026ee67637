"""The wav2lip face in the running daemon, and its fallback to the mouth face."""

import asyncio
import logging
from pathlib import Path

import av
import numpy as np
import pytest
from needs import need_torch

torch = need_torch()
pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from streambot.app import App  # noqa: E402
from streambot.face.mouth import MouthFace  # noqa: E402
from streambot.face.wav2lip import Wav2LipFace  # noqa: E402
from streambot.models.wav2lip import Wav2Lip  # noqa: E402
from tests.unit.test_wav2lip_model import TINY  # noqa: E402


@pytest.fixture
def wav2lip_config(fast_config, tmp_path):
    portrait = tmp_path / "host.png"
    Image.fromarray(skimage_data.astronaut()).save(portrait)
    checkpoint = tmp_path / "tiny_wav2lip.pth"
    torch.manual_seed(0)
    model = Wav2Lip(TINY)
    torch.save({"widths": TINY.to_dict(), "state_dict": model.state_dict()}, checkpoint)
    cfg = fast_config.face.wav2lip
    fast_config.face.backend = "wav2lip"
    cfg.checkpoint, cfg.avatar = str(checkpoint), str(portrait)
    cfg.avatar_cache = str(tmp_path / "avatars")
    cfg.device = "cpu"
    return fast_config


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_daemon_lip_syncs_with_the_configured_engine(wav2lip_config, tmp_path, engine):
    if engine == "onnx":
        pytest.importorskip("onnxruntime")
        wav2lip_config.face.wav2lip.onnx_path = str(tmp_path / "w2l.onnx")
    wav2lip_config.face.wav2lip.engine = engine
    replay = tmp_path / "chat.jsonl"
    replay.write_text('{"at": 0.2, "user": "ann", "text": "how much is the lamp?"}\n')
    wav2lip_config.chat.local.replay = str(replay)
    wav2lip_config.sinks.file.enabled = True
    wav2lip_config.sinks.file.path = str(tmp_path / "out.mp4")
    wav2lip_config.sinks.file.preset = "ultrafast"
    app = App(wav2lip_config)
    assert isinstance(app.face, Wav2LipFace)
    report = asyncio.run(app.run(5.0))
    assert report.frames == 125 and report.turns == 1
    with av.open(str(tmp_path / "out.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 125 and frames[0].shape == (180, 320, 3)
    # Inside the face box the speaking frames differ from the idle loop; elsewhere they do not.
    placement = app.face.placement
    y1, y2, x1, x2 = (round(v * placement.scale) for v in app.face.avatar.boxes[0])
    ox, oy = placement.x, placement.y
    speaking = frames[30]
    idle = app.face.idle(30)
    face_diff = np.abs(
        speaking[oy + y1 : oy + y2, ox + x1 : ox + x2].astype(int)
        - idle[oy + y1 : oy + y2, ox + x1 : ox + x2]
    ).mean()
    assert face_diff > 3.0


def test_without_a_checkpoint_the_daemon_says_so_once_and_uses_the_mouth(wav2lip_config, caplog):
    wav2lip_config.face.wav2lip.checkpoint = "/nonexistent/wav2lip_gan.pth"
    with caplog.at_level(logging.WARNING):
        app = App(wav2lip_config)
        asyncio.run(app.run(1.0))
    assert isinstance(app.face, MouthFace)
    warnings = [
        r.getMessage() for r in caplog.records if "Wav2Lip face unavailable" in r.getMessage()
    ]
    assert (
        len(warnings) == 1 and "checkpoint not found: /nonexistent/wav2lip_gan.pth" in warnings[0]
    )


def test_doctor_checks_the_checkpoint_and_says_whether_the_avatar_is_ready(wav2lip_config):
    from streambot.doctor import report, run_checks
    from streambot.face.factory import configured_avatar

    def lines() -> dict[str, str]:
        text, _ = report(run_checks(wav2lip_config))
        return {line.split(":", 1)[0]: line for line in text.splitlines()}

    before = lines()
    assert before["[ok  ] Wav2Lip checkpoint"].endswith("M parameters")
    # Not prepared yet: a warning with the command that prepares it, not a failure.
    assert "[warn] avatar" in before and "avatar prepare" in before["[warn] avatar"]
    cache = Path(wav2lip_config.face.wav2lip.avatar_cache)
    assert not cache.exists() or not any(cache.iterdir()), "doctor must not prepare the avatar"

    prepared = configured_avatar(wav2lip_config)  # what `avatar prepare --config` does
    after = lines()
    assert "[ok  ] avatar" in after and str(prepared.folder) in after["[ok  ] avatar"]

    wav2lip_config.face.wav2lip.checkpoint += ".missing"
    text, healthy = report(run_checks(wav2lip_config))
    assert "[FAIL] Wav2Lip checkpoint" in text and not healthy
