"""Driving the face for a turn: each speech scheduled on the presenter's clock at the face's
measured render rate, rendered for exactly those frame indices, and handed on as clips.

The face's speed is measured here and nowhere else (`RenderRate`, one per face backend, from
the time spent inside the face); the slow-face policy ([face] slow, slow_floor) reads it to
finish turns with the mouth face or to let each sentence start later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import numpy as np

from streambot.clock import Clock
from streambot.events import Clip, Speech
from streambot.face.base import EngineFace, Face, PiecewiseFace, SlowFacePolicy
from streambot.runtime.base import Urgency, request_urgency
from streambot.stage.presenter import Presenter
from streambot.stage.schedule import SAFETY, RenderRate
from streambot.timing import FACE_RATE, samples_per_frame
from streambot.turn import Turn, TurnKind
from streambot.voice.pieces import join_speech

log = logging.getLogger(__name__)

# What a viewer or the operator waits for renders first on a face server that several rooms
# share; pitches, script lines and warm-up wait behind it.
URGENT_TURNS = frozenset({TurnKind.ANSWER, TurnKind.THANKS, TurnKind.SAY})


class FaceDriver:
    def __init__(
        self, face: Face, presenter: Presenter, clock: Clock, slow: SlowFacePolicy | None = None
    ) -> None:
        self.face, self.presenter, self.clock = face, presenter, clock
        self.fps = presenter.fps
        self.slow = slow or SlowFacePolicy()
        self.render_rates: dict[str, RenderRate] = {}  # per face backend
        self._said_slow: set[str] = set()
        self._said_full: set[str] = set()

    def render_rate(self, face: Face) -> RenderRate:
        return self.render_rates.setdefault(_backend(face), RenderRate())

    def reset(self) -> None:
        """A new turn: the face forgets its smoothing state."""
        self.face.reset()

    async def calibrate(self, seconds: float = 1.0) -> None:
        """Render a second of silence twice before the first turn, so the first speech is
        scheduled on a measured render rate: the first pass warms the engine up (its first
        runs are slow) and is forgotten, the second is measured."""
        frames = max(2, round(seconds * self.fps))
        silence = np.zeros(frames * samples_per_frame(self.fps, FACE_RATE), np.float32)
        try:
            await self._render(self.face, silence, 0)
            self.render_rates.pop(_backend(self.face), None)
            await self._render(self.face, silence, 0)
        except Exception:
            log.exception("the face failed its warm-up render; its first turn may be late")
        finally:
            self.face.reset()

    async def show(self, turn: Turn, speeches: AsyncIterator[Speech]) -> None:
        """Render ``turn``'s speeches, each at the start frame the presenter schedules for
        it, into the presenter as clips."""
        face, held, follows, in_pieces = self.face, [], False, True
        async for speech in speeches:
            if not follows and not held:  # a sentence's pieces stay on one face, one way
                chosen = self._face_for(face)
                if chosen is not face:
                    face = chosen
                    face.reset()
                in_pieces = self._renders_in_pieces(face)
            if (speech.continues or held) and not in_pieces:
                held.append(speech)  # this face needs the whole sentence's audio at once
                if speech.continues:
                    continue
                speech, held = join_speech(held), []
            self._check_buffer(face, speech.frames)
            rate = self.render_rate(face)
            start = self.presenter.schedule(turn.id, speech.frames, rate, follows=follows)
            await self._render(face, speech.pcm16k, start, speech, turn)
            follows = speech.continues

    def _face_for(self, face: Face) -> Face:
        """``face``, or the mouth face when ``face`` is too slow and the policy says so."""
        rate = self.render_rate(face)
        factor = rate.real_time_factor(self.fps)
        if rate.samples == 0 or factor >= self.slow.floor:
            return face
        fallback = self.slow.fallback if self.slow.mode == "mouth" else None
        name = _backend(face)
        if name not in self._said_slow:
            self._said_slow.add(name)
            then = (
                "finishing turns with the mouth face"
                if fallback is not None
                else "each sentence starts later so the voice never breaks up"
            )
            log.warning(
                "the %s face renders at %.1f fps (%.2fx real time, under the floor %.2fx): %s",
                name,
                rate.fps,
                factor,
                self.slow.floor,
                then,
            )
        return fallback if fallback is not None else face

    def _renders_in_pieces(self, face: Face) -> bool:
        """Whether a sentence may be shown piece by piece on ``face``: its frames must depend
        only on their own audio (Wav2Lip's mel window reaches into the next piece), and it
        must render faster than real time, since a piece follows on with no pause to wait."""
        if not (isinstance(face, PiecewiseFace) and face.renders_in_pieces):
            return False
        if not self.clock.realtime:
            return True  # no deadlines: nothing can be late
        rate = self.render_rate(face)
        return rate.samples == 0 or rate.planning_fps() / SAFETY >= self.fps

    def _check_buffer(self, face: Face, frames: int) -> None:
        """Say once per backend when a speech needs more frames queued ahead than the
        presenter holds: the face would wait for room and the voice break up."""
        need = self.render_rate(face).buffered_frames(frames, self.fps)
        room, name = self.presenter.clips.max_frames, _backend(face)
        if need > room and name not in self._said_full:
            self._said_full.add(name)
            log.warning(
                "a %.1f s speech needs %d frames queued ahead on the %s face, but "
                "[face] buffer_s holds %d: raise buffer_s to %.0f or more",
                frames / self.fps,
                need,
                name,
                room,
                need / self.fps + 1,
            )

    async def _render(
        self,
        face: Face,
        pcm16k: np.ndarray,
        start: int,
        speech: Speech | None = None,
        turn: Turn | None = None,
    ) -> None:
        """Render ``pcm16k`` for frame indices from ``start`` (``speech``'s clips to the
        presenter when ``turn`` is given), timing the face alone for its render rate."""
        urgent = turn is not None and turn.kind in URGENT_TURNS
        token = request_urgency.set(Urgency.NOW if urgent else Urgency.IDLE)
        try:
            await self._render_clips(face, pcm16k, start, speech, turn)
        finally:
            request_urgency.reset(token)

    async def _render_clips(
        self, face: Face, pcm16k: np.ndarray, start: int, speech: Speech | None, turn: Turn | None
    ) -> None:
        spf, rate = self.presenter.samples_per_frame, self.render_rate(face)
        frames = pcm16k.size // samples_per_frame(self.fps, FACE_RATE)
        shown = 0
        render = face.render(pcm16k, start, speech.visemes if speech else None)
        asked = self.clock.now()  # the presenter's time: what the schedule is made in
        async for batch in render:
            took, n = self.clock.now() - asked, batch.shape[0]
            if shown == 0:
                rate.observe_first(n, took)
            else:
                rate.observe_batch(n, took)
            if turn is not None and speech is not None:
                pcm = speech.pcm48k[shown * spf : (shown + n) * spf]
                last = shown + n >= frames and not speech.continues
                clip = Clip(turn.id, batch, pcm, speech.sentence.index, start + shown, last)
                await self.presenter.push(clip)
            shown += n
            asked = self.clock.now()
        if shown != frames:
            raise RuntimeError(f"face rendered {shown} frames for {frames}")


def _backend(face: Face) -> str:
    """The name a face's render rate is kept under: its engine's, else its class's."""
    return face.engine.name if isinstance(face, EngineFace) else type(face).__name__
