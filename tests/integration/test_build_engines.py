"""`python build_engines.py` end to end through the real CLI, on a tiny random-weight Wav2Lip
and a real prepared avatar: prune, distil, fidelity, ONNX, manifest; then up to date, stale,
dry run, and the errors that name their config key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from needs import need_torch_pruning

need_torch_pruning()
pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from streambot.compress.build import RANDOM_WEIGHTS_KEY  # noqa: E402
from streambot.config import load_config  # noqa: E402
from streambot.face.factory import configured_avatar  # noqa: E402
from streambot.models.wav2lip import Wav2Lip  # noqa: E402
from tests.unit.test_distill import TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("build")
    portrait = folder / "host.png"
    Image.fromarray(skimage_data.astronaut()).save(portrait)
    torch.manual_seed(0)
    checkpoint = folder / "tiny_wav2lip.pth"
    torch.save({"widths": TINY.to_dict(), "state_dict": Wav2Lip(TINY).state_dict(),
                RANDOM_WEIGHTS_KEY: True}, checkpoint)  # fmt: skip
    config = folder / "config.toml"
    config.write_text(
        "[stream]\nrealtime = false\nwidth = 320\nheight = 180\n"
        f"[face]\nbackend = 'wav2lip'\n[face.wav2lip]\ncheckpoint = '{checkpoint}'\n"
        f"avatar = '{portrait}'\navatar_cache = '{folder / 'avatars'}'\ndevice = 'cpu'\n"
        f"engines_dir = '{folder / 'engines'}'\n"
        f"[store]\npath = '{folder / 'store.db'}'\n[metrics]\nenabled = false\n"
    )
    configured_avatar(load_config(config))  # `avatar prepare`, as the README's step before
    return folder


def build(project: Path, *args: str, out: str = "engines") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "build_engines.py"), "--config", str(project / "config.toml"),
         "--out", str(project / out), "--distil-minutes", "0.05", "--backends", "trt,onnx,torch",
         *args],
        capture_output=True, text=True, timeout=600, cwd=project,
    )  # fmt: skip


def daemon_face(project: Path, caplog, force_default: bool = False):
    """The face the daemon builds from this config. ``force_default``: treat the built
    engines as defaults (the tiny random teacher's fidelity is under the floor)."""
    from streambot.face.factory import build_wav2lip_face

    if force_default:
        path = project / "engines" / "manifest.json"
        manifest = json.loads(path.read_text())
        for artifact in manifest["artifacts"]:
            artifact["default"] = True
        path.write_text(json.dumps(manifest))
    with caplog.at_level("INFO"):
        return build_wav2lip_face(load_config(project / "config.toml"))


@pytest.mark.slow
def test_build_then_up_to_date_then_stale(project, caplog):
    dry = build(project, "--dry-run", out="fresh")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("to build") == 2 and "TensorRT" in dry.stdout
    assert not (project / "fresh").exists()  # a dry run writes nothing

    first = build(project)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("built") >= 2 and "teacher has random weights" in first.stdout
    manifest = json.loads((project / "engines" / "manifest.json").read_text())
    assert manifest["schema"] == 1
    by_backend = {a["backend"]: a for a in manifest["artifacts"]}
    assert set(by_backend) == {"torch", "onnxruntime"}
    onnx = by_backend["onnxruntime"]
    assert onnx["file"] == "wav2lip-p50.onnx" and (project / "engines" / onnx["file"]).is_file()
    assert set(onnx["inputs"]) == {"checkpoint", "avatar", "build settings"}
    assert onnx["pruning"]["params_after"] < 0.3 * onnx["pruning"]["params_before"]
    fidelity = onnx["fidelity"]
    assert fidelity["teacher"].startswith("random weights")
    assert fidelity["distillation"]["steps"] > 0
    assert {"mouth_psnr_db", "mouth_ssim"} <= set(fidelity["after_distillation"])
    reloaded = Wav2Lip.from_checkpoint(project / "engines" / by_backend["torch"]["file"])
    assert reloaded.config.face_widths == tuple(w // 2 for w in TINY.face_widths)

    again = build(project)
    assert again.returncode == 0 and again.stdout.count("up to date") == 2, again.stdout

    # the daemon's engine = "auto" picks the built ONNX engine (the fastest on a CPU) ...
    face = daemon_face(project, caplog, force_default=True)
    assert face.engine.name == "onnxruntime-cpu"
    assert "Wav2Lip engine from" in caplog.text and "wav2lip-p50.onnx" in caplog.text
    doctor = subprocess.run(
        [sys.executable, "-m", "streambot", "doctor", "--config", str(project / "config.toml")],
        capture_output=True, text=True, timeout=120, cwd=project,
    )  # fmt: skip
    assert "Wav2Lip engines: wav2lip-p50.pt (torch), wav2lip-p50.onnx (onnxruntime); would " \
           "use wav2lip-p50.onnx" in doctor.stdout, doctor.stdout  # fmt: skip

    checkpoint = project / "tiny_wav2lip.pth"
    saved = torch.load(checkpoint, weights_only=True)
    saved["state_dict"]["output_block.1.bias"] += 0.1  # the user swapped in other weights
    torch.save(saved, checkpoint)
    stale = build(project, "--dry-run")
    assert stale.stdout.count("to build") == 2
    assert "the checkpoint changed since it was built" in stale.stdout.replace("\n", " ")
    # ... and refuses it, saying why, once the checkpoint is not the one it was built from
    caplog.clear()
    face = daemon_face(project, caplog)
    assert face.engine.name == "torch-cpu-fp32"
    assert "wav2lip-p50.onnx is stale: the checkpoint changed since it was built" in caplog.text


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ("checkpoint = '/nope/w2l.pth'", "face.wav2lip.checkpoint"),
        ("avatar = '/nope/face.png'", "face.wav2lip.avatar"),
    ],
)
def test_a_missing_checkpoint_or_avatar_exits_2_naming_the_key(project, tmp_path, edit, key):
    text = (project / "config.toml").read_text()
    field = edit.split(" = ")[0]
    lines = [edit if line.startswith(f"{field} = ") else line for line in text.splitlines()]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [sys.executable, str(ROOT / "build_engines.py"), "--config", str(config), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and key in run.stderr and "Traceback" not in run.stderr
