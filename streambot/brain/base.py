"""The Brain role: turn in, text deltas out."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable

from streambot.turn import Turn


class Brain(Protocol):
    def reply(self, turn: Turn) -> AsyncGenerator[str, None]:
        """Yield the reply to ``turn`` as text deltas, the way an LLM streams tokens."""
        ...

    def pitch_topics(self) -> list[str]:
        """Ids of the products the idle pitch rotates through."""
        ...


@runtime_checkable
class AnswersFirst(Brain, Protocol):
    """A brain that knows the facts (the catalog brain): it can give a question's exact
    answer to say first, and follow the questions another brain answered."""

    def first_answer(self, turn: Turn) -> str | None:
        """The exact answer to say at once, or None when ``turn`` asks for none."""
        ...

    def follow(self, turn: Turn) -> None:
        """``turn`` was answered by another brain: remember what it was about."""
        ...


def continues_replies(brain: object) -> bool:
    """Whether ``brain.reply`` takes ``prefill`` (the words said first: answer first hands
    them to a brain that can continue after them; ``LLMBrain``, ``OpenAIChatBrain``)."""
    try:
        return "prefill" in inspect.signature(brain.reply).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):  # not introspectable: a plain brain
        return False
