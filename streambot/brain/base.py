"""The Brain role: turn in, text deltas out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from streambot.turn import Turn


class Brain(Protocol):
    def reply(self, turn: Turn) -> AsyncIterator[str]:
        """Yield the reply to ``turn`` as text deltas, the way an LLM streams tokens."""
        ...

    def pitch_topics(self) -> list[str]:
        """Ids of the products the idle pitch rotates through."""
        ...
