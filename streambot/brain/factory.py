"""Builds the configured brain. LLM brains are always wrapped: grounded in the catalog, their
every sentence checked against it (GuardedBrain), with the catalog brain as the fallback, and
a bounded memory of recent turns for follow-up questions."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from streambot.brain.base import Brain
from streambot.brain.catalog import Catalog, CatalogBrain, CatalogError
from streambot.config import Config
from streambot.events import Turn

log = logging.getLogger(__name__)


class CatalogSource:
    """The live catalog: reloaded when its file changes, so prices stay right mid-stream."""

    def __init__(self, brain: CatalogBrain, path: str) -> None:
        self.brain, self.path = brain, Path(path) if path else None
        self._mtime = self._stat()
        self.listeners: list[Callable[[Catalog], None]] = []
        self.version = 0  # reloads so far

    @property
    def catalog(self) -> Catalog:
        return self.brain.answerer.catalog

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime if self.path else None
        except OSError:
            return None

    def reload_if_changed(self) -> bool:
        mtime = self._stat()
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            catalog = Catalog.load(self.path)
        except CatalogError as exc:
            log.error("catalog changed but cannot be used, keeping the old one: %s", exc)
            return False
        self.brain.answerer.catalog = catalog
        self.version += 1
        for listener in self.listeners:
            listener(catalog)
        log.info("catalog reloaded from %s", self.path)
        return True

    def change_check(self) -> Callable[[], bool]:
        """A check for one consumer: reloads if the file changed and says whether the catalog
        changed since that consumer last asked, whoever reloaded it (the app's watch task
        usually gets there first, so ``reload_if_changed``'s own answer would miss it)."""
        seen = self.version

        def changed() -> bool:
            nonlocal seen
            self.reload_if_changed()
            now_changed, seen = self.version != seen, self.version
            return now_changed

        return changed


class RememberingBrain:
    """Keeps the last N (question, what was actually said) pairs for the prompt."""

    def __init__(self, inner: Brain, memory: deque[tuple[str, str]]) -> None:
        self.inner, self.memory = inner, memory

    def pitch_topics(self) -> list[str]:
        return self.inner.pitch_topics()

    async def reply(self, turn: Turn) -> AsyncIterator[str]:
        said = ""
        async for delta in self.inner.reply(turn):
            said += delta
            yield delta
        if turn.kind == "answer" and turn.message is not None and said.strip():
            self.memory.append((turn.message.text, said.strip()))


def build_brain(config: Config) -> tuple[Brain, CatalogSource]:
    """(the brain that answers, the live catalog); ``source.brain`` is the catalog brain that
    grounds the answers and backs them up."""
    catalog_brain = CatalogBrain(config.brain.catalog)
    source = CatalogSource(catalog_brain, config.brain.catalog.path)
    backend = config.brain.backend
    if backend == "catalog":
        return catalog_brain, source
    try:
        inner, memory = _build_llm(config, source)
    except Exception as exc:  # a missing model must not keep the stream off the air
        log.warning("%s brain unavailable, answering from the catalog: %s", backend, exc)
        return catalog_brain, source
    from streambot.brain.guard import GuardedBrain, ReplyGuard

    guard = ReplyGuard(source.catalog, config.triage.banned_words)
    guarded = GuardedBrain(inner, catalog_brain, guard, source.catalog)

    def follow(catalog: Catalog) -> None:
        guard.catalog = guarded.catalog = catalog

    source.listeners.append(follow)
    return RememberingBrain(guarded, memory), source


def _build_llm(config: Config, source: CatalogSource) -> tuple[Brain, deque[tuple[str, str]]]:
    """The bare LLM brain (local or remote) and the memory it shares with its wrapper."""
    from streambot.brain.prompt import system_prompt, turn_messages

    catalog_brain = source.brain
    host = config.brain.catalog.host_name
    if config.brain.backend == "llm":
        cfg = config.brain.llm
        if not cfg.path:
            raise ValueError("brain.llm.path is empty")
        from streambot.brain.llm import GenerationSettings, LLMBrain, LocalLLM

        memory: deque[tuple[str, str]] = deque(maxlen=cfg.memory_turns)
        llm = LocalLLM(cfg.path, cfg.device, cfg.dtype, cfg.trust_remote_code)
        brain = LLMBrain(
            llm,
            lambda turn: turn_messages(turn, source.catalog, tuple(memory), host),
            lambda: system_prompt(source.catalog, host),
            catalog_brain.pitch_topics,
            GenerationSettings(cfg.max_new_tokens, cfg.temperature, cfg.top_p),
            catalog_changed=source.change_check(),
        )
    else:
        cfg = config.brain.openai
        if not cfg.model:
            raise ValueError("brain.openai.model is empty")
        from streambot.brain.openai_api import OpenAIChatBrain

        memory = deque(maxlen=cfg.memory_turns)

        def build_messages(turn: Turn) -> list[dict[str, str]]:
            source.reload_if_changed()
            return turn_messages(turn, source.catalog, tuple(memory), host)

        brain = OpenAIChatBrain(
            cfg.base_url,
            cfg.model,
            cfg.api_key(),
            build_messages,
            catalog_brain,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            first_token_timeout=cfg.first_token_timeout_s,
            idle_timeout=cfg.idle_timeout_s,
            total_timeout=cfg.total_timeout_s,
            retries=cfg.retries,
            failure_threshold=cfg.failure_threshold,
            open_seconds=cfg.open_seconds,
        )
    return brain, memory
