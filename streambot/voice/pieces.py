"""Speech that arrives in pieces: a sentence's audio turned into whole-frame Speech as it comes.

A streaming voice hands over a sentence's audio chunk by chunk. Resampling each chunk on its
own would click at every seam (the polyphase filter sees silence past a chunk's edge), and a
piece padded to whole frames would insert up to a frame of silence. ``StreamResampler`` holds
back the few samples the filter still needs from the future, so its output joined is the
whole-signal resampling; ``SpeechAssembler`` cuts it into whole frames (48 kHz and the 16 kHz
copy, as ``to_speech`` makes them), each piece a ``Speech`` that says whether more follows.
"""

from __future__ import annotations

import math
from dataclasses import replace
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from streambot.events import Sentence, Speech
from streambot.timing import FACE_RATE, OUTPUT_RATE, samples_per_frame

# scipy's resample_poly filter reaches 10 x max(up, down) samples of the upsampled signal
# each side of an output sample (its default Kaiser window).
_FILTER_HALF_WIDTH = 10


class StreamResampler:
    """``resample`` for a signal that arrives in pieces: ``push`` returns the output samples
    that no later input can change, ``flush`` the rest. Joined, they equal resampling the
    whole signal at once."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        g = gcd(src_rate, dst_rate)
        self.up, self.down = dst_rate // g, src_rate // g
        # input samples an output sample may depend on, each side (and two for rounding)
        self.margin = math.ceil(_FILTER_HALF_WIDTH * max(self.up, self.down) / self.up) + 2
        self._kept = np.zeros(0, np.float32)  # input from absolute index _base on
        self._base = 0
        self._received = 0
        self._emitted = 0  # output samples handed out

    def push(self, pcm: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        self._kept = np.concatenate([self._kept, pcm])
        self._received += pcm.size
        safe = max(0, self._received - self.margin) * self.up // self.down
        return self._emit(safe)

    def flush(self) -> np.ndarray:
        return self._emit(-(-self._received * self.up // self.down))

    def _emit(self, end: int) -> np.ndarray:
        if end <= self._emitted:
            return np.zeros(0, np.float32)
        if self.up == self.down:
            out = self._kept[self._emitted - self._base : end - self._base].copy()
        else:
            # resample from an input index that is a multiple of ``down`` (so the output grid
            # lines up) and far enough before the next output that its implied silence is
            # out of the filter's reach
            first_input = self._emitted * self.down // self.up - self.margin
            start = max(0, first_input // self.down * self.down)
            window = self._kept[start - self._base :]
            offset = start * self.up // self.down
            out = resample_poly(window, self.up, self.down).astype(np.float32)
            out = out[self._emitted - offset : end - offset]
            self._trim(start)
        self._emitted = end
        return out

    def _trim(self, start: int) -> None:
        if start > self._base:
            self._kept = self._kept[start - self._base :]
            self._base = start


class SpeechAssembler:
    """One sentence's audio, pushed at the voice's rate in any pieces, out as whole-frame
    ``Speech`` pieces (``continues`` set on all but the last). Joined, the pieces equal
    ``to_speech`` of the whole sentence's audio."""

    def __init__(self, rate: int, sentence: Sentence, fps: int) -> None:
        self.sentence, self.fps = sentence, fps
        self.spf, self.spf16 = samples_per_frame(fps), samples_per_frame(fps, FACE_RATE)
        self._to48 = StreamResampler(rate, OUTPUT_RATE)
        self._to16 = StreamResampler(OUTPUT_RATE, FACE_RATE)
        self._pcm48 = np.zeros(0, np.float32)  # resampled, not yet handed out
        self._pcm16 = np.zeros(0, np.float32)
        self.frames = 0  # handed out so far

    def push(self, pcm: np.ndarray) -> Speech | None:
        """The whole frames that are final now (None if not one yet)."""
        self._add(self._to48.push(pcm))
        return self._piece(finished=False)

    def finish(self) -> Speech:
        """The rest, padded with silence to a whole frame (never empty: the resampler always
        holds back the last few samples, so the piece that ends the sentence exists)."""
        tail = self._to48.flush()
        pad = -(self._pcm48.size + tail.size) % self.spf
        if self.frames == 0 and self._pcm48.size + tail.size == 0:
            pad = self.spf  # an empty sentence is one silent frame, as to_speech makes it
        self._add(np.concatenate([tail, np.zeros(pad, np.float32)]))
        self._pcm16 = np.concatenate([self._pcm16, self._to16.flush()])
        piece = self._piece(finished=True)
        assert piece is not None and not piece.continues
        return piece

    def _add(self, pcm48: np.ndarray) -> None:
        self._pcm48 = np.concatenate([self._pcm48, pcm48])
        self._pcm16 = np.concatenate([self._pcm16, self._to16.push(pcm48)])

    def _piece(self, finished: bool) -> Speech | None:
        frames = min(self._pcm48.size // self.spf, self._pcm16.size // self.spf16)
        if frames == 0:
            return None
        pcm48, self._pcm48 = np.split(self._pcm48, [frames * self.spf])
        pcm16, self._pcm16 = np.split(self._pcm16, [frames * self.spf16])
        self.frames += frames
        continues = not (finished and self._pcm48.size == 0)
        return Speech(self.sentence.turn_id, self.sentence, pcm48, pcm16, frames, None, continues)


def join_speech(pieces: list[Speech]) -> Speech:
    """The pieces of one sentence as one Speech (for a face that needs the whole of it)."""
    if len(pieces) == 1:
        return replace(pieces[0], continues=False)
    return replace(
        pieces[0],
        pcm48k=np.concatenate([p.pcm48k for p in pieces]),
        pcm16k=np.concatenate([p.pcm16k for p in pieces]),
        frames=sum(p.frames for p in pieces),
        visemes=None,
        continues=pieces[-1].continues,
    )
