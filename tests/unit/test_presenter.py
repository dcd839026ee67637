import asyncio

import numpy as np

from streambot.events import ChatMessage, Clip, Turn, TurnEnd
from streambot.stage.clock import MonotonicClock, VirtualClock
from streambot.stage.presenter import Presenter
from streambot.stage.sinks.base import StreamFormat
from streambot.stage.sinks.fanout import SinkFanout

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
