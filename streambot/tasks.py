"""Ending asyncio tasks for sure.

Python 3.11's ``asyncio.wait_for`` returns its inner result when a cancel lands just as that
result arrives (fixed in 3.12), so one ``cancel()`` can be lost and ``await task`` then waits
forever on a task that runs on. Shutdown paths use ``cancel_and_wait``, which cancels again
until every task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task], retry_s: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until all have ended, cancelling again every ``retry_s``.
    Their exceptions count as retrieved (the caller is shutting them down)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
    for task in tasks:
        if not task.cancelled():
            task.exception()
