"""Distil a pruned LLM (the student) from the unpruned one (the teacher) on the stream's text.

The student learns the teacher's next-token distribution: a KL divergence over the teacher's
top-k tokens and one bucket for the rest of the vocabulary, at every position (the tail of a
150k vocabulary carries little mass, and the bucket keeps it at the teacher's level). The
text is the stream's own, written by the teacher: its answers to questions about the catalog
under the real system prompt (compress/llm_data.py). Training is the shared time-boxed,
resumable loop (distill.train_student).

Each step learns one turn (the viewer's question and the teacher's answer) with the whole
system prompt before it, as the daemon runs it: the prompt, which every text shares, is a
KV cache made without gradients (the teacher's once; the student's again every
``PREFIX_REFRESH`` steps, as its weights move), and the loss is on the turn's tokens only.
Where the daemon would have said other words than the teacher wrote (the guard refused or
corrected its answer: compress/llm_teacher.py), the student also learns those words as they
are (cross-entropy from ``said_from``): the teacher's distribution there still favours what
it wrote, which the viewer never hears.
Random windows of whole texts trained mostly on the prompt (about 760 of each text's 850
tokens on the real 0.5B) and showed an answer without the catalog lines it came from: the
held-out KL of a 10%-pruned Qwen2.5-0.5B rose from 0.39 to 0.65 in 10 minutes of it.

The fidelity figures (``llm_fidelity``) are full-vocabulary teacher-student KL and both
models' perplexity on held-out text, so "before" and "after" distillation compare like with
like; on the tokens after the prefix every held-out text shares (the system prompt, which is
trained on and would only dilute them), run once per model and its KV cache reused.
"""

from __future__ import annotations

import copy
import math
import pickle
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from streambot.brain.llm import forward_with_cache
from streambot.compress.distill import DistilReport, train_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TOP_K = 64
PREFIX_REFRESH = 8  # steps between rebuilds of the student's prompt cache
RESUME_EVERY_S = 300.0  # a 0.5B's resume file is 7 GB: not every minute


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


def shared_prefix(texts: Sequence[torch.Tensor]) -> int:
    """How many leading tokens every text has in common, each text keeping at least two of
    its own (one to predict from, one to predict)."""
    usable = [t.reshape(-1) for t in texts if t.numel() >= 2]
    if not usable:
        return 0
    length = min(t.numel() for t in usable) - 2
    first = usable[0]
    for other in usable[1:]:
        same = (first[:length] == other[:length]).int()
        length = int(same.cumprod(0).sum()) if length > 0 else 0
    return max(0, length)


class _Context:
    """A model's KV cache of a prefix that texts share, run once and copied for each text
    after it. Made without gradients, not in inference mode, so training can run a turn on
    it (the turn's own positions carry the gradients); an empty prefix runs texts whole."""

    def __init__(self, model: nn.Module, prefix: torch.Tensor) -> None:
        self.model = model
        self._cache: object | None = None
        self.last_logits: torch.Tensor | None = None  # the prefix's prediction of a text's first
        if prefix.numel():
            with torch.no_grad():
                logits, self._cache = forward_with_cache(model, prefix.reshape(1, -1), None)
            self.last_logits = logits[0, -1:]

    def logits(self, text: torch.Tensor) -> torch.Tensor:
        """Logits at each of ``text``'s positions (position i predicts token i + 1)."""
        if self._cache is None:
            return _logits(self.model, text)
        logits, _ = forward_with_cache(
            self.model, text.reshape(1, -1), copy.deepcopy(self._cache), 0
        )
        return logits[0]

    def predictions(self, text: torch.Tensor) -> torch.Tensor:
        """Logits predicting each token of ``text`` (the first from the prefix's last; with no
        prefix, every token but the first)."""
        if self.last_logits is None:
            return self.logits(text)[:-1]
        return torch.cat([self.last_logits, self.logits(text)[:-1]])


@torch.inference_mode()
def llm_fidelity(
    teacher: nn.Module, student: nn.Module, held_out: Sequence[torch.Tensor]
) -> dict[str, float]:
    """Teacher-student KL (nats per token) and each model's perplexity on ``held_out``, on
    the tokens after the prefix all of them share (``tokens``: how many; ``prefix``: its
    length)."""
    device = next(student.parameters()).device
    held = [ids.reshape(-1).to(device) for ids in held_out if ids.numel() >= 2]
    prefix_len = shared_prefix(held)
    prefix = held[0][:prefix_len] if held else torch.zeros(0, dtype=torch.long)
    teacher_of, student_of = _Context(teacher, prefix), _Context(student, prefix)
    kl = nll_teacher = nll_student = 0.0
    tokens = 0
    for ids in held:
        rest = ids[prefix_len:]
        t, s = teacher_of.predictions(rest), student_of.predictions(rest)
        targets = rest if prefix_len else ids[1:]
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
        "prefix": prefix_len,
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


def turn_samples(
    samples: Sequence[torch.Tensor],
    prefix_len: int,
    length: int,
    seed: int = 0,
    said_from: Sequence[int | None] | None = None,
) -> Iterator[tuple[torch.Tensor, int | None]]:
    """Endless random turns: a sample's first ``length`` tokens after the shared prefix (with
    no shared prefix, random windows of whole samples), each with where in it the words to
    learn as they are start (``said_from``, made relative to the turn; None: nowhere).

    Drawn with replacement, on purpose: shuffled rounds (every turn once before any twice)
    were measured on the real 0.5B and their students looped in Chinese small talk in 3 and
    7 of 100 held-out answers, where students of drawn turns wrote 0-1 (BENCHMARKS.md)."""
    if prefix_len == 0:
        for window in token_windows(samples, length, seed):
            yield window, None
        return
    rng = random.Random(seed)
    starts = list(said_from) if said_from is not None else [None] * len(samples)
    turns = [
        (s.reshape(-1)[prefix_len:][:length], None if at is None else at - prefix_len)
        for s, at in zip(samples, starts, strict=True)
    ]
    usable = [
        (t, at if at is not None and 0 < at < t.numel() else None)  # cut off by the window
        for t, at in turns
        if t.numel() >= 2
    ]
    if not usable:
        raise ValueError("no training text after the shared prefix for distillation")
    while True:
        yield rng.choice(usable)


class _TurnLoss:
    """The loss of one turn after the prefix every text shares: top-k KL to the teacher's
    distribution, plus cross-entropy on the words learnt as they are. The student's prefix
    KV cache is made again every ``refresh`` steps (its weights move; the teacher's do not)."""

    def __init__(
        self, teacher: nn.Module, student: nn.Module, prefix: torch.Tensor, top_k: int, refresh: int
    ) -> None:
        self.teacher = _Context(teacher, prefix)
        self.student, self.prefix = student, prefix
        self.top_k, self.refresh = top_k, max(1, refresh)
        # a turn after the prefix is scored where it predicts its own next token; a plain
        # window (no shared prefix) at every position
        self.scored = slice(None, -1) if prefix.numel() else slice(None)
        self.steps = 0
        self.student_context: _Context | None = None

    def __call__(self, sample: tuple[torch.Tensor, int | None]) -> torch.Tensor:
        turn, learn_from = sample
        if self.student_context is None or self.steps % self.refresh == 0:
            self.student_context = _Context(self.student, self.prefix)
        self.steps += 1
        with torch.no_grad():
            target = self.teacher.logits(turn)[self.scored]
        logits = self.student_context.logits(turn)[self.scored]
        loss = topk_kl(logits, target, self.top_k)
        if learn_from is not None:  # position i predicts token i + 1
            said = nn.functional.cross_entropy(logits[learn_from - 1 :].float(), turn[learn_from:])
            loss = loss + said
        return loss


def distil_llm(
    teacher: nn.Module,
    student: PreTrainedModel,
    samples: Sequence[torch.Tensor],
    *,
    budget_s: float,
    said_from: Sequence[int | None] | None = None,
    max_steps: int | None = None,
    min_steps: int = 0,
    lr: float = 5e-5,
    window: int = 256,
    top_k: int = TOP_K,
    resume_path: str | Path | None = None,
    device: str = "cpu",
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int, float], None] | None = None,
    prefix_refresh: int = PREFIX_REFRESH,
) -> DistilReport:
    """Train ``student`` in place for ``budget_s`` seconds and at least ``min_steps`` steps
    in all (a resumed run's included) on the samples' turns, each after the prefix all
    samples share (at most ``window`` tokens of each turn). ``said_from``, one per sample:
    the token from which a sample's words are learnt as they are, besides the teacher's
    distribution (None: the teacher's distribution only)."""
    teacher = teacher.to(device).eval()
    student = cast("PreTrainedModel", cast(nn.Module, student).to(device))
    kept = [i for i, s in enumerate(samples) if s.numel() >= 2]
    texts = [samples[i].reshape(-1).to(device) for i in kept]
    starts = [said_from[i] for i in kept] if said_from is not None else None
    prefix_len = shared_prefix(texts)
    prefix = texts[0][:prefix_len] if texts else torch.zeros(0, dtype=torch.long)
    loss_of = _TurnLoss(teacher, cast(nn.Module, student), prefix, top_k, prefix_refresh)

    return train_student(
        cast(nn.Module, student),
        # a continued distillation draws other turns than the run it continues
        turn_samples(texts, prefix_len, window, _resumed_step(resume_path), starts),
        loss_of,
        widths=student.config.to_dict(),
        budget_s=budget_s,
        max_steps=max_steps,
        min_steps=min_steps,
        lr=lr,
        resume_path=resume_path,
        save_every_s=RESUME_EVERY_S,
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
