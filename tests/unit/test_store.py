"""The event log's retention: old records go, anything still owed an answer stays."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from streambot.app import App
from streambot.events import ChatMessage
from streambot.store import Store
from streambot.turn import TurnTimings

DAY = 86400.0


def add_answered(store: Store, user: str, at: float) -> tuple[int, int]:
    """A message received at ``at``, accepted, answered with one sentence: (message, turn)."""
    msg = ChatMessage("local", user, f"question from {user}", received_at=at)
    mid = store.log_message(msg)
    store.log_decision(mid, "accepted", "question", 50)
    turn = store.start_turn(mid, "answer", "en")
    store.log_sentence(turn, 0, "An answer.", 25)
    store.log_timings(turn, TurnTimings())
    store.end_turn(turn, mid, "played")
    store._exec("UPDATE turns SET started_at = ? WHERE id = ?", (at, turn))
    return mid, turn


def users(path) -> list[str]:
    db = sqlite3.connect(path)
    names = [name for (name,) in db.execute("SELECT user FROM messages ORDER BY id")]
    db.close()
    return names


def counts(path) -> dict[str, int]:
    db = sqlite3.connect(path)
    tables = ("messages", "decisions", "turns", "sentences", "timings")
    out = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    db.close()
    return out


def test_prune_removes_old_records_and_keeps_what_is_still_owed(tmp_path):
    path = tmp_path / "log.db"
    store = Store(path)
    now = time.time()
    for i in range(1203):  # more than two batches
        add_answered(store, f"old{i}", now - 40 * DAY)
    recent_mid, recent_turn = add_answered(store, "recent", now - DAY)
    # Old but never answered (the stream stopped first): it will be answered after a restart.
    waiting = store.log_message(ChatMessage("local", "patient", "still there?", received_at=0.0))
    store.log_decision(waiting, "accepted", "question", 50)
    rejected = store.log_message(
        ChatMessage("local", "spam", "buy now", received_at=now - 40 * DAY)
    )
    store.log_decision(rejected, "rejected", "link", None)
    pitch = store.start_turn(None, "pitch", "en")  # an idle pitch: no message
    store._exec("UPDATE turns SET started_at = ? WHERE id = ?", (now - 40 * DAY, pitch))

    removed = store.prune(now - 30 * DAY)

    assert removed == 1203 + 1  # the old answered questions and the old spam
    assert counts(path) == {"messages": 2, "decisions": 2, "turns": 1, "sentences": 1, "timings": 1}
    (pending,) = store.pending_messages(min_priority=0)
    assert pending.message.id == waiting and pending.message.text == "still there?"
    rows = store.query("SELECT t.id, m.id FROM turns t JOIN messages m ON m.id = t.message_id")
    assert rows == [(recent_turn, recent_mid)]
    assert store.prune(now - 30 * DAY) == 0  # nothing left to do
    store.close()


def test_prune_stops_quietly_once_the_store_is_closed(tmp_path):
    store = Store(tmp_path / "log.db")
    add_answered(store, "ann", 0.0)
    store.close()
    assert store.prune(time.time()) == 0
    store.close()  # closing twice is harmless


def test_the_app_prunes_the_log_it_starts_with(fast_config, tmp_path):
    fast_config.store.keep_days = 7
    store = Store(fast_config.store.path)
    now = time.time()
    add_answered(store, "last-month", now - 30 * DAY)
    add_answered(store, "yesterday", now - DAY)
    store.close()

    async def scenario() -> list[str]:
        app = App(fast_config)
        run = asyncio.create_task(app.run())  # live until stopped; pruning runs beside it
        for _ in range(1000):
            if (seen := users(fast_config.store.path)) == ["yesterday"]:
                break
            await asyncio.sleep(0.01)
        app.request_stop()
        await run
        return seen

    assert asyncio.run(scenario()) == ["yesterday"]


def test_keep_days_zero_keeps_everything(fast_config):
    fast_config.store.keep_days = 0
    store = Store(fast_config.store.path)
    add_answered(store, "ancient", 1.0)
    store.close()

    asyncio.run(App(fast_config).run(60.0))

    assert users(fast_config.store.path) == ["ancient"]


def test_a_batch_is_one_transaction_and_rolls_back_whole(tmp_path):
    path = tmp_path / "s.db"
    store = Store(path)
    with store.batch():
        for i in range(3):
            store.log_received(ChatMessage("t", f"u{i}", "hi"), "accepted", "greeting", 10)
        # nothing is visible to another connection before the commit
        assert sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM messages").fetchone() == (3,)
    try:
        with store.batch():
            store.log_received(ChatMessage("t", "x", "hi"), "accepted", "greeting", 10)
            raise RuntimeError("disk full")
    except RuntimeError:
        pass
    assert store.query("SELECT count(*) FROM messages") == [(3,)]
    assert store.query("SELECT count(*) FROM decisions") == [(3,)]
    store.close()


def test_the_readers_the_panel_and_the_report_use(tmp_path):
    """The queue's statuses, the recent decisions and turns, the answers' timings: read through
    the store's methods (the panel holds no SQL)."""
    store = Store(tmp_path / "log.db")
    asked = store.log_message(ChatMessage("local", "ann", "how much is the bottle?"))
    store.log_decision(asked, "accepted", "question", 50)
    spam = store.log_message(ChatMessage("local", "bob", "buy followers"))
    store.log_decision(spam, "rejected", "banned word", None)
    turn = store.start_turn(asked, "answer", "en")
    store.set_reply(turn, "The bottle is $24.50.")
    timings = TurnTimings(arrived=10.0, dequeued=10.1, first_text=10.4)
    timings.first_audio, timings.first_frame = 10.6, 11.0
    store.log_timings(turn, timings)
    store.end_turn(turn, asked, "played")

    assert store.statuses([asked, spam, 999]) == {
        asked: ("answered", "question"),
        spam: ("rejected", "banned word"),
    }
    assert store.statuses([]) == {}
    newest, older = store.recent_decisions(2)
    assert (newest.message_id, newest.decision, newest.text) == (spam, "rejected", "buy followers")
    assert (older.message_id, older.decision) == (asked, "accepted")
    (played,) = store.recent_turns(5)
    assert (played.id, played.kind, played.outcome) == (turn, "answer", "played")
    assert played.question == "how much is the bottle?" and played.reply.endswith("$24.50.")
    assert played.first_frame_ms == pytest.approx(1000.0)
    (row,) = store.answer_timings()
    assert row == pytest.approx((100.0, 400.0, 600.0, 1000.0))
    assert store.answer_timings(recent=1) == [row]


def test_the_record_reads_a_run_back_as_typed_rows(tmp_path):
    from streambot.record import Record

    store = Store(tmp_path / "events.db")
    mid, turn = add_answered(store, "ann", time.time())
    store.log_action("operator", "skip", "{}", "turn 1 skipped")
    store.close()
    with Record.open(tmp_path / "events.db") as record:
        [message] = record.messages()
        assert (message.id, message.user, message.status) == (mid, "ann", "answered")
        assert record.message(mid) == message and record.by_user("bob") == []
        [answered] = record.turns()
        assert (answered.id, answered.user, answered.kind, answered.outcome) == (
            turn,
            "ann",
            "answer",
            "played",
        )
        [sentence] = record.sentences()
        assert (sentence.turn_id, sentence.index, sentence.text) == (turn, 0, "An answer.")
        assert [d.reason for d in record.decisions(mid)] == ["question"]
        assert [(a.who, a.action, a.result) for a in record.actions()] == [
            ("operator", "skip", "turn 1 skipped")
        ]
