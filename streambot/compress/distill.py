"""Distil a pruned Wav2Lip (the student) from the unpruned one (the teacher).

The student learns to draw what the teacher draws for the user's own inputs: the prepared
avatar's face crops with mel windows of the configured voice (the build supplies them; no
dataset is needed). The loss is L1 on the predicted face with the mouth region (the lower
half, which Wav2Lip redraws) weighted up. BatchNorm statistics stay frozen: the student keeps
the teacher's, pruned with it, and small batches would only add noise to them.

Training is time-boxed (``budget_s``) and resumable: every ``save_every_s`` the student,
optimiser and step go to ``resume_path``, and a later run with the same widths continues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from streambot.compress.checkpoint import save_atomically
from streambot.models.wav2lip import Wav2Lip

log = logging.getLogger(__name__)

B = TypeVar("B")  # a training batch, whatever the loss takes

Batch = tuple[torch.Tensor, torch.Tensor]  # mel (B, 1, 80, 16), face (B, 6, 96, 96)


@dataclass
class DistilReport:
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    losses: list[float] = field(default_factory=list)  # one per step, the mouth-weighted L1
    budget_spent_at: int | None = None  # the step the minutes ran out at, short of min_steps

    @property
    def first_loss(self) -> float | None:
        return self.losses[0] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        """The mean of the last tenth of the steps (single steps are noisy)."""
        if not self.losses:
            return None
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)


def mouth_weights(size: int, mouth_weight: float) -> torch.Tensor:
    """(1, 1, size, 1) weights: 1 for the upper half, ``mouth_weight`` for the lower half."""
    weights = torch.ones(1, 1, size, 1)
    weights[:, :, size // 2 :, :] = mouth_weight
    return weights / weights.mean()


def distil_loss(
    student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    return (weights * (student - teacher).abs()).mean()


def _freeze_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def distil(
    teacher: Wav2Lip,
    student: Wav2Lip,
    batches: Iterator[Batch],
    *,
    budget_s: float,
    max_steps: int | None = None,
    lr: float = 1e-4,
    mouth_weight: float = 4.0,
    resume_path: str | Path | None = None,
    save_every_s: float = 60.0,
    device: str = "cpu",
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int, float], None] | None = None,
) -> DistilReport:
    """Train ``student`` in place for ``budget_s`` seconds (or ``max_steps``)."""
    teacher = teacher.to(device).eval()
    weights = mouth_weights(student.config.img_size, mouth_weight).to(device)

    def loss_of(batch: Batch) -> torch.Tensor:
        mel, face = (t.to(device) for t in batch)
        with torch.no_grad():
            target = teacher(mel, face)
        return distil_loss(student(mel, face), target, weights)

    return train_student(
        student.to(device),
        batches,
        loss_of,
        widths=student.config.to_dict(),
        budget_s=budget_s,
        max_steps=max_steps,
        lr=lr,
        resume_path=resume_path,
        save_every_s=save_every_s,
        device=device,
        clock=clock,
        on_step=on_step,
        prepare=_freeze_batchnorm,
    )


def _resume(
    resume: Path | None,
    student: nn.Module,
    widths: Mapping[str, object],
    optimiser: torch.optim.Optimizer,
    device: str,
) -> int:
    """Load the distillation ``resume`` holds into ``student`` and ``optimiser`` when it was
    saved for a student of these widths; the step it had reached (0: none to resume)."""
    if resume is None or not resume.is_file():
        return 0
    saved = torch.load(resume, map_location=device, weights_only=True)
    if saved.get("widths") != widths:
        return 0
    student.load_state_dict(saved["state_dict"])
    optimiser.load_state_dict(saved["optimiser"])
    return int(saved["step"])


def train_student(
    student: nn.Module,
    batches: Iterator[B],
    loss_of: Callable[[B], torch.Tensor],
    *,
    widths: Mapping[str, object],
    budget_s: float,
    max_steps: int | None = None,
    min_steps: int = 0,
    lr: float = 1e-4,
    resume_path: str | Path | None = None,
    save_every_s: float = 60.0,
    device: str = "cpu",
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int, float], None] | None = None,
    prepare: Callable[[nn.Module], None] | None = None,
) -> DistilReport:
    """The time-boxed, resumable training loop of every distillation: Adam on ``loss_of``
    each batch for ``budget_s`` seconds, and on until the student has had ``min_steps`` steps
    in all (a resumed run's steps count: a slow machine still trains it enough), at most
    ``max_steps`` in this run; the student (with its ``widths``: a resume of other widths is
    not taken) saved to ``resume_path`` every ``save_every_s`` and at the end; ``prepare``
    runs after ``train()`` (to freeze what must not train)."""
    student.requires_grad_(True)
    optimiser = torch.optim.Adam(student.parameters(), lr=lr)
    report = DistilReport()
    resume = Path(resume_path) if resume_path else None
    report.resumed_from = _resume(resume, student, widths, optimiser, device)
    started = last_save = clock()
    step = report.resumed_from
    student.train()
    if prepare is not None:
        prepare(student)
    try:
        while max_steps is None or report.steps < max_steps:
            if clock() - started >= budget_s and _done(report, step, min_steps):
                break
            if (batch := next(batches, None)) is None:
                break
            loss = loss_of(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            report.steps += 1
            report.losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, report.losses[-1])
            if resume is not None and clock() - last_save >= save_every_s:
                _save(resume, student, widths, optimiser, step)
                last_save = clock()
    finally:
        student.eval().requires_grad_(False)
        if resume is not None and report.steps:
            _save(resume, student, widths, optimiser, step)
        report.seconds = clock() - started
    return report


def _done(report: DistilReport, step: int, min_steps: int) -> bool:
    """The minutes are spent: whether the student has had ``min_steps``; when not, the step
    the minutes ran out at is recorded and logged (once) and training goes on."""
    if step >= min_steps:
        return True
    if report.budget_spent_at is None:
        report.budget_spent_at = step
        log.info("the minutes are spent at step %d; going on to %d steps", step, min_steps)
    return False


def _save(
    path: Path,
    student: nn.Module,
    widths: Mapping[str, object],
    optimiser: torch.optim.Optimizer,
    step: int,
) -> None:
    payload = {
        "state_dict": student.state_dict(),
        "optimiser": optimiser.state_dict(),
        "widths": dict(widths),
        "step": step,
    }
    save_atomically(payload, path)


@torch.no_grad()
def recalibrate_batchnorm(model: Wav2Lip, batches: Iterator[Batch], steps: int = 20) -> None:
    """Re-estimate BatchNorm statistics on ``batches`` (the avatar). A randomly initialised
    teacher otherwise draws a nearly flat face, and fidelity figures against it say nothing."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the steps
    model.train()
    for _ in range(steps):
        try:
            mel, face = next(batches)
        except StopIteration:
            break
        model(mel, face)
    model.eval()
