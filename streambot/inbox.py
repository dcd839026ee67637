"""The bounded priority queue between triage and the host."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
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

    Messages resumed from the store after a restart (or re-queued after an interruption) are
    never refused: the ones that do not fit wait in ``waiting`` (they are safe in the store
    meanwhile) and move in, most important first, as the host takes messages out.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._waiting: deque[tuple[ChatMessage, int]] = deque()

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def would_refuse(self, priority: int) -> bool:
        """Whether ``put`` would refuse a message of ``priority`` right now."""
        return len(self._heap) >= self.maxsize and priority <= max(self._heap).priority

    def put_or_wait(self, message: ChatMessage, priority: int, first: bool = False) -> bool:
        """Queue ``message`` if there is room, else hold it until there is; True if queued.
        Nothing already queued is displaced. ``first``: ahead of its priority's others (a
        question that was interrupted had been waiting longest)."""
        if len(self._heap) < self.maxsize:
            self._push(message, priority, first)
            return True
        if first:
            self._waiting.appendleft((message, priority))
        else:
            self._waiting.append((message, priority))
        return False

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

    def _push(self, message: ChatMessage, priority: int, first: bool = False) -> None:
        seq = next(self._seq)
        heapq.heappush(self._heap, _Entry((-priority, -seq if first else seq), priority, message))
        self._ready.set()

    def peek(self) -> tuple[ChatMessage, int] | None:
        return (self._heap[0].message, self._heap[0].priority) if self._heap else None

    def peek_priority(self) -> int | None:
        return self._heap[0].priority if self._heap else None

    def queued(self) -> list[ChatMessage]:
        return [entry.message for entry in self._heap] + [m for m, _ in self._waiting]

    def get_nowait(self) -> tuple[ChatMessage, int] | None:
        if not self._heap:
            return None
        entry = heapq.heappop(self._heap)
        if self._waiting:  # room again: the next held message moves in
            self._push(*self._waiting.popleft())
        if not self._heap:
            self._ready.clear()
        return entry.message, entry.priority

    def _find(self, message_id: int) -> _Entry | None:
        return next((e for e in self._heap if e.message.id == message_id), None)

    def promote(self, message_id: int, priority: int) -> bool:
        """Move a queued message ahead of everything (the operator answers it first)."""
        entry = self._find(message_id)
        if entry is None:
            return False
        self._heap.remove(entry)
        heapq.heapify(self._heap)
        top = max(priority, self._heap[0].priority if self._heap else priority)
        self._push(entry.message, top, first=True)
        return True

    def remove(self, message_id: int) -> ChatMessage | None:
        """Take a queued message out (the operator drops it); the message, or None."""
        entry = self._find(message_id)
        if entry is not None:
            self._heap.remove(entry)
            heapq.heapify(self._heap)
            if self._waiting:
                self._push(*self._waiting.popleft())
            if not self._heap:
                self._ready.clear()
            return entry.message
        for i, (message, _) in enumerate(self._waiting):
            if message.id == message_id:
                del self._waiting[i]
                return message
        return None

    async def wait(self) -> None:
        """Return once something is queued."""
        await self._ready.wait()
