"""When a speech may start so that none of its frames comes too late.

The presenter shows frame k at k/fps and never waits for a model. A speech of ``n`` frames that
starts at frame ``s`` needs its frame j ready by (s + j)/fps. The face delivers its first batch
``latency`` seconds after it starts rendering and the rest at ``rate`` frames per second, so
the first frame's slot must come at least ``lead_seconds`` from now, the least lead for which
every frame is in time; the presenter turns that into the first slot whose deadline is that
late. The render rate is stretched by a safety factor, since a frame late inside a speech
breaks the voice; the first batch's latency is not, since a first frame that misses its slot
only starts the speech one frame later (``late_starts``), inaudibly, while every millisecond
added there is added to every answer. A face faster than real time needs only its
first batch's latency; a slower one starts later, by as much as it falls behind over the
speech, and then plays the speech through without a gap.

``RenderRate`` is the running estimate, one per face backend, updated from every batch the
face renders (the time spent inside the face, not waiting for room in the presenter's queue);
``SpeechProgress`` checks a scheduled speech against the rate its frames really arrive at.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

SAFETY = 1.15  # the render rate is taken this much slower: a gap costs more than a pause
HANDOVER_S = 0.002  # from a batch leaving the face to its clip waiting in the presenter's queue
# Slack for the frames after the first batch: a batch may take longer than the estimate when
# the voice or the encoder take the cores for a moment. Sized in batches (a face that needs
# 100 ms a batch can be that much late; one that needs 5 ms cannot), never under a frame.
INSIDE_SLACK_BATCHES = 1.5
INSIDE_SLACK_MIN_S = 0.04


def inside_slack(batch: int, rate: float) -> float:
    """Seconds a batch after the first may come later than ``rate`` says and still be in time."""
    return max(INSIDE_SLACK_MIN_S, INSIDE_SLACK_BATCHES * batch / rate)


@dataclass
class RenderRate:
    """Running estimates of how fast a face renders: the rate exponentially weighted, the
    first batch's latency the median of the last few (one slow first batch, with the CPU busy
    elsewhere, must not delay the next answers' first frames). Speeches are planned on the
    slower of the weighted rate and the lower quartile of the last batches: the rate dips
    while the voice synthesises the next sentence on the same cores, and a mean forgets it."""

    latency_s: float = 0.25  # first batch of a speech, from the call to its frames
    fps: float = 25.0  # frames per second after the first batch
    batch: int = 1  # frames per batch after the first (the largest seen)
    first_batch: int = 1
    samples: int = 0
    weight: float = 0.3  # of a new sample
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=9), repr=False)
    _rates: deque[float] = field(default_factory=lambda: deque(maxlen=32), repr=False)

    def _blend(self, old: float, new: float) -> float:
        return new if self.samples == 0 else (1 - self.weight) * old + self.weight * new

    def observe_first(self, frames: int, seconds: float) -> None:
        self._latencies.append(max(seconds, 0.0))
        self.latency_s = statistics.median(self._latencies)
        self.first_batch = max(1, frames)

    def observe_batch(self, frames: int, seconds: float) -> None:
        if frames <= 0 or seconds <= 0:
            return
        self.fps = self._blend(self.fps, frames / seconds)
        self._rates.append(frames / seconds)
        # the face's usual batch: a speech's last batch is only what is left of it
        self.batch = max(self.batch, frames)
        self.samples += 1

    def lead_seconds(self, frames: int, fps: int) -> float:
        """Seconds from now to the first frame's slot of a ``frames``-frame speech, for every
        frame of it to be ready by its slot at ``fps``."""
        latency = self.latency_s + HANDOVER_S
        rate = max(self.planning_fps() / SAFETY, 1e-3)
        lead = latency  # the first batch
        if frames > self.first_batch:
            # frame j is ready by latency + (j - first + batch) / rate and due at lead + j / fps
            slowest = frames - 1 if rate < fps else self.first_batch
            slack = inside_slack(self.batch, rate)
            ready = latency + (slowest - self.first_batch + self.batch) / rate + slack
            lead = max(lead, ready - slowest / fps)
        return lead

    def planning_fps(self) -> float:
        """The render rate speeches are planned on (see the class)."""
        if len(self._rates) < 4:
            return self.fps
        return min(self.fps, statistics.quantiles(self._rates, n=4)[0])

    def real_time_factor(self, fps: int) -> float:
        """Render speed over playback speed (1.0: exactly real time)."""
        return self.fps / fps

    def buffered_frames(self, frames: int, fps: int) -> int:
        """Frames that must wait in the presenter's queue to play ``frames`` through."""
        return max(0, math.ceil(frames * (1 - self.planning_fps() / SAFETY / fps)))


@dataclass
class SpeechProgress:
    """A scheduled speech's frames as they reach the presenter's queue, so its start can be
    checked against the rate it is really rendering at (the forecast may have been wrong)."""

    frames: int
    planned: RenderRate | None
    received: int = 0
    first_batch: int = 0
    first_at: float | None = None  # clock time the first clip arrived
    last_at: float = 0.0  # ... and the latest
    batch: int = 1
    held: bool = field(default=False)

    def receive(self, frames: int, now: float) -> None:
        if self.first_at is None:
            self.first_at, self.first_batch = now, frames
        self.received += frames
        self.last_at, self.batch = now, max(1, frames)

    def measured_fps(self) -> float | None:
        """Frames per second between the first batch's arrival and the latest; None before
        a second batch."""
        if self.first_at is None or self.received <= self.first_batch:
            return None
        if self.last_at <= self.first_at:
            return None
        return (self.received - self.first_batch) / (self.last_at - self.first_at)

    def plays_through(self, now: float, fps: int) -> bool:
        """Whether, started now, every frame still to come would be ready by its slot."""
        if self.received >= self.frames:
            return True
        planned = self.planned.planning_fps() if self.planned is not None else None
        rates = [r for r in (self.measured_fps(), planned) if r]
        if not rates:
            return True  # nothing measured: the schedule's forecast stands
        rate = min(rates) / SAFETY
        # The batch after the latest comes batch / rate after it, or at once if that is past
        # (a face late with it has stalled: the time lost is not made up); then frame j, not
        # yet here, is ready (j - received + batch) / rate after that base and due j / fps
        # from now. The last frame is the tightest on a face slower than real time, else
        # the next one. With only the first batch here (often the smaller one, for a quick
        # first frame; the schedule planned for the second to be here too) the next is the
        # face's usual batch, and nothing yet says how long it takes on these cores: it gets
        # the schedule's slack.
        batch, slack = self.batch, 0.0
        if self.received <= self.first_batch and self.planned is not None:
            batch = self.planned.batch
            slack = inside_slack(batch, rate)
        base = max(self.last_at, now - batch / rate)
        j = self.frames - 1 if rate < fps else self.received
        return base + (j - self.received + batch) / rate + slack <= now + j / fps
