"""The seam between the daemon and the operator's panel: what the panel may do to the running
show (`ShowControls`, its eight operations and the live state it reads) and what the daemon
needs of a panel (`OperatorPanel`). The panel never sees the `App` or the store's SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from streambot.catalog import LiveCatalog
from streambot.config import PanelConfig
from streambot.events import ChatMessage, Decision, MessageStatus, Priority
from streambot.host import Host
from streambot.ingest import Ingest
from streambot.script.runner import ScriptRunner
from streambot.store import Store
from streambot.turn import Turn


class ShowControls(Protocol):
    """The show as an operator's page sees it: the live state, and the operations a person
    may perform (skip, say and pitch through ingest, autopilot, take over, answer first,
    drop, price and stock through ``catalog``). ``store`` is read through its read methods
    and records the operator's actions."""

    store: Store
    catalog: LiveCatalog
    fps: int  # the stream's frame rate (the preview's is a share of it)
    font: str  # the overlay's font setting: the CJK font the page is served

    def health(self) -> dict[str, Any]: ...
    def current_turn(self) -> Turn | None: ...
    def taken_over(self) -> bool: ...
    def script(self) -> ScriptRunner | None: ...
    def queued(self) -> list[ChatMessage]: ...

    def skip(self) -> Turn | None:
        """Cut the current turn off; the turn, or None when nothing is being said."""
        ...

    def command(self, msg: ChatMessage) -> Decision:
        """An operator command (``!say``, ``!pitch``) through ingest: stored, triaged."""
        ...

    def set_autopilot(self, on: bool) -> str | None:
        """Resume or pause the sales script; a problem to say, else None."""
        ...

    def take_over(self, on: bool) -> None:
        """A person speaks (on) or hands back to the host (off)."""
        ...

    def answer_first(self, message_id: int) -> bool:
        """Move a queued message to the front; False when it is not queued."""
        ...

    def drop(self, message_id: int, reason: str) -> bool:
        """Take a message out of the queue, stored with ``reason``; False when not queued."""
        ...


class NotRunning(Exception):
    """The host has not started yet: what it does cannot be changed now."""


class LiveShow:
    """`ShowControls` over the daemon's parts; ``host`` gives the host once it runs."""

    def __init__(
        self,
        host: Callable[[], Host | None],
        script: ScriptRunner,
        ingest: Ingest,
        catalog: LiveCatalog,
        health: Callable[[], dict[str, Any]],
        *,
        fps: int,
        font: str,
    ) -> None:
        self._host, self._script = host, script
        self.ingest, self.store, self.catalog = ingest, ingest.store, catalog
        self.health, self.fps, self.font = health, fps, font

    def _running(self) -> Host:
        host = self._host()
        if host is None:
            raise NotRunning("the host is not running yet")
        return host

    def current_turn(self) -> Turn | None:
        host = self._host()
        return host.current if host is not None else None

    def taken_over(self) -> bool:
        host = self._host()
        return host is not None and host.taken_over

    def script(self) -> ScriptRunner | None:
        return self._script

    def queued(self) -> list[ChatMessage]:
        return self.ingest.inbox.queued()

    def skip(self) -> Turn | None:
        turn = self._running().current
        if turn is not None:
            turn.interrupt()
        return turn

    def command(self, msg: ChatMessage) -> Decision:
        return self.ingest.accept(msg)

    def set_autopilot(self, on: bool) -> str | None:
        return self._script.command("resume" if on else "pause")

    def take_over(self, on: bool) -> None:
        host = self._running()
        host.take_over() if on else host.hand_back()

    def answer_first(self, message_id: int) -> bool:
        return self.ingest.inbox.promote(message_id, Priority.OPERATOR - 1)

    def drop(self, message_id: int, reason: str) -> bool:
        if self.ingest.inbox.remove(message_id) is None:
            return False
        self.store.log_decision(message_id, MessageStatus.DROPPED, reason, None)
        return True


class FrameOffer(Protocol):
    def offer(self, index: int, frame: np.ndarray) -> None: ...


class OperatorPanel(Protocol):
    """What the daemon needs of the operator's web page (``panel/server.Panel``)."""

    @property
    def preview(self) -> FrameOffer: ...  # read-only: the daemon offers frames, never swaps it

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


PanelFactory = Callable[[ShowControls, PanelConfig], OperatorPanel]
