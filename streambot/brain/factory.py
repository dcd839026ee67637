"""Builds the configured brain. LLM brains are always wrapped: grounded in the catalog, their
every sentence checked against it (GuardedBrain), with the catalog brain as the fallback, and
a bounded memory of recent turns for follow-up questions. Every part reads the live catalog
(``streambot.catalog.LiveCatalog``) as it is at each turn, so an edited file is followed."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from streambot.brain import assemble
from streambot.brain.base import Brain
from streambot.brain.catalog import CatalogBrain
from streambot.catalog import LiveCatalog
from streambot.config import Config

log = logging.getLogger(__name__)


def build_brain(config: Config, live: LiveCatalog | None = None) -> tuple[Brain, CatalogBrain]:
    """(the brain that answers, the catalog brain that grounds its answers and backs them
    up). ``live``: the catalog they read (default: ``brain.catalog.path``'s); the catalog
    brain's ``live`` is it."""
    catalog_brain = CatalogBrain(config.brain.catalog, live, config.persona)
    backend = config.brain.backend
    if backend == "catalog":
        return catalog_brain, catalog_brain
    try:
        inner, memory = _build_llm(config, catalog_brain)
    except Exception as exc:  # a missing model must not keep the stream off the air
        log.warning("%s brain unavailable, answering from the catalog: %s", backend, exc)
        return catalog_brain, catalog_brain
    section = config.brain.llm if backend == "llm" else config.brain.openai
    brain = assemble.guarded(inner, memory, config, catalog_brain, section)
    return brain, catalog_brain


def llm_model_path(config: Config) -> Path:
    """The model to run: the pruned folder build_engines.py made (in ``[engines] dir``) from
    ``[brain.llm] path`` (a model
    folder or a GGUF file) when ``cfg.engine`` allows it and it is usable (fresh, a default),
    else ``cfg.path``; with ``engine = "pruned"`` and none usable, an LLMError saying why (the
    catalog brain answers)."""
    from streambot.brain.llm import LLMError
    from streambot.brain.llm_load import is_gguf
    from streambot.runtime.manifest import Device
    from streambot.runtime.select import choose, llm_inputs

    cfg = config.brain.llm
    source = Path(cfg.path)
    model = (source / "config.json").is_file() or (is_gguf(source) and source.is_file())
    if cfg.engine == "none" or not model:
        return source
    inputs = functools.partial(llm_inputs, source)
    choice = choose("llm", config.engines.dir, inputs, Device(), source=source.name)
    if choice.path is not None:
        log.info("LLM: the pruned %s built from %s", choice.path.name, source.name)
        return choice.path
    if cfg.engine == "pruned":
        why = "; ".join(choice.refused) or f"{config.engines.dir} has none for {source.name}"
        raise LLMError(
            f"brain.llm.engine is pruned, but no pruned model is usable: {why} "
            "(python build_engines.py --only llm)"
        )
    return source


def _build_llm(config: Config, catalog_brain: CatalogBrain) -> tuple[Brain, assemble.Memory]:
    """The bare LLM brain (local or remote) and the memory it shares with its wrapper."""
    if config.brain.backend == "llm":
        cfg = config.brain.llm
        if not cfg.path:
            raise ValueError("brain.llm.path is empty")
        from streambot.brain.llm import LocalLLM

        path = llm_model_path(config)
        llm = LocalLLM(path, cfg.device, cfg.dtype, cfg.trust_remote_code, cfg.cpu_nice)
        return assemble.local_brain(llm, config, catalog_brain)
    cfg = config.brain.openai
    if not cfg.model:
        raise ValueError("brain.openai.model is empty")
    from streambot.brain.openai_api import OpenAIChatBrain

    build_messages, memory, style = assemble.messages_for(config, cfg, catalog_brain)
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
        retries=cfg.retry.retries,
        failure_threshold=cfg.retry.failure_threshold,
        open_seconds=cfg.retry.open_seconds,
    )
    return assemble.with_slots(brain, style, catalog_brain), memory
