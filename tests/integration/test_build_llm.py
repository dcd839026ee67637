"""build_engines.py --only llm end to end on a tiny Qwen2 trained on the stream's text: the
pruned folder is a vanilla model, the manifest records its figures, the brain runs it, and a
changed source model makes it stale, said and not used; the same from the model as a GGUF."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from needs import need_gguf, need_torch

torch = need_torch()
transformers = pytest.importorskip("transformers")

from streambot.brain.factory import build_brain, llm_model_path  # noqa: E402
from streambot.brain.llm import LLMError  # noqa: E402
from streambot.brain.prompt import system_prompt  # noqa: E402
from streambot.catalog import Catalog  # noqa: E402
from streambot.compress.llm_data import calibration_texts, catalog_questions  # noqa: E402
from streambot.config import load_config  # noqa: E402
from tests.llm_fixture import build_tiny_qwen2, train_on_texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PRUNED = "llm-teacher-p50"  # the project sets [brain.llm] prune = 0.5: half the heads go
# fewer questions and answers than a real build's 100 and 200; a tiny model's accuracy says
# little, so the answer rules are opened (test_llm_build_answers.py tests them)
SMALL = ["--llm-eval-questions", "10", "--llm-teacher-answers", "20", "--llm-kl-answers", "5"]
SMALL += ["--max-llm-accuracy-drop", "100", "--max-llm-garbage-rise", "100"]
SMALL += ["--llm-drop-layers", "0", "--distil-min-steps", "0"]  # a 2-layer model, time-boxed


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("llm-build")
    catalog = Catalog.load()
    texts = calibration_texts(catalog, system_prompt(catalog)) + [
        f"{q} Thanks for asking!" for q, _ in catalog_questions(catalog, 40)
    ]
    model = build_tiny_qwen2(folder / "teacher", texts)
    train_on_texts(model, texts, steps=300)
    (folder / "config.toml").write_text(
        f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{model}'\ndevice = 'cpu'\nprune = 0.5\n"
        f"[engines]\ndir = '{folder / 'engines'}'\n"
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
            "llm",
            "--distil-minutes",
            "0.2",
            *SMALL,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project,
    )


def test_the_pruned_llm_is_built_recorded_run_and_refused_when_stale(project, caplog):
    built = build(project, "--max-llm-kl", "100")
    assert built.returncode == 0, built.stderr[-3000:]
    assert "built" in built.stdout and "KL" in built.stdout
    manifest = json.loads((project / "engines" / "manifest.json").read_text())
    (entry,) = [a for a in manifest["artifacts"] if a["kind"] == "llm"]
    assert (entry["file"], entry["source"], entry["backend"]) == (PRUNED, "teacher", "torch")
    assert set(entry["inputs"]) == {"model", "catalog", "build settings"}
    pruning, fidelity = entry["pruning"], entry["fidelity"]
    assert pruning["after"]["attention_heads"] == 2 and pruning["after"]["kv_heads"] == 2
    assert pruning["params_after"] < pruning["params_before"]
    before, after = fidelity["before_distillation"], fidelity["after_distillation"]
    assert after["kl"] < before["kl"] and fidelity["distillation"]["steps"] > 0
    for who in ("teacher", "student"):
        rates = fidelity["answers"][who]
        assert rates["questions"] == 10 and 0 <= rates["accuracy"] <= 1
    assert fidelity["held_out_answers"] == 5 and fidelity["not_default"] == []
    assert entry["default"]

    folder = project / "engines" / PRUNED
    vanilla = transformers.AutoModelForCausalLM.from_pretrained(folder)
    assert vanilla.config.num_attention_heads == 2 and vanilla.config.head_dim == 16
    again = build(project, "--max-llm-kl", "100")
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout

    config = load_config(project / "config.toml")
    assert llm_model_path(config) == folder
    brain, _ = build_brain(config)
    assert brain.inner.inner.llm.model.config.num_attention_heads == 2

    # the source model changes: its pruned model is stale, said, and the source runs instead
    source = Path(config.brain.llm.path)
    settings = json.loads((source / "config.json").read_text())
    settings["rope_theta"] = 12345.0
    (source / "config.json").write_text(json.dumps(settings))
    with caplog.at_level(logging.WARNING):
        assert llm_model_path(config) == source
    assert "stale: the model changed" in caplog.text
    config.brain.llm.engine = "pruned"
    with pytest.raises(LLMError, match="no pruned model is usable"):
        llm_model_path(config)
    dry = build(project, "--dry-run")
    assert "to build" in dry.stdout and "stale" in dry.stdout


def test_dropping_as_many_layers_as_the_model_has_exits_2_naming_the_key(project):
    built = build(project, "--llm-drop-layers", "2")  # of the teacher's 2
    assert built.returncode == 2, built.stderr
    assert "brain.llm.drop_layers: 2 of" in built.stderr and "Traceback" not in built.stderr


def test_a_missing_model_exits_2_naming_the_key(project, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{tmp_path / 'nope'}'\n")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "build_engines.py"),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "engines"),
            "--only",
            "llm",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "brain.llm.path" in result.stderr


def test_a_gguf_teacher_is_pruned_into_a_vanilla_folder_the_brain_picks(project, tmp_path):
    need_gguf()
    from streambot.runtime.manifest import sha256_model
    from tests.llm_fixture import write_gguf

    gguf = write_gguf(project / "teacher", tmp_path / "teacher.gguf")
    engines = tmp_path / "engines"
    config = tmp_path / "config.toml"
    config.write_text(
        f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{gguf}'\n"
        f"device = 'cpu'\nprune = 0.5\n[engines]\ndir = '{engines}'\n"
    )
    built = subprocess.run(
        [
            sys.executable,
            str(ROOT / "build_engines.py"),
            "--config",
            str(config),
            "--out",
            str(engines),
            "--only",
            "llm",
            "--distil-minutes",
            "0.1",
            "--max-llm-kl",
            "100",
            *SMALL,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    manifest = json.loads((engines / "manifest.json").read_text())
    (entry,) = [a for a in manifest["artifacts"] if a["kind"] == "llm"]
    assert (entry["file"], entry["source"]) == (PRUNED, "teacher.gguf")
    assert entry["inputs"]["model"] == sha256_model(gguf)
    vanilla = transformers.AutoModelForCausalLM.from_pretrained(engines / PRUNED)
    assert getattr(vanilla.config, "quantization_config", None) is None
    assert vanilla.config.num_attention_heads == 2
    assert llm_model_path(load_config(config)) == engines / PRUNED
