"""The teacher's answers a pruned LLM is distilled on: each training question answered by the
unpruned model as the daemon would have it answer (the same prompt, no memory, after the
catalog's answer when the daemon says that first), greedy, written once per model, catalog and
prompt and cached in the build's output folder (every ratio's build shares them)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from streambot.compress.common import catalog_of, count_ticker, progress
from streambot.compress.llm_judge import JsonCache
from streambot.config import Config
from streambot.runtime.manifest import sha256_json

if TYPE_CHECKING:
    from streambot.brain.llm import LocalLLM
    from streambot.turn import Turn

log = logging.getLogger(__name__)
ANSWER_TOKENS = 64  # each answer the teacher writes for training


class TeacherJob(Protocol):
    """What of a build the teacher's answers depend on: the model (and catalog) digests, and
    the names its cache files go by."""

    @property
    def model(self) -> Path: ...
    @property
    def inputs(self) -> dict[str, str]: ...
    @property
    def slug(self) -> str: ...
    @property
    def folder(self) -> str: ...


def system_text(config: Config) -> str:
    """The system prompt the daemon gives the model (its facts as text or as slots)."""
    from streambot.brain.assemble import prompt_style
    from streambot.brain.prompt import system_prompt

    facts = prompt_style(config.brain.llm).facts
    return system_prompt(catalog_of(config), config.persona.name, facts)


def teacher_prompts(
    config: Config, turns: Sequence[Turn]
) -> tuple[list[list[dict[str, str]]], list[str], str]:
    """(each turn's chat messages, as the daemon sends them with no memory; the catalog's
    answer the daemon says first and the model continues, "" where none; the system prompt)."""
    from streambot.brain.assemble import prompt_style
    from streambot.brain.catalog import CatalogBrain
    from streambot.brain.prompt import turn_messages

    cfg, host = config.brain.llm, config.persona.name
    catalog_brain = CatalogBrain(config.brain.catalog, persona=config.persona)
    catalog, style = catalog_brain.live.current, prompt_style(cfg)
    chats = [turn_messages(t, catalog, (), host, style) for t in turns]
    prefills = [
        (catalog_brain.first_answer(t) or "").strip() if cfg.answer_first else "" for t in turns
    ]
    return chats, prefills, system_text(config)


def teacher_texts(
    config: Config,
    job: TeacherJob,
    out: Path,
    tokenizer: Any,
    teacher: Any,
    turns: Sequence[Turn],
) -> tuple[list[str], dict[str, float]]:
    """The teacher's answers to ``turns`` as whole conversations (prompt, then the answer as
    the daemon would say it), from the cache when it has them, else written and cached; and
    how many were written, how many came from the cache, in how long."""
    chats, prefills, system = teacher_prompts(config, turns)
    dtype = str(next(teacher.parameters()).dtype)
    key = sha256_json(
        {
            "model": job.inputs["model"],
            "catalog": job.inputs["catalog"],
            "system": system,
            "chats": chats,
            "prefills": prefills,
            "answer_tokens": ANSWER_TOKENS,
            "dtype": dtype,
        }
    )
    cache = _answer_cache(job, out, key)
    answers, started = _answers(cache)[: len(turns)], time.monotonic()
    cached = len(answers)
    if cached < len(turns):
        from streambot.brain.llm import LocalLLM

        llm = LocalLLM.from_loaded(tokenizer, teacher)
        try:
            llm.set_system_prompt(system)
            _write_all(llm, chats, prefills, answers, cache, job.model.name)
        finally:
            llm.executor.shutdown()
    seconds = time.monotonic() - started
    log.info(
        "llm: the teacher's %d answers: %d cached, %d written in %.0f s",
        len(answers),
        cached,
        len(answers) - cached,
        seconds,
    )
    texts = [
        tokenizer.apply_chat_template(
            [*chat, {"role": "assistant", "content": first + said}], tokenize=False
        )
        for chat, first, said in zip(chats, prefills, answers, strict=True)
    ]
    return texts, {"answers": len(answers), "cached": cached, "seconds": round(seconds, 1)}


def _answer_cache(job: TeacherJob, out: Path, key: str) -> JsonCache:
    """The teacher's answers, one file per model (every ratio's build shares them); a cache
    written under a student's folder name, as builds before did, is read too."""
    return JsonCache(
        out / f".{job.slug}.teacher-answers.json",
        key,
        fallbacks=(out / f".{job.folder}.teacher-answers.json",),
        field="answers",
    )


def _answers(cache: JsonCache) -> list[str]:
    """The cached answers ([] when none, or when the file holds anything but strings); a
    partial list: the build was interrupted while writing them."""
    answers = cache.load()
    if isinstance(answers, list) and all(isinstance(a, str) for a in answers):
        return answers
    return []


def _write_all(
    llm: LocalLLM,
    chats: Sequence[list[dict[str, str]]],
    prefills: Sequence[str],
    answers: list[str],
    cache: JsonCache,
    name: str,
) -> None:
    """Write the answers not in ``answers`` yet, saving every ten (an interrupted build goes
    on from there)."""
    total = len(chats)
    with progress() as bar:
        what = f"{name} writes {total} answers (outside --distil-minutes)"
        tick = count_ticker(bar, what, total, len(answers))
        for i in range(len(answers), total):
            answers.append(_write(llm, chats[i], prefills[i]))
            tick(i + 1)
            if (i + 1) % 10 == 0:
                cache.save(answers)
    cache.save(answers)


def _write(llm: LocalLLM, messages: list[dict[str, str]], prefill: str) -> str:
    """One answer of the teacher's, greedy, generated as the daemon generates (after
    ``prefill``, the words said first, when there are any): what it adds."""
    from streambot.brain.llm import GenerationSettings

    settings = GenerationSettings(ANSWER_TOKENS, temperature=0.0)
    return llm.generate(messages, settings, lambda _: None, threading.Event(), prefill)
