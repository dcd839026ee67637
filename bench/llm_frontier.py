"""The LLM's default ratio and distillation budget, from measurement: the frontier of pruning
ratio x dropped layers x CPU distillation minutes x answer accuracy and decode speed.

Every point is a real ``build_engines.py --only llm`` build (the builder's own Python API) of
``--model`` into ``--out``, with the config's catalog and prompts: pruned by the ratio (and
``--llm-drop-layers``), distilled, judged by its answers to held-out questions in the daemon's
brain, its decode speed timed against the teacher's in the same run. The minutes are cumulative
checkpoints of one distillation per shape: the 10-minute build distils 10 minutes, the 30-minute
one continues from its resume file for 20 more, and so on (a snapshot of the resume file, a hard
link, is kept at each recorded checkpoint, so a restart continues from exactly there). The
teacher writes its answers and is judged once (both are cached in ``--out``).

Each point is appended to ``--out/frontier.jsonl`` as soon as it is measured, and a restart
skips the points recorded there (for the same model). The markdown rows print as they come,
then the whole table, the Pareto points (no other point is as accurate, as fast and as cheap
to distil, and better in one) starred, and the fastest student the build accepts as a default.

    python bench/llm_frontier.py --model models/Qwen2.5-0.5B-Instruct --out frontier --dry-run
    python bench/llm_frontier.py --model models/Qwen2.5-0.5B-Instruct --out frontier
    python bench/llm_frontier.py --model ... --ratios 0.25 --drop-layers 0 --minutes 5,15
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the streambot package, run from anywhere

RECORD = "frontier.jsonl"
COLUMNS = (
    "ratio",
    "drop",
    "minutes",
    "steps",
    "params",
    "accuracy (teacher)",
    "garbage (teacher)",
    "LLM share (teacher)",
    "KL",
    "decode",
    "default",
)


@dataclass(frozen=True)
class Point:
    """One build of the frontier: a shape (ratio, layers dropped) distilled ``minutes`` in all,
    continuing the same shape's checkpoint at ``since`` minutes (0: from the pruned weights)."""

    ratio: float
    drop: int
    minutes: float
    since: float = 0.0
    last: bool = False  # the shape's last checkpoint: its resume file is no longer needed

    @property
    def increment(self) -> float:
        """Minutes this build distils when it continues from ``since``."""
        return self.minutes - self.since


def plan_points(
    ratios: Sequence[float], drops: Sequence[int], minutes: Sequence[float]
) -> list[Point]:
    """Every (ratio, drop) shape, each through the checkpoints in ascending order, each
    continuing the one before: the order the frontier builds them in."""
    checkpoints = sorted(set(minutes))
    if not checkpoints or checkpoints[0] <= 0:
        raise ValueError(f"--minutes: {minutes} must be positive")
    points = []
    for ratio in ratios:
        for drop in drops:
            since = 0.0
            for m in checkpoints:
                points.append(Point(ratio, drop, m, since, last=m == checkpoints[-1]))
                since = m
    return points


def point_key(model: str, ratio: float, drop: int, minutes: float) -> str:
    """A point's identity in the record: the model's digest (first 12), ratio, drop, minutes."""
    return f"{model}|p{ratio:g}|d{drop}|m{minutes:g}"


def row_key(row: dict[str, Any]) -> str:
    return point_key(row["model"], row["ratio"], row["drop_layers"], row["minutes"])


def read_record(path: Path) -> list[dict[str, Any]]:
    """The rows recorded so far; a line cut off by an interrupted write is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and {"model", "ratio", "drop_layers", "minutes"} <= row.keys():
            rows.append(row)
    return rows


def append_record(path: Path, row: dict[str, Any]) -> None:
    """One row appended and flushed to disk: an interrupted run keeps every point measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pending(points: Sequence[Point], rows: Iterable[dict[str, Any]], model: str) -> list[Point]:
    """The points of ``model`` not recorded yet, in plan order."""
    done = {row_key(r) for r in rows}
    return [p for p in points if point_key(model, p.ratio, p.drop, p.minutes) not in done]


def estimate_minutes(points: Sequence[Point], overhead: float, teacher: float) -> float:
    """Rough wall minutes of building ``points``: their distillation (each continues from its
    checkpoint), ``overhead`` per build (loading, pruning, KL, the student's answers, decode
    timing) and ``teacher`` once (it writes and is judged once, then cached)."""
    if not points:
        return 0.0
    return sum(p.increment for p in points) + overhead * len(points) + teacher


# -- resume snapshots ---------------------------------------------------------------------------
def snapshot_path(resume: Path, minutes: float) -> Path:
    return resume.with_name(f"{resume.name}.{minutes:g}min")


def _link(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s content: a hard link (free; the build replaces the
    resume file by renaming, so the snapshot's data survives), a copy where links fail. Not
    through the build's own ``.tmp`` name: it writes that file in place."""
    if target.is_file() and os.path.samefile(source, target):
        return  # already so (rename would leave the temporary behind)
    temporary = target.with_name(target.name + ".link")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def restore(resume: Path, point: Point) -> float:
    """Put the shape's distillation where ``point`` starts, and return the minutes the build
    must distil: the snapshot at ``point.since`` (its increment), else from the pruned
    weights (all of ``point.minutes``; a stale resume file is removed: never more)."""
    if point.since:
        snapshot = snapshot_path(resume, point.since)
        if snapshot.is_file():
            _link(snapshot, resume)
            return point.increment
        what = "no snapshot at %g min (%s): distilling %g min from the pruned weights"
        logging.warning(what, point.since, snapshot.name, point.minutes)
    resume.unlink(missing_ok=True)
    return point.minutes


def snapshot(resume: Path, point: Point) -> None:
    """The distillation at ``point``, kept before the point is recorded: a recorded point
    always has its snapshot for the next checkpoint to continue from."""
    if resume.is_file():
        _link(resume, snapshot_path(resume, point.minutes))


def tidy(resume: Path, point: Point, keep_resume: bool) -> None:
    """After ``point`` is recorded: the snapshot before it goes; after a shape's last
    checkpoint its own and the resume file go too unless ``keep_resume`` (gigabytes each on
    a 0.5B)."""
    if point.since:
        snapshot_path(resume, point.since).unlink(missing_ok=True)
    if point.last and not keep_resume:
        snapshot_path(resume, point.minutes).unlink(missing_ok=True)
        resume.unlink(missing_ok=True)


# -- rows ---------------------------------------------------------------------------------------
def frontier_row(
    model: str, point: Point, entry: Any, distilled: float, seconds: float
) -> dict[str, Any]:
    """A point's figures from its manifest entry (``entry``: the Artifact)."""
    fidelity, pruning = entry.fidelity, entry.pruning
    student, teacher = fidelity["answers"]["student"], fidelity["answers"]["teacher"]
    distillation, decode = fidelity["distillation"], fidelity.get("decode", {})
    return {
        "model": model,
        "ratio": point.ratio,
        "drop_layers": point.drop,
        "minutes": point.minutes,
        "distilled_minutes": round(distilled, 4),
        "steps": distillation.get("resumed_from_step", 0) + distillation["steps"],
        "resumed_from_step": distillation.get("resumed_from_step", 0),
        "min_steps": distillation.get("min_steps", 0),
        "learns": fidelity.get("learns", "the daemon's words"),
        "distillation_seconds": distillation.get("seconds"),
        "params_before": pruning["params_before"],
        "params_after": pruning["params_after"],
        "student": student,
        "teacher": teacher,
        "kl_before": fidelity["before_distillation"]["kl"],
        "kl": fidelity["after_distillation"]["kl"],
        "perplexity_student": fidelity["after_distillation"]["perplexity_student"],
        "perplexity_teacher": fidelity["after_distillation"]["perplexity_teacher"],
        "decode": decode,
        "default": entry.default,
        "not_default": fidelity.get("not_default", []),
        "folder": entry.file,
        "build_seconds": round(seconds, 1),
        "recorded_at": time.time(),
    }


def pareto(rows: Sequence[dict[str, Any]]) -> set[str]:
    """The keys of the rows no other row dominates: at least as accurate, as fast to decode and
    as cheap to distil, and better in one of the three."""

    def figures(r: dict[str, Any]) -> tuple[float, float, float]:
        return (r["student"]["accuracy"], r["decode"].get("speedup", 0.0), -r["minutes"])

    def dominates(a: tuple, b: tuple) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    return {
        row_key(r)
        for r in rows
        if not any(dominates(figures(o), figures(r)) for o in rows if o is not r)
    }


def suggest(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The default the frontier argues for: of the students the build accepts as a default,
    the fastest decoder, then the least distillation; None when it accepts none."""
    accepted = [r for r in rows if r["default"]]
    if not accepted:
        return None
    return max(accepted, key=lambda r: (r["decode"].get("speedup", 0.0), -r["minutes"]))


def markdown_row(row: dict[str, Any], star: bool = False) -> str:
    s, t, decode = row["student"], row["teacher"], row["decode"]
    cells = (
        f"{row['ratio']:g}" + (" *" if star else ""),
        str(row["drop_layers"]),
        f"{row['minutes']:g}",
        str(row["steps"]),
        f"{row['params_after'] / 1e6:.3g}M",
        f"{s['accuracy']:.1%} ({t['accuracy']:.1%})",
        f"{s['garbage_written']} ({t['garbage_written']})",
        f"{s['llm_share']:.0%} ({t['llm_share']:.0%})",
        f"{row['kl_before']:.2f} -> {row['kl']:.2f}",
        f"{decode.get('speedup', 0.0):.2f}x ({decode.get('student_tok_s', 0.0):.1f} tok/s)",
        "yes" if row["default"] else "no: " + "; ".join(row["not_default"]),
    )
    return "| " + " | ".join(cells) + " |"


def markdown_header() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The whole frontier, in plan order, its Pareto points starred."""
    ordered = sorted(rows, key=lambda r: (r["ratio"], r["drop_layers"], r["minutes"]))
    best = pareto(ordered)
    lines = [markdown_header()] + [markdown_row(r, row_key(r) in best) for r in ordered]
    return "\n".join(lines)


# -- running ------------------------------------------------------------------------------------
def parse_list(text: str, kind: type) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"not a list of {kind.__name__}: {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="", help="the LLM (default: the config's [brain.llm] path)")
    p.add_argument(
        "--config",
        default="config.toml",
        help="catalog, prompts, guard (the embedded defaults when missing)",
    )
    p.add_argument("--out", default="frontier", help="engines, caches and frontier.jsonl")
    p.add_argument("--ratios", default="0.1,0.25,0.5")
    p.add_argument("--drop-layers", default="0,4")
    p.add_argument("--minutes", default="10,30,60", help="cumulative distillation checkpoints")
    p.add_argument(
        "--min-steps",
        type=int,
        default=0,
        help="each point's distillation goes on past its minutes until this many steps in all "
        "(0: the minutes alone, so that the axis is time; the build's own default is "
        "[brain.llm] distil_min_steps)",
    )
    p.add_argument(
        "--teacher-words",
        action="store_true",
        help="the students learn the teacher's answers as written, not what the daemon would "
        "say (the A/B of the daemon's words: give it its own --out)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--llm-eval-questions", type=int, default=100)
    p.add_argument("--llm-teacher-answers", type=int, default=200)
    p.add_argument("--llm-kl-answers", type=int, default=50)
    p.add_argument(
        "--distilled",
        action="store_true",
        help="the first point to build already has its whole distillation in its shape's "
        "resume file (its build failed after distilling, e.g. while judging): judge it with no "
        "more minutes",
    )
    p.add_argument(
        "--keep-resume",
        action="store_true",
        help="keep each shape's last resume file (to extend its minutes later)",
    )
    p.add_argument(
        "--overhead-minutes",
        type=float,
        default=12.0,
        help="the estimate's minutes per build besides distillation",
    )
    p.add_argument(
        "--teacher-minutes",
        type=float,
        default=30.0,
        help="the estimate's minutes for the teacher's answers and judging, once",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and an estimate")
    return p


def load(args: argparse.Namespace) -> tuple[Any, Path, str]:
    """(the config with ``--model`` as its LLM, the model, its digest's first 12)."""
    from streambot.config import load_config
    from streambot.runtime.manifest import sha256_model

    config = load_config(args.config if Path(args.config).is_file() else None)
    model = Path(args.model or config.brain.llm.path)
    if not str(model) or not model.exists():
        raise SystemExit(f"--model: {model} does not exist")
    config.brain.backend = "llm"
    config.brain.llm.path = str(model.resolve())
    return config, model, sha256_model(model)[:12]


def options_for(args: argparse.Namespace, point: Point, minutes: float) -> Any:
    from streambot.compress.common import BuildOptions

    return BuildOptions(
        out=Path(args.out),
        only=("llm",),
        explicit=True,  # built though the config's brain may not be the LLM
        force=True,  # a checkpoint's settings can equal another's: build it all the same
        device=args.device,
        prune=point.ratio,
        prune_given=point.ratio,
        llm_drop_layers=point.drop,
        distil_minutes=minutes,
        distil_min_steps=args.min_steps,
        llm_eval_questions=args.llm_eval_questions,
        llm_teacher_answers=args.llm_teacher_answers,
        llm_kl_answers=args.llm_kl_answers,
        llm_daemons_words=not args.teacher_words,
    )


def run_point(
    config: Any,
    args: argparse.Namespace,
    model: str,
    point: Point,
    before: dict | None,
    distilled: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Build ``point`` (its distillation continued from the checkpoint before), check that it
    did continue, snapshot it; its row and its shape's resume file. ``distilled``: the resume
    file already holds the point's whole distillation (a build that failed after it): the
    build judges it with no more minutes."""
    from streambot.compress.build import build
    from streambot.compress.llm_build import resolve_llm
    from streambot.runtime.manifest import Manifest

    job = resolve_llm(config, options_for(args, point, point.increment))
    resume = job.resume_path(Path(args.out))
    if distilled and not resume.is_file():
        raise SystemExit(f"--distilled: no resume file {resume} to judge")
    minutes = 0.0 if distilled else restore(resume, point)
    continued = minutes < point.minutes
    started = time.monotonic()
    build(config, options_for(args, point, minutes))
    seconds = time.monotonic() - started
    entry = next(a for a in Manifest.load(Path(args.out)).artifacts if a.file == job.folder)
    row = frontier_row(model, point, entry, point.increment if distilled else minutes, seconds)
    if distilled:
        row["recovered"] = "distilled by a build that failed after it; judged by a second"
        if before is not None and row["resumed_from_step"] <= before["steps"]:
            raise SystemExit(
                f"--distilled: {resume.name} is at step {row['resumed_from_step']}, no further "
                f"than the {point.since:g}-minute point's {before['steps']}"
            )
    elif (continued and before is not None) and row["resumed_from_step"] != before["steps"]:
        raise SystemExit(
            f"{job.folder}: the distillation resumed from step {row['resumed_from_step']}, "
            f"not {before['steps']}: not a continuation of the {point.since:g}-minute point"
        )
    snapshot(resume, point)
    return row, resume


def dry_run(points: Sequence[Point], todo: Sequence[Point], args: argparse.Namespace) -> None:
    print("| ratio | drop | minutes | this build distils | status |\n|---|---|---|---|---|")
    for p in points:
        status = "to build" if p in todo else "recorded"
        print(f"| {p.ratio:g} | {p.drop} | {p.minutes:g} | {p.increment:g} min | {status} |")
    total = estimate_minutes(todo, args.overhead_minutes, args.teacher_minutes)
    distilling = sum(p.increment for p in todo)
    print(
        f"\n{len(todo)} of {len(points)} points to build; about {total / 60:.1f} h "
        f"({distilling:g} min distilling, {args.overhead_minutes:g} min per build besides, "
        f"{args.teacher_minutes:g} min for the teacher once; --overhead-minutes and "
        "--teacher-minutes set these guesses)"
    )


def previous(rows: Sequence[dict[str, Any]], point: Point) -> dict[str, Any] | None:
    """The recorded row ``point`` continues (its shape at ``point.since``), if any."""
    for r in rows:
        if (r["ratio"], r["drop_layers"], r["minutes"]) == (point.ratio, point.drop, point.since):
            return r
    return None


def conclusion(rows: Sequence[dict[str, Any]]) -> str:
    best = suggest(rows)
    if best is None:
        return "suggested default: none (the build accepted no student as a default)"
    return (
        f"suggested default: ratio {best['ratio']:g}, layers dropped {best['drop_layers']}, "
        f"{best['minutes']:g} min of distillation ({best['decode'].get('speedup', 0.0):.2f}x "
        f"decode, {best['student']['accuracy']:.1%} right; the fastest accepted student)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(message)s")
    ratios, drops = parse_list(args.ratios, float), parse_list(args.drop_layers, int)
    points = plan_points(ratios, drops, parse_list(args.minutes, float))
    config, model_path, model = load(args)
    record = Path(args.out) / RECORD
    rows = [r for r in read_record(record) if r["model"] == model]
    todo = pending(points, rows, model)
    print(f"# python bench/llm_frontier.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"# {model_path.name} ({model}), {platform.machine()}, {os.cpu_count()} CPUs, "
        f"device {args.device}; {len(rows)} points recorded in {record}"
    )
    if args.dry_run:
        dry_run(points, todo, args)
        return 0
    print(markdown_header(), flush=True)
    for i, point in enumerate(todo):
        distilled = args.distilled and i == 0
        row, resume = run_point(config, args, model, point, previous(rows, point), distilled)
        append_record(record, row)
        rows.append(row)
        tidy(resume, point, args.keep_resume)
        print(markdown_row(row), flush=True)
    print(f"\n## the frontier: {model_path.name}; accuracy (teacher's); * = Pareto\n")
    print(table(rows))
    print("\n" + conclusion(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
