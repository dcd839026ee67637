"""engines/manifest.json: atomic, schema-checked, and it refuses stale or foreign artifacts with
one sentence saying why."""

from __future__ import annotations

import json

import pytest

from streambot.runtime.manifest import (
    Artifact,
    Device,
    Manifest,
    ManifestError,
    sha256_file,
    sha256_json,
    sha256_tree,
)

H200 = Device("cuda", "NVIDIA H200", "9.0")
RTX = Device("cuda", "NVIDIA GeForce RTX 4090", "8.9")
ORDER = ("tensorrt", "onnxruntime", "torch")


@pytest.fixture
def built(tmp_path):
    """A folder with a checkpoint, an avatar and two built engines, as a build leaves it."""
    checkpoint = tmp_path / "wav2lip.pth"
    checkpoint.write_bytes(b"weights")
    avatar = tmp_path / "avatar"
    avatar.mkdir()
    (avatar / "frames.npy").write_bytes(b"frames")
    engines = tmp_path / "engines"
    engines.mkdir()
    inputs = {
        "checkpoint": sha256_file(checkpoint),
        "avatar": sha256_tree(avatar),
        "config": sha256_json({"ratio": 0.5}),
    }
    manifest = Manifest(engines)
    for name, backend, precision, device in (
        ("wav2lip-p50.plan", "tensorrt", "fp16", H200),
        ("wav2lip-p50.onnx", "onnxruntime", "fp32", Device()),
    ):
        (engines / name).write_bytes(name.encode())
        manifest.put(
            Artifact(
                "wav2lip",
                name,
                sha256_file(engines / name),
                backend,
                precision,
                dict(inputs),
                device,
                {"tensorrt": "10.13.0"} if backend == "tensorrt" else {},
                {"ratio": 0.5},
                {"mouth_psnr_db": 31.2},
                default=True,
            )
        )
    manifest.save()
    return tmp_path, checkpoint, avatar, inputs


def test_it_round_trips_and_is_written_atomically(built):
    root, *_ = built
    manifest = Manifest.load(root / "engines")
    assert [a.file for a in manifest.artifacts] == ["wav2lip-p50.plan", "wav2lip-p50.onnx"]
    assert manifest.artifacts[0].device == H200
    assert [p.name for p in (root / "engines").iterdir() if p.name.startswith(".")] == []


def test_the_fastest_usable_backend_is_picked_on_its_own_machine(built):
    root, _, _, inputs = built
    manifest = Manifest.load(root / "engines")
    chosen, refused = manifest.usable("wav2lip", inputs, H200, {"tensorrt": "10.13.0"}, ORDER)
    assert chosen.file == "wav2lip-p50.plan" and refused == []


def test_a_tensorrt_engine_from_another_gpu_or_version_is_refused_and_onnx_used(built):
    root, _, _, inputs = built
    manifest = Manifest.load(root / "engines")
    chosen, refused = manifest.usable("wav2lip", inputs, RTX, {"tensorrt": "10.13.0"}, ORDER)
    assert chosen.file == "wav2lip-p50.onnx"
    assert refused == [
        "wav2lip-p50.plan was built for NVIDIA H200 (sm 9.0), this machine has "
        "NVIDIA GeForce RTX 4090 (sm 8.9)"
    ]
    chosen, refused = manifest.usable("wav2lip", inputs, H200, {"tensorrt": "11.0.0"}, ORDER)
    assert chosen.file == "wav2lip-p50.onnx"
    assert refused == ["wav2lip-p50.plan needs tensorrt 10.13.0, this machine has 11.0.0"]


@pytest.mark.parametrize("changed", ["checkpoint", "avatar"])
def test_an_engine_built_from_another_checkpoint_or_avatar_is_stale(built, changed):
    root, checkpoint, avatar, inputs = built
    if changed == "checkpoint":
        checkpoint.write_bytes(b"new weights")
        inputs = {**inputs, "checkpoint": sha256_file(checkpoint)}
    else:
        (avatar / "frames.npy").write_bytes(b"another face")
        inputs = {**inputs, "avatar": sha256_tree(avatar)}
    chosen, refused = Manifest.load(root / "engines").usable(
        "wav2lip", inputs, H200, {"tensorrt": "10.13.0"}, ORDER
    )
    assert chosen is None
    stale = f"is stale: the {changed} changed since it was built"
    assert refused == [f"wav2lip-p50.plan {stale}", f"wav2lip-p50.onnx {stale}"]


def test_a_tampered_engine_file_and_a_low_fidelity_build_are_refused(built):
    root, _, _, inputs = built
    (root / "engines" / "wav2lip-p50.onnx").write_bytes(b"corrupted")
    manifest = Manifest.load(root / "engines")
    manifest.artifacts[0].default = False
    chosen, refused = manifest.usable("wav2lip", inputs, H200, {"tensorrt": "10.13.0"}, ORDER)
    assert chosen is None
    assert refused == [
        "wav2lip-p50.plan is not a default (its fidelity was too low)",
        "wav2lip-p50.onnx changed since it was built (checksum differs)",
    ]


def test_an_unknown_schema_or_junk_is_refused_as_a_whole(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 99, "artifacts": []}))
    with pytest.raises(ManifestError, match="schema 99 is not 1"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{half")
    with pytest.raises(ManifestError, match="cannot be read"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 1, "artifacts": [{"x": 1}]}))
    with pytest.raises(ManifestError, match="malformed"):
        Manifest.load(tmp_path)


def test_no_manifest_yet_is_an_empty_one(tmp_path):
    assert Manifest.load(tmp_path / "engines").artifacts == []


def test_within_a_backend_the_preferred_precision_comes_first(built):
    root, _, _, inputs = built
    engines = root / "engines"
    manifest = Manifest.load(engines)
    (engines / "wav2lip-p50-int8.onnx").write_bytes(b"int8")
    manifest.put(
        Artifact(
            "wav2lip",
            "wav2lip-p50-int8.onnx",
            sha256_file(engines / "wav2lip-p50-int8.onnx"),
            "onnxruntime",
            "int8",
            dict(inputs),
            default=True,
        )
    )
    cpu = Device()
    chosen, _ = manifest.usable("wav2lip", inputs, cpu, {}, ("onnxruntime",), ("int8", "fp32"))
    assert chosen.file == "wav2lip-p50-int8.onnx"
    chosen, _ = manifest.usable("wav2lip", inputs, cpu, {}, ("onnxruntime",), ("fp32", "int8"))
    assert chosen.file == "wav2lip-p50.onnx"
