"""The event log read back whole, as typed rows, oldest first: what tools and tests read of a
run (every message with its status and reason, every turn with what it said, each spoken
sentence, each decision and operator action), so none of them depends on the store's SQL. The
daemon's own readers (the panel's, the latency report's) are the store's methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streambot.store import Store


@dataclass(frozen=True)
class StoredMessage:
    id: int
    source: str
    user: str
    kind: str
    text: str  # as stored: at most the store's cap
    text_length: int  # the length received
    priority: int | None
    status: str
    reason: str | None


@dataclass(frozen=True)
class StoredTurn:
    id: int
    message_id: int | None
    user: str | None  # who asked, for an answer
    kind: str
    outcome: str | None
    reply: str | None
    segment: str | None  # a script turn's segment
    spoken_as: str | None  # authored, reworded or written


@dataclass(frozen=True)
class StoredSentence:
    turn_id: int
    index: int
    text: str
    frames: int


@dataclass(frozen=True)
class StoredDecision:
    message_id: int
    decision: str
    reason: str


@dataclass(frozen=True)
class StoredAction:
    who: str
    action: str
    detail: str
    result: str


class Record:
    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def open(cls, path: str | Path) -> Record:
        """The record a run left in ``path`` (its ``[store] path``)."""
        return cls(Store(path))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Record:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def messages(self) -> list[StoredMessage]:
        rows = self.store.query(
            "SELECT id, source, user, kind, text, text_length, priority, status, reason"
            " FROM messages ORDER BY id"
        )
        return [StoredMessage(*row) for row in rows]

    def message(self, message_id: int) -> StoredMessage:
        return next(m for m in self.messages() if m.id == message_id)

    def by_user(self, user: str) -> list[StoredMessage]:
        return [m for m in self.messages() if m.user == user]

    def turns(self) -> list[StoredTurn]:
        rows = self.store.query(
            "SELECT t.id, t.message_id, m.user, t.kind, t.outcome, t.reply, t.segment,"
            " t.spoken_as FROM turns t LEFT JOIN messages m ON m.id = t.message_id"
            " ORDER BY t.id"
        )
        return [StoredTurn(*row) for row in rows]

    def sentences(self) -> list[StoredSentence]:
        rows = self.store.query("SELECT turn_id, idx, text, frames FROM sentences ORDER BY id")
        return [StoredSentence(*row) for row in rows]

    def decisions(self, message_id: int | None = None) -> list[StoredDecision]:
        rows = self.store.query("SELECT message_id, decision, reason FROM decisions ORDER BY id")
        decided = [StoredDecision(*row) for row in rows]
        return [d for d in decided if message_id is None or d.message_id == message_id]

    def actions(self) -> list[StoredAction]:
        rows = self.store.query("SELECT who, action, detail, result FROM actions ORDER BY id")
        return [StoredAction(*row) for row in rows]
