"""The sales script on the virtual clock: segment order and triggers, pausing for questions
and resuming, operator commands, guarded rewording, and the audit trail in the store."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources

import pytest

from streambot.app import App
from streambot.brain.guard import ReplyGuard
from streambot.brain.guarded import GuardedBrain
from streambot.catalog import Catalog
from streambot.config import ConfigError
from streambot.panel.state import panel_state
from streambot.record import Record
from streambot.script.model import Segment, UnfilledField
from streambot.turn import Turn, TurnKind, TurnObserver

SCRIPT = """
[[segment]]
id = "hello"
kind = "warm-up"
text = "Welcome to the stream, grab a seat!"
trigger = "quiet"
quiet_s = 1

[[segment]]
id = "bottle"
kind = "price"
product = "thermo"
text = "The {name} is {price} today, and {stock} are left."
text_zh = "{name}今天只要{price}，还剩{stock}个。"
trigger = "time"
after_s = 1

[[segment]]
id = "deal"
kind = "countdown"
product = "thermo"
text = "Five minutes left on this deal!"
duration_s = 300
trigger = "time"
after_s = 0.5

[[segment]]
id = "ask"
kind = "qa"
text = "Ask me anything about the bottle."
quiet_s = 1
duration_s = 4
"""


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def chat(tmp_path, rows) -> str:
    return write(tmp_path, "chat.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")


def spoken(db_path) -> list[tuple]:
    """(kind, segment, spoken_as, outcome, reply) of every turn, in order."""
    with Record.open(db_path) as record:
        return [(t.kind, t.segment, t.spoken_as, t.outcome, t.reply) for t in record.turns()]


def script_app(fast_config, tmp_path, rows=(), script: str = SCRIPT) -> App:
    fast_config.script.path = write(tmp_path, "script.toml", script)
    fast_config.chat.local.replay = chat(tmp_path, list(rows))
    return App(fast_config)


def test_segments_run_in_order_with_the_catalogs_figures_and_loop(fast_config, tmp_path):
    app = script_app(fast_config, tmp_path)
    asyncio.run(app.run(40))
    turns = spoken(fast_config.store.path)
    segments = [t[1] for t in turns]
    assert segments[:4] == ["hello", "bottle", "deal", "ask"]
    assert segments[4:8] == ["hello", "bottle", "deal", "ask"]  # looped
    bottle = app.catalog.current.by_id("thermo")
    said = turns[1][4]
    assert f"${bottle.price:.2f}" in said and f"{bottle.stock} are left" in said
    assert bottle.name in said
    assert all(t[0] == "script" and t[2] == "authored" for t in turns)  # the catalog brain
    assert all(t[3] == "played" for t in turns[:-1])


def test_a_question_pauses_the_script_and_an_interrupted_line_is_said_again(fast_config, tmp_path):
    rows = [
        {"at": 2.6, "user": "rich", "text": "how much are the earbuds?", "kind": "superchat"},
        {"at": 2.7, "user": "ann", "text": "is the lamp in stock?"},
    ]
    app = script_app(fast_config, tmp_path, rows)
    asyncio.run(app.run(25))
    turns = spoken(fast_config.store.path)
    order = [(t[0], t[1], t[3]) for t in turns]
    cut = next(i for i, t in enumerate(order) if t[2] == "interrupted")
    assert order[cut][0] == "script"
    assert order[cut + 1][0] == "answer" and order[cut + 2][0] == "answer"  # questions first
    assert order[cut + 3][:2] == order[cut][:2]  # then the same segment again
    assert order[cut + 3][2] == "played"


class StartTimes(TurnObserver):
    """When (stream time) each turn started, with its segment."""

    def __init__(self, clock) -> None:
        self.clock, self.starts = clock, []

    def turn_started(self, turn: Turn) -> None:
        segment = turn.script.segment.id if turn.script is not None else None
        self.starts.append((self.clock.now(), segment))


def test_operator_commands_pause_resume_skip_and_jump(fast_config, tmp_path):
    rows = [
        {"at": 0.2, "user": "op", "text": "!script goto deal", "kind": "command"},
        {"at": 6.0, "user": "op", "text": "!script pause", "kind": "command"},
        {"at": 20.0, "user": "op", "text": "!script resume", "kind": "command"},
        {"at": 20.1, "user": "op", "text": "!script next", "kind": "command"},
        {"at": 20.2, "user": "op", "text": "!script goto nowhere", "kind": "command"},
    ]
    app = script_app(fast_config, tmp_path, rows)
    times = StartTimes(app.clock)
    app.turn_observers.append(times)
    asyncio.run(app.run(30))
    segments = [segment for _, segment in times.starts]
    assert segments[0] == "deal"  # jumped straight to it
    assert not [t for t, _ in times.starts if 6.5 < t < 20.0]  # paused: nothing started
    after = [segment for t, segment in times.starts if t >= 20.0]
    assert after and after[0] != segments[len(segments) - len(after) - 1]  # next: moved on
    with Record.open(fast_config.store.path) as record:
        [reason] = [d.reason for d in record.decisions() if d.reason.startswith("no segment")]
    assert "'nowhere'" in reason and "hello, bottle, deal, ask" in reason


def test_the_countdown_segment_starts_the_overlay_countdown(fast_config, tmp_path):
    app = script_app(fast_config, tmp_path)
    times = StartTimes(app.clock)
    app.turn_observers.append(times)
    asyncio.run(app.run(10))
    assert "deal" in [segment for _, segment in times.starts]
    assert app.overlay.compositor.shown("countdown") is not None  # 300 s: still counting


class ScriptedRewording:
    """An inner brain that rewords script lines as told (a stand-in for the LLM)."""

    def __init__(self, rewordings: list[str]) -> None:
        self.rewordings, self.asked = rewordings, []

    def pitch_topics(self) -> list[str]:
        return ["thermo"]

    async def reply(self, turn: Turn) -> AsyncIterator[str]:
        assert turn.kind == TurnKind.SCRIPT and turn.script is not None
        self.asked.append(turn.script.text)
        text = self.rewordings[(len(self.asked) - 1) % len(self.rewordings)]
        for word in text.split(" "):
            yield word + " "


def test_rewordings_with_a_wrong_price_are_said_as_authored(fast_config, tmp_path):
    script = """
[[segment]]
id = "bottle"
kind = "price"
product = "thermo"
text = "The {name} is {price} today."
quiet_s = 1
"""
    app = script_app(fast_config, tmp_path, script=script)
    bottle = app.catalog.current.by_id("thermo")
    inner = ScriptedRewording(
        [
            f"Grab the {bottle.name} today for just ${bottle.price:.2f}, a real bargain.",
            f"Today only, the {bottle.name} costs $5.00!",  # a wrong price
        ]
    )
    guard = ReplyGuard(app.catalog.current, fast_config.triage.banned_words)
    app.brain = GuardedBrain(inner, app.catalog_brain, guard, app.catalog)
    asyncio.run(app.run(20))
    turns = spoken(fast_config.store.path)
    assert len(turns) >= 4
    authored = f"The {bottle.name} is ${bottle.price:.2f} today."
    for i, (kind, segment, spoken_as, outcome, reply) in enumerate(turns[:-1]):
        assert (kind, segment, outcome) == ("script", "bottle", "played")
        if i % 2 == 0:
            assert spoken_as == "reworded" and "bargain" in reply
        else:
            assert spoken_as == "authored" and reply.strip() == authored
            assert "$5.00" not in reply
    assert all(text == authored for text in inner.asked)  # reworded from the authored line
    with Record.open(fast_config.store.path) as record:
        segment_of = {t.id: t.segment for t in record.turns()}
        lines = [segment_of[s.turn_id] for s in record.sentences()]
    assert lines and all(segment == "bottle" for segment in lines)  # every line, audited


class PanelScript(TurnObserver):
    """The panel's script part as each turn starts (what the operator sees then)."""

    def __init__(self, app: App) -> None:
        self.app, self.seen = app, []

    def turn_started(self, turn: Turn) -> None:
        self.seen.append(panel_state(self.app.show)["script"])


def test_a_line_whose_product_was_removed_live_is_skipped_never_said_with_placeholders(
    fast_config, tmp_path, caplog
):
    script = """
[[segment]]
id = "hello"
text = "Welcome to the stream!"
quiet_s = 1

[[segment]]
id = "bottle"
kind = "price"
product = "thermo"
text = "The {name} is only {price} today."
trigger = "time"
after_s = 1
"""
    catalog = tmp_path / "catalog.toml"
    bundled = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    catalog.write_text(bundled, encoding="utf-8")
    fast_config.brain.catalog.path = str(catalog)
    app = script_app(fast_config, tmp_path, script=script)
    panel = PanelScript(app)
    app.turn_observers.append(panel)
    blocks = bundled.split("[[product]]")
    without = "[[product]]".join(b for b in blocks if 'id = "thermo"' not in b)

    async def scenario() -> None:
        run = asyncio.create_task(app.run(30))
        while not any(t[1] == "bottle" for t in spoken(fast_config.store.path)):
            await app.clock.sleep(0.5)
        catalog.write_text(without, encoding="utf-8")  # the seller removes the bottle, live
        await run

    with caplog.at_level(logging.WARNING, logger="streambot.script.runner"):
        asyncio.run(scenario())
    turns = spoken(fast_config.store.path)
    segments = [t[1] for t in turns]
    first = segments.index("bottle")
    assert "$24.50" in turns[first][4]
    assert segments[first + 1 :].count("hello") >= 3 and "bottle" not in segments[first + 1 :]
    with Record.open(fast_config.store.path) as record:
        said = [s.text for s in record.sentences()] + [t[4] for t in turns]
    assert not [text for text in said if "{" in text or "}" in text]
    reason = "product 'thermo' is no longer in the catalog"
    assert panel.seen[-1]["skipped"] == {"bottle": reason}
    logged = [r for r in caplog.records if "'bottle' skipped" in r.getMessage()]
    assert len(logged) == 1 and reason in logged[0].getMessage()  # once, not at every loop


def test_a_field_without_a_value_means_the_line_is_not_said():
    thermo = Catalog.load().by_id("thermo")
    segment = Segment(id="back", product="thermo", text="The {name} is back {restock}.")
    assert thermo.restock == ""
    with pytest.raises(UnfilledField, match=r"\{restock\}"):
        segment.fill(segment.text, thermo, "en")
    with pytest.raises(UnfilledField, match="no product"):
        segment.fill("The {name} is {price}.", None, "en")
    assert segment.fill("{{literal}} {price}", thermo, "en") == "{literal} $24.50"


def test_a_line_longer_than_a_reply_is_refused_at_load_naming_segment_and_length(
    fast_config, tmp_path
):
    name = Catalog.load().by_id("thermo").name  # filled in, the line is what the host says
    limit = fast_config.host.max_reply_chars
    text = "x" * (limit - 10) + " {name}"
    script = f'[[segment]]\nid = "long"\nproduct = "thermo"\ntext = "{text}"\n'
    fast_config.script.path = write(tmp_path, "script.toml", script)
    with pytest.raises(ConfigError) as caught:
        App(fast_config)
    length = limit - 10 + 1 + len(name)
    assert f"segment 'long': the en line is {length} characters" in str(caught.value)
    assert f"max_reply_chars = {limit}" in str(caught.value)


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ('[[segment]]\nid = "a"\nproduct = "nope"\ntext = "x"\n', "product 'nope' is not in"),
        ('[[segment]]\nid = "a"\ntext = "{price}"\n', "needs a product"),
        ('[[segment]]\nid = "a"\nproduct = "thermo"\ntext = "{colour}"\n', "{colour}"),
        ('[[segment]]\nid = "a"\nkind = "countdown"\ntext = "x"\n', "duration_s"),
        ('[[segment]]\nid = "a"\ntext = "x"\n[[segment]]\nid = "a"\ntext = "y"\n', "twice"),
        ("segment = 3", "segment"),
    ],
)
def test_a_bad_script_stops_the_start_naming_the_problem(fast_config, tmp_path, script, problem):
    fast_config.script.path = write(tmp_path, "script.toml", script)
    with pytest.raises(ConfigError) as caught:
        App(fast_config)
    assert problem in str(caught.value) and "script.toml" in str(caught.value)
