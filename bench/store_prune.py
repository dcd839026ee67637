"""Store retention: how long pruning a month-old backlog takes, and how long each batch holds
the store's lock (the ingest path waits on that lock, on the event loop).

    python bench/store_prune.py --messages 200000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from streambot.store import Store

DAY = 86400.0


def fill(store: Store, count: int, start: float) -> None:
    """``count`` answered questions, one a second from ``start``: message, decision, turn,
    sentence and timings each, as the host writes them."""
    db = store._db  # one bulk transaction: the bench measures pruning, not filling
    with db:
        db.execute("BEGIN")
        for i in range(count):
            at = start + i
            mid = db.execute(
                "INSERT INTO messages (received_at, source, user, kind, text, text_length,"
                " status) VALUES (?, 'local', ?, 'chat', 'how much is the grinder?', 24,"
                " 'answered')",
                (at, f"user{i}"),
            ).lastrowid
            db.execute(
                "INSERT INTO decisions (message_id, at, decision, reason)"
                " VALUES (?, ?, 'accepted', 'question')",
                (mid, at),
            )
            tid = db.execute(
                "INSERT INTO turns (message_id, kind, lang, started_at, outcome, reply)"
                " VALUES (?, 'answer', 'en', ?, 'played', 'The grinder is $89.99.')",
                (mid, at),
            ).lastrowid
            db.execute(
                "INSERT INTO sentences (turn_id, idx, text, frames, at)"
                " VALUES (?, 0, 'The grinder is $89.99.', 50, ?)",
                (tid, at),
            )
            db.execute("INSERT INTO timings VALUES (?, 120, 180, 260, 300)", (tid,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.db"
        store = Store(path)
        now = time.time()
        fill(store, args.messages, now - 40 * DAY)
        size = path.stat().st_size
        holds: list[float] = []
        batch = store._delete_batch

        def timed_batch(*a: object) -> int:
            started = time.perf_counter()
            try:
                return batch(*a)
            finally:
                holds.append(time.perf_counter() - started)

        store._delete_batch = timed_batch  # type: ignore[method-assign]
        started = time.perf_counter()
        removed = store.prune(now - 30 * DAY)
        took = time.perf_counter() - started
        store.close()
    holds.sort()
    p99 = holds[int(0.99 * (len(holds) - 1))]
    print(f"store: {args.messages} answered questions, {size / 2**20:.1f} MiB")
    print(f"pruned {removed} messages in {took:.1f} s, {len(holds)} transactions")
    print(
        f"lock held per transaction: p50 {statistics.median(holds) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {holds[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
