"""Story tests: viewers say things at set times; the test reads back what the host said, when,
in which order its turns' events arrived, and which OBS scenes and captions were shown."""

import asyncio
import json

import pytest

from streambot.app import App
from streambot.turn import Outcome, TurnObserver

pytest.importorskip("obsws_python")

from tests.obs_double import ObsDouble


class StoryLog(TurnObserver):
    """Every event, in arrival order, with the turn it belongs to."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.turns = {}

    def turn_started(self, turn):
        self.turns[turn.id] = turn
        self.events.append(("started", turn.id))

    def first_frame(self, turn):
        self.events.append(("first_frame", turn.id))

    def sentence_spoken(self, turn, sentence):
        self.events.append(("spoken", turn.id))

    def turn_ended(self, turn):
        self.events.append(("ended", turn.id))


def write_story(tmp_path, rows) -> str:
    path = tmp_path / "story.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return str(path)


def test_a_super_chat_cuts_in_and_the_stage_follows_each_turn(fast_config, tmp_path, monkeypatch):
    monkeypatch.setenv("OBS_WEBSOCKET_PASSWORD", "story-obs")
    fast_config.chat.local.replay = write_story(
        tmp_path,
        [
            {"at": 0.5, "user": "ann", "text": "What's special about the LumaDesk lamp?"},
            {"at": 2.0, "user": "rich", "text": "how much are the earbuds?", "kind": "superchat"},
        ],
    )
    fast_config.stream.realtime = True  # OBS and the interruption in wall-clock time
    fast_config.triage.idle_pitch_after_s = 1e6
    story = StoryLog()

    async def scenario():
        double = ObsDouble.with_streambot_scenes(password="story-obs")
        await double.start()
        fast_config.obs.enabled = True
        fast_config.obs.port = double.port
        fast_config.obs.timeout_s = 1.0
        await App(fast_config, turn_observers=[story]).run(14.0)
        await double.stop()
        return double

    double = asyncio.run(scenario())
    turns = list(story.turns.values())
    said = [(t.message.user, t.outcome) for t in turns]
    assert said == [
        ("ann", Outcome.INTERRUPTED),
        ("rich", Outcome.PLAYED),
        ("ann", Outcome.PLAYED),  # answered again after what cut her off
    ]
    cut, paid, again = turns
    # Each turn's events arrive in order, and one turn ends before the next starts.
    for t in turns:
        mine = [name for name, tid in story.events if tid == t.id]
        assert mine[0] == "started" and mine[1] == "first_frame" and mine[-1] == "ended"
        assert set(mine[2:-1]) <= {"spoken"}
    ids = [tid for _, tid in story.events]
    assert ids == sorted(ids)
    # What was said, and when: the price from the catalog, in sentences shown one after another.
    assert "$129" in " ".join(s.text for s in paid.spoken)
    assert paid.spoken and again.spoken
    frames = [s.first_frame for t in turns for s in t.spoken]
    assert frames == sorted(frames)
    # The interrupted turn fell silent after the super chat arrived and before the next began.
    t = cut.timings
    assert t.interrupt_asked is not None and t.silenced is not None
    assert t.interruption_ms() > 0
    assert t.silenced <= paid.timings.first_frame
    assert all(s.at <= t.silenced for s in cut.spoken)
    # OBS showed each turn: a caption with each question, in the order they were answered.
    captions = [r["inputSettings"].get("text", "") for r in double.requests_of("SetInputSettings")]
    lamp = [i for i, c in enumerate(captions) if "LumaDesk" in c]
    earbuds = [i for i, c in enumerate(captions) if "earbuds" in c]
    assert lamp and earbuds and lamp[0] < earbuds[0] < lamp[-1]
    scenes = [r["sceneName"] for r in double.requests_of("SetCurrentProgramScene")]
    assert scenes[-1] == "streambot brb"  # the daemon stopped
    on_air = [s for s in scenes if s in ("streambot talking", "streambot showcase")]
    assert on_air and "streambot idle" in scenes[scenes.index(on_air[0]) :]
