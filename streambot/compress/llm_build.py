"""``build_engines.py --only llm``: the configured LLM (a Hugging Face folder or a GGUF file,
loaded as the brain loads it: ``brain/llm_load.py``) pruned by width, distilled on the stream's
own text, judged by its answers, and saved as a vanilla model folder with its manifest entry.

Importance comes from the model's activations on the system prompt (persona, catalog, house
rules) and the host's catalog sentences (compress/llm_data.py); pruning respects grouped-query
attention (compress/prune_llm.py). The teacher writes the training text itself
(``--llm-teacher-answers``, 200): its answers to viewer questions about the catalog, under the
real prompts, continuing the catalog's first answer where the daemon would; they are cached in
``--out``, keyed by the model, the catalog, the prompts, the questions and the token limit, so
a rebuild does not write them again. Each answer goes through the daemon's guard first: one
it refuses or corrects is replaced by what the daemon would have said (compress/llm_teacher.py).
The student learns the teacher's next-token distributions on them, each turn after the whole
system prompt as the daemon runs it (top-k KL, compress/distill_llm.py), and the replacing
words as they are, for ``--distil-minutes``: the whole
budget is distillation; the teacher's writing and the evaluation have fixed counts and take
the time they take, outside it.

What decides whether the student is used by default is its answers: the teacher and the
student each answer ``--llm-eval-questions`` (100) held-out questions (``brain/evaluate.py``;
none of them, nor any like it, is among the teacher's training questions), each model inside
the brain the daemon builds around it (``brain/assemble.py``: the real prompts, the reply
guard, the catalog brain answering what the guard refuses, memory). A student is recorded
with ``default = false`` when it is more than ``--max-llm-accuracy-drop`` (3) points less
accurate than its teacher, when it writes garbage in more answers than its teacher (by more
than ``--max-llm-garbage-rise`` points, 0: a clean teacher means none at all), or when its KL
is above ``--max-llm-kl``. Garbage written counts what the guard stopped too: behind the guard
a collapsed student's answers are the catalog brain's, so its accuracy alone can look fine.
Also recorded: teacher-student KL and both perplexities on ``--llm-kl-answers`` (50) held-out
teacher answers, before and after distillation; and both models' greedy decode speed on the
daemon's real prompt, measured in the same run (``fidelity["decode"]``, its speedup in the
summary). The teacher's answers and its answer rates are cached per model (compress/llm_judge.py),
so a build of another ratio or depth from the same model and catalog neither writes nor judges
the teacher again. The folder (``llm-<model>-p25``, ``-d4`` with 4 layers dropped) loads with
``AutoModelForCausalLM.from_pretrained``; a build of the same folder continues the last one's
distillation from its resume file.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streambot.compress.common import (
    BUILD_LIBRARIES,
    BuildError,
    BuildOptions,
    HeadMode,
    Row,
    catalog_of,
    distil_ticker,
    distillation_record,
    plan_outputs,
    progress,
)
from streambot.compress.llm_judge import (
    JsonCache,
    answer_rates,
    decode_speed,
    describe,
    judge,
    rates_key,
    refusals,
    teacher_rates,
)
from streambot.compress.llm_teacher import (
    TeacherText,
    system_text,
    teacher_prompts,
    teacher_texts,
)
from streambot.config import Config
from streambot.runtime.manifest import (
    Artifact,
    Device,
    Manifest,
    sha256_artifact,
    sha256_json,
    sha256_model,
)
from streambot.runtime.select import library_versions

if TYPE_CHECKING:
    from streambot.brain.eval_questions import Question
    from streambot.compress.prune_llm import PrunedLLM
    from streambot.turn import Turn

log = logging.getLogger(__name__)
KIND = "llm"
CALIBRATION_TOKENS = 512  # per calibration text
WINDOW_TOKENS = 256  # distillation windows


@dataclass
class LLMBuild:
    model: Path
    ratio: float
    mode: HeadMode
    drop_layers: int
    distil_minutes: float
    distil_min_steps: int
    inputs: dict[str, str]

    @property
    def slug(self) -> str:
        """The model's name in file names: what the teacher's caches are named after (they do
        not depend on how the student is pruned, so every ratio shares them)."""
        name = self.model.stem if self.model.suffix.lower() == ".gguf" else self.model.name
        return "llm-" + (re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-") or "llm")

    @property
    def folder(self) -> str:
        """The student's folder: one per shape, since the resume file and the manifest entry
        are named after it (two shapes under one name would overwrite each other's entry and
        restart each other's distillation). ``-d4``: 4 layers dropped; ``-query``/``-groups``:
        a head mode asked for by name. Ratio only for the default shape: names stay as built."""
        name = f"{self.slug}-p{round(self.ratio * 100):02d}"
        name += f"-d{self.drop_layers}" if self.drop_layers else ""
        return name + (f"-{self.mode}" if self.mode != "auto" else "")

    def resume_path(self, out: Path) -> Path:
        """The distillation's resume file (student and optimiser): a later build of the same
        folder from the same model continues from it."""
        return out / f".{self.folder}.{self.inputs['model'][:12]}.distil"


def resolve_llm(config: Config, options: BuildOptions) -> LLMBuild:
    from streambot.brain.llm_load import LLMError, check_gguf, is_gguf

    path = config.brain.llm.path
    if not path:
        raise BuildError("brain.llm.path: no local model (a Hugging Face folder or a GGUF file)")
    model = Path(path)
    if is_gguf(model):
        try:
            check_gguf(model)
        except LLMError as exc:
            raise BuildError(str(exc)) from None
    elif not (model / "config.json").is_file():
        raise BuildError(f"brain.llm.path: {model} is not a Hugging Face model folder")
    _check_counts(options)
    ratio = options.prune_or(config.brain.llm.prune)
    minutes = options.distil_minutes_or(config.brain.llm.distil_minutes)
    min_steps = options.distil_min_steps_or(config.brain.llm.distil_min_steps)
    drop = options.llm_drop_layers_or(config.brain.llm.drop_layers)
    settings = {
        "prune": ratio,
        "mode": options.llm_heads,
        "drop_layers": drop,
        "distil_minutes": minutes,
        "distil_min_steps": min_steps,
        "text": "the teacher's answers to catalog questions + system prompt",
        # which questions are held out, and how many answers train: the student depends on it
        "eval_questions": options.llm_eval_questions,
        "teacher_answers": options.llm_teacher_answers,
        "kl_answers": options.llm_kl_answers,
        "learns": learns(options),
    }
    inputs = {
        "model": sha256_model(model),
        # the teacher's answers and the calibration come from the catalog and persona
        "catalog": sha256_json(catalog_of(config).model_dump(mode="json")),
        "build settings": sha256_json(settings),
    }
    return LLMBuild(model, ratio, options.llm_heads, drop, minutes, min_steps, inputs)


def learns(options: BuildOptions) -> str:
    """What the student is taught to say, as the build settings and the manifest name it."""
    return "the daemon's words" if options.llm_daemons_words else "the teacher's words"


def _check_counts(options: BuildOptions) -> None:
    counts = {
        "--llm-eval-questions": options.llm_eval_questions,
        "--llm-teacher-answers": options.llm_teacher_answers,
        "--llm-kl-answers": options.llm_kl_answers,
    }
    for flag, value in counts.items():
        if value < 1:
            raise BuildError(f"{flag}: {value} is not a positive count")
    if options.llm_kl_answers >= options.llm_teacher_answers:
        raise BuildError(
            f"--llm-kl-answers: {options.llm_kl_answers} leaves none of the "
            f"{options.llm_teacher_answers} --llm-teacher-answers to train on"
        )


def plan_llm(job: LLMBuild, options: BuildOptions, manifest: Manifest) -> list[Row]:
    return plan_outputs(KIND, {"torch": job.folder}, job.inputs, options, manifest)


def build_llm(config: Config, job: LLMBuild, options: BuildOptions, manifest: Manifest):
    """Prune, distil on the teacher's (cached) answers, time both models' decoding, judge
    teacher and student by their answers to held-out questions (the teacher's judged once per
    model and catalog), save, and record (a default only if the student passed)."""
    try:
        from streambot.compress.distill_llm import llm_fidelity
        from streambot.compress.llm_data import split_questions
    except ImportError as exc:
        raise BuildError(f"{exc}: pip install torch 'streambot[neural]'") from exc
    tokenizer, teacher = _load(job, options)
    _check_layers(job, teacher)
    catalog = catalog_of(config)
    held, turns = split_questions(catalog, options.llm_eval_questions, options.llm_teacher_answers)
    texts, writing = teacher_texts(
        config, job, options.out, tokenizer, teacher, turns, options.llm_daemons_words
    )
    pruned = _prune(config, job, tokenizer, teacher)
    student = pruned.model
    kl_texts, train = hold_out([_sample(tokenizer, t) for t in texts], options.llm_kl_answers)
    held_ids = [ids for ids, _ in kl_texts]
    before = llm_fidelity(teacher, student, held_ids)
    report = _distil(teacher, student, train, job, options, job.distil_minutes * 60.0)
    after = llm_fidelity(teacher, student, held_ids)
    decode = _decode(config, tokenizer, {"teacher": teacher, "student": student}, turns)
    rates, cached = _rates(config, job, options, tokenizer, (teacher, student), held)
    why = refusals(rates["student"], rates["teacher"], after["kl"], options)
    path = _save(student, tokenizer, options.out / job.folder)
    fidelity = {
        "teacher": f"{job.model.name} (the configured model, its own weights)",
        "answers": {
            **rates,
            "brain": "the daemon's: real prompts, reply guard, catalog brain as the fallback, "
            "memory (brain/assemble.py)",
            "teacher_cached": cached,
        },
        "before_distillation": before,
        "after_distillation": after,
        "held_out_answers": len(held_ids),
        "teacher_writing": writing,
        "learns": learns(options),
        "distillation": {**distillation_record(report), "min_steps": job.distil_min_steps},
        "decode": decode,
        "max_kl": options.max_llm_kl,
        "max_accuracy_drop": options.max_llm_accuracy_drop,
        "max_garbage_rise": options.max_llm_garbage_rise,
        "not_default": why,
    }
    _record(manifest, job, path, pruned, fidelity, default=not why)
    detail = describe(pruned, rates, before, after, len(held_ids), decode)
    if why:
        detail += f"; not a default: {'; '.join(why)}"
    return [Row(KIND, job.folder, "built", detail)]


def _check_layers(job: LLMBuild, teacher: Any) -> None:
    """Refuse, before any work, to drop as many layers as the model has."""
    layers = int(teacher.config.num_hidden_layers)
    if job.drop_layers >= layers:
        raise BuildError(
            f"brain.llm.drop_layers: {job.drop_layers} of {job.model.name}'s {layers} layers "
            f"(--llm-drop-layers; at most {layers - 1}, 0 to keep them all)"
        )


def _load(job: LLMBuild, options: BuildOptions) -> tuple[Any, Any]:
    """(tokenizer, teacher) as the brain loads them: fp32 on a CPU, bf16 on a GPU."""
    import torch

    from streambot.brain.llm_load import LLMError, load_causal_lm

    dtype = torch.float32 if options.device == "cpu" else torch.bfloat16
    try:
        return load_causal_lm(job.model, dtype, options.device)
    except LLMError as exc:
        raise BuildError(f"brain.llm.path: cannot load {job.model} ({exc})") from exc


def _rates(
    config: Config,
    job: LLMBuild,
    options: BuildOptions,
    tokenizer: Any,
    models: tuple[Any, Any],
    held: Sequence[Question],
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Both models' answer rates on ``held`` (the teacher's from its cache when judged before
    under the same key: every ratio of one model shares it), and whether the teacher's were."""
    from streambot.brain.llm import daemon_dtype

    teacher, student = models
    dtype = str(daemon_dtype(teacher, config.brain.llm.dtype))  # the dtype it is judged in
    key = rates_key(config, job.inputs, system_text(config), held, dtype)
    cache = JsonCache(options.out / f".{job.slug}.teacher-rates.json", key)
    rates, cached = teacher_rates(config, tokenizer, teacher, held, cache)
    student_rates = answer_rates(judge(student, tokenizer, config, held, "student"))
    return {"teacher": rates, "student": student_rates}, cached


def _decode(
    config: Config, tokenizer: Any, models: dict[str, Any], turns: Sequence[Turn]
) -> dict[str, float]:
    """Both models' greedy decode speed on the daemon's system prompt and the first training
    question's turn (with the catalog's first answer said before it, as the daemon would)."""
    from streambot.brain.llm import daemon_dtype

    chats, prefills, system = teacher_prompts(config, turns[:1])
    dtype = daemon_dtype(models["teacher"], config.brain.llm.dtype)
    return decode_speed(tokenizer, models, system, chats[0], prefills[0], dtype=dtype)


def _record(
    manifest: Manifest, job: LLMBuild, path: Path, pruned: PrunedLLM, fidelity: dict, default: bool
) -> None:
    """The student's manifest entry: its inputs, pruning and fidelity."""
    import torch

    student = pruned.model
    precision = "fp32" if next(student.parameters()).dtype == torch.float32 else "bf16"
    weight_bytes = sum(p.numel() * p.element_size() for p in student.parameters())
    pruning = {
        **pruned.record,
        "params_before": pruned.params_before,
        "params_after": pruned.params_after,
        "weight_bytes": weight_bytes,
    }
    artifact = Artifact(
        KIND,
        job.folder,
        sha256_artifact(path),
        "torch",
        precision,
        dict(job.inputs),
        Device(),
        library_versions(BUILD_LIBRARIES),
        pruning,
        fidelity,
        default=default,
        source=job.model.name,
    )
    manifest.put(artifact)


def _ids(tokenizer: Any, text: str, limit: int | None = None):
    import torch

    return torch.tensor(tokenizer(text, add_special_tokens=False).input_ids[:limit])


def _sample(tokenizer: Any, text: TeacherText) -> tuple[Any, int | None]:
    """A training conversation's tokens, and where the daemon's words in place of the
    teacher's start in them (None: the teacher's own answer)."""
    ids = _ids(tokenizer, text.text)
    if not text.replaced:
        return ids, None
    prompt = _ids(tokenizer, text.prompt)
    length = min(len(ids), len(prompt))
    differ = (ids[:length] != prompt[:length]).nonzero()
    return ids, int(differ[0]) if len(differ) else length  # the tokens the two share


def _prune(config: Config, job: LLMBuild, tokenizer: Any, teacher: Any) -> PrunedLLM:
    """The teacher pruned by its activations on the prompt and the catalog's sentences."""
    from streambot.compress.llm_data import calibration_texts
    from streambot.compress.prune_llm import measure_importance, prune_llm

    texts = calibration_texts(catalog_of(config), system_text(config))
    importance = measure_importance(
        teacher, [_ids(tokenizer, t, CALIBRATION_TOKENS) for t in texts]
    )
    pruned = prune_llm(teacher, importance, job.ratio, job.mode, job.drop_layers)
    log.info(
        "llm: %s pruned to %s (%.0fM -> %.0fM params)",
        job.model.name,
        pruned.widths.to_dict(),
        pruned.params_before / 1e6,
        pruned.params_after / 1e6,
    )
    return pruned


def hold_out(samples: Sequence[Any], count: int) -> tuple[list[Any], list[Any]]:
    """(``count`` of the samples, spread evenly over them so every kind of question is in it;
    the others, to train on)."""
    step = len(samples) / count
    picked = {int(i * step) for i in range(min(count, len(samples)))}
    held = [s for i, s in enumerate(samples) if i in picked]
    return held, [s for i, s in enumerate(samples) if i not in picked]


def _distil(teacher, student, train, job: LLMBuild, options: BuildOptions, budget: float):
    """Distil ``student`` on ``train``'s (tokens, where the daemon's words start) samples."""
    from streambot.compress.distill_llm import distil_llm

    resume = job.resume_path(options.out)
    with progress() as bar:
        what = f"distilling {job.model.name} (--distil-minutes: distillation only)"
        tick = distil_ticker(bar, what, budget, min_steps=job.distil_min_steps)
        return distil_llm(
            teacher,
            student,
            [ids for ids, _ in train],
            said_from=[start for _, start in train],
            budget_s=budget,
            min_steps=job.distil_min_steps,
            window=WINDOW_TOKENS,
            resume_path=resume,
            device=options.device,
            on_step=tick,
        )


def _save(model, tokenizer, folder: Path) -> Path:
    """save_pretrained into a temporary folder, then renamed: never half a model under the
    real name."""
    temporary = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    shutil.rmtree(folder, ignore_errors=True)
    temporary.rename(folder)
    return folder
