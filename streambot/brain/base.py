"""The Brain role: turn in, text deltas out."""

from __future__ import annotations

import inspect
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


def continues_replies(brain: object) -> bool:
    """Whether ``brain.reply`` takes ``prefill`` (the words said first: answer first hands
    them to a brain that can continue after them; ``LLMBrain``, ``OpenAIChatBrain``)."""
    try:
        return "prefill" in inspect.signature(brain.reply).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):  # not introspectable: a plain brain
        return False
