"""bench/llm_frontier.py: the plan (ratios x dropped layers x cumulative distillation minutes),
the record that lets an interrupted run skip what it measured, the resume snapshots that make
each checkpoint continue the one before, and the table; all without building a model. Also the
builder's folder names, which the resume files are named after: one per shape."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streambot.compress.llm_build import LLMBuild
from tests.bench_script import load

frontier = load("llm_frontier")
Point = frontier.Point


def job(ratio: float = 0.25, drop: int = 0, mode: str = "auto") -> LLMBuild:
    return LLMBuild(
        Path("models/Qwen2.5-0.5B-Instruct"), ratio, mode, drop, 10.0, 100, {"model": "ab" * 32}
    )


def test_every_shape_has_its_own_folder_and_resume_file():
    names = {job(r, d).folder for r in (0.1, 0.25, 0.5) for d in (0, 4)}
    assert len(names) == 6
    assert job(0.25, 0).folder == "llm-Qwen2.5-0.5B-Instruct-p25"  # as builds named it before
    assert job(0.25, 4).folder == "llm-Qwen2.5-0.5B-Instruct-p25-d4"
    assert job(0.25, 0, "groups").folder != job(0.25, 0, "query").folder != job(0.25).folder
    assert job(0.25, 0).resume_path(Path("out")) != job(0.25, 4).resume_path(Path("out"))
    assert job(0.1).slug == job(0.5, 4).slug == "llm-Qwen2.5-0.5B-Instruct"  # teacher caches


def test_the_plan_is_every_ratio_and_drop_through_cumulative_checkpoints():
    points = frontier.plan_points([0.1, 0.25, 0.5], [0, 4], [30, 10, 60, 10])
    assert len(points) == 18
    shapes = [(p.ratio, p.drop) for p in points[::3]]
    assert shapes == [(0.1, 0), (0.1, 4), (0.25, 0), (0.25, 4), (0.5, 0), (0.5, 4)]
    chain = points[3:6]  # ratio 0.1, 4 layers dropped
    assert [(p.minutes, p.since, p.increment, p.last) for p in chain] == [
        (10, 0, 10, False),
        (30, 10, 20, False),
        (60, 30, 30, True),
    ]
    assert all(p.drop == 4 and p.ratio == 0.1 for p in chain)
    with pytest.raises(ValueError, match="--minutes"):
        frontier.plan_points([0.5], [0], [0, 10])


def test_recorded_points_of_the_same_model_are_skipped_and_a_cut_line_ignored(tmp_path):
    points = frontier.plan_points([0.25, 0.5], [0], [10, 30])
    record = tmp_path / frontier.RECORD
    done = {"model": "abc", "ratio": 0.25, "drop_layers": 0, "minutes": 10}
    frontier.append_record(record, done)
    frontier.append_record(record, {**done, "model": "other", "minutes": 30})
    with record.open("a") as f:
        f.write('{"model": "abc", "ratio": 0.25, "drop_la')  # the run was killed mid-write
    rows = frontier.read_record(record)
    assert len(rows) == 2
    todo = frontier.pending(points, rows, "abc")
    assert [(p.ratio, p.minutes) for p in todo] == [(0.25, 30), (0.5, 10), (0.5, 30)]
    assert len(frontier.pending(points, rows, "new model")) == 4
    assert frontier.previous(rows, todo[0]) == done
    assert frontier.read_record(tmp_path / "none.jsonl") == []


def test_the_estimate_counts_only_the_increments_of_the_points_to_build():
    points = frontier.plan_points([0.5], [0, 4], [10, 30, 60])
    assert frontier.estimate_minutes(points, overhead=12, teacher=30) == 2 * 60 + 6 * 12 + 30
    assert frontier.estimate_minutes(points[2:3], overhead=12, teacher=30) == 30 + 12 + 30
    assert frontier.estimate_minutes([], overhead=12, teacher=30) == 0


def saved(path: Path, text: str) -> None:
    """What the build does to its resume file: a new file renamed over it."""
    (path.parent / "new").write_text(text)
    os.replace(path.parent / "new", path)


def test_each_checkpoint_continues_exactly_the_recorded_one_before(tmp_path):
    resume = tmp_path / ".llm-m-p25.abc.distil"
    first, second, third = frontier.plan_points([0.25], [0], [10, 30, 60])
    resume.write_text("stale: another run's")
    assert frontier.restore(resume, first) == 10 and not resume.exists()  # from the pruned
    saved(resume, "10 min")
    frontier.snapshot(resume, first)
    frontier.tidy(resume, first, keep_resume=False)
    assert frontier.restore(resume, second) == 20 and resume.read_text() == "10 min"
    saved(resume, "interrupted at 25 min")  # killed before the 30-minute point was recorded
    assert frontier.restore(resume, second) == 20 and resume.read_text() == "10 min"
    saved(resume, "30 min")
    frontier.snapshot(resume, second)
    frontier.tidy(resume, second, keep_resume=False)
    assert not frontier.snapshot_path(resume, 10).exists()
    assert frontier.restore(resume, third) == 30 and resume.read_text() == "30 min"
    saved(resume, "60 min")
    frontier.snapshot(resume, third)
    frontier.tidy(resume, third, keep_resume=False)
    assert list(tmp_path.iterdir()) == []  # the shape is done: gigabytes freed


def test_without_its_snapshot_a_checkpoint_distils_all_its_minutes_again(tmp_path):
    resume = tmp_path / ".llm-m-p25.abc.distil"
    _, second = frontier.plan_points([0.25], [0], [10, 30])
    resume.write_text("somewhere past 10 minutes")
    assert frontier.restore(resume, second) == 30 and not resume.exists()


def row(ratio: float, minutes: float, accuracy: float, speedup: float, default: bool) -> dict:
    rates = {"accuracy": accuracy, "garbage_written": 1, "llm_share": 0.5}
    return {
        "model": "abc",
        "ratio": ratio,
        "drop_layers": 0,
        "minutes": minutes,
        "steps": 100,
        "params_after": 250e6,
        "student": rates,
        "teacher": {**rates, "accuracy": 0.9},
        "kl_before": 2.0,
        "kl": 0.4,
        "decode": {"speedup": speedup, "student_tok_s": 30.0},
        "default": default,
        "not_default": [] if default else ["accuracy 70.0% < teacher"],
    }


def test_the_table_stars_the_pareto_points_and_suggests_the_fastest_accepted():
    rows = [
        row(0.1, 10, 0.9, 1.1, True),
        row(0.1, 30, 0.9, 1.1, True),  # as good as at 10 minutes, for more: dominated
        row(0.25, 10, 0.88, 1.3, True),
        row(0.5, 10, 0.7, 1.6, False),
        row(0.5, 60, 0.6, 1.5, False),  # worse in all three than the 10-minute one
    ]
    keys = frontier.pareto(rows)
    assert keys == {frontier.row_key(rows[i]) for i in (0, 2, 3)}
    assert frontier.suggest(rows) is rows[2]
    assert frontier.suggest(rows[3:]) is None
    lines = frontier.table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| 0.1 * | 0 | 10 | 100 | 250M | 90.0% (90.0%) |")
    assert "| 1.30x (30.0 tok/s) | yes |" in lines[4]
    assert lines[5].endswith("| no: accuracy 70.0% < teacher |")
    assert "ratio 0.25, layers dropped 0, 10 min" in frontier.conclusion(rows)


def test_the_dry_run_prints_the_plan_and_an_estimate(tmp_path, capsys):
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text("{}")
    args = ["--model", str(model), "--out", str(tmp_path / "out"), "--dry-run"]
    args += ["--config", str(tmp_path / "none.toml"), "--ratios", "0.25,0.5"]
    assert frontier.main(args) == 0
    out = capsys.readouterr().out
    assert "| 0.5 | 4 | 60 | 30 min | to build |" in out
    assert "12 of 12 points to build" in out
    key = out.split(f"{model.name} (")[1][:12]
    done = {"model": key, "ratio": 0.25, "drop_layers": 4, "minutes": 10}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / frontier.RECORD).write_text(json.dumps(done) + "\n")
    assert frontier.main(args) == 0
    out = capsys.readouterr().out
    assert "| 0.25 | 4 | 10 | 10 min | recorded |" in out and "11 of 12" in out
