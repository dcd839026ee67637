"""Cutting a 16 kHz stream into utterances with the Silero VAD that ships inside
faster-whisper: an utterance ends after ``min_silence_ms`` of silence, or at ``max_segment_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# What Whisper and Silero VAD expect: the input side, not the timing contract (timing.py);
# it equals timing.FACE_RATE only by coincidence, so it is not derived from it.
SAMPLE_RATE = 16_000


# --------------------------------------------------------------------------- VAD segmenting


@dataclass(frozen=True)
class Utterance:
    start_s: float  # seconds since the audio source opened (16 kHz sample clock)
    end_s: float
    pcm: np.ndarray  # float32 mono at 16 kHz
    cut: str  # "silence" | "max_length" | "end" (the audio ended or dropped)


class VadSegmenter:
    """Cuts a 16 kHz stream into utterances with faster-whisper's bundled Silero VAD.

    The VAD is re-run over a rolling buffer every ``hop_s``; a speech span followed by
    ``min_silence_ms`` of silence is an utterance, and one still open at ``max_segment_s`` is cut
    there. The buffer never holds more than about ``max_segment_s`` plus a second.
    """

    def __init__(
        self,
        min_silence_ms: int = 500,
        max_segment_s: float = 15.0,
        threshold: float = 0.5,
        speech_pad_ms: int = 150,
        min_speech_ms: int = 200,
        hop_s: float = 0.25,
    ) -> None:
        from faster_whisper.vad import VadOptions  # the ONNX model ships inside the wheel

        pad = min(speech_pad_ms, min_silence_ms // 2)
        self._opts = VadOptions(
            threshold=threshold,
            min_speech_duration_ms=min_speech_ms,
            min_silence_duration_ms=min_silence_ms,
            speech_pad_ms=pad,
        )
        self._max = int(max_segment_s * SAMPLE_RATE)
        self._hop = max(512, int(hop_s * SAMPLE_RATE))
        # audio kept when nothing is open: the next utterance's padding and a not yet reported
        # (shorter than min_speech) onset
        self._keep = int((pad + min_speech_ms) / 1000 * SAMPLE_RATE) + self._hop + 1024
        self.cap = self._max + int(min_silence_ms / 1000 * SAMPLE_RATE) + self._keep + self._hop
        self._buf = np.zeros(0, dtype=np.float32)
        self._offset = 0  # stream sample index of _buf[0]
        self._pending = 0

    def push(self, pcm: np.ndarray) -> list[Utterance]:
        self._buf = np.concatenate([self._buf, np.asarray(pcm, dtype=np.float32)])
        self._pending += len(pcm)
        if self._pending < self._hop:
            return []
        self._pending = 0
        return self._scan(final=False)

    def finish(self, tail: np.ndarray | None = None) -> list[Utterance]:
        """The stream ended: report what is left, open speech included."""
        if tail is not None and tail.size:
            self._buf = np.concatenate([self._buf, np.asarray(tail, dtype=np.float32)])
        out = self._scan(final=True) if self._buf.size else []
        self._offset += self._buf.size
        self._buf = np.zeros(0, dtype=np.float32)
        self._pending = 0
        return out

    def _utterance(self, start: int, end: int, cut: str) -> Utterance:
        return Utterance(
            (self._offset + start) / SAMPLE_RATE,
            (self._offset + end) / SAMPLE_RATE,
            self._buf[start:end].copy(),
            cut,
        )

    def _scan(self, final: bool) -> list[Utterance]:
        from faster_whisper.vad import get_speech_timestamps

        size = self._buf.size
        spans = get_speech_timestamps(self._buf, self._opts, sampling_rate=SAMPLE_RATE)
        out: list[Utterance] = []
        consumed = 0
        open_span = False
        for span in spans:
            start, end = int(span["start"]), int(span["end"])
            if end < size or final:  # followed by enough silence (or nothing more comes)
                out.append(self._utterance(start, end, "silence" if end < size else "end"))
                consumed = end
            elif size - start >= self._max:
                out.append(self._utterance(start, size, "max_length"))
                consumed = size
            else:
                consumed, open_span = start, True
            if end >= size:
                break
        if not open_span:
            consumed = max(consumed, size - self._keep)
        consumed = max(consumed, size - self.cap)  # hard bound, whatever the VAD said
        self._buf = self._buf[consumed:]
        self._offset += consumed
        return out
