"""The embedded default face: the drawn portrait's mouth follows the speech.

Per frame, the RMS level of that frame's 640 samples (16 kHz) maps to an opening between a
silence floor and a "loud" level in dB; an attack/release filter smooths it so the mouth snaps
open on syllables and closes a little more slowly, as lips do. In silence the mouth rests
closed and the eyes blink on an irregular but deterministic schedule. When the voice reports
visemes, they shape the mouth: lips close on p/b/m even when the sound is loud, nearly close on
f/v, round on o/u/w and spread on i/e.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np

from streambot.config import MouthFaceConfig
from streambot.face.portrait import Portrait, draw_portrait
from streambot.timing import FACE_RATE, samples_per_frame
from streambot.visemes import CLOSED, LIP_TEETH, ROUND, SPREAD

_SPRITE_SET = {ROUND: "round", SPREAD: "spread", LIP_TEETH: "spread"}


def frame_levels_db(pcm16k: np.ndarray, samples_per_frame: int) -> np.ndarray:
    frames = pcm16k.size // samples_per_frame
    chunks = pcm16k[: frames * samples_per_frame].reshape(frames, samples_per_frame)
    rms = np.sqrt(np.mean(np.square(chunks, dtype=np.float64), axis=1))
    return 20.0 * np.log10(rms + 1e-9)


class MouthFace:
    # Each frame's mouth comes from its own frame of audio (and the smoothing state, kept
    # across renders within a turn), so a sentence may be rendered piece by piece.
    renders_in_pieces = True

    def __init__(
        self,
        config: MouthFaceConfig,
        width: int,
        height: int,
        fps: int,
        portrait: Portrait | None = None,
    ) -> None:
        self._config = config
        self.width, self.height, self.fps = width, height, fps
        self.portrait = portrait or draw_portrait(width, height)
        self.samples_per_frame = samples_per_frame(fps, FACE_RATE)
        self._opening = 0.0
        self._levels = len(self.portrait.mouth_sprites["neutral"])
        self._idle_cache: dict[str, np.ndarray] = {}
        for state in ("open", "half", "closed"):
            frame = self.portrait.base.copy()
            frame[self.portrait.eye_box.slices()] = self.portrait.eye_sprites[state]
            frame.setflags(write=False)
            self._idle_cache[state] = frame

    @property
    def mouth_box(self):
        return self.portrait.mouth_box

    def reset(self) -> None:
        self._opening = 0.0

    def eye_state(self, index: int) -> str:
        """Blink for 4 frames roughly every 3 to 5 seconds (a hash keeps it irregular)."""
        period = 4 * self.fps
        cycle, phase = divmod(index, period)
        offset = (cycle * 2654435761) % (2 * self.fps)  # irregular start within the cycle
        t = phase - offset
        return {0: "half", 1: "closed", 2: "closed", 3: "half"}.get(t, "open")

    def openings(self, pcm16k: np.ndarray, visemes: Sequence[str] | None = None) -> np.ndarray:
        """Smoothed mouth opening in [0, 1] for each whole frame of ``pcm16k``."""
        cfg = self._config
        db = frame_levels_db(pcm16k, self.samples_per_frame)
        target = np.clip((db - cfg.silence_db) / (cfg.loud_db - cfg.silence_db), 0.0, 1.0)
        if visemes is not None:
            shape = np.array(visemes[: target.size])
            target[shape == CLOSED] = 0.0
            target[shape == LIP_TEETH] = np.minimum(target[shape == LIP_TEETH], 0.12)
        out = np.empty_like(target)
        level = self._opening
        for i, goal in enumerate(target):
            closing_lips = visemes is not None and i < len(visemes) and visemes[i] == CLOSED
            rate = cfg.attack if goal > level or closing_lips else cfg.release
            level += rate * (goal - level)
            out[i] = level
        self._opening = level
        return out

    def _compose(self, openings: np.ndarray, shapes: Sequence[str], start_index: int) -> np.ndarray:
        p = self.portrait
        batch = np.empty((openings.size, self.height, self.width, 3), np.uint8)
        mouth, eyes = p.mouth_box.slices(), p.eye_box.slices()
        for i, opening in enumerate(openings):
            state = self.eye_state(start_index + i)
            batch[i] = self._idle_cache[state]
            level = round(float(opening) * (self._levels - 1))
            batch[i][mouth] = p.mouth_sprites[_SPRITE_SET.get(shapes[i], "neutral")][level]
            batch[i][eyes] = p.eye_sprites[state]
        return batch

    async def render(
        self, pcm16k: np.ndarray, start_index: int, visemes: Sequence[str] | None = None
    ) -> AsyncIterator[np.ndarray]:
        if pcm16k.size % self.samples_per_frame:
            raise ValueError(
                f"speech must be whole frames of {self.samples_per_frame} samples, "
                f"got {pcm16k.size}"
            )
        openings = self.openings(pcm16k, visemes)
        shapes = list(visemes or ())[: openings.size]
        shapes += ["neutral"] * (openings.size - len(shapes))
        step = self._config.batch_frames
        for first in range(0, openings.size, step):
            yield await asyncio.to_thread(
                self._compose,
                openings[first : first + step],
                shapes[first : first + step],
                start_index + first,
            )

    def idle(self, index: int) -> np.ndarray:
        return self._idle_cache[self.eye_state(index)]
