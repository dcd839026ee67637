"""The bounded priority queue between triage and the host."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field

from streambot.events import ChatMessage


@dataclass(order=True)
class _Entry:
    sort_key: tuple[int, int]
    priority: int = field(compare=False)
    message: ChatMessage = field(compare=False)


class Inbox:
    """Highest priority first, oldest first within a priority; at most ``maxsize`` entries.

    When full, the lowest-priority newest entry makes room for a more important message, and a
    message that is no more important than everything queued is refused. ``put`` returns the
    message that did not fit so the caller can log and store why.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, message: ChatMessage, priority: int) -> ChatMessage | None:
        entry = _Entry((-priority, next(self._seq)), priority, message)
        dropped = None
        if len(self._heap) >= self.maxsize:
            weakest = max(self._heap)  # lowest priority, newest
            if priority <= weakest.priority:
                return message
            self._heap.remove(weakest)
            heapq.heapify(self._heap)
            dropped = weakest.message
        heapq.heappush(self._heap, entry)
        self._ready.set()
        return dropped

    def peek_priority(self) -> int | None:
        return self._heap[0].priority if self._heap else None

    def get_nowait(self) -> tuple[ChatMessage, int] | None:
        if not self._heap:
            return None
        entry = heapq.heappop(self._heap)
        if not self._heap:
            self._ready.clear()
        return entry.message, entry.priority

    async def wait(self) -> None:
        """Return once something is queued."""
        await self._ready.wait()
