"""Clocks the pipeline schedules against: the real monotonic clock, or a virtual one for
faster-than-real-time runs and tests, advanced by whoever owns stream time (the presenter)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    realtime: bool

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    realtime = True

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Time that moves only when ``advance_to`` is called; sleepers wake in deadline order."""

    realtime = False

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        await future

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0.0, seconds))

    async def advance_to(self, instant: float) -> None:
        """Move time forward and let every task whose deadline passed run before returning."""
        if instant > self._now:
            self._now = instant
        woke = False
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
                woke = True
        # Yield every frame so other tasks run between frames even when nobody sleeps on the
        # clock; a few more turns let woken tasks reach their next await (queue a message).
        for _ in range(5 if woke else 1):
            await asyncio.sleep(0)
