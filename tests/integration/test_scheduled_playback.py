"""Scheduled playback: the voice never breaks up, whatever the face's render speed.

The daemon runs on a simulated real-time clock (``VirtualClock(realtime=True)``: the presenter
never waits for a model, and a frame not ready when due is late, as live), with a face that
renders at a set multiple of real time on that clock and a voice that speaks at once, so the
outcome does not depend on this machine's speed. Every speech frame carries the frame index
it was rendered for, so the test can also check that it is shown at exactly that index.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math

import numpy as np
import pytest

import streambot.app as app_module
from streambot.app import App
from streambot.clock import VirtualClock
from streambot.face.base import SlowFacePolicy
from streambot.stage.presenter import Presenter
from streambot.stage.schedule import INSIDE_SLACK_BATCHES, SAFETY, RenderRate
from streambot.timing import DEFAULT_FPS, FACE_RATE, samples_per_frame
from tests.conftest import tone

FPS = DEFAULT_FPS
QUESTIONS = [
    "What's special about the grinder?",
    "Is the lamp in stock?",
    "How much are the earbuds?",
]


class PacedFace:
    """Renders ``speed`` x real time on ``clock``: the first batch after ``latency`` seconds,
    then ``batch`` frames every batch / (speed * fps) seconds. A speech frame is 200 in its red
    channel and carries its frame index in green/blue; an idle frame is 0 in red."""

    def __init__(self, clock, width, height, speed, batch=5, latency=0.12, red=200) -> None:
        self.clock, self.width, self.height = clock, width, height
        self.speed, self.batch, self.latency, self.red = speed, batch, latency, red

    def _frame(self, red: int, index: int) -> np.ndarray:
        frame = np.zeros((self.height, self.width, 3), np.uint8)
        frame[..., 0], frame[..., 1], frame[..., 2] = red, index // 256 % 256, index % 256
        return frame

    async def render(self, pcm16k, start_index, visemes=None):
        frames = len(pcm16k) // samples_per_frame(FPS, FACE_RATE)
        done = 0
        while done < frames:
            n = min(self.batch, frames - done)
            if self.speed is None:  # as fast as it goes (fast mode waits for it)
                await asyncio.sleep(0)
            else:
                await self.clock.sleep(n / (self.speed * FPS) + (self.latency if done == 0 else 0))
            yield np.stack([self._frame(self.red, start_index + done + i) for i in range(n)])
            done += n

    def idle(self, index):
        return self._frame(0, index)

    def reset(self):
        pass


class FallbackFace(PacedFace):
    """Stands for the mouth face: fast, and measured under a name of its own."""


class InstantVoice:
    """Speaks at once: 60 ms of tone per character of the sentence."""

    sample_rate = 16_000

    async def speak(self, text, lang=None):
        yield tone(0.06 * len(text))


class RecordingPresenter(Presenter):
    """The daemon's presenter, noting what it shows and each speech's schedule."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shown: list[tuple[int, int, int]] = []  # (frame index, red, rendered-for index)
        # (index when asked, the earliest it could start, start, frames)
        self.schedules: list[tuple[int, int, int, int]] = []

    def schedule(self, turn_id, frames, rate=None, follows=False):
        now = self.frame_index
        earliest = max(now + 1, self.scheduled_until(turn_id))  # after the turn's last speech
        start = super().schedule(turn_id, frames, rate, follows)
        self.schedules.append((now, earliest, start, frames))
        return start

    async def _next_frame(self, stop):
        frame, pcm, turn_id = await super()._next_frame(stop)
        marker = int(frame[0, 0, 1]) * 256 + int(frame[0, 0, 2])
        self.shown.append((self.frame_index, int(frame[0, 0, 0]), marker))
        return frame, pcm, turn_id


def run_live(config, tmp_path, monkeypatch, speed: float | None, seconds: float):
    rows = [{"at": 0.5 + 9.0 * i, "user": f"viewer{i}", "text": q} for i, q in enumerate(QUESTIONS)]
    replay = tmp_path / "chat.jsonl"
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config.chat.local.replay = str(replay)
    config.stream.realtime = speed is not None
    clock = VirtualClock(realtime=speed is not None)
    monkeypatch.setattr(app_module, "Presenter", RecordingPresenter)
    app = App(config, clock=clock)
    app.face = PacedFace(clock, config.stream.width, config.stream.height, speed)
    app.voice = InstantVoice()
    report = asyncio.run(app.run(seconds))
    return app, report, app.presenter.shown, app.presenter.schedules


@pytest.mark.parametrize("speed", [0.5, 0.9, 1.5])
def test_no_gap_inside_speech_at_any_render_speed_and_the_start_waits_only_as_needed(
    fast_config, tmp_path, monkeypatch, speed
):
    app, report, shown, schedules = run_live(
        fast_config, tmp_path, monkeypatch, speed, 36
    )  # the last answer, asked at 18.5 s, ends near 30 s at 0.5x
    stats = app.presenter.stats
    assert report.turns == len(QUESTIONS)
    assert stats.speech_frames > 200
    assert stats.speech_gaps == 0 and stats.late_frames == 0 and stats.late_starts == 0
    # every speech frame is shown at the very index the face rendered it for: no pose jump
    speech = [(k, rendered) for k, red, rendered in shown if red == 200]
    assert len(speech) == stats.speech_frames
    assert all(k == rendered for k, rendered in speech)
    # the start is later only as much as the speech needs: at most a third more than the
    # least lead that plays it through at the render speed measured (on this clock a sleep
    # ends on a frame tick, so the face measures a little slower than its nominal speed)
    measured = app.producer.faces.render_rates["PacedFace"]
    latency, rate = measured.latency_s, measured.fps
    assert rate == pytest.approx(speed * FPS, rel=0.25)
    # (the safety factor on the rate costs up to half as much again, and the schedule keeps
    # a slack of INSIDE_SLACK_BATCHES batches for the frames after the first batch)
    slack = FPS * INSIDE_SLACK_BATCHES * 5 / (rate / SAFETY)
    for _, earliest, start, frames in schedules[1:]:  # the first follows the warm-up's estimate
        least = FPS * latency + max(0, frames - 5) * max(0.0, FPS / rate - 1)
        assert start - earliest <= math.ceil(1.5 * least + slack) + 4, (start - earliest, least)
        if speed >= 1:  # a fast face waits about its first batch's latency, and the slack
            assert start - earliest <= FPS * latency + slack + 4


def eager_schedule(monkeypatch) -> None:
    """A schedule that starts every speech as soon as its audio exists (no lead)."""
    import streambot.stage.face_driver as face_driver

    class Eager(RenderRate):
        def lead_seconds(self, frames: int, fps: int) -> float:
            return 0.0

    monkeypatch.setattr(face_driver, "RenderRate", Eager)


def test_a_speech_scheduled_too_early_is_held_at_its_start_instead_of_breaking_up(
    fast_config, tmp_path, monkeypatch
):
    """The forecast can be wrong (here: no lead at all on a 0.5x face): the presenter checks
    each speech again at its start against the frames that have arrived, and holds it."""
    eager_schedule(monkeypatch)
    app, _, shown, _ = run_live(fast_config, tmp_path, monkeypatch, 0.5, 20)
    stats = app.presenter.stats
    assert stats.speech_frames > 100
    assert stats.speech_gaps == 0 and stats.late_frames == 0
    assert stats.held_starts > 0 and stats.late_starts == 0
    # a held speech is shown as many frames later than rendered for, all through: the pose
    # shifts once, in the pause before it, never inside a run of speech frames
    runs: list[set[int]] = []
    for previous, (k, red, rendered) in itertools.pairwise(shown):
        if red == 200:
            if previous[1] != 200:
                runs.append(set())
            runs[-1].add(k - rendered)
    assert runs and all(len(shifts) == 1 and min(shifts) >= 0 for shifts in runs)
    assert any(max(shifts) > 0 for shifts in runs)  # (some were held)


def test_the_control_without_schedule_or_hold_breaks_the_voice_of_a_slow_face(
    fast_config, tmp_path, monkeypatch
):
    """What the schedule and the hold prevent: the same daemon starting every speech as soon
    as its audio exists stutters at 0.5x real time."""
    from streambot.stage.schedule import SpeechProgress

    eager_schedule(monkeypatch)
    monkeypatch.setattr(SpeechProgress, "plays_through", lambda self, now, fps: True)
    app, _, _, _ = run_live(fast_config, tmp_path, monkeypatch, 0.5, 20)
    assert app.presenter.stats.speech_gaps > 20


def test_a_face_under_the_floor_finishes_its_turns_with_the_mouth_face(
    fast_config, tmp_path, monkeypatch, caplog
):
    def policy(config, face):  # the mouth face, but paced on the clock like the slow one
        s = config.stream
        return SlowFacePolicy(
            "mouth", 0.5, FallbackFace(face.clock, s.width, s.height, 3.0, red=100)
        )

    monkeypatch.setattr(app_module, "slow_face_policy", policy)
    with caplog.at_level(logging.WARNING, "streambot.stage.face_driver"):
        app, report, shown, _ = run_live(fast_config, tmp_path, monkeypatch, 0.3, 30)
    assert report.turns == len(QUESTIONS)
    stats = app.presenter.stats
    assert stats.speech_gaps == 0 and stats.late_frames == 0
    said = [r.message for r in caplog.records if "under the floor" in r.message]
    assert len(said) == 1 and "finishing turns with the mouth face" in said[0]
    # the slow face drew nothing: the fallback spoke every speech frame, at its own index
    assert stats.speech_frames > 200
    assert not [k for k, red, _ in shown if red == 200]
    fallback = [(k, rendered) for k, red, rendered in shown if red == 100]
    assert len(fallback) == stats.speech_frames and all(k == r for k, r in fallback)


def test_a_presenter_buffer_too_small_for_a_slow_face_is_named_once_with_the_fix(
    fast_config, tmp_path, monkeypatch, caplog
):
    fast_config.face.buffer_s = 1.0  # 25 frames: a slow face must queue more ahead than that
    with caplog.at_level(logging.WARNING, "streambot.stage.face_driver"):
        run_live(fast_config, tmp_path, monkeypatch, 0.5, 20)
    said = [r.message for r in caplog.records if "buffer_s holds 25" in r.message]
    assert len(said) == 1 and "on the PacedFace face" in said[0] and "raise buffer_s" in said[0]


def test_the_mouth_policy_builds_the_mouth_face_for_a_neural_face(fast_config):
    from streambot.face.factory import slow_face_policy
    from streambot.face.mouth import MouthFace

    fast_config.face.slow = "mouth"
    policy = slow_face_policy(fast_config, object())  # any face that is not the mouth face
    assert policy.mode == "mouth" and isinstance(policy.fallback, MouthFace)
    mouth = MouthFace(fast_config.face.mouth, 320, 180, 25)
    assert slow_face_policy(fast_config, mouth).fallback is None  # it is the mouth face already
    fast_config.face.slow = "wait"
    assert slow_face_policy(fast_config, object()).fallback is None


def test_in_fast_mode_too_each_frame_is_shown_at_the_index_it_was_rendered_for(
    fast_config, tmp_path, monkeypatch
):
    """The pose-jump bug: speeches were rendered for the index the presenter was at when
    they were rendered, and shown later, after the speech queued before them (measured on the
    code before the schedule: 131 of 284 speech frames shown at another index)."""
    _, report, shown, _ = run_live(fast_config, tmp_path, monkeypatch, None, 30)
    speech = [(k, rendered) for k, red, rendered in shown if red == 200]
    assert report.turns == len(QUESTIONS) and len(speech) > 200
    assert all(k == rendered for k, rendered in speech)
