"""Progress for the long operations a user waits for (avatar preparation, engine builds):
rich's bars on a terminal, one log line at the start and end otherwise (services, CI)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("streambot.progress")


def interactive() -> bool:
    return sys.stderr.isatty()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items``, showing how far it has got."""
    if interactive():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True)
        return
    started = time.perf_counter()
    log.info("%s (%s items)...", description, total if total is not None else "?")
    count = 0
    for count, item in enumerate(items, 1):  # noqa: B007 - the count is reported after
        yield item
    log.info("%s: %d done in %.1fs", description, count, time.perf_counter() - started)
