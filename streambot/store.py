"""SQLite event log (WAL): every message, triage decision, turn, spoken sentence and timing.

A message is written before it is processed, so an accepted message survives a crash or a
restart; ``pending_messages`` gives the unanswered ones back at start-up.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from streambot.events import PENDING, ChatMessage, MessageStatus
from streambot.turn import TurnTimings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    text_length INTEGER NOT NULL,
    priority INTEGER,
    status TEXT NOT NULL DEFAULT 'received',
    reason TEXT
);
CREATE INDEX IF NOT EXISTS messages_status ON messages(status);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    at REAL NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    message_id INTEGER REFERENCES messages(id),
    kind TEXT NOT NULL,
    lang TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    reply TEXT,
    segment TEXT,
    spoken_as TEXT
);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY,
    turn_id INTEGER NOT NULL REFERENCES turns(id),
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    frames INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS timings (
    turn_id INTEGER PRIMARY KEY REFERENCES turns(id),
    queue_wait_ms REAL,
    first_text_ms REAL,
    first_audio_ms REAL,
    first_frame_ms REAL
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_message ON decisions(message_id);
CREATE INDEX IF NOT EXISTS turns_message ON turns(message_id);
CREATE INDEX IF NOT EXISTS sentences_turn ON sentences(turn_id);
"""
_PENDING_SQL = "(" + ", ".join(f"'{status}'" for status in sorted(PENDING)) + ")"
# A turn's outcome -> its message's status (an interrupted turn's message is "interrupted" too).
_STATUS_AFTER = {"played": MessageStatus.ANSWERED, "failed": MessageStatus.FAILED}
# Rows deleted per transaction when pruning: the lock is shared with the ingest path, which
# must never wait long.
PRUNE_BATCH = 500

# Stored text is capped: a 100 KB spam message is kept as evidence, not in full.
MAX_STORED_TEXT = 2000


@dataclass(frozen=True)
class RecentDecision:
    message_id: int
    decision: str
    reason: str
    text: str


@dataclass(frozen=True)
class RecentTurn:
    id: int
    kind: str
    outcome: str
    reply: str | None
    segment: str | None
    question: str | None
    first_frame_ms: float | None


@dataclass(frozen=True)
class PendingMessage:
    message: ChatMessage
    priority: int


def _row_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote (sqlite always sets it after one)."""
    if cur.lastrowid is None:
        raise sqlite3.DatabaseError("an INSERT wrote no row")
    return cur.lastrowid


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()  # re-entered by the writes inside a batch()
        self._batch_depth = 0
        self._closed = False
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_columns("turns", {"segment": "TEXT", "spoken_as": "TEXT"})

    def _add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Columns added since a store file was made: an older file gains them (empty)."""
        have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction, or a part of the batch() already open on this thread."""
        with self._lock:
            if self._batch_depth:
                yield
                return
            self._db.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is one transaction, committed at the end (group commit: a
        burst of chat costs one commit, not one per message). Everything is rolled back if
        the block raises. Holds the store's lock: keep the block short and free of awaits."""
        with self._transaction():  # the writes inside see the depth and join this one
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of ``sql``: for tools and tests that read the record as a whole; the daemon's
        readers use the methods below."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- reading (the panel, the latency report) ------------------------------------------------
    def statuses(self, message_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """message id -> (its status, the reason), for those of ``message_ids`` stored."""
        if not message_ids:
            return {}
        marks = ",".join("?" * len(message_ids))
        rows = self.query(
            f"SELECT id, status, reason FROM messages WHERE id IN ({marks})", tuple(message_ids)
        )
        return {mid: (status, reason) for mid, status, reason in rows}

    def recent_decisions(self, limit: int) -> list[RecentDecision]:
        """The latest ``limit`` decisions, newest first, with the message's text."""
        rows = self.query(
            "SELECT d.message_id, d.decision, d.reason, m.text FROM decisions d"
            " JOIN messages m ON m.id = d.message_id ORDER BY d.id DESC LIMIT ?",
            (limit,),
        )
        return [RecentDecision(*row) for row in rows]

    def recent_turns(self, limit: int) -> list[RecentTurn]:
        """The latest ``limit`` ended turns, newest first, with the question they answered and
        the time to their first frame."""
        rows = self.query(
            "SELECT t.id, t.kind, t.outcome, t.reply, t.segment, m.text, g.first_frame_ms"
            " FROM turns t LEFT JOIN messages m ON m.id = t.message_id"
            " LEFT JOIN timings g ON g.turn_id = t.id WHERE t.outcome IS NOT NULL"
            " ORDER BY t.id DESC LIMIT ?",
            (limit,),
        )
        return [RecentTurn(*row) for row in rows]

    def answer_timings(self, recent: int | None = None) -> list[tuple[float | None, ...]]:
        """(queue wait, first text, first audio, first frame) ms of each answer, oldest first
        (``recent``: of the latest that many only, read from the end of the table)."""
        sql = (
            "SELECT t.queue_wait_ms, t.first_text_ms, t.first_audio_ms, t.first_frame_ms"
            " FROM timings t JOIN turns u ON u.id = t.turn_id WHERE u.kind = 'answer'"
        )
        if recent is None:
            return self.query(sql)
        return self.query(sql + " ORDER BY t.turn_id DESC LIMIT ?", (recent,))[::-1]

    def log_message(self, msg: ChatMessage) -> int:
        text = msg.text[:MAX_STORED_TEXT]
        cur = self._exec(
            "INSERT INTO messages (received_at, source, user, kind, text, text_length)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (msg.received_at, msg.source, msg.user[:200], msg.kind, text, len(msg.text)),
        )
        msg.id = _row_id(cur)
        return msg.id

    def log_received(
        self,
        msg: ChatMessage,
        status: MessageStatus,
        reason: str,
        priority: int | None,
        final_status: MessageStatus | None = None,
        then: tuple[MessageStatus, str] | None = None,
    ) -> int:
        """A received message and its triage decision in one transaction (one commit per
        message on the ingest path); sets ``msg.id``. ``final_status`` overrides the
        message's status (a gift held for a batched thanks is "batched"); ``then`` is a
        second decision (status, reason) that follows at once (dropped: the queue is full)."""
        text = msg.text[:MAX_STORED_TEXT]
        if then is not None:
            final_status, reason_shown = then
        else:
            reason_shown = reason
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO messages (received_at, source, user, kind, text, text_length,"
                " priority, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    msg.received_at,
                    msg.source,
                    msg.user[:200],
                    msg.kind,
                    text,
                    len(msg.text),
                    priority,
                    final_status or status,
                    reason_shown,
                ),
            )
            msg.id = _row_id(cur)
            now = time.time()
            rows = [(msg.id, now, status, reason)]
            if then is not None:
                rows.append((msg.id, now, *then))
            self._db.executemany(
                "INSERT INTO decisions (message_id, at, decision, reason) VALUES (?, ?, ?, ?)",
                rows,
            )
        return msg.id

    def log_decision(
        self, message_id: int, status: MessageStatus, reason: str, priority: int | None
    ) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO decisions (message_id, at, decision, reason) VALUES (?, ?, ?, ?)",
                (message_id, time.time(), status, reason),
            )
            self._db.execute(
                "UPDATE messages SET status = ?, reason = ?, priority = COALESCE(?, priority)"
                " WHERE id = ?",
                (status, reason, priority, message_id),
            )

    def set_status(self, message_id: int, status: MessageStatus) -> None:
        self._exec("UPDATE messages SET status = ? WHERE id = ?", (status, message_id))

    def start_turn(self, message_id: int | None, kind: str, lang: str) -> int:
        cur = self._exec(
            "INSERT INTO turns (message_id, kind, lang, started_at) VALUES (?, ?, ?, ?)",
            (message_id, kind, lang, time.time()),
        )
        if message_id is not None:
            self.set_status(message_id, MessageStatus.ANSWERING)
        return _row_id(cur)

    def set_reply(self, turn_id: int, reply: str) -> None:
        self._exec("UPDATE turns SET reply = ? WHERE id = ?", (reply, turn_id))

    def log_action(self, who: str, action: str, detail: str, result: str) -> None:
        """An operator's action from the panel: who, what, and what came of it."""
        self._exec(
            "INSERT INTO actions (at, who, action, detail, result) VALUES (?, ?, ?, ?, ?)",
            (time.time(), who, action, detail, result),
        )

    def set_script(self, turn_id: int, segment: str, spoken_as: str) -> None:
        """The sales-script segment a turn said, and whether as authored or reworded."""
        self._exec(
            "UPDATE turns SET segment = ?, spoken_as = ? WHERE id = ?",
            (segment, spoken_as, turn_id),
        )

    def log_sentence(self, turn_id: int, index: int, text: str, frames: int) -> None:
        self._exec(
            "INSERT INTO sentences (turn_id, idx, text, frames, at) VALUES (?, ?, ?, ?, ?)",
            (turn_id, index, text, frames, time.time()),
        )

    def end_turn(self, turn_id: int, message_id: int | None, outcome: str) -> None:
        """Close a turn. A message counts as answered only when its reply was fully played."""
        self._exec(
            "UPDATE turns SET ended_at = ?, outcome = ? WHERE id = ?",
            (time.time(), outcome, turn_id),
        )
        if message_id is not None:
            self.set_status(message_id, _STATUS_AFTER.get(outcome) or MessageStatus(outcome))

    def log_timings(self, turn_id: int, timings: TurnTimings) -> None:
        def ms(instant: float | None) -> float | None:
            return timings.since_arrival_ms(instant)

        self._exec(
            "INSERT OR REPLACE INTO timings VALUES (?, ?, ?, ?, ?)",
            (
                turn_id,
                ms(timings.dequeued),
                ms(timings.first_text),
                ms(timings.first_audio),
                ms(timings.first_frame),
            ),
        )

    def pending_messages(self, min_priority: int) -> list[PendingMessage]:
        """Accepted messages never fully answered, most important first; the rest expire."""
        rows = self.query(
            "SELECT id, received_at, source, user, kind, text, priority FROM messages"
            f" WHERE status IN {_PENDING_SQL}"
            " ORDER BY priority DESC, id"
        )
        pending = []
        for mid, received_at, source, user, kind, text, priority in rows:
            if (priority or 0) >= min_priority:
                msg = ChatMessage(source, user, text, kind, received_at=received_at, id=mid)
                pending.append(PendingMessage(msg, priority))
            else:
                self.log_decision(
                    mid, MessageStatus.EXPIRED, "restart: low-priority chat not resumed", None
                )
        return pending

    def prune(self, before: float, batch: int = PRUNE_BATCH) -> int:
        """Delete the record of everything older than ``before`` (wall-clock seconds): turns
        with their sentences and timings, then messages with their decisions. Messages still
        waiting for an answer are kept. Runs in small transactions so the ingest path is
        never held up; SQLite reuses the freed pages, so the file stops growing. Returns the
        number of messages deleted."""
        while self._delete_batch(
            f"SELECT t.id FROM turns t LEFT JOIN messages m ON m.id = t.message_id"
            f" WHERE t.started_at < ? AND (m.id IS NULL OR m.status NOT IN {_PENDING_SQL})"
            " ORDER BY t.id LIMIT ?",
            (before, batch),
            ("sentences", "turn_id"),
            ("timings", "turn_id"),
            ("turns", "id"),
        ):
            pass
        deleted = 0
        while count := self._delete_batch(
            f"SELECT id FROM messages WHERE received_at < ? AND status NOT IN {_PENDING_SQL}"
            " AND NOT EXISTS (SELECT 1 FROM turns WHERE turns.message_id = messages.id)"
            " ORDER BY id LIMIT ?",
            (before, batch),
            ("decisions", "message_id"),
            ("messages", "id"),
        ):
            deleted += count
        return deleted

    def _delete_batch(self, select: str, args: tuple, *targets: tuple[str, str]) -> int:
        """One transaction: pick ids with ``select``, delete them from each (table, column)."""
        with self._lock:
            if self._closed:  # shutting down: a prune in a worker thread just stops
                return 0
            with self._db:
                self._db.execute("BEGIN")
                ids = [row[0] for row in self._db.execute(select, args)]
                if ids:
                    marks = ", ".join("?" * len(ids))
                    for table, column in targets:
                        self._db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
        return len(ids)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
