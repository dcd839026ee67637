"""Distil a pruned LLM (the student) from the unpruned one (the teacher) on the stream's text.

The student learns the teacher's next-token distribution: a KL divergence over the teacher's
top-k tokens and one bucket for the rest of the vocabulary, at every position (the tail of a
150k vocabulary carries little mass, and the bucket keeps it at the teacher's level). The
text is the stream's own, written by the teacher: its answers to questions about the catalog
under the real system prompt (compress/llm_data.py). Training is the shared time-boxed,
resumable loop (distill.train_student).

The fidelity figures (``llm_fidelity``) are full-vocabulary teacher-student KL and both
models' perplexity on held-out text, so "before" and "after" distillation compare like with
like.
"""

from __future__ import annotations

import math
import pickle
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from streambot.compress.distill import DistilReport, train_student

TOP_K = 64


def _with_rest(log_top: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the top-k tokens plus one bucket for all the others."""
    rest = (1.0 - log_top.exp().sum(-1, keepdim=True)).clamp_min(1e-12).log()
    return torch.cat([log_top, rest], dim=-1)


def topk_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int = TOP_K):
    """Mean over positions of KL(teacher || student) over the teacher's top-k tokens and one
    bucket for the rest of the vocabulary (so the student keeps the teacher's tail mass, not
    more and not less); zero exactly when the two agree on those k + 1 probabilities."""
    k = min(k, teacher_logits.shape[-1])
    teacher_log = torch.log_softmax(teacher_logits.float(), dim=-1)
    top, index = teacher_log.topk(k, dim=-1)
    p_log = _with_rest(top)
    q_log = _with_rest(torch.log_softmax(student_logits.float(), dim=-1).gather(-1, index))
    return (p_log.exp() * (p_log - q_log)).sum(-1).mean()


def full_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(teacher || student) over the whole vocabulary."""
    p_log = torch.log_softmax(teacher_logits.float(), dim=-1)
    q_log = torch.log_softmax(student_logits.float(), dim=-1)
    return (p_log.exp() * (p_log - q_log)).sum(-1).mean()


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids.reshape(1, -1), use_cache=False).logits[0]


@torch.inference_mode()
def llm_fidelity(
    teacher: nn.Module, student: nn.Module, held_out: Sequence[torch.Tensor]
) -> dict[str, float]:
    """Teacher-student KL (nats per token) and each model's perplexity on ``held_out``."""
    device = next(student.parameters()).device
    kl = nll_teacher = nll_student = 0.0
    tokens = 0
    for ids in held_out:
        ids = ids.to(device)
        if ids.numel() < 2:
            continue
        t, s = _logits(teacher, ids)[:-1], _logits(student, ids)[:-1]
        targets = ids[1:]
        n = targets.numel()
        kl += float(full_kl(s, t)) * n
        nll_teacher += float(nn.functional.cross_entropy(t.float(), targets, reduction="sum"))
        nll_student += float(nn.functional.cross_entropy(s.float(), targets, reduction="sum"))
        tokens += n
    if tokens == 0:
        raise ValueError("no held-out text to measure fidelity on")
    return {
        "kl": kl / tokens,
        "perplexity_teacher": math.exp(nll_teacher / tokens),
        "perplexity_student": math.exp(nll_student / tokens),
        "tokens": tokens,
    }


def token_windows(
    samples: Sequence[torch.Tensor], length: int, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Endless random windows of at most ``length`` tokens from the samples."""
    rng = random.Random(seed)
    usable = [s for s in samples if s.numel() >= 2]
    if not usable:
        raise ValueError("no training text for distillation")
    while True:
        ids = rng.choice(usable)
        start = rng.randrange(0, max(1, ids.numel() - length + 1))
        yield ids[start : start + length]


def distil_llm(
    teacher: nn.Module,
    student: nn.Module,
    samples: Sequence[torch.Tensor],
    *,
    budget_s: float,
    max_steps: int | None = None,
    lr: float = 5e-5,
    window: int = 256,
    top_k: int = TOP_K,
    resume_path: str | Path | None = None,
    device: str = "cpu",
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int, float], None] | None = None,
) -> DistilReport:
    """Train ``student`` in place on windows of ``samples`` for ``budget_s`` seconds."""
    teacher = teacher.to(device).eval()

    def loss_of(ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(device)
        with torch.no_grad():
            target = _logits(teacher, ids)
        return topk_kl(_logits(student, ids), target, top_k)

    return train_student(
        student.to(device),
        # a continued distillation draws other windows than the run it continues
        token_windows(samples, window, seed=_resumed_step(resume_path)),
        loss_of,
        budget_s=budget_s,
        max_steps=max_steps,
        lr=lr,
        resume_path=resume_path,
        device=device,
        clock=clock,
        on_step=on_step,
    )


def _resumed_step(path: str | Path | None) -> int:
    """The step a resume file was saved at (0: none, or unreadable), read without loading its
    weights (memory-mapped): it seeds the windows, so that a build continuing an earlier one
    trains on windows that run did not, as one longer run would."""
    if path is None or not Path(path).is_file():
        return 0
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        return 0
    return int(saved.get("step", 0)) if isinstance(saved, dict) else 0
