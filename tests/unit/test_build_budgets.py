"""How long each engine is distilled: --distil-minutes for all when given, else the face's and
the voice's fixed budget and the LLM's own ``[brain.llm] distil_minutes`` (set from its
measured frontier), recorded in the LLM's build settings so a changed budget rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streambot.compress.build import _options, parser
from streambot.compress.common import FACE_VOICE_DISTIL_MINUTES, BuildError, BuildOptions
from streambot.compress.llm_build import resolve_llm
from streambot.config import load_config


def llm_project(folder: Path, extra: str = ""):
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    text = f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{model}'\n{extra}"
    (folder / "config.toml").write_text(text)
    return load_config(folder / "config.toml")


def test_without_the_flag_each_engine_keeps_its_own_budget():
    options = _options(parser().parse_args([]))
    assert options.distil_minutes is None
    assert options.face_voice_distil_minutes == FACE_VOICE_DISTIL_MINUTES
    assert options.distil_minutes_or(10.0) == 10.0


def test_the_flag_sets_every_engines_budget():
    options = _options(parser().parse_args(["--distil-minutes", "5"]))
    assert options.face_voice_distil_minutes == 5.0
    assert options.distil_minutes_or(10.0) == 5.0


def test_the_llm_is_distilled_for_its_configured_minutes_unless_the_flag_is_given(tmp_path):
    default = llm_project(tmp_path)
    job = resolve_llm(default, BuildOptions())
    assert job.distil_minutes == default.brain.llm.distil_minutes == 10.0
    assert job.ratio == default.brain.llm.prune == 0.25
    assert job.drop_layers == default.brain.llm.drop_layers == 4
    assert resolve_llm(default, BuildOptions(llm_drop_layers=0)).drop_layers == 0
    assert resolve_llm(default, BuildOptions(distil_minutes=2.0)).distil_minutes == 2.0


def test_a_changed_llm_budget_changes_its_build_settings(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ten = resolve_llm(llm_project(tmp_path / "a"), BuildOptions())
    twenty = resolve_llm(llm_project(tmp_path / "b", "distil_minutes = 20.0\n"), BuildOptions())
    assert twenty.distil_minutes == 20.0
    assert ten.inputs["build settings"] != twenty.inputs["build settings"]


def test_the_llm_trains_at_least_its_configured_steps_unless_the_flag_is_given(tmp_path):
    config = llm_project(tmp_path)
    default = resolve_llm(config, BuildOptions())
    assert default.distil_min_steps == config.brain.llm.distil_min_steps == 100
    flagged = resolve_llm(config, _options(parser().parse_args(["--distil-min-steps", "300"])))
    assert flagged.distil_min_steps == 300
    # a different least changes what is built, so it rebuilds
    assert default.inputs["build settings"] != flagged.inputs["build settings"]


def test_a_negative_least_of_steps_is_refused_naming_the_flag():
    with pytest.raises(BuildError, match="--distil-min-steps"):
        _options(parser().parse_args(["--distil-min-steps", "-1"]))
