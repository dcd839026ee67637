"""Speech that arrives in pieces: a sentence's audio turned into whole-frame Speech as it comes.

A streaming voice hands over a sentence's audio chunk by chunk. Resampling each chunk on its
own would click at every seam (the polyphase filter sees silence past a chunk's edge), and a
piece padded to whole frames would insert up to a frame of silence. ``StreamResampler``
(streambot/resample.py) holds back the few samples the filter still needs from the future, so
its output joined is the whole-signal resampling; ``SpeechAssembler`` cuts it into whole
frames (48 kHz and the 16 kHz copy, as ``to_speech`` makes them), each piece a ``Speech`` that
says whether more follows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from streambot.events import Sentence, Speech
from streambot.resample import StreamResampler
from streambot.timing import FACE_RATE, OUTPUT_RATE, samples_per_frame


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
