import asyncio
import logging
import re
import time

import numpy as np

from streambot.clock import MonotonicClock, VirtualClock
from streambot.events import ChatMessage, Clip, TurnEnd
from streambot.stage.presenter import Presenter
from streambot.stage.sinks.base import StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.turn import Outcome, Turn, TurnObserver

FPS, SPF, H, W = 25, 1920, 8, 8


class StillFace:
    width, height = W, H

    def __init__(self) -> None:
        self.frame = np.zeros((H, W, 3), np.uint8)

    def idle(self, index):
        return self.frame

    def reset(self):
        pass


class RecordingSink:
    name, live = "rec", False

    def __init__(self) -> None:
        self.writes = []

    def open(self, fmt):
        pass

    def write(self, index, frame, pcm):
        self.writes.append((index, int(frame[0, 0, 0]), pcm.copy()))

    def close(self):
        pass


def clip(turn_id: int, first: int, n: int, level: float = 0.5) -> Clip:
    frames = np.stack([np.full((H, W, 3), first + i + 1, np.uint8) for i in range(n)])
    return Clip(turn_id, frames, np.full(n * SPF, level, np.float32), 0)


def make(clock):
    sink = RecordingSink()
    fanout = SinkFanout([sink], StreamFormat(W, H, FPS, 48_000))
    return Presenter(StillFace(), fanout, clock, FPS), sink, fanout


def turn(turn_id: int) -> Turn:
    return Turn(turn_id, "answer", ChatMessage("t", "u", "q"))


async def test_frame_and_sample_accounting_on_a_virtual_clock():
    clock = VirtualClock()
    presenter, sink, fanout = make(clock)
    stop = asyncio.Event()
    done = presenter.begin_turn(turn(1))
    for first in range(0, 10, 5):
        await presenter.clips.put(clip(1, first, 5))
    await presenter.clips.put(TurnEnd(1))
    await presenter.run(stop, max_frames=30)
    await fanout.close()
    assert await done == "played"
    assert [w[0] for w in sink.writes] == list(range(30))  # pts k for frame k, no gaps
    assert all(w[2].size == SPF for w in sink.writes)  # exactly 1920 samples per frame
    assert [w[1] for w in sink.writes[:10]] == list(range(1, 11))  # the turn's frames, in order
    assert all(w[1] == 0 and not w[2].any() for w in sink.writes[10:])  # then idle + silence
    assert clock.now() == 29 / FPS
    assert presenter.stats.speech_frames == 10 and presenter.stats.late_frames == 0


async def test_fast_mode_waits_for_a_busy_turn_instead_of_counting_late_frames():
    clock = VirtualClock()
    presenter, sink, fanout = make(clock)
    stop = asyncio.Event()
    presenter.begin_turn(turn(1))

    async def slow_producer():
        for first in range(0, 6, 2):
            await asyncio.sleep(0.01)  # real time passes; stream time must not
            await presenter.clips.put(clip(1, first, 2))
        await presenter.clips.put(TurnEnd(1))

    producer = asyncio.create_task(slow_producer())
    await presenter.run(stop, max_frames=6)
    await producer
    await fanout.close()
    assert [w[1] for w in sink.writes] == [1, 2, 3, 4, 5, 6]
    assert presenter.stats.late_frames == 0


async def test_interrupt_fades_the_next_frame_and_drops_the_rest():
    clock = VirtualClock()
    presenter, sink, fanout = make(clock)
    stop = asyncio.Event()
    done = presenter.begin_turn(turn(7))
    await presenter.clips.put(clip(7, 0, 5))
    await presenter.clips.put(clip(7, 5, 5))

    async def interrupt_after_three():
        while presenter.frame_index < 3:
            await asyncio.sleep(0)
        presenter.interrupt(7)
        await presenter.clips.put(TurnEnd(7))

    task = asyncio.create_task(interrupt_after_three())
    await presenter.run(stop, max_frames=12)
    await task
    await fanout.close()
    assert await done == "interrupted"
    speech = [w for w in sink.writes if w[1] != 0]
    assert len(speech) == 4  # three frames played, then one faded frame at the boundary
    faded = speech[-1][2]
    assert faded[0] > 0.49 and abs(faded[-1]) < 1e-3  # fades from full level to silence
    assert np.all(np.diff(faded) <= 1e-7)  # monotonic: no click
    assert all(w[1] == 0 and not w[2].any() for w in sink.writes[4:])


async def test_realtime_counts_frames_a_speaking_turn_could_not_deliver():
    presenter, sink, fanout = make(MonotonicClock())
    presenter.fps = 100  # shorten the test: 10 ms frames
    stop = asyncio.Event()
    presenter.begin_turn(turn(1))
    await presenter.clips.put(clip(1, 0, 2))  # two frames, then the "model" is late
    await presenter.run(stop, max_frames=10)
    await fanout.close()
    assert presenter.stats.speech_frames == 2
    assert presenter.stats.late_frames >= 8  # every frame after the underrun is late, shown idle
    assert [w[1] for w in sink.writes[2:]] == [0] * 8  # idle, never a stale repeated frame


async def test_a_failing_sink_is_dropped_and_the_others_go_on():
    class BrokenSink(RecordingSink):
        name = "broken"

        def write(self, index, frame, pcm):
            raise OSError("device unplugged")

    good, bad = RecordingSink(), BrokenSink()
    fanout = SinkFanout([bad, good], StreamFormat(W, H, FPS, 48_000))
    presenter = Presenter(StillFace(), fanout, VirtualClock(), FPS)
    await presenter.run(asyncio.Event(), max_frames=20)
    await fanout.close()
    assert len(good.writes) == 20
    assert "device unplugged" in fanout.workers[0].failed


def scheduled(turn_id: int, first: int, n: int, index: int, last: bool) -> Clip:
    c = clip(turn_id, first, n)
    return Clip(c.turn_id, c.frames, c.pcm, 0, index=index, last=last)


async def test_a_scheduled_speech_starts_at_its_index_after_a_pause_that_is_not_late():
    presenter, sink, fanout = make(VirtualClock(realtime=True))
    stop = asyncio.Event()
    done = presenter.begin_turn(turn(3))
    await presenter.clips.put(scheduled(3, 0, 4, index=2, last=True))  # a sentence at 2..5
    await presenter.clips.put(scheduled(3, 4, 3, index=9, last=True))  # the next at 9..11
    await presenter.clips.put(TurnEnd(3))
    await presenter.run(stop, max_frames=14)
    await fanout.close()
    assert await done == "played"
    assert [w[1] for w in sink.writes] == [0, 0, 1, 2, 3, 4, 0, 0, 0, 5, 6, 7, 0, 0]
    stats = presenter.stats
    assert stats.late_frames == 0 and stats.speech_gaps == 0  # pauses between sentences
    assert stats.pause_frames == 2 + 3


async def test_a_frame_not_ready_inside_a_speech_is_a_gap_and_the_rest_follows_on():
    presenter, sink, fanout = make(VirtualClock(realtime=True))
    stop = asyncio.Event()
    presenter.begin_turn(turn(4))
    await presenter.clips.put(scheduled(4, 0, 2, index=1, last=False))  # frames 1, 2 ...

    async def rest_comes_late():
        while presenter.frame_index < 5:
            await asyncio.sleep(0)
        await presenter.clips.put(scheduled(4, 2, 2, index=3, last=True))  # ... due at 3, 4

    task = asyncio.create_task(rest_comes_late())
    await presenter.run(stop, max_frames=9)
    await task
    await fanout.close()
    # nothing of the speech is dropped: frames 3 and 4 of it come at 5 and 6, after two gaps
    assert [w[1] for w in sink.writes] == [0, 1, 2, 0, 0, 3, 4, 0, 0]
    assert presenter.stats.speech_gaps == 2 and presenter.stats.late_frames == 2


async def test_an_interrupt_during_a_scheduled_pause_ends_the_turn_at_once():
    presenter, sink, fanout = make(VirtualClock(realtime=True))
    stop = asyncio.Event()
    done = presenter.begin_turn(turn(5))
    await presenter.clips.put(scheduled(5, 0, 3, index=6, last=True))
    presenter.interrupt(5)
    await presenter.clips.put(TurnEnd(5))
    await presenter.run(stop, max_frames=10)
    await fanout.close()
    assert await done == "interrupted"
    assert all(w[1] == 0 and not w[2].any() for w in sink.writes)  # none of it was heard


async def test_the_queue_holds_frames_up_to_its_budget_not_a_count_of_clips():
    presenter = make(VirtualClock())[0]
    presenter.clips.max_frames = 6
    await presenter.clips.put(clip(1, 0, 4))
    await presenter.clips.put(clip(1, 4, 4))  # 8 frames now: over the budget
    assert presenter.clips.full() and presenter.clips.frames == 8
    presenter.clips.get_nowait()
    assert not presenter.clips.full() and presenter.clips.frames == 4


def test_the_lead_is_the_first_batch_for_a_fast_face_and_grows_with_a_slow_ones_speech():
    import pytest

    from streambot.stage.schedule import HANDOVER_S, INSIDE_SLACK_BATCHES, SAFETY, RenderRate

    fast = RenderRate(latency_s=0.2, fps=100.0, batch=8, first_batch=4, samples=1)
    assert fast.lead_seconds(10, 25) == fast.lead_seconds(500, 25)  # any length: the latency
    # ... of the first batch, or of the second one behind it, due when the first has played
    batch_s = 8 / (100 / SAFETY)  # a batch's render time, on the safe side
    second = 0.2 + HANDOVER_S + batch_s * (1 + INSIDE_SLACK_BATCHES) - 4 / 25
    assert fast.lead_seconds(10, 25) == pytest.approx(max(0.2 + HANDOVER_S, second))
    roomy = RenderRate(latency_s=0.2, fps=100.0, batch=8, first_batch=8, samples=1)
    assert roomy.lead_seconds(10, 25) == pytest.approx(0.2 + HANDOVER_S)  # 320 ms to play
    slow = RenderRate(latency_s=0.2, fps=12.5, batch=8, first_batch=4, samples=1)
    short, long = slow.lead_seconds(25, 25), slow.lead_seconds(250, 25)
    # half real time: a 10 s speech must wait about as long as it lasts, more with the margin
    assert 10 < long < 10 * SAFETY * 1.3 and short < long / 5
    assert slow.buffered_frames(250, 25) > 125  # what the queue must hold to play it through


def test_a_speech_with_only_its_small_first_batch_here_waits_for_the_next_one():
    """The first batch is small for a quick first frame; started on it alone, a face 1.8x
    real time still breaks up if the usual batch after it comes late (seen live: a gap 4
    frames into a speech). The start waits until that next batch is in, then goes."""
    from streambot.stage.schedule import RenderRate, SpeechProgress

    planned = RenderRate(latency_s=0.2, fps=46.0, batch=8, first_batch=4, samples=8)
    progress = SpeechProgress(frames=100, planned=planned)
    progress.receive(4, now=10.0)
    assert not progress.plays_through(10.0, FPS)
    assert not progress.plays_through(10.3, FPS)  # still only 4 frames: 160 ms of cover
    progress.receive(8, now=10.17)  # 8 frames in 170 ms: the face keeps its pace
    assert progress.plays_through(10.17, FPS)


def test_a_speechs_short_last_batch_does_not_shrink_the_planned_batch():
    from streambot.stage.schedule import RenderRate

    rate = RenderRate()
    rate.observe_batch(8, 0.2)
    before = rate.lead_seconds(100, FPS)
    rate.observe_batch(1, 0.025)  # what was left of a speech: as fast per frame
    assert rate.batch == 8 and rate.lead_seconds(100, FPS) == before


class EventLog(TurnObserver):
    """Records each event with the frame index the presenter is at when it arrives."""

    def __init__(self, presenter: Presenter) -> None:
        self.presenter, self.events = presenter, []

    def turn_started(self, turn):
        self.events.append(("started", turn.id, self.presenter.frame_index))

    def first_frame(self, turn):
        self.events.append(("first_frame", turn.id, self.presenter.frame_index))

    def sentence_spoken(self, turn, sentence):
        self.events.append(
            ("spoken", turn.id, sentence.index, sentence.first_frame, sentence.frames)
        )

    def turn_ended(self, turn):
        self.events.append(("ended", turn.id, turn.outcome))


async def test_the_turn_hears_of_its_first_frame_and_each_spoken_speech_once_shown():
    presenter, _sink, fanout = make(VirtualClock())
    log = EventLog(presenter)
    t = Turn(3, "answer", ChatMessage("t", "u", "q"), observers=[log])
    t.sentences = {0: "One.", 1: "Two."}
    t.started()
    done = presenter.begin_turn(t)
    first, second = clip(3, 0, 3), clip(3, 3, 2)
    await presenter.clips.put(Clip(3, first.frames, first.pcm, 0, index=2, last=True))
    await presenter.clips.put(Clip(3, second.frames, second.pcm, 1, index=5, last=True))
    await presenter.clips.put(TurnEnd(3))
    await presenter.run(asyncio.Event(), max_frames=10)
    await fanout.close()
    t.end(await done)
    assert log.events == [
        ("started", 3, 0),
        ("first_frame", 3, 2),  # told while frame 2, its first, is handed over
        ("spoken", 3, 0, 2, 3),  # sentence 0: frames 2-4
        ("spoken", 3, 1, 5, 2),  # sentence 1: frames 5-6
        ("ended", 3, Outcome.PLAYED),
    ]
    assert [s.text for s in t.spoken] == ["One.", "Two."]


async def test_an_interrupted_turn_is_silenced_at_the_faded_frame_and_speaks_no_more():
    presenter, _sink, fanout = make(VirtualClock())
    log = EventLog(presenter)
    t = Turn(7, "answer", ChatMessage("t", "u", "q"), observers=[log])
    done = presenter.begin_turn(t)
    await presenter.clips.put(clip(7, 0, 5))
    await presenter.clips.put(clip(7, 5, 5))
    silenced_at = []
    t.silenced = lambda: silenced_at.append(presenter.frame_index)  # type: ignore[method-assign]

    async def interrupt_after_three():
        while presenter.frame_index < 3:
            await asyncio.sleep(0)
        t.interrupt()
        presenter.interrupt(7)
        await presenter.clips.put(TurnEnd(7))

    task = asyncio.create_task(interrupt_after_three())
    await presenter.run(asyncio.Event(), max_frames=12)
    await task
    await fanout.close()
    assert await done == Outcome.INTERRUPTED
    assert silenced_at == [3]  # the faded frame 3 was the last of its sound
    assert not [e for e in log.events if e[0] == "spoken"]  # no speech was shown to its end
    assert t.timings.interrupt_asked is not None


async def test_a_turn_interrupted_with_nothing_queued_ends_interrupted_and_silenced():
    presenter, sink, fanout = make(VirtualClock())
    t = turn(9)
    done = presenter.begin_turn(t)
    silenced_at = []
    t.silenced = lambda: silenced_at.append(presenter.frame_index)  # type: ignore[method-assign]
    presenter.interrupt(9)  # asked while the turn has no clip in the queue yet
    await presenter.clips.put(TurnEnd(9))
    await presenter.run(asyncio.Event(), max_frames=4)
    await fanout.close()
    assert await done == Outcome.INTERRUPTED  # not PLAYED: it was cut before a word
    assert silenced_at == [0]  # silent from the next frame at the sinks
    assert all(not w[2].any() for w in sink.writes)


class SlowOverlay:
    """Takes 60 ms over the fourth frame: that frame misses its slot because of the overlay."""

    def __init__(self) -> None:
        self.calls = 0

    def compose(self, frame):
        self.calls += 1
        if self.calls == 4:
            time.sleep(0.06)
        return frame


async def test_a_late_frame_is_logged_with_the_step_that_took_its_time(caplog):
    presenter, _, fanout = make(MonotonicClock())
    presenter.compositor = SlowOverlay()
    with caplog.at_level(logging.DEBUG, logger="streambot.stage.presenter"):
        await presenter.run(asyncio.Event(), max_frames=6)
    await fanout.close()
    (line,) = [r.getMessage() for r in caplog.records if "frame 3 missed" in r.getMessage()]
    overlay_ms = float(re.search(r"overlay ([\d.]+) ms", line).group(1))
    assert overlay_ms >= 50, line
    assert presenter.stats.missed_slots >= 1
