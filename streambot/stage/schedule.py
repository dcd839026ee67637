"""When a speech may start so that none of its frames comes too late.

The presenter shows frame k at k/fps and never waits for a model. A speech of ``n`` frames that
starts at frame ``s`` needs its frame j ready by (s + j)/fps. The face delivers its first batch
``latency`` seconds after it starts rendering and the rest at ``rate`` frames per second, so
the start is put ``lead`` frames ahead of now, the smallest lead for which every frame is in
time (with a safety factor on both estimates). A face faster than real time needs only its
first batch's latency; a slower one starts later, by as much as it falls behind over the
speech, and then plays the speech through without a gap.

``RenderRate`` is the running estimate, one per face backend, updated from every batch the
face renders (the time spent inside the face, not waiting for room in the presenter's queue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streambot.face.base import Face

SAFETY = 1.15  # estimates are stretched by this much: a late frame costs more than a pause
MARGIN_FRAMES = 2  # handover slack between the host's tasks and the presenter's loop


@dataclass
class RenderRate:
    """Running estimates of how fast a face renders (exponentially weighted)."""

    latency_s: float = 0.25  # first batch of a speech, from the call to its frames
    fps: float = 25.0  # frames per second after the first batch
    batch: int = 1  # frames per batch after the first
    first_batch: int = 1
    samples: int = 0
    weight: float = 0.3  # of a new sample

    def _blend(self, old: float, new: float) -> float:
        return new if self.samples == 0 else (1 - self.weight) * old + self.weight * new

    def observe_first(self, frames: int, seconds: float) -> None:
        self.latency_s = self._blend(self.latency_s, max(seconds, 0.0))
        self.first_batch = max(1, frames)

    def observe_batch(self, frames: int, seconds: float) -> None:
        if frames <= 0 or seconds <= 0:
            return
        self.fps = self._blend(self.fps, frames / seconds)
        self.batch = max(1, frames)
        self.samples += 1

    def lead_frames(self, frames: int, fps: int) -> int:
        """Frames between now and the start of a ``frames``-frame speech for it to play
        through in time at ``fps``."""
        latency = self.latency_s * SAFETY
        rate = max(self.fps / SAFETY, 1e-3)
        lead = fps * latency  # the first batch
        if frames > self.first_batch:
            last = frames - 1  # frame j is ready by latency + (j - first + batch) / rate
            slowest = last if rate < fps else self.first_batch
            lead = max(lead, fps * (latency + (slowest - self.first_batch + self.batch) / rate)
                       - slowest)  # fmt: skip
        return math.ceil(lead) + MARGIN_FRAMES

    def real_time_factor(self, fps: int) -> float:
        """Render speed over playback speed (1.0: exactly real time)."""
        return self.fps / fps

    def buffered_frames(self, frames: int, fps: int) -> int:
        """Frames that must wait in the presenter's queue to play ``frames`` through."""
        return max(0, math.ceil(frames * (1 - self.fps / SAFETY / fps)))


@dataclass
class SlowFacePolicy:
    """What the host does with a face that renders under ``floor`` x real time: "wait"
    (start each sentence later: long pauses, never a broken voice) or "mouth" (finish the
    turn with ``fallback``, the cheap mouth face)."""

    mode: str = "wait"
    floor: float = 0.5
    fallback: Face | None = None
