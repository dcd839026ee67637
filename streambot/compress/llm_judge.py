"""How ``build_engines.py --only llm`` judges a pruned LLM against its teacher, and what it
keeps so that the next build does not judge the teacher again.

Answers: each model answers held-out questions inside the brain the daemon builds around it
(``judge``; brain/evaluate.py scores them), reduced to the figures the manifest records
(``answer_rates``), and the rule that keeps a student from being a default (``refusals``).

Caches (``JsonCache``): what the teacher wrote and how its answers scored depend on the teacher,
never on the ratio, so a frontier of ratios on one model writes and judges the teacher once. Each
is a JSON file under ``--out`` holding the digest of everything the result depends on: a changed
input is a miss, never a stale figure.

Decode speed (``decode_speed``): the reason to prune at all is a faster host, so the build
measures it, for the teacher and the student in the same run, interleaved so that a busy
machine slows both alike: greedy tokens after the daemon's real prompt, from its prefix cache.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streambot.compress.common import BuildOptions, count_ticker, progress
from streambot.config import Config
from streambot.runtime.manifest import sha256_json

if TYPE_CHECKING:
    from streambot.brain.eval_questions import Question
    from streambot.brain.evaluate import Answer, Report
    from streambot.compress.prune_llm import PrunedLLM

log = logging.getLogger(__name__)
# The guard's reasons for refusing a sentence that the answer scorer would call garbage too
# (brain/evaluate.py): a model that writes them writes garbage, whoever answered instead.
GARBAGE_REASONS = ("no words", "prompt scaffolding", "digit run", "repeated fragment")
DECODE_TOKENS = 48  # greedy tokens timed per run: a short spoken reply
DECODE_REPEATS = 3  # runs per model; the median is recorded
DECODE_WARMUP = 8  # tokens of an untimed first run (allocations, lazy kernels)
MISSES_KEPT = 25  # wrong answers the manifest keeps per model, to read and learn from


# -- caches ---------------------------------------------------------------------------------------
@dataclass
class JsonCache:
    """A value in a JSON file under ``--out``, reused while ``key`` (the digest of everything it
    depends on) is the same. Written atomically: an interrupted build never leaves half a file.
    ``fallbacks``: older names of the same cache, read when ``path`` has nothing for ``key``;
    ``field``: the value's name in the file (the teacher's answers keep their old "answers")."""

    path: Path
    key: str
    fallbacks: tuple[Path, ...] = ()
    field: str = "value"

    def load(self) -> Any | None:
        """The cached value, or None (no file, another key, unreadable)."""
        for path in (self.path, *self.fallbacks):
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(saved, dict) and saved.get("key") == self.key and self.field in saved:
                return saved[self.field]
        return None

    def save(self, value: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.tmp")
        text = json.dumps({"key": self.key, self.field: value}, ensure_ascii=False)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.path)


@functools.cache
def _judging_code() -> str:
    """A digest of the brain's source (the scorer, the guard, the prompts, the catalog brain):
    a fix to any of them changes what a teacher's answers score, so cached rates go stale.
    Read once, when this module is imported (below): a file edited while a long build runs
    must not file the rates the running code judged under the edited code's digest."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[1] / "brain").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


_judging_code()


def rates_key(
    config: Config, inputs: dict[str, str], system: str, held: Sequence[Question], dtype: str
) -> str:
    """The digest of everything a model's answer rates depend on but its pruning: the model
    and catalog (``inputs``), the system prompt, the prompt style and generation settings, the
    guard's words, the reply limit, the held-out questions, the weights' dtype, the judging
    code and the libraries that run the model."""
    from streambot.runtime.select import library_versions

    llm = config.brain.llm
    return sha256_json(
        {
            "model": inputs["model"],
            "catalog": inputs["catalog"],
            "system": system,
            "style": [llm.memory, llm.facts, llm.memory_turns],
            "generation": [llm.max_new_tokens, llm.temperature, llm.top_p],
            "answer_first": llm.answer_first,
            "host": [config.persona.name, config.host.max_reply_chars],
            "banned_words": list(config.triage.banned_words),
            "questions": [repr(q) for q in held],
            "dtype": dtype,
            "code": _judging_code(),
            "versions": library_versions(("torch", "transformers")),
        }
    )


def teacher_rates(
    config: Config, tokenizer: Any, teacher: Any, held: Sequence[Question], cache: JsonCache
) -> tuple[dict[str, Any], bool]:
    """The teacher's answer rates on ``held``: from ``cache`` when its answers were judged
    before under the same key, else judged now and cached; and whether they were cached."""
    saved = cache.load()
    if isinstance(saved, dict) and saved.get("questions") == len(held):
        log.info("llm: the teacher's answers judged before: cached (%s)", cache.path.name)
        return saved, True
    rates = answer_rates(judge(teacher, tokenizer, config, held, "teacher"))
    cache.save(rates)
    return rates, False


# -- judged by the answers --------------------------------------------------------------------
def judge(
    model: Any, tokenizer: Any, config: Config, items: Sequence[Question], name: str
) -> Report:
    """``model`` answering ``items`` inside the brain the daemon builds around it
    (``assemble.daemon_brain``), each answer scored against the catalog: a Report. On an event
    loop of its own (the build runs none; the daemon's is never involved)."""
    from streambot.brain.assemble import daemon_brain
    from streambot.brain.catalog import CatalogBrain
    from streambot.brain.evaluate import evaluate
    from streambot.brain.llm import LocalLLM, daemon_dtype

    catalog_brain = CatalogBrain(config.brain.catalog, persona=config.persona)
    llm = LocalLLM.from_loaded(tokenizer, model, dtype=daemon_dtype(model, config.brain.llm.dtype))
    judged = config.model_copy(deep=True)
    judged.brain.llm.first_sentence_s = 0.0  # its words are judged, not this machine's load
    try:
        brain = daemon_brain(llm, judged, catalog_brain)
        with progress() as bar:
            what = f"the {name} answers {len(items)} held-out questions (outside --distil-minutes)"
            tick = count_ticker(bar, what, len(items))
            return asyncio.run(
                evaluate(
                    brain,
                    items,
                    catalog_brain.live.current,
                    name=name,
                    max_reply_chars=config.host.max_reply_chars,
                    progress=lambda i, n, answer: tick(i),
                )
            )
    finally:
        llm.executor.shutdown()


def _garbage_in(answer: Answer) -> list[str]:
    """The garbage an answer's model wrote: what the scorer found in what was said, and the
    guard's refusals for a reason the scorer would call garbage (``GARBAGE_REASONS``; the
    catalog answered instead)."""
    refused = [note for note in answer.guard if note.startswith(GARBAGE_REASONS)]
    return [*answer.verdict.garbage, *refused]


def garbage_written(report: Report) -> int:
    """Answers in which the model wrote garbage (said, or stopped by the guard)."""
    return sum(bool(_garbage_in(a)) for a in report.answers)


def garbage_examples(report: Report, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` answers with garbage written: what was asked, what was said, and
    the garbage (what the scorer found in it, and the guard's refusals of that kind)."""
    found = ((a, _garbage_in(a)) for a in report.answers)
    return [
        {"lang": a.question.lang, "question": a.question.text, "said": a.text, "garbage": g}
        for a, g in found
        if g
    ][:limit]


def answer_rates(report: Report) -> dict[str, Any]:
    """A model's figures on the held-out questions, as the manifest records them, and its
    first ``MISSES_KEPT`` wrong answers (what it said, why it is wrong, what the guard did)
    and answers with garbage written (which the build refuses a student for)."""
    return {
        "questions": report.n,
        "accuracy": round(report.accuracy, 4),
        "garbage_written": garbage_written(report),
        "garbage_said": report.garbage,
        "llm_share": round(report.llm_share, 4),
        "wrong_figures": report.wrong_figures,
        "unsupported": report.unsupported,
        "misses": report.misses(MISSES_KEPT),
        "garbage": garbage_examples(report, MISSES_KEPT),
    }


def refusals(
    student: dict[str, Any], teacher: dict[str, Any], kl: float, options: BuildOptions
) -> list[str]:
    """Why the student must not be used by default ([]: it may be): less accurate than its
    teacher by more than ``max_llm_accuracy_drop`` points; garbage in more answers than its
    teacher, by more than ``max_llm_garbage_rise`` points (so with a teacher that writes none,
    any at all: relative, since a teacher that itself writes some, such as a tiny test model,
    must not fail every student); a KL above ``max_llm_kl``."""
    why = []
    drop = options.max_llm_accuracy_drop
    if student["accuracy"] * 100 < teacher["accuracy"] * 100 - drop - 1e-6:
        why.append(
            f"accuracy {student['accuracy']:.1%} < teacher {teacher['accuracy']:.1%} - {drop:g} pts"
        )

    def share(rates: dict[str, Any]) -> float:
        return 100 * rates["garbage_written"] / max(1, rates["questions"])

    if share(student) > share(teacher) + options.max_llm_garbage_rise + 1e-6:
        why.append(
            f"writes garbage in {student['garbage_written']} of {student['questions']} "
            f"answers (teacher {teacher['garbage_written']})"
        )
    if kl > options.max_llm_kl:
        why.append(f"KL {kl:.3f} > {options.max_llm_kl:g}")
    return why


def describe(
    pruned: PrunedLLM, rates: dict, before: dict, after: dict, held_out: int, decode: dict
) -> str:
    """The summary's detail: the widths and the decode speedup, then every figure of the
    student with the teacher's in brackets."""
    w, s, t = pruned.widths, rates["student"], rates["teacher"]

    def both(key: str) -> str:
        return f"{s[key]} ({t[key]})"

    return (
        f"{w.attention_heads}/{w.kv_heads} heads, MLP {w.intermediate}, {w.layers} layers, "
        f"{pruned.params_after / 1e6:.0f}M params, decode {decode['speedup']:.2f}x "
        f"({decode['student_tok_s']:.1f} vs {decode['teacher_tok_s']:.1f} tok/s); "
        f"on {s['questions']} held-out questions "
        f"student {s['accuracy']:.1%} right (teacher {t['accuracy']:.1%}), garbage written "
        f"{both('garbage_written')}, said {both('garbage_said')}, LLM share "
        f"{s['llm_share']:.0%} ({t['llm_share']:.0%}), wrong figures "
        f"{both('wrong_figures')}, unsupported {both('unsupported')}; KL {before['kl']:.2f} "
        f"-> {after['kl']:.2f}, ppl {after['perplexity_student']:.1f} (teacher "
        f"{after['perplexity_teacher']:.1f}) on {held_out} held-out answers"
    )


# -- decode speed -------------------------------------------------------------------------------
def _decoder(
    tokenizer: Any,
    model: Any,
    system: str,
    messages: list[dict[str, str]],
    prefill: str,
    dtype: Any = None,
) -> Callable[[int], float]:
    """``run(n)``: tokens per second of ``n`` greedy tokens (no stop token ends them) after the
    prompt, as the daemon runs it: the system prompt's KV from the prefix cache, the turn's
    tokens encoded on top, then one token at a time. Only the one-token steps are timed."""
    import torch

    from streambot.brain.llm import LocalLLM, forward_with_cache

    llm = LocalLLM.from_loaded(tokenizer, model, dtype=dtype)
    model = llm.model  # the copy in ``dtype``, if one was made
    llm.executor.shutdown()  # timed on this thread: the build's, at its priority
    llm.set_system_prompt(system)
    ids = llm.encode(messages, True, prefill)

    @torch.inference_mode()
    def run(tokens: int) -> float:
        cache, todo = llm.after_prefix(ids)
        logits, cache = forward_with_cache(model, todo, cache)
        started = time.perf_counter()
        for _ in range(tokens):
            token = torch.argmax(logits[0, -1]).reshape(1, 1)
            logits, cache = forward_with_cache(model, token, cache)
        int(torch.argmax(logits[0, -1]))  # the last step done (a GPU runs ahead of Python)
        return tokens / (time.perf_counter() - started)

    return run


def decode_speed(
    tokenizer: Any,
    models: dict[str, Any],
    system: str,
    messages: list[dict[str, str]],
    prefill: str = "",
    tokens: int = DECODE_TOKENS,
    repeats: int = DECODE_REPEATS,
    dtype: Any = None,
) -> dict[str, float]:
    """Median greedy decode speed of ``models`` ({"teacher": ..., "student": ...}) on one real
    prompt, the runs of the two interleaved (a load that comes and goes slows both alike), and
    the student's speedup: the manifest's ``fidelity["decode"]``. ``dtype``: each run in it,
    as the daemon would (``daemon_dtype``)."""
    runs = {
        who: _decoder(tokenizer, m, system, messages, prefill, dtype) for who, m in models.items()
    }
    for run in runs.values():
        run(DECODE_WARMUP)
    speeds: dict[str, list[float]] = {who: [] for who in runs}
    for _ in range(repeats):
        for who, run in runs.items():
            speeds[who].append(run(tokens))
    teacher, student = (statistics.median(speeds[who]) for who in ("teacher", "student"))
    log.info("llm: decode %.1f tok/s, teacher %.1f tok/s", student, teacher)
    return {
        "teacher_tok_s": round(teacher, 2),
        "student_tok_s": round(student, 2),
        "speedup": round(student / teacher, 3),
        "tokens": tokens,
        "repeats": repeats,
    }
