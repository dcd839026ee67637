"""The daemon's local-LLM brain around a model that is already loaded, in one place.

``brain/factory.py`` builds it from ``[brain.llm] path`` (or the pruned model); build_engines.py
builds it around the teacher and the student it has in memory, to judge each by its answers,
and passes the teacher's training answers through its guard (what the student learns is what
the daemon would say).
Both must get the same brain: the real prompts (``brain/prompt.py``, in the configured
``PromptStyle``), the catalog's figures filled into slots when the model writes slots, every
sentence checked by the ``ReplyGuard`` (``GuardedBrain``, the catalog brain answering instead),
and a bounded memory of recent turns (``RememberingBrain``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from streambot.brain.base import Brain
from streambot.brain.catalog import CatalogBrain
from streambot.brain.prompt import PromptStyle, system_prompt, turn_messages
from streambot.config import Config, LLMBrainConfig, OpenAIBrainConfig
from streambot.turn import Turn, TurnKind

if TYPE_CHECKING:  # torch only where a local model runs (guarded() serves the API brain too)
    from streambot.brain.guarded import GuardedBrain
    from streambot.brain.llm import LocalLLM

Memory = deque[tuple[str, str]]


class RememberingBrain:
    """Keeps the last N (question, what was actually said) pairs for the prompt."""

    def __init__(self, inner: Brain, memory: Memory) -> None:
        self.inner, self.memory = inner, memory

    def pitch_topics(self) -> list[str]:
        return self.inner.pitch_topics()

    async def reply(self, turn: Turn) -> AsyncGenerator[str, None]:
        said = ""
        async for delta in self.inner.reply(turn):
            said += delta
            yield delta
        if turn.kind == TurnKind.ANSWER and turn.message is not None and said.strip():
            self.memory.append((turn.message.text, said.strip()))


def prompt_style(section: LLMBrainConfig | OpenAIBrainConfig) -> PromptStyle:
    """How the prompts carry memory and figures, as ``[brain.llm]`` (or ``[brain.openai]``)
    says."""
    return PromptStyle(section.memory, section.facts)


def messages_for(
    config: Config, section: LLMBrainConfig | OpenAIBrainConfig, catalog_brain: CatalogBrain
) -> tuple[Callable[[Turn], list[dict[str, str]]], Memory, PromptStyle]:
    """(each turn's chat messages, the memory they read, the style they are written in): the
    real prompts on the live catalog, as ``section`` says."""
    live, host, style = catalog_brain.live, config.persona.name, prompt_style(section)
    memory: Memory = deque(maxlen=section.memory_turns)

    def build_messages(turn: Turn) -> list[dict[str, str]]:
        return turn_messages(turn, live.current, tuple(memory), host, style)

    return build_messages, memory, style


def with_slots(brain: Brain, style: PromptStyle, catalog_brain: CatalogBrain) -> Brain:
    """``brain`` with its ``{thermo.price}`` slots filled from the live catalog, when the
    prompts ask for slots (``facts = "slots"``)."""
    if style.facts != "slots":
        return brain
    from streambot.brain.slots import SlotFillingBrain

    return SlotFillingBrain(brain, catalog_brain.live)


def local_brain(llm: LocalLLM, config: Config, catalog_brain: CatalogBrain) -> tuple[Brain, Memory]:
    """The bare LLM brain on ``llm`` (its slots filled when ``[brain.llm] facts = "slots"``)
    and the memory it shares with its wrapper."""
    from streambot.brain.llm import GenerationSettings, LLMBrain

    cfg, live, host = config.brain.llm, catalog_brain.live, config.persona.name
    build_messages, memory, style = messages_for(config, cfg, catalog_brain)
    brain = LLMBrain(
        llm,
        build_messages,
        lambda: system_prompt(live.current, host, style.facts),
        catalog_brain.pitch_topics,
        GenerationSettings(cfg.max_new_tokens, cfg.temperature, cfg.top_p),
        catalog_changed=live.changes(),
    )
    return with_slots(brain, style, catalog_brain), memory


def guarded(
    inner: Brain,
    memory: Memory,
    config: Config,
    catalog_brain: CatalogBrain,
    section: LLMBrainConfig | OpenAIBrainConfig,
) -> Brain:
    """``inner`` (an LLM brain) as the daemon speaks it (``guarded_brain``), recent turns
    remembered."""
    return RememberingBrain(guarded_brain(inner, config, catalog_brain, section), memory)


def guarded_brain(
    inner: Brain,
    config: Config,
    catalog_brain: CatalogBrain,
    section: LLMBrainConfig | OpenAIBrainConfig,
) -> GuardedBrain:
    """``inner`` with every sentence through the guard, the catalog brain answering whatever
    the guard refuses or what ``inner`` is too slow to start (``section.first_sentence_s``),
    with ``section.answer_first`` its answer said first and ``inner`` continuing."""
    from streambot.brain.guard import ReplyGuard
    from streambot.brain.guarded import GuardedBrain

    live = catalog_brain.live
    guard = ReplyGuard(live.current, config.triage.banned_words)
    return GuardedBrain(
        inner,
        catalog_brain,
        guard,
        live,
        answer_first=section.answer_first,
        first_sentence_s=section.first_sentence_s,
        remembered=section.memory_turns if section.memory != "none" else 1,
    )


def daemon_brain(llm: LocalLLM, config: Config, catalog_brain: CatalogBrain) -> Brain:
    """The brain the daemon runs on ``llm`` with ``[brain.llm]`` as configured."""
    inner, memory = local_brain(llm, config, catalog_brain)
    return guarded(inner, memory, config, catalog_brain, config.brain.llm)
