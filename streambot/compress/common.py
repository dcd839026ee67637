"""What every engine recipe of ``build_engines.py`` shares: the options, the summary's rows,
the errors, planning an output against the manifest, progress bars and tickers, the report.

A recipe (``wav2lip_build``, ``voice_build``, ``llm_build``) resolves its job from the config,
plans its outputs with ``plan_outputs`` and builds them; ``build`` runs the recipes."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from streambot.config import Config
from streambot.progress import interactive
from streambot.runtime.manifest import (
    Device,
    Manifest,
)
from streambot.runtime.select import library_versions

log = logging.getLogger(__name__)
EXIT_CONFIG = 2
BUILD_LIBRARIES = ("torch", "onnxruntime", "onnx", "torch_pruning")
KINDS = ("wav2lip", "voice", "llm")
BACKENDS = ("trt", "onnx", "torch")  # built unless --backends says otherwise
# asked for by name: a Triton model repository of the face engines (compress/triton_repo.py)
SERVED_BACKENDS = ("triton",)
# A random-weight checkpoint made for tests and benchmarks says so under this key.
RANDOM_WEIGHTS_KEY = "streambot_random_weights"

# How the LLM pruner removes attention heads (compress/prune_llm.py): "query" heads within
# each KV group, whole KV "groups", or "auto" (groups where there are many)
HeadMode = Literal["query", "groups", "auto"]


# Minutes the face and the voice are distilled for unless --distil-minutes says otherwise (the
# LLM's own budget is ``[brain.llm] distil_minutes``, set from its measured frontier)
FACE_VOICE_DISTIL_MINUTES = 3.0


class BuildError(Exception):
    """The build cannot start; the message names the config key or the extra to install."""


@dataclass
class BuildOptions:
    out: Path = Path("engines")
    only: tuple[str, ...] = KINDS
    prune: float = 0.5
    # --distil-minutes when given (None: each engine's own budget, see ``distil_minutes_or``)
    distil_minutes: float | None = None
    # --distil-min-steps when given (None: [brain.llm] distil_min_steps; the LLM's only)
    distil_min_steps: int | None = None
    device: str = "cpu"
    backends: tuple[str, ...] = BACKENDS
    force: bool = False
    dry_run: bool = False
    min_mouth_psnr_db: float = 25.0
    importance: str = "auto"  # "l2", "activation", or "auto": whichever measures closer
    batch: int = 8
    explicit: bool = (
        False  # --only named the kinds: build them even if the config does not use them
    )
    prune_given: float | None = None  # --prune when given; else each config's own prune
    max_voice_mcd_db: float = 4.0  # fidelity floor of a voice engine used by default
    # ... and how many more words (a share) a recogniser may mishear than with the voice's own
    max_voice_wer_rise: float = 0.05
    llm_heads: HeadMode = "auto"  # "query": heads within each KV group; "groups": whole KV groups
    llm_drop_layers: int | None = None  # --llm-drop-layers (None: [brain.llm] drop_layers)
    max_llm_kl: float = 0.5  # teacher-student KL (nats/token) of an LLM used by default
    # The pruned LLM is judged by its answers: teacher and student each answer this many
    # held-out questions (brain/evaluate.py), built into the daemon's guarded brain ...
    llm_eval_questions: int = 100
    # ... and is a default only within this many points of the teacher's accuracy, and when
    # it writes garbage in no larger a share of answers than the teacher (plus these points)
    max_llm_accuracy_drop: float = 3.0
    max_llm_garbage_rise: float = 0.0
    llm_teacher_answers: int = 200  # answers the teacher writes (cached), for training and KL
    llm_kl_answers: int = 50  # of them held out for KL and perplexity, never trained on
    # the student learns what the daemon would say (False: the teacher's answers as written;
    # the A/B of bench/llm_frontier.py --teacher-words, no flag of the builder's own)
    llm_daemons_words: bool = True

    def prune_or(self, own: float) -> float:
        """The pruning ratio of an engine whose config asks for ``own``: --prune wins."""
        return own if self.prune_given is None else self.prune_given

    def distil_minutes_or(self, own: float) -> float:
        """The distillation budget of an engine whose own default is ``own`` minutes
        (``[brain.llm] distil_minutes``): --distil-minutes wins."""
        return own if self.distil_minutes is None else self.distil_minutes

    def llm_drop_layers_or(self, own: int) -> int:
        """The LLM layers to drop when the config asks for ``own``: --llm-drop-layers wins."""
        return own if self.llm_drop_layers is None else self.llm_drop_layers

    def distil_min_steps_or(self, own: int) -> int:
        """The least steps of a distillation whose own default is ``own``
        (``[brain.llm] distil_min_steps``): --distil-min-steps wins."""
        return own if self.distil_min_steps is None else self.distil_min_steps

    @property
    def face_voice_distil_minutes(self) -> float:
        """The face's and the voice's distillation budget."""
        return self.distil_minutes_or(FACE_VOICE_DISTIL_MINUTES)


@dataclass
class Row:
    """One line of the summary table."""

    kind: str
    artifact: str
    status: str
    detail: str = ""


def plan_outputs(
    kind: str,
    files: dict[str, str],
    inputs: dict[str, str],
    options: BuildOptions,
    manifest: Manifest,
    gpu: Device | None = None,
) -> list[Row]:
    """One row per output file: to build (and why), or up to date. ``gpu``: the device a
    TensorRT engine ("trt") must have been built for."""
    rows = []
    now = library_versions(BUILD_LIBRARIES)
    for output, name in files.items():
        entry = next((a for a in manifest.artifacts if a.file == name), None)
        if entry is None:
            rows.append(Row(kind, name, "to build", "not built yet"))
            continue
        device = gpu if output == "trt" and gpu is not None else entry.device
        why = manifest.why_unusable(entry, inputs, device, now)
        if options.force:
            rows.append(Row(kind, name, "to build", "--force"))
        elif why is None and (changed := _versions_changed(entry.versions, now)):
            rows.append(Row(kind, name, "to build", f"built with {changed}"))
        elif why is None:
            rows.append(Row(kind, name, "up to date", ""))
        else:
            rows.append(Row(kind, name, "to build", why))
    return rows


def _versions_changed(built_with: dict[str, str], now: dict[str, str]) -> str:
    """The build libraries whose version differs from the one an artifact was built with."""
    changed = [
        f"{library} {version}, now {now.get(library, 'none')}"
        for library, version in built_with.items()
        if library in BUILD_LIBRARIES and now.get(library) != version
    ]
    return "; ".join(changed)


@contextlib.contextmanager
def progress(enabled: bool | None = None) -> Iterator[Any]:
    """rich progress bars on a terminal (``enabled`` None: when stdout is one); plain log
    lines otherwise (None is yielded)."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar:
        yield bar


def distil_ticker(bar: Any, description: str, budget_s: float, every: int = 50, min_steps: int = 0):
    """The ``on_step`` of a distillation: the progress bar by elapsed budget (or by steps
    toward ``min_steps`` when they lag behind: the run ends when both are done), or a log
    line every ``every`` steps when there is no bar."""
    task = bar.add_task(description, total=1.0) if bar is not None else None
    started = time.monotonic()

    def tick(step: int, loss: float) -> None:
        if bar is not None:
            done = min(1.0, (time.monotonic() - started) / budget_s) if budget_s > 0 else 1.0
            if min_steps:
                done = min(done, step / min_steps)
            bar.update(task, completed=done)
        elif step % every == 0:
            log.info("%s: step %d, loss %.4f", description, step, loss)

    return tick


def count_ticker(bar: Any, description: str, total: int, done: int = 0, every: int = 10):
    """``tick(done)`` of a job of ``total`` items (``done`` of them done already): the progress
    bar, or a log line every ``every`` items when there is no bar."""
    task = bar.add_task(description, total=total, completed=done) if bar is not None else None
    if bar is None:
        log.info("%s: %d of %d", description, done, total)

    def tick(done: int) -> None:
        if bar is not None:
            bar.update(task, completed=done)
        elif done % every == 0 or done == total:
            log.info("%s: %d of %d", description, done, total)

    return tick


def distillation_record(report: Any) -> dict[str, Any]:
    """The manifest's record of a build's distillation (a ``DistilReport``); its
    ``resumed_from_step``: the steps an earlier build had done (0: from the pruned weights)."""
    return {
        "steps": report.steps,
        "seconds": round(report.seconds, 1),
        "resumed_from_step": report.resumed_from,
        "first_loss": report.first_loss,
        "last_loss": report.last_loss,
        "loss_curve": curve(report.losses),
    }


def curve(losses: Sequence[float], points: int = 20) -> list[float]:
    """The loss curve for the report: ``points`` means over equal stretches of the steps."""
    if not losses:
        return []
    size = max(1, len(losses) // points)
    return [
        round(sum(chunk) / len(chunk), 5)
        for chunk in (losses[i : i + size] for i in range(0, len(losses), size))
    ]


def catalog_of(config: Config):
    from streambot.catalog import Catalog

    return Catalog.load(config.brain.catalog.path or None)


def summary(rows: Sequence[Row]) -> str:
    """The summary table (rich renders it; plain text when rich is missing)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return "\n".join(f"{r.kind:8} {r.artifact:24} {r.status:11} {r.detail}" for r in rows)
    table = Table(title="engines")
    for column in ("engine", "artifact", "status", "detail"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.kind, r.artifact, r.status, r.detail)
    console = Console(width=200, record=True)  # wide: a detail is one line to read or grep
    with console.capture() as captured:
        console.print(table)
    return captured.get()
