"""Host behaviour on the virtual clock: interruption, operator commands, idle pitch, drops."""

import asyncio
import json

from streambot.app import App
from streambot.events import ChatMessage, Priority
from streambot.record import Record


def replay(tmp_path, rows):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return str(path)


def turns(db_path):
    """(kind, who asked, outcome, reply) of each turn, in order."""
    with Record.open(db_path) as record:
        return [(t.kind, t.user, t.outcome, t.reply) for t in record.turns()]


def message_of(db_path, user):
    """(status, reason) of ``user``'s message."""
    with Record.open(db_path) as record:
        [message] = record.by_user(user)
        return message.status, message.reason


def test_super_chat_interrupts_the_current_answer_and_is_answered_next(fast_config, tmp_path):
    fast_config.chat.local.replay = replay(
        tmp_path,
        [
            {"at": 0.1, "user": "ann", "text": "What's special about the grinder?"},
            {"at": 0.3, "user": "bob", "text": "is the lamp in stock?"},
            {"at": 1.0, "user": "rich", "text": "how much are the earbuds?", "kind": "superchat"},
        ],
    )
    app = App(fast_config)
    asyncio.run(app.run(15))
    got = turns(fast_config.store.path)
    assert [(user, outcome) for _, user, outcome, _ in got] == [
        ("ann", "interrupted"),
        ("rich", "played"),
        ("ann", "played"),  # answered again, before bob who asked after her
        ("bob", "played"),
    ]
    assert "$129" in got[1][3]


def test_operator_skip_stops_the_turn_and_say_speaks_verbatim(fast_config, tmp_path):
    fast_config.chat.local.replay = replay(
        tmp_path,
        [
            {"at": 0.1, "user": "ann", "text": "What's special about the thermo bottle?"},
            {"at": 0.8, "user": "op", "text": "!skip", "kind": "command"},
            {
                "at": 1.0,
                "user": "op",
                "text": "!say Flash sale in five minutes!",
                "kind": "command",
            },
        ],
    )
    asyncio.run(App(fast_config).run(8))
    got = turns(fast_config.store.path)
    assert got[0][1:3] == ("ann", "interrupted")
    assert got[1][0] == "say" and got[1][3] == "Flash sale in five minutes!"


def test_idle_host_pitches_catalog_products_in_turn(fast_config):
    fast_config.triage.idle_pitch_after_s = 2.0
    app = App(fast_config)
    asyncio.run(app.run(30))
    pitches = [t for t in turns(fast_config.store.path) if t[0] == "pitch"]
    assert len(pitches) >= 2
    catalog = app.catalog_brain.answerer.catalog
    schedule = app.catalog_brain.pitch_topics()
    assert schedule == ["aerobrew", "aerobrew", "thermo", "sonicbuds"]  # weighted, no sold-out
    for pitch, product_id in zip(pitches, schedule, strict=False):
        assert catalog.by_id(product_id).name in pitch[3]
    assert all(t[2] == "played" for t in pitches[:-1])


def test_full_queue_drops_the_least_important_with_a_stored_reason(fast_config):
    fast_config.ingest.queue_size = 2
    app = App(fast_config)
    for user in ("a", "b", "c"):
        app.ingest.accept(ChatMessage("test", user, f"how much is the lamp, {user}?"))
    app.ingest.accept(ChatMessage("test", "vip", "lamp price?", kind="superchat"))
    rows = {m.user: m.status for m in Record(app.store).messages()}
    assert rows == {"a": "accepted", "b": "dropped", "c": "dropped", "vip": "accepted"}
    assert message_of(fast_config.store.path, "c")[1].startswith("queue full")
    assert app.inbox.peek_priority() == Priority.PAID
    assert app.metrics.decisions.labels("dropped", "queue full")._value.get() == 2


def test_a_model_error_in_one_turn_is_logged_and_the_stream_goes_on(fast_config, tmp_path):
    fast_config.chat.local.replay = replay(
        tmp_path,
        [
            {"at": 0.1, "user": "ann", "text": "how much is the grinder?"},
            {"at": 0.2, "user": "bob", "text": "how much is the lamp?"},
        ],
    )
    app = App(fast_config)
    real_reply = app.brain.reply

    async def flaky_reply(turn):
        if turn.message.user == "ann":
            yield "The grinder is "
            raise RuntimeError("model exploded")
        async for delta in real_reply(turn):
            yield delta

    app.brain.reply = flaky_reply
    report = asyncio.run(app.run(8))
    got = turns(fast_config.store.path)
    assert [(user, outcome) for _, user, outcome, _ in got] == [
        ("ann", "failed"),
        ("bob", "played"),
    ]
    assert report.frames == 8 * 25 and report.late_frames == 0


def test_answers_are_posted_back_into_the_chat_they_came_from(fast_config):
    class ChatWithReplies:
        name = "twitch"
        reply_in_chat = True

        def __init__(self) -> None:
            self.sent: list[tuple[str, str | None]] = []

        async def messages(self):
            msg = ChatMessage("twitch", "ann", "how much is the lamp?")
            msg.meta["message_id"] = "m-1"
            yield msg

        async def send(self, text, reply_to=None):
            self.sent.append((text, reply_to))
            return True

    chat = ChatWithReplies()
    asyncio.run(App(fast_config, extra_sources=[chat]).run(6))
    assert chat.sent == [("The LumaDesk Lamp is $59.", "m-1")]


def test_more_resumed_questions_than_the_queue_holds_are_all_answered(fast_config):
    from streambot.store import Store

    fast_config.ingest.queue_size = 4
    store = Store(fast_config.store.path)
    products = ["lamp", "grinder", "earbuds", "thermo bottle", "lamp", "grinder"]
    for i, product in enumerate(products):  # six questions a crash left unanswered
        msg = ChatMessage("http", f"viewer{i}", f"how much is the {product}?")
        store.log_message(msg)
        store.log_decision(msg.id, "accepted", "question", Priority.QUESTION)
    store.close()
    app = App(fast_config)
    asyncio.run(app.run(60))
    with Record.open(fast_config.store.path) as record:
        statuses = {m.user: m.status for m in record.messages()}
        dropped = [d for d in record.decisions() if d.decision == "dropped"]
    assert statuses == {f"viewer{i}": "answered" for i in range(6)}
    assert dropped == []


def test_an_interrupted_question_left_by_an_older_version_is_answered_after_a_restart(
    fast_config,
):
    from streambot.store import Store

    store = Store(fast_config.store.path)
    msg = ChatMessage("http", "ann", "how much is the lamp?")
    store.log_message(msg)
    store.log_decision(msg.id, "accepted", "question", Priority.QUESTION)
    store.set_status(msg.id, "interrupted")
    store.close()
    asyncio.run(App(fast_config).run(10))
    assert turns(fast_config.store.path)[0][1:3] == ("ann", "played")


def test_a_question_the_operator_skips_is_not_answered_again(fast_config, tmp_path):
    fast_config.chat.local.replay = replay(
        tmp_path,
        [
            {"at": 0.1, "user": "ann", "text": "What's special about the thermo bottle?"},
            {"at": 0.8, "user": "op", "text": "!skip", "kind": "command"},
        ],
    )
    asyncio.run(App(fast_config).run(10))
    got = turns(fast_config.store.path)
    assert [(user, outcome) for _, user, outcome, _ in got if user == "ann"] == [
        ("ann", "interrupted")
    ]
    assert message_of(fast_config.store.path, "ann") == (
        "skipped",
        "skipped by the operator (!skip)",
    )


def test_a_question_interrupted_again_and_again_is_given_up_with_a_reason(fast_config, tmp_path):
    rows = [{"at": 0.1, "user": "ann", "text": "What's special about the thermo bottle?"}]
    rows += [
        {
            "at": 0.6 + 3.0 * i,
            "user": f"rich{i}",
            "text": "how much is the lamp?",
            "kind": "superchat",
        }
        for i in range(3)
    ]
    fast_config.chat.local.replay = replay(tmp_path, rows)
    fast_config.ingest.interrupt_priority = 20  # questions interrupt questions: ann is cut off
    asyncio.run(App(fast_config).run(30))
    assert message_of(fast_config.store.path, "ann") == (
        "unanswered",
        "interrupted 3 times; not tried again",
    )
    ann = [outcome for _, user, outcome, _ in turns(fast_config.store.path) if user == "ann"]
    assert ann == ["interrupted"] * 3
