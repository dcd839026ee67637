"""Ending asyncio tasks for sure.

Python 3.11's ``asyncio.wait_for`` returns its inner result when a cancel lands just as that
result arrives (fixed in 3.12), so one ``cancel()`` can be lost and ``await task`` then waits
forever on a task that runs on. Shutdown paths use ``cancel_and_wait``, which cancels again
until every task has ended.

``first_of`` and ``wait_or_stop`` are the "wait for this or for stop" idiom, written once:
they end what they started, and leave futures and tasks passed in to their owner.
``Background`` holds fire-and-forget tasks (chat replies, delayed OBS changes, overlay
drawings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Future], retry_s: float = 1.0) -> None:
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


async def first_of(*awaitables: Awaitable[object]) -> None:
    """Wait until any of ``awaitables`` is done, then cancel and wait out the tasks made here
    for the others. Futures and tasks passed in are left as they are (their owner reads or
    cancels them); an exception from a finished coroutine made into a task here is raised."""
    if not awaitables:
        raise ValueError("first_of needs at least one awaitable")
    futures: list[asyncio.Future] = []
    own: list[asyncio.Future] = []
    try:
        for awaitable in awaitables:
            future = asyncio.ensure_future(awaitable)
            futures.append(future)
            if future is not awaitable:
                own.append(future)
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(own)  # also when we are cancelled: nothing made here runs on
    for future in own:
        if future in done and not future.cancelled() and (exc := future.exception()) is not None:
            raise exc


async def wait_or_stop(awaitable: Awaitable[object], stop: asyncio.Event) -> bool:
    """Wait for ``awaitable`` unless ``stop`` is set first. True when it finished; False when
    stop came first (then it is cancelled if it was made into a task here, else left alone)."""
    future = asyncio.ensure_future(awaitable)
    own = future is not awaitable
    try:
        await first_of(future, stop.wait())
        finished = future.done()
    finally:
        if own:
            await cancel_and_wait([future])
    if finished and own:
        future.result()  # raises its exception, if it failed
    return finished


class Background:
    """Fire-and-forget tasks, written once: each is kept referenced until it is done (the
    event loop holds tasks only weakly, so an unreferenced one can vanish mid-run), a failure
    is logged with ``what`` (nobody awaits them), and ``settle`` waits for all of them."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[object, object, object], name: str | None = None) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: %s failed", self.what, task.get_name(), exc_info=exc)

    async def settle(self) -> None:
        """Until every task spawned so far, and any they spawn meanwhile, has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
