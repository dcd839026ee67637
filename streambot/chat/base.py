"""The ChatSource role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from streambot.events import ChatMessage


class ChatSource(Protocol):
    name: str

    def messages(self) -> AsyncIterator[ChatMessage]:
        """Yield messages as they arrive; reconnect by itself when the source drops."""
        ...
