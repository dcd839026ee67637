"""The ChatSource role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from streambot.events import ChatMessage


class ChatSource(Protocol):
    name: str

    def messages(self) -> AsyncIterator[ChatMessage]:
        """Yield messages as they arrive; reconnect by itself when the source drops."""
        ...


# What some sources can do besides, declared here and checked with isinstance.
@runtime_checkable
class BufferedSource(ChatSource, Protocol):
    def waiting(self) -> int:
        """Messages received and not yet taken (the pump stores a burst of them at once)."""
        ...


@runtime_checkable
class SessionSource(ChatSource, Protocol):
    """A platform client with a session of its own, which it reopens by itself."""

    connected: asyncio.Event  # set while the session is open


@runtime_checkable
class RepliesInChat(ChatSource, Protocol):
    """A source that can post into its chat (where its config allows it)."""

    reply_in_chat: bool

    async def send(self, text: str, reply_to: str | None = None) -> bool: ...
