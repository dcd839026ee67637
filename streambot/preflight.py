"""Start-up checks of what the config points at, each failure naming its key.

The daemon runs them before it builds anything (a problem exits 2 with the message, never a
traceback) and ``doctor`` reports them: a catalog that is missing or not valid, a store that
cannot be opened, a replay file that is not there, chat open to the network without a token,
an LLM brain's GGUF file that is missing, no GGUF, or of an architecture transformers cannot
load (a model folder is checked when the brain loads it: the catalog brain answers instead).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from streambot.brain.llm_load import is_gguf
from streambot.config import Config, ConfigError


def _catalog(config: Config) -> str:
    from streambot.catalog import Catalog, CatalogError

    path = config.brain.catalog.path
    try:
        catalog = Catalog.load(path or None)
    except CatalogError as exc:
        raise ConfigError(f"brain.catalog.path: {exc}") from None
    return f"{len(catalog.product)} products from {path or 'the bundled catalog'}"


def _store(config: Config) -> str:
    path = config.store.path
    if path == ":memory:":
        return "in memory"
    target = Path(path)
    try:
        if target.exists():
            db = sqlite3.connect(f"file:{target}?mode=rw", uri=True)
            try:
                db.execute("PRAGMA schema_version").fetchone()
            finally:
                db.close()
            return f"{path} opens"
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = target.parent / f".{target.name}.streambot-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"store.path: cannot open {path!r} as the event log: {exc}") from None
    return f"{path} can be created"


def _replay(config: Config) -> str:
    path = config.chat.local.replay
    try:
        with open(path, "rb") as replay:
            replay.read(1)
    except OSError as exc:
        raise ConfigError(f"chat.local.replay: cannot read {path!r}: {exc}") from None
    return f"{path} is readable"


def _llm_gguf(config: Config) -> str:
    from streambot.brain.llm_load import LLMError, check_gguf

    try:
        return check_gguf(config.brain.llm.path)
    except LLMError as exc:
        raise ConfigError(str(exc)) from None


def _exposure(config: Config) -> str:
    config.chat.local.check_exposure()
    return f"{config.chat.local.host} (loopback, or a token is set)"


def _panel_exposure(config: Config) -> str:
    config.panel.check_exposure()
    return f"{config.panel.host}:{config.panel.port} (loopback, or a token is set)"


def checks(config: Config) -> list[tuple[str, Callable[[Config], str]]]:
    """(name, probe) of every check this config needs; a probe raises ConfigError."""
    found: list[tuple[str, Callable[[Config], str]]] = [
        ("catalog", _catalog),
        ("store", _store),
    ]
    if config.chat.local.replay:
        found.append(("replay file", _replay))
    if config.brain.backend == "llm" and is_gguf(config.brain.llm.path):
        found.append(("LLM model file", _llm_gguf))
    if config.chat.local.http:
        found.append(("chat exposure", _exposure))
    if config.panel.enabled:
        found.append(("panel exposure", _panel_exposure))
    return found


def preflight(config: Config) -> None:
    """Raise one ConfigError listing every problem, or return when there is none."""
    problems = []
    for _name, probe in checks(config):
        try:
            probe(config)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n  ".join(["invalid configuration:", *problems]))
