"""The sound card's clock paces the stream (docs/ARCHITECTURE.md, "The timing contract": pacing).

No paced sound device is needed: a thread plays the card, calling the PortAudio callback at a
chosen rate against the monotonic clock, so a card that runs fast or slow shows whether the
presenter follows the card or the monotonic clock. One test uses a real device when one that
plays in real time exists (e.g. a JACK server with the dummy driver), and is skipped otherwise.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import logging
import os
import sys
import threading
import time

import numpy as np
import pytest

from streambot.app import App, default_clock
from streambot.clock import DeviceClock, MonotonicClock, VirtualClock
from streambot.stage.presenter import Presenter
from streambot.stage.sinks.audio_device import AudioDeviceSink, PlaybackBuffer
from streambot.stage.sinks.base import SinkUnavailable, StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.timing import DEFAULT_FPS, OUTPUT_RATE, samples_per_frame

FPS, RATE = DEFAULT_FPS, OUTPUT_RATE
SPF = samples_per_frame(FPS, RATE)
LEAD_FRAMES = 3
FMT = StreamFormat(8, 8, FPS, RATE)


# -- the clock, on a hand-moved monotonic time ---------------------------------------------
class Counter:
    rate = RATE
    max_gap = 0.0

    def __init__(self) -> None:
        self.value: tuple[int, float] | None = None

    def tick(self) -> tuple[int, float] | None:
        return self.value


class HandTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def attached_clock(stall_s: float = 0.5) -> tuple[DeviceClock, Counter, HandTime]:
    now = HandTime()
    card = Counter()
    card.value = (0, now.t)
    clock = DeviceClock(stall_s, time_fn=now)
    clock.attach(card)
    return clock, card, now


def test_device_clock_follows_the_cards_samples_not_the_monotonic_clock():
    clock, card, now = attached_clock()
    assert clock.now() == 0.0 and clock.following_device
    start = now.t
    samples = 0
    for _ in range(250):  # 10 s of a card that runs 1 % fast
        now.t += SPF / RATE / 1.01
        samples += SPF
        card.value = (samples, now.t)
        assert clock.now() == pytest.approx(samples / RATE)
    assert now.t - start == pytest.approx(10 / 1.01)
    # between callbacks the time moves on the monotonic clock, smoothly
    now.t += 0.01
    assert clock.now() == pytest.approx(samples / RATE + 0.01)


def test_device_clock_holds_rather_than_stepping_back_when_the_card_is_slow():
    clock, card, now = attached_clock()
    now.t += 0.045
    assert clock.now() == pytest.approx(0.045)  # interpolated past the next block
    card.value = (SPF, now.t)  # the card has only taken 0.040 s by now
    assert clock.now() == pytest.approx(0.045)
    now.t += 0.003
    assert clock.now() == pytest.approx(0.045)  # held until the card catches up
    now.t += 0.01
    assert clock.now() == pytest.approx(0.053)


def test_device_clock_carries_on_when_the_card_stops_and_rejoins_it_continuously(caplog):
    clock, card, now = attached_clock(stall_s=0.5)
    samples = 0
    for _ in range(25):
        now.t += SPF / RATE
        samples += SPF
        card.value = (samples, now.t)
        clock.now()
    assert clock.now() == pytest.approx(1.0)
    readings = []
    with caplog.at_level(logging.INFO):
        for _ in range(100):  # the card is silent for 2 s: time goes on, monotonic
            now.t += 0.02
            readings.append(clock.now())
        assert not clock.following_device
        assert readings[-1] == pytest.approx(3.0)
        assert len([r for r in caplog.records if "has not asked" in r.message]) == 1
        # the card comes back where it stopped (its counter knows nothing of the gap)
        for _ in range(25):
            now.t += SPF / RATE * 0.9  # back, and now running 11 % fast
            samples += SPF
            card.value = (samples, now.t)
            readings.append(clock.now())
        assert clock.following_device
        assert any("again" in r.message for r in caplog.records)
    assert all(b >= a for a, b in itertools.pairwise(readings))
    # after rejoining, the time moves with the card's samples: 24 blocks = 0.96 s
    assert readings[-1] - readings[-25] == pytest.approx(0.96, abs=1e-9)


def test_device_clock_gives_a_card_with_a_long_buffer_time_between_callbacks():
    clock, card, now = attached_clock(stall_s=0.5)
    card.max_gap = 0.4  # it may ask for 0.4 s at once
    clock.attach(card)
    now.t += 0.7
    assert clock.now() == pytest.approx(0.7) and clock.following_device
    now.t += 0.2
    assert clock.now() == pytest.approx(0.9) and not clock.following_device


def test_device_clock_without_a_card_or_with_a_closed_one_is_the_monotonic_clock(caplog):
    now = HandTime()
    clock = DeviceClock(time_fn=now)
    now.t += 1.5
    assert clock.now() == pytest.approx(1.5) and not clock.following_device
    card = Counter()  # closed: tick() is None
    clock.attach(card)
    with caplog.at_level(logging.WARNING):
        now.t += 2.0
        assert clock.now() == pytest.approx(3.5)
    assert not caplog.records  # a closed card is not a stalled one


def test_device_clock_that_never_hears_from_the_card_warns_once_and_goes_on(caplog):
    clock, _card, now = attached_clock(stall_s=0.5)
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            now.t += 0.1
            clock.now()
    assert clock.now() == pytest.approx(5.0)
    assert len(caplog.records) == 1


async def test_device_clock_sleep_until_waits_for_the_cards_time(monkeypatch):
    clock, card, now = attached_clock()
    slept = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        now.t += delay * 0.5  # a card at half speed: each look finds half the time passed
        card.value = (card.value[0] + round(delay * 0.5 * RATE), now.t)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    await clock.sleep_until(0.1)
    monkeypatch.undo()
    assert clock.now() >= 0.1 and len(slept) > 1


# -- the playback buffer -------------------------------------------------------------------
def take(buf: PlaybackBuffer, n: int) -> np.ndarray:
    out = np.full((n, 1), np.nan, np.float32)
    buf.callback(out, n, None, None)
    return out[:, 0].copy()


def test_playback_buffer_primes_then_plays_in_order():
    buf = PlaybackBuffer(RATE, lead=4, slack=2)
    buf.write(np.array([1, 2, 3], np.float32))
    assert take(buf, 2).tolist() == [0, 0]  # not primed: silence, but the card's clock runs
    assert buf.position == 2 and buf.played == 0 and buf.underruns == 0
    buf.write(np.array([4], np.float32))
    assert take(buf, 3).tolist() == [1, 2, 3]
    assert buf.position == 5 and buf.played == 3 and buf.tick()[0] == 5


def test_playback_buffer_pads_an_underrun_with_silence_and_primes_again():
    buf = PlaybackBuffer(RATE, lead=4, slack=2)
    buf.write(np.arange(1, 6, dtype=np.float32))
    assert take(buf, 3).tolist() == [1, 2, 3]
    assert take(buf, 3).tolist() == [4, 5, 0]
    assert buf.underruns == 1 and buf.underrun_samples == 1
    buf.write(np.array([6, 7], np.float32))
    assert take(buf, 2).tolist() == [0, 0]  # priming again, not clicking on every block
    buf.write(np.array([8, 9], np.float32))
    assert take(buf, 4).tolist() == [6, 7, 8, 9]
    assert buf.underruns == 1


def test_playback_buffer_drops_the_oldest_samples_beyond_its_slack():
    buf = PlaybackBuffer(RATE, lead=4, slack=2)
    buf.write(np.arange(1, 6, dtype=np.float32))  # 5 <= 6: kept
    buf.write(np.arange(6, 9, dtype=np.float32))  # 8 > 6: back to the newest 4
    assert buf.fill == 4 and buf.trimmed_samples == 4
    assert take(buf, 4).tolist() == [5, 6, 7, 8]
    buf.write(np.arange(10, 30, dtype=np.float32))  # one write longer than the ring
    assert take(buf, 4).tolist() == [26, 27, 28, 29]


def test_playback_buffer_keeps_the_stream_intact_across_the_ring_edge():
    rng = np.random.default_rng(1)
    buf = PlaybackBuffer(RATE, lead=50, slack=40)
    sent, got, counter = [], [], 1.0
    for _ in range(400):
        n = int(rng.integers(1, 40))
        while buf.fill + n <= 90:
            chunk = np.arange(counter, counter + n, dtype=np.float32)
            counter += n
            sent.append(chunk)
            buf.write(chunk)
        got.append(take(buf, int(rng.integers(1, 40))))
    got_all = np.concatenate(got)
    sent_all = np.concatenate(sent)
    assert buf.underruns == 0 and buf.trimmed_samples == 0
    nonzero = got_all[got_all != 0]
    assert np.array_equal(nonzero, sent_all[: nonzero.size])


# -- a presenter on a card played by a thread ----------------------------------------------
class FakeCard(threading.Thread):
    """Takes a block every ``SPF / (RATE * speed)`` s of monotonic time, like a sound card
    whose crystal runs ``speed`` times the monotonic clock; ``paused`` makes it go silent."""

    def __init__(self, buffer: PlaybackBuffer, speed: float = 1.0) -> None:
        super().__init__(name="fake-card", daemon=True)
        self.buffer, self.interval = buffer, SPF / (RATE * speed)
        self.paused = threading.Event()
        self.max_late = 0.0  # how far this thread fell behind its schedule (a loaded machine)
        self._done = threading.Event()
        self._out = np.zeros((SPF, 1), np.float32)

    def run(self) -> None:
        due = time.monotonic()
        while not self._done.is_set():
            if self.paused.is_set():
                due = time.monotonic() + self.interval
            else:
                self.max_late = max(self.max_late, time.monotonic() - due)
                self.buffer.callback(self._out, SPF, None, None)
                due += self.interval  # on an absolute schedule: a late wake-up catches up
            time.sleep(max(0.0, due - time.monotonic()))

    @property
    def on_time(self) -> bool:
        """Whether the thread kept its schedule: one held up for blocks takes them in a burst,
        which can drain the buffer's lead however well the presenter keeps up."""
        return self.max_late < self.interval

    def stop(self) -> None:
        self._done.set()
        self.join()


class BufferSink:
    """The audio device sink without PortAudio: writes into the buffer the card drains."""

    name, live = "audio_device", True

    def __init__(self, buffer: PlaybackBuffer) -> None:
        self.buffer = buffer

    def open(self, fmt: StreamFormat) -> None:
        pass

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        self.buffer.write(pcm)

    def close(self) -> None:
        self.buffer.close()


class StillFace:
    width, height = 8, 8

    def __init__(self) -> None:
        self.frame = np.zeros((8, 8, 3), np.uint8)

    def idle(self, index: int) -> np.ndarray:
        return self.frame

    def reset(self) -> None:
        pass


def card_setup(speed: float) -> tuple[PlaybackBuffer, FakeCard, DeviceClock, Presenter]:
    buffer = PlaybackBuffer(RATE, LEAD_FRAMES * SPF, 2 * SPF)
    card = FakeCard(buffer, speed)
    card.start()
    clock = DeviceClock()
    clock.attach(buffer)
    presenter = Presenter(StillFace(), SinkFanout([BufferSink(buffer)], FMT), clock, FPS)
    return buffer, card, clock, presenter


def buffered_frames(presenter: Presenter, buffer: PlaybackBuffer) -> float:
    """Frames presented minus frames the card has played: the buffer's depth, in frames."""
    return presenter.stats.frames - buffer.played / SPF


@pytest.mark.parametrize("speed", [1.2, 0.8])
async def test_presenter_is_paced_by_the_card_not_by_the_monotonic_clock(speed):
    buffer, card, clock, presenter = card_setup(speed)
    stop = asyncio.Event()
    task = asyncio.create_task(presenter.run(stop))
    try:
        await asyncio.sleep(0.5)  # primed and settled
        frames0, position0, t0 = presenter.stats.frames, buffer.position, time.monotonic()
        depths = []
        for _ in range(20):  # 2 s
            await asyncio.sleep(0.1)
            depths.append(buffered_frames(presenter, buffer))
        frames = presenter.stats.frames - frames0
        card_frames = (buffer.position - position0) / SPF
        mono_frames = (time.monotonic() - t0) * FPS
    finally:
        stop.set()
        await task
        await presenter.sinks.close()
        card.stop()
    counts = (frames, card_frames, mono_frames)
    assert abs(frames - card_frames) <= 2, counts  # the card's clock...
    assert abs(frames / mono_frames - speed) < 0.08, counts  # ...which is not the monotonic one
    # the buffer holds its lead (3 frames, a block more just after a push), no more, no less
    assert LEAD_FRAMES - 1 <= float(np.median(depths)) <= LEAD_FRAMES + 1, depths
    assert buffer.trimmed_samples == 0 and presenter.stats.resyncs == 0
    if card.on_time and presenter.stats.late_frames == 0:  # else the machine is overloaded
        assert buffer.underruns == 0
        assert all(LEAD_FRAMES - 2 <= d <= LEAD_FRAMES + 2 for d in depths), depths
    assert clock.following_device


async def test_presenter_goes_on_when_the_card_stops_and_follows_it_again(caplog):
    buffer, card, clock, presenter = card_setup(1.0)
    stop = asyncio.Event()
    readings: list[float] = []

    async def watch() -> None:
        while not stop.is_set():
            readings.append(clock.now())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(presenter.run(stop))
    watcher = asyncio.create_task(watch())
    try:
        with caplog.at_level(logging.WARNING):
            await asyncio.sleep(1.0)
            card.paused.set()  # unplugged: no more callbacks
            frames0, t0 = presenter.stats.frames, time.monotonic()
            await asyncio.sleep(1.5)
            stalled_frames = presenter.stats.frames - frames0
            stalled_mono = (time.monotonic() - t0) * FPS
            assert not clock.following_device
            card.paused.clear()
            await asyncio.sleep(0.5)
            frames0, position0 = presenter.stats.frames, buffer.position
            await asyncio.sleep(1.0)
            resumed_frames = presenter.stats.frames - frames0
            resumed_card = (buffer.position - position0) / SPF
    finally:
        stop.set()
        await asyncio.gather(task, watcher)
        await presenter.sinks.close()
        card.stop()
    assert abs(stalled_frames / stalled_mono - 1) < 0.1  # the stream never stopped
    assert any("has not asked" in r.message for r in caplog.records)
    assert abs(resumed_frames - resumed_card) <= 2  # back on the card
    assert all(b >= a for a, b in itertools.pairwise(readings))
    assert presenter.stats.resyncs == 0
    if card.on_time and presenter.stats.late_frames == 0:
        assert buffer.underruns == 0  # the card came back to a full buffer


# -- the sink and the app ------------------------------------------------------------------
def test_no_portaudio_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    sink = AudioDeviceSink()
    with pytest.raises(SinkUnavailable, match="libportaudio2"):
        sink.open(FMT)
    assert sink.buffer is None


def test_unknown_device_lists_the_devices_there_are():
    pytest.importorskip("sounddevice", exc_type=OSError)
    with pytest.raises(SinkUnavailable, match=r"set sinks\.audio_device\.device to one of"):
        AudioDeviceSink("no such sound card").open(FMT)


def test_the_default_clock_follows_the_config(fast_config):
    assert isinstance(default_clock(fast_config), VirtualClock)
    fast_config.stream.realtime = True
    assert isinstance(default_clock(fast_config), MonotonicClock)
    fast_config.sinks.audio_device.enabled = True
    assert isinstance(default_clock(fast_config), DeviceClock)


def test_app_paces_on_the_monotonic_clock_when_the_card_does_not_open(fast_config):
    fast_config.stream.realtime = True
    fast_config.sinks.audio_device.enabled = True
    fast_config.sinks.audio_device.device = "no such sound card"
    app = App(fast_config)
    report = asyncio.run(app.run(0.4))
    assert "audio_device" in report.unavailable_sinks
    assert app.clock.source is None and report.frames == 10


def test_app_paces_on_the_card_when_it_opens(fast_config, monkeypatch):
    cards: list[FakeCard] = []

    class CardSink(AudioDeviceSink):
        def open(self, fmt: StreamFormat) -> None:  # a card that runs 25 % fast
            self.buffer = PlaybackBuffer(fmt.sample_rate, 3 * SPF, 2 * SPF)
            cards.append(FakeCard(self.buffer, 1.25))
            cards[-1].start()

        def close(self) -> None:
            self.buffer.close()

    monkeypatch.setattr("streambot.app.AudioDeviceSink", CardSink)
    fast_config.stream.realtime = True
    fast_config.sinks.audio_device.enabled = True
    app = App(fast_config)
    try:
        report = asyncio.run(app.run(2.0))
    finally:
        cards[0].stop()
    assert app.clock.source is cards[0].buffer
    assert report.frames == 50
    # 50 frames of a card 25 % fast take 1.6 s: the app finished well before 2 s
    assert report.frames / (report.seconds * FPS) > 1.12


def test_app_holds_the_camera_back_by_the_cards_output_delay(fast_config, monkeypatch):
    cards: list[FakeCard] = []

    class CardSink(AudioDeviceSink):
        output_delay_s = 0.2  # five frames from handing samples over to hearing them

        def open(self, fmt: StreamFormat) -> None:
            self.buffer = PlaybackBuffer(fmt.sample_rate, 3 * SPF, 2 * SPF)
            cards.append(FakeCard(self.buffer, 1.0))
            cards[-1].start()

        def close(self) -> None:
            self.buffer.close()

    class Camera:
        name, live, picture_only = "virtualcam", True, True

        def __init__(self, device: str = "") -> None:
            self.indices: list[int] = []

        def open(self, fmt: StreamFormat) -> None:
            pass

        def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
            self.indices.append(index)

        def close(self) -> None:
            pass

    camera = Camera()
    monkeypatch.setattr("streambot.app.AudioDeviceSink", CardSink)
    monkeypatch.setattr("streambot.app.VirtualCamSink", lambda device: camera)
    fast_config.stream.realtime = True
    fast_config.sinks.audio_device.enabled = True
    fast_config.sinks.virtualcam.enabled = True
    try:
        report = asyncio.run(App(fast_config).run(1.0))
    finally:
        cards[0].stop()
    assert report.frames == 25
    assert camera.indices == list(range(20))  # each picture waits five frames for its voice


# -- a real device, when there is one that plays in real time ------------------------------
def paced_output_device() -> bool:
    """Whether the default output takes samples at about its rate (ALSA's null device takes
    them as fast as they come, which paces nothing)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError):
        return False
    buf = PlaybackBuffer(RATE, SPF, SPF)
    try:
        with sd.OutputStream(RATE, SPF, channels=1, dtype="float32", callback=buf.callback):
            time.sleep(0.2)
            p0, t0 = buf.position, time.monotonic()
            time.sleep(0.6)
            rate = (buf.position - p0) / (time.monotonic() - t0)
    except Exception:
        return False
    return 0.5 * RATE < rate < 2 * RATE  # a device with a long buffer takes it in bursts


async def test_presenter_on_a_real_sound_device():
    if not paced_output_device():
        why = "no output device that plays in real time (e.g. jackd -d dummy)"
        if os.environ.get("STREAMBOT_REQUIRE_SOUND"):
            pytest.fail(f"a sound card is required here: {why}")
        pytest.skip(why)
    sink = AudioDeviceSink()
    fanout = SinkFanout([sink], FMT)
    assert not fanout.unavailable, fanout.unavailable
    clock = DeviceClock()
    clock.attach(sink.buffer)
    presenter = Presenter(StillFace(), fanout, clock, FPS)
    buffer = sink.buffer
    stop = asyncio.Event()
    task = asyncio.create_task(presenter.run(stop))
    try:
        await asyncio.sleep(0.5)
        frames0, position0 = presenter.stats.frames, buffer.position
        underruns0, late0 = buffer.underruns, presenter.stats.late_frames
        depths = []
        for _ in range(25):
            await asyncio.sleep(0.1)
            depths.append(buffered_frames(presenter, buffer))
        frames = presenter.stats.frames - frames0
        card_frames = (buffer.position - position0) / SPF
        following = clock.following_device
    finally:
        stop.set()
        await task
        await fanout.close()
    assert following
    assert abs(frames - card_frames) <= 2
    lead = buffer.lead / SPF  # three frames, or more on a device with a long buffer
    assert lead - 1 <= float(np.median(depths)) <= lead + 1, depths
    if presenter.stats.late_frames == late0:
        assert buffer.underruns == underruns0
