"""`python build_engines.py` end to end through the real CLI, on a tiny random-weight Wav2Lip
and a real prepared avatar: prune, distil, fidelity, ONNX, manifest; then up to date, stale,
dry run, and the errors that name their config key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from needs import need_tensorrt_gpu, need_torch_pruning

need_torch_pruning()
pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from streambot.compress.common import RANDOM_WEIGHTS_KEY  # noqa: E402
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
    torch.save(
        {
            "widths": TINY.to_dict(),
            "state_dict": Wav2Lip(TINY).state_dict(),
            RANDOM_WEIGHTS_KEY: True,
        },
        checkpoint,
    )
    config = folder / "config.toml"
    config.write_text(
        "[stream]\nrealtime = false\nwidth = 320\nheight = 180\n"
        f"[face]\nbackend = 'wav2lip'\n[face.wav2lip]\ncheckpoint = '{checkpoint}'\n"
        f"avatar = '{portrait}'\navatar_cache = '{folder / 'avatars'}'\ndevice = 'cpu'\n"
        f"[engines]\ndir = '{folder / 'engines'}'\n"
        f"[store]\npath = '{folder / 'store.db'}'\n[metrics]\nenabled = false\n"
    )
    configured_avatar(load_config(config))  # `avatar prepare`, as the README's step before
    return folder


def build(project: Path, *args: str, out: str = "engines") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "build_engines.py"),
            "--config",
            str(project / "config.toml"),
            "--out",
            str(project / out),
            "--distil-minutes",
            "0.05",
            "--backends",
            "trt,onnx,torch",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project,
    )


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
    assert dry.stdout.count("to build") == 3  # the pruned torch model, fp32 and fp16 ONNX
    assert "TensorRT is not available here" in dry.stdout  # said, and the rest is built
    assert not (project / "fresh").exists()  # a dry run writes nothing

    first = build(project)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("built") >= 2 and "teacher has random weights" in first.stdout
    manifest = json.loads((project / "engines" / "manifest.json").read_text())
    assert manifest["schema"] == 1
    by_file = {a["file"]: a for a in manifest["artifacts"]}
    assert {"wav2lip-p50.pt", "wav2lip-p50.onnx", "wav2lip-p50-fp16.onnx"} <= set(by_file)
    assert by_file["wav2lip-p50.pt"]["backend"] == "torch"
    onnx, fp16 = by_file["wav2lip-p50.onnx"], by_file["wav2lip-p50-fp16.onnx"]
    assert (onnx["backend"], onnx["precision"]) == ("onnxruntime", "fp32")
    assert (fp16["backend"], fp16["precision"]) == ("onnxruntime", "fp16")
    assert all((project / "engines" / name).is_file() for name in by_file)
    assert set(onnx["inputs"]) == {"checkpoint", "avatar", "build settings"}
    assert onnx["pruning"]["params_after"] < 0.3 * onnx["pruning"]["params_before"]
    fidelity = onnx["fidelity"]
    assert fidelity["teacher"].startswith("random weights")
    assert fidelity["distillation"]["steps"] > 0
    assert {"mouth_psnr_db", "mouth_ssim"} <= set(fidelity["after_distillation"])
    assert len(fidelity["distillation"]["loss_curve"]) >= 1
    # both importances were measured, the closer one kept
    chosen = fidelity["importance"]["chosen"]
    assert chosen == onnx["pruning"]["importance"] in ("l2", "activation")
    assert fidelity["importance"][chosen]["mouth_psnr_db"] == max(
        fidelity["importance"][k]["mouth_psnr_db"] for k in ("l2", "activation")
    )
    # each file has its own figures: the fp16 export is within rounding of the fp32 one
    assert fidelity["this_file"]["speed_up"] > 0 and fidelity["this_file"]["teacher_fps"] > 0
    fp32_psnr = fidelity["this_file"]["mouth_psnr_db"]
    assert abs(fp16["fidelity"]["this_file"]["mouth_psnr_db"] - fp32_psnr) < 3.0
    reloaded = Wav2Lip.from_checkpoint(project / "engines" / "wav2lip-p50.pt")
    assert reloaded.config.face_widths == tuple(w // 2 for w in TINY.face_widths)

    again = build(project)
    assert again.returncode == 0 and again.stdout.count("up to date") == 3, again.stdout

    # an artifact built with another version of a build library is rebuilt
    path = project / "engines" / "manifest.json"
    edited = json.loads(path.read_text())
    for artifact in edited["artifacts"]:
        if artifact["file"] == "wav2lip-p50.pt":
            artifact["versions"]["torch"] = "2.0.0"
    path.write_text(json.dumps(edited))
    upgraded = build(project, "--dry-run")
    assert upgraded.stdout.count("up to date") == 2, upgraded.stdout
    assert "built with torch 2.0.0, now" in upgraded.stdout

    # the daemon's engine = "auto" picks the built ONNX engine (the fastest on a CPU) ...
    face = daemon_face(project, caplog, force_default=True)
    assert face.engine.name == "onnxruntime-cpu"
    assert "Wav2Lip engine from" in caplog.text
    assert "wav2lip-p50.onnx" in caplog.text or "wav2lip-p50-int8.onnx" in caplog.text
    doctor = subprocess.run(
        [sys.executable, "-m", "streambot", "doctor", "--config", str(project / "config.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
    )
    listed = "Wav2Lip engines: wav2lip-p50.pt (torch fp32), wav2lip-p50.onnx (onnxruntime fp32)"
    assert listed in doctor.stdout, doctor.stdout
    assert "wav2lip-p50-fp16.onnx (onnxruntime fp16)" in doctor.stdout
    assert "would use wav2lip-p50.onnx" in doctor.stdout or (
        "would use wav2lip-p50-int8.onnx" in doctor.stdout  # int8 where it won on this CPU
    )

    checkpoint = project / "tiny_wav2lip.pth"
    saved = torch.load(checkpoint, weights_only=True)
    saved["state_dict"]["output_block.1.bias"] += 0.1  # the user swapped in other weights
    torch.save(saved, checkpoint)
    stale = build(project, "--dry-run")
    assert stale.stdout.count("to build") == 3
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
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and key in run.stderr and "Traceback" not in run.stderr


@pytest.mark.gpu
@pytest.mark.slow
def test_a_gpu_build_makes_a_tensorrt_engine_the_daemon_runs(project, caplog):
    need_tensorrt_gpu()
    run = build(project, "--device", "cuda", "--backends", "trt", out="gpu")
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((project / "gpu" / "manifest.json").read_text())
    engine = next(a for a in manifest["artifacts"] if a["backend"] == "tensorrt")
    assert engine["precision"] == "fp16" and engine["file"].endswith(".plan")
    assert engine["device"]["kind"] == "cuda" and engine["device"]["capability"]
    assert {"tensorrt", "cuda"} <= set(engine["versions"])
    assert engine["fidelity"]["this_file"]["mouth_psnr_db"] > 0
    assert list((project / "gpu").glob("tensorrt-*.timing-cache"))
