"""The presenter: the pipeline's one clock (docs/ARCHITECTURE.md, "The timing contract").

Frame k has pts k/fps and carries output samples [k*spf, (k+1)*spf), so audio and video cannot
drift apart. Each frame period the presenter takes the next frame of the current turn's clips,
or the face's idle frame with silence when nothing is ready, and hands both to the sinks.

Realtime mode paces frames on a real clock (the sound card's when the voice plays on an audio
device, so the frame pushed is the one whose pts the audio has reached; else the monotonic
clock) and never waits for a model. So that no frame of a speech comes too late, the host asks
``schedule`` where each speech starts: far enough ahead for the face's measured render rate
(stage/schedule.py), and the face renders for exactly those frame indices, so the idle loop
under the speech continues without a pose jump. Frames before a scheduled start are idle
frames with silence (a pause between sentences). The schedule is a forecast, and on shared
cores (the LLM writing the next sentence beside the face) the face can render slower than it
was planned on; so at a speech's start the presenter checks it again against what has
arrived: a speech that could not play through at the rate this very speech is rendering at
is *held* (its start moves a few frames later, a longer pause, and the pose shifts by those
frames) rather than started into a gap. A frame inside a speech that is still not ready when
due is a *gap*: shown idle, counted late, and the rest of the speech follows on from there,
so no speech is ever dropped. Fast mode (realtime = false) runs on a virtual
clock as fast as the pipeline goes, waiting for the turn's frames instead of counting them
late, so recordings and tests are deterministic.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streambot.clock import Clock, VirtualClock
from streambot.events import Clip, TurnEnd
from streambot.face.base import Face
from streambot.stage.overlay.compositor import Compositor
from streambot.stage.schedule import RenderRate, SpeechProgress
from streambot.stage.sinks.fanout import SinkFanout
from streambot.tasks import wait_or_stop
from streambot.timing import OUTPUT_RATE, samples_per_frame
from streambot.turn import Outcome, Turn

log = logging.getLogger(__name__)


class _Pause:
    """What the frame queue holds when the next speech is scheduled later: an idle frame,
    not a late one."""


_PAUSE = _Pause()


class ClipQueue(asyncio.Queue):
    """The presenter's queue, bounded by the frames it holds rather than by clips: a face
    slower than real time renders a speech ahead into it, and the frames are what cost memory."""

    def __init__(self, max_frames: int) -> None:
        super().__init__()
        self.max_frames, self.frames = max(1, max_frames), 0

    @staticmethod
    def _count(item: object) -> int:
        return item.frames.shape[0] if isinstance(item, Clip) else 0

    def _put(self, item: Clip | TurnEnd) -> None:
        super()._put(item)
        self.frames += self._count(item)

    def _get(self) -> Clip | TurnEnd:
        item = super()._get()
        self.frames -= self._count(item)
        return item

    def full(self) -> bool:
        return self.frames >= self.max_frames


@dataclass(eq=False)
class Playback:
    """One turn as the presenter shows it, from ``begin_turn`` to its end."""

    turn: Turn
    shown: asyncio.Future[Outcome]  # PLAYED, INTERRUPTED or SHUTDOWN
    next_free: int | None = None  # the first frame after its scheduled speech
    shift: int = 0  # frames its speech runs behind its schedule
    speeches: dict[int, SpeechProgress] = field(default_factory=dict)  # start -> progress
    receiving: int | None = None  # the start of the speech being rendered
    discarded: bool = False  # interrupted: the rest of its clips are dropped


def _log_late(k: int, behind: float, deadline: float, steps: list[float]) -> None:
    """Debug: how far frame ``k`` missed its slot and where the time went (the clock thread
    woke late, the frame was not ready, the overlay, the sinks)."""
    if log.isEnabledFor(logging.DEBUG):
        woke, ready, composed, written = steps
        log.debug(
            "frame %d missed its slot by %.1f ms: woke %.1f ms late, frame %.1f ms, "
            "overlay %.1f ms, sinks %.1f ms",
            k,
            behind * 1e3,
            (woke - deadline) * 1e3,
            (ready - woke) * 1e3,
            (composed - ready) * 1e3,
            (written - composed) * 1e3,
        )


@dataclass
class PresenterStats:
    frames: int = 0
    speech_frames: int = 0
    idle_frames: int = 0
    late_frames: int = 0  # a turn's frame was due but not ready, or the frame missed its slot
    not_ready: int = 0  # of those: the turn's next frame was not rendered in time
    speech_gaps: int = 0  # of those: inside a speech (the voice broke up there)
    late_starts: int = 0  # speeches whose first frame came after its scheduled slot
    held_starts: int = 0  # speeches started later than scheduled so they could play through
    pause_frames: int = 0  # idle frames before a scheduled speech (a pause, not a fault)
    missed_slots: int = 0  # of those: the loop handed the frame over after its slot had ended
    resyncs: int = 0
    started_wall: float = 0.0

    def fps(self) -> float:
        elapsed = time.perf_counter() - self.started_wall
        return self.frames / elapsed if elapsed > 0 else 0.0


class Presenter:
    def __init__(
        self,
        face: Face,
        sinks: SinkFanout,
        clock: Clock,
        fps: int,
        sample_rate: int = OUTPUT_RATE,
        buffer_s: float = 8.0,
        max_behind_s: float = 0.5,
        metrics=None,
        compositor: Compositor | None = None,
    ) -> None:
        """``compositor``: overlays blended over every frame before the sinks get it."""
        self.face, self.sinks, self.clock, self.fps = face, sinks, clock, fps
        self.compositor = compositor
        self.on_frame: Callable[[int, np.ndarray], None] | None = None  # the panel's preview
        self.samples_per_frame = samples_per_frame(fps, sample_rate)
        self.clips = ClipQueue(round(buffer_s * fps))
        self.stats = PresenterStats()
        self.recent_slot_use: deque[float] = deque(maxlen=4096)  # per frame, realtime only
        self.frame_index = 0
        self._next_slot = 0  # the first frame not yet taken (frame_index, or one more)
        self._origin: float | None = None  # clock time of frame 0's deadline, once running
        self._metrics = metrics
        self._max_behind = max_behind_s
        self._silence = np.zeros(self.samples_per_frame, np.float32)
        self._fade_out = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, self.samples_per_frame))
        self._fade_out = self._fade_out.astype(np.float32)
        self._current: Clip | None = None
        self._pos = 0
        self._held: Clip | TurnEnd | None = None  # an item taken from the queue, not yet used
        self._playing: dict[int, Playback] = {}  # turn id -> its playback, until it ends
        self._in_speech = False  # the last frame shown was inside a speech, not its end
        self._speech_start = 0  # the frame index the speech being shown started at
        # Set while taking frame k, reported to the turn once frame k reached the sinks:
        self._ended_speech: tuple[Turn, int, int] | None = None  # (turn, sentence, first frame)
        self._silenced: Turn | None = None  # this frame is the interrupted turn's last sound
        self._fade_pending: int | None = None
        self._stopped = asyncio.Event()

    # -- control, called by the host ------------------------------------------------------
    def begin_turn(self, turn: Turn) -> asyncio.Future[Outcome]:
        """Announce a turn; the future resolves to PLAYED, INTERRUPTED or SHUTDOWN."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._playing[turn.id] = Playback(turn, future)
        return future

    async def push(self, item: Clip | TurnEnd) -> None:
        """Queue a clip or turn end; waits for room, but never once the presenter has stopped."""
        if self._stopped.is_set():
            return
        if isinstance(item, Clip):
            self._received(item)
        # Not tasks.wait_or_stop: this runs per clip on the stream's hot path, and waiting
        # out the stop-waiter's cancellation costs the loop turns a frame tick needs.
        put = asyncio.ensure_future(self.clips.put(item))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({put, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not put.done():
                put.cancel()

    def _received(self, clip: Clip) -> None:
        playback = self._playing.get(clip.turn_id)
        if playback is None or playback.receiving is None:
            return
        progress = playback.speeches.get(playback.receiving)
        if progress is not None:
            progress.receive(clip.frames.shape[0], self.clock.now())

    def schedule(
        self, turn_id: int, frames: int, rate: RenderRate | None = None, follows: bool = False
    ) -> int:
        """The frame index at which a speech of ``frames`` frames, about to be rendered, starts:
        after the turn's speech before it, and (in real time) far enough ahead that ``rate``'s
        face has every frame ready when due. The face renders for exactly these indices.

        ``follows``: the speech is the next piece of the one before it (a streamed sentence)
        and starts right where that one ends, with no pause and no hold. A turn not begun
        is scheduled as if it had said nothing yet, and nothing of it is kept."""
        playback = self._playing.get(turn_id)
        next_free = playback.next_free if playback is not None else None
        if follows and next_free is not None and playback is not None:
            playback.next_free = next_free + frames
            playback.receiving = None  # its clips are not the held speech's
            return next_free
        now = self._next_slot
        start = max(next_free if next_free is not None else now, now)
        if self.clock.realtime:
            lead = (rate or RenderRate()).lead_seconds(frames, self.fps)
            start = max(start, self._slot_after(self.clock.now() + lead))
        if playback is not None:
            playback.next_free = start + frames
            if self.clock.realtime:
                playback.speeches[start] = SpeechProgress(frames, rate)
                playback.receiving = start
        return start

    def scheduled_until(self, turn_id: int) -> int:
        """The first frame after ``turn_id``'s scheduled speech (0 before any)."""
        playback = self._playing.get(turn_id)
        if playback is None or playback.next_free is None:
            return 0
        return playback.next_free

    def _slot_after(self, instant: float) -> int:
        """The first frame whose deadline is at or after ``instant`` (clock time)."""
        if self._origin is None:  # not running yet: count from the next frame
            return self._next_slot + math.ceil((instant - self.clock.now()) * self.fps)
        return math.ceil((instant - self._origin) * self.fps - 1e-9)

    def interrupt(self, turn_id: int) -> None:
        """Stop the turn at the next frame boundary: one faded frame, then the rest dropped."""
        playback = self._playing.get(turn_id)
        if playback is not None and not playback.discarded:
            self._fade_pending = turn_id

    @property
    def busy(self) -> bool:
        return bool(self._playing)

    # -- the clock loop ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, max_frames: int | None = None) -> None:
        """Present frames until ``stop`` is set, or ``max_frames`` frames (then set ``stop``)."""
        self.stats.started_wall = time.perf_counter()
        period = 1.0 / self.fps
        origin = self._origin = self.clock.now()
        try:
            while not stop.is_set():
                k = self.frame_index
                deadline = origin + k * period
                if isinstance(self.clock, VirtualClock):
                    await self.clock.advance_to(deadline)
                else:
                    await self.clock.sleep_until(deadline)
                steps = [self.clock.now()]  # when each step ended: says why a frame was late
                frame, pcm, turn_id = await self._next_frame(stop)
                self._next_slot = k + 1  # frame k is taken; a speech scheduled now comes later
                steps.append(self.clock.now())
                if self.compositor is not None:
                    frame = self.compositor.compose(frame)
                steps.append(self.clock.now())
                await self.sinks.write(k, frame, pcm)
                steps.append(self.clock.now())
                if self.on_frame is not None:
                    self.on_frame(k, frame)
                self._account(turn_id)
                self._report(k)
                self.frame_index += 1
                if max_frames is not None and self.frame_index >= max_frames:
                    stop.set()
                if self.clock.realtime:
                    handed = self.clock.now()
                    # how far into its slot the frame was handed over: a late frame is > 1
                    self.recent_slot_use.append((handed - deadline) * self.fps)
                    behind = handed - (deadline + period)
                    if behind > 0:
                        self._late(1)
                        self.stats.missed_slots += 1
                        _log_late(k, behind, deadline, steps)
                    if behind > self._max_behind:
                        # Too far behind to catch up without a burst: re-anchor the clock.
                        skipped = int(behind / period)
                        origin += skipped * period
                        self._origin = origin
                        self.stats.resyncs += 1
                        log.warning(
                            "presenter fell %.0f ms behind; re-anchored the clock", behind * 1000
                        )
        finally:
            self._stopped.set()
            self._finish_all(Outcome.SHUTDOWN)

    def _account(self, turn_id: int | None) -> None:
        self.stats.frames += 1
        if turn_id is None:
            self.stats.idle_frames += 1
        else:
            self.stats.speech_frames += 1
            playback = self._playing.get(turn_id)
            if playback is not None:
                playback.turn.frame_shown()
        if self._metrics is not None:
            self._metrics.frames.inc()

    def _report(self, k: int) -> None:
        """Tell the turns what frame ``k``, now at the sinks, did: end a speech, or end an
        interrupted turn's sound."""
        if self._ended_speech is not None:
            turn, sentence, first = self._ended_speech
            self._ended_speech = None
            turn.speech_shown(sentence, k - first + 1, first)
        if self._silenced is not None:
            self._silenced.silenced()
            self._silenced = None

    def _late(self, count: int) -> None:
        self.stats.late_frames += count
        if self._metrics is not None:
            self._metrics.late_frames.inc(count)

    async def _next_frame(self, stop: asyncio.Event) -> tuple[np.ndarray, np.ndarray, int | None]:
        while True:
            taken = self._take(self.frame_index)
            if isinstance(taken, _Pause):
                self.stats.pause_frames += 1
                return self.face.idle(self.frame_index), self._silence, None
            if taken is not None:
                return taken
            if self._in_speech and self.clock.realtime:
                self._late(1)  # the turn is speaking but its next frame is not ready
                self.stats.not_ready += 1
                self.stats.speech_gaps += 1
            if not self.clock.realtime and self.busy and not stop.is_set():
                # Fast mode: stream time waits for the pipeline instead of running ahead.
                waiter = asyncio.ensure_future(self.clips.get())
                await wait_or_stop(waiter, stop)
                if waiter.done():
                    self._held = waiter.result()
                    continue
                waiter.cancel()
            idle = self.face.idle(self.frame_index)
            return idle, self._silence, None

    def _pop(self) -> Clip | TurnEnd | None:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        try:
            return self.clips.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def _due(self, clip: Clip, k: int) -> bool:
        """Whether ``clip``'s next frame is shown at frame ``k`` (False: it is scheduled later).
        A frame past its slot is shown now, and the rest of its speech follows on from here."""
        if clip.index is None:
            return True
        playback = self._playing.get(clip.turn_id)
        shift = playback.shift if playback is not None else 0
        due = clip.index + self._pos + shift
        if due > k:
            return False
        starting = self._pos == 0 and not self._in_speech
        progress = playback.speeches.get(clip.index) if starting and playback else None
        if progress is not None and playback is not None:
            # (a full queue holds as much as it can: waiting longer would only stall the face)
            if not self.clips.full() and not progress.plays_through(self.clock.now(), self.fps):
                if not progress.held:
                    progress.held = True
                    self.stats.held_starts += 1
                return False  # a longer pause now rather than a gap inside the speech
            del playback.speeches[clip.index]
        if due < k:
            if starting and not (progress and progress.held):
                self.stats.late_starts += 1
            if playback is not None:
                playback.shift = shift + (k - due)
        return True

    def _take(self, k: int) -> tuple[np.ndarray, np.ndarray, int] | _Pause | None:
        while True:
            clip = self._current
            if clip is not None and not self._discarded(clip.turn_id):
                if not self._due(clip, k):
                    if self._fade_pending == clip.turn_id:
                        self._stop_turn(clip.turn_id)  # nothing of it was heard yet
                        continue
                    return _PAUSE
                i = self._pos
                frame = clip.frames[i]
                pcm = clip.pcm[i * self.samples_per_frame : (i + 1) * self.samples_per_frame]
                self._pos += 1
                if not self._in_speech:
                    self._speech_start = k
                self._in_speech = True
                if self._pos >= clip.frames.shape[0]:
                    self._current = None
                    self._in_speech = not clip.last
                    playback = self._playing.get(clip.turn_id)
                    if clip.last and playback is not None:
                        turn = playback.turn
                        self._ended_speech = (turn, clip.sentence_index, self._speech_start)
                if self._fade_pending == clip.turn_id:
                    pcm = pcm * self._fade_out
                    self._stop_turn(clip.turn_id)
                return frame, pcm, clip.turn_id
            self._current = None
            item = self._pop()
            if item is None:
                if self._fade_pending is not None:
                    self._stop_turn(self._fade_pending)  # nothing left to fade
                return None
            if isinstance(item, TurnEnd):
                if self._fade_pending == item.turn_id:
                    self._stop_turn(item.turn_id)  # interrupted with nothing of it queued
                self._end(item.turn_id)
                continue
            if self._discarded(item.turn_id):
                continue
            self._current, self._pos = item, 0

    def _discarded(self, turn_id: int) -> bool:
        playback = self._playing.get(turn_id)
        return playback is not None and playback.discarded

    def _stop_turn(self, turn_id: int) -> None:
        playback = self._playing.get(turn_id)
        self._silenced = playback.turn if playback is not None else None
        if playback is not None:
            playback.discarded = True
        self._fade_pending = None
        self._current = None
        self._in_speech = False

    def _end(self, turn_id: int) -> None:
        if self._fade_pending == turn_id:
            self._fade_pending = None
        self._in_speech = False
        playback = self._playing.pop(turn_id, None)
        if playback is not None and not playback.shown.done():
            playback.shown.set_result(Outcome.INTERRUPTED if playback.discarded else Outcome.PLAYED)

    def _finish_all(self, outcome: Outcome) -> None:
        for playback in self._playing.values():
            if not playback.shown.done():
                playback.shown.set_result(outcome)
        self._playing.clear()
