"""``build_engines.py --only llm``: the configured LLM (a Hugging Face folder or a GGUF file,
loaded as the brain loads it: ``brain/llm_load.py``) pruned by width, distilled on the stream's
own text, measured, and saved as a vanilla model folder with its manifest entry.

Importance comes from the model's activations on the system prompt (persona, catalog, house
rules) and the host's catalog sentences (compress/llm_data.py); pruning respects grouped-query
attention (compress/prune_llm.py). The teacher then writes the training text itself: its
answers to viewer questions generated from the catalog, under the real system prompt and turn
messages. The student learns the teacher's next-token distributions on it (top-k KL,
compress/distill_llm.py) for ``--distil-minutes``; a quarter of that budget goes to the
teacher's writing. The report: parameters and weight memory, teacher-student KL and both
perplexities on held-out answers before and after distillation, and how often the reply guard
had to correct a figure or replace the answer, on generated catalog questions, for the
teacher and the student. The folder loads with ``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from streambot.compress.build import (
    BUILD_LIBRARIES,
    BuildError,
    BuildOptions,
    Row,
    _catalog,
    _curve,
    distil_ticker,
    plan_outputs,
    progress,
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

log = logging.getLogger(__name__)
KIND = "llm"
CALIBRATION_TOKENS = 512  # per calibration text
WINDOW_TOKENS = 256  # distillation windows
ANSWER_TOKENS = 64  # each answer the teacher writes, and each one the guard checks
GUARD_QUESTIONS = 100


@dataclass
class LLMBuild:
    model: Path
    ratio: float
    mode: str
    drop_layers: int
    inputs: dict[str, str]

    @property
    def folder(self) -> str:
        name = self.model.stem if self.model.suffix.lower() == ".gguf" else self.model.name
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-") or "llm"
        return f"llm-{slug}-p{round(self.ratio * 100):02d}"


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
    ratio = options.prune_given if options.prune_given is not None else config.brain.llm.prune
    settings = {
        "prune": ratio,
        "mode": options.llm_heads,
        "drop_layers": options.llm_drop_layers,
        "distil_minutes": options.distil_minutes,
        "text": "catalog questions + system prompt",
    }
    inputs = {
        "model": sha256_model(model),
        # the teacher's answers and the calibration come from the catalog and persona
        "catalog": sha256_json(_catalog(config).model_dump(mode="json")),
        "build settings": sha256_json(settings),
    }
    return LLMBuild(model, ratio, options.llm_heads, options.llm_drop_layers, inputs)


def plan_llm(job: LLMBuild, options: BuildOptions, manifest: Manifest) -> list[Row]:
    return plan_outputs(KIND, {"torch": job.folder}, job.inputs, options, manifest)


def build_llm(config: Config, job: LLMBuild, options: BuildOptions, manifest: Manifest):
    try:
        import torch

        from streambot.brain.llm_load import LLMError, load_causal_lm
        from streambot.brain.prompt import system_prompt
        from streambot.compress.distill_llm import llm_fidelity
        from streambot.compress.llm_data import calibration_texts, catalog_questions
        from streambot.compress.prune_llm import measure_importance, prune_llm
    except ImportError as exc:
        raise BuildError(f"{exc}: pip install torch 'streambot[neural]'") from exc
    dtype = torch.float32 if options.device == "cpu" else torch.bfloat16
    try:
        tokenizer, teacher = load_causal_lm(job.model, dtype, options.device)
    except LLMError as exc:
        raise BuildError(f"brain.llm.path: cannot load {job.model} ({exc})") from exc
    catalog, host = _catalog(config), config.brain.catalog.host_name
    system = system_prompt(catalog, host)

    def ids(text: str, limit: int | None = None):
        return torch.tensor(tokenizer(text, add_special_tokens=False).input_ids[:limit])

    calibration = [ids(t, CALIBRATION_TOKENS) for t in calibration_texts(catalog, system)]
    importance = measure_importance(teacher, calibration)
    pruned = prune_llm(teacher, importance, job.ratio, job.mode, job.drop_layers)
    student = pruned.model
    log.info("llm: %s pruned to %s (%.0fM -> %.0fM params)", job.model.name,
             pruned.widths.to_dict(), pruned.params_before / 1e6,
             pruned.params_after / 1e6)  # fmt: skip

    budget = options.distil_minutes * 60.0
    questions = catalog_questions(catalog, GUARD_QUESTIONS)
    writer = Writer(teacher, tokenizer, catalog, host)
    texts = writer.answers(questions, budget_s=budget / 4)
    samples = [ids(t) for t in texts]
    held, train = samples[::5], [s for i, s in enumerate(samples) if i % 5]
    train += [ids(system)]  # the house rules and the catalog, as the prompt states them
    before = llm_fidelity(teacher, student, held)
    report = _distil(teacher, student, train, job, options, budget * 3 / 4)
    after = llm_fidelity(teacher, student, held)
    guard = {
        "teacher": writer.guard_rates(questions, teacher, budget_s=budget / 8),
        "student": writer.guard_rates(questions, student, budget_s=budget / 8),
    }
    path = _save(student, tokenizer, options.out / job.folder)
    precision = "fp32" if dtype == torch.float32 else "bf16"
    weight_bytes = sum(p.numel() * p.element_size() for p in student.parameters())
    fidelity = {
        "teacher": f"{job.model.name} (the configured model, its own weights)",
        "before_distillation": before,
        "after_distillation": after,
        "held_out_answers": len(held),
        "distillation": {"steps": report.steps, "seconds": round(report.seconds, 1),
                         "first_loss": report.first_loss, "last_loss": report.last_loss,
                         "loss_curve": _curve(report.losses)},
        "guard": guard,
        "max_kl": options.max_llm_kl,
    }  # fmt: skip
    pruning = {**pruned.record, "params_before": pruned.params_before,
               "params_after": pruned.params_after, "weight_bytes": weight_bytes}  # fmt: skip
    default = after["kl"] <= options.max_llm_kl
    manifest.put(Artifact(KIND, job.folder, sha256_artifact(path), "torch", precision,
                          dict(job.inputs), Device(), library_versions(BUILD_LIBRARIES),
                          pruning, fidelity, default=default, source=job.model.name))  # fmt: skip
    w = pruned.widths
    detail = (f"{w.attention_heads}/{w.kv_heads} heads, MLP {w.intermediate}, {w.layers} layers, "
              f"{pruned.params_after / 1e6:.0f}M params; KL {before['kl']:.3f} -> "
              f"{after['kl']:.3f}; guard corrected {guard['student']['corrected']:.0%} "
              f"(teacher {guard['teacher']['corrected']:.0%}) of "
              f"{guard['student']['questions']} answers")  # fmt: skip
    if not default:
        detail += f"; not a default: KL {after['kl']:.3f} > {options.max_llm_kl:g}"
    return [Row(KIND, job.folder, "built", detail)]


def _distil(teacher, student, train, job: LLMBuild, options: BuildOptions, budget: float):
    from streambot.compress.distill_llm import distil_llm

    resume = options.out / f".{job.folder}.{job.inputs['model'][:12]}.distil"
    with progress() as bar:
        tick = distil_ticker(bar, f"distilling {job.model.name}", budget)
        return distil_llm(teacher, student, train, budget_s=budget, window=WINDOW_TOKENS,
                          resume_path=resume, device=options.device, on_step=tick)  # fmt: skip


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


class Writer:
    """The teacher (or the student) answering viewer questions under the real prompts."""

    def __init__(self, teacher, tokenizer, catalog, host: str) -> None:
        from streambot.brain.guard import ReplyGuard

        self.teacher, self.tokenizer, self.catalog, self.host = teacher, tokenizer, catalog, host
        self.guard = ReplyGuard(catalog)

    def _messages(self, index: int, question: str, lang: str) -> list[dict[str, str]]:
        from streambot.brain.prompt import turn_messages
        from streambot.compress.llm_data import question_turn

        return turn_messages(question_turn(index, question, lang), self.catalog, (), self.host)

    def _generate(self, model, messages: list[dict[str, str]]) -> str:
        import torch

        from streambot.brain.llm import forward_with_cache

        text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)  # fmt: skip
        prompt = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        device = next(model.parameters()).device
        todo, cache, out = prompt.to(device), None, []
        stop = {self.tokenizer.eos_token_id, getattr(model.config, "eos_token_id", None)}
        with torch.inference_mode():
            for _ in range(ANSWER_TOKENS):
                logits, cache = forward_with_cache(model, todo, cache)
                token = int(logits[0, -1].argmax())
                if token in stop:
                    break
                out.append(token)
                todo = torch.tensor([[token]], device=device)
        return self.tokenizer.decode(out, skip_special_tokens=True)

    def answers(self, questions, budget_s: float) -> list[str]:
        """Whole conversations (prompt + the teacher's answer) as text, as many as the budget
        allows (at least five)."""
        started, texts = time.monotonic(), []
        for i, (question, lang) in enumerate(questions):
            if len(texts) >= 5 and time.monotonic() - started > budget_s:
                break
            messages = self._messages(i, question, lang)
            answer = self._generate(self.teacher, messages)
            conversation = [*messages, {"role": "assistant", "content": answer}]
            texts.append(self.tokenizer.apply_chat_template(conversation, tokenize=False))
        log.info("llm: the teacher wrote %d answers in %.0f s", len(texts),
                 time.monotonic() - started)  # fmt: skip
        return texts

    def guard_rates(self, questions, model, budget_s: float) -> dict:
        """Share of answers in which the guard corrected a figure, and in which it rejected
        a sentence (the catalog brain answers instead), over the questions the budget allows."""
        from streambot.brain.sentences import split_sentences

        started = time.monotonic()
        corrected = replaced = asked = 0
        for i, (question, lang) in enumerate(questions):
            if asked >= 5 and time.monotonic() - started > budget_s:
                break
            answer = self._generate(model, self._messages(i, question, lang))
            products = self.catalog.find(question)
            verdicts = [self.guard.check(s, products, lang) for s in split_sentences(answer)]
            replaced += any(not v.ok for v in verdicts)
            corrected += any(v.ok and v.reason for v in verdicts)
            asked += 1
        return {"questions": asked, "corrected": corrected / asked, "replaced": replaced / asked}
