"""The Voice role and the conversion of a voice's audio into pipeline-rate Speech."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from streambot.events import Sentence, Speech
from streambot.resample import resample

# Re-exported from here too: older callers import the timing names from this module.
from streambot.timing import FACE_RATE, OUTPUT_RATE, samples_per_frame
from streambot.visemes import frame_visemes

log = logging.getLogger(__name__)
T = TypeVar("T")
# A voice's float samples are meant to lie in [-1, 1]; a vocoder's peaks may overshoot a
# little (clipped on the way out), but 4x full scale (+12 dBFS) is a broken engine (an fp16
# overflow), not a loud voice.
MAX_PEAK = 4.0


class Voice(Protocol):
    sample_rate: int

    def speak(self, text: str, lang: str | None = None) -> AsyncGenerator[np.ndarray, None]:
        """Yield mono float32 audio at ``sample_rate``, one array per sentence of ``text``."""
        ...


@dataclass(frozen=True)
class AudioPiece:
    """A piece of a sentence's audio from a streaming voice, at its own ``rate``; ``ends``
    marks the sentence's last piece."""

    pcm: np.ndarray
    rate: int
    ends: bool


@runtime_checkable
class StreamingVoice(Voice, Protocol):
    """A voice that hands over each sentence in pieces, the first as soon as it exists."""

    def speak_pieces(
        self, text: str, lang: str | None = None
    ) -> AsyncGenerator[AudioPiece, None]: ...


@runtime_checkable
class RemoteVoice(Voice, Protocol):
    """A voice served from elsewhere (a TTS server): it reports its own health for /healthz
    and the panel, and holds a session to close at shutdown."""

    def health(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


async def pieces_of(voice: Voice, text: str, lang: str | None) -> AsyncGenerator[AudioPiece, None]:
    """``voice``'s audio for ``text`` as pieces: a streaming voice's own, else each sentence
    the voice makes as one whole piece."""
    if isinstance(voice, StreamingVoice):
        async for piece in voice.speak_pieces(text, lang):
            yield piece
        return
    async for pcm in voice.speak(text, lang):
        yield AudioPiece(pcm, voice.sample_rate, True)


def audio_fault(pcm: np.ndarray) -> str | None:
    """Why a voice's audio must not be played (samples that are not finite, or a peak far
    beyond full scale), or None when it may be. The one rule, for every voice."""
    if pcm.size == 0:
        return None
    bad = pcm.size - int(np.count_nonzero(np.isfinite(pcm)))
    if bad:
        return f"{bad} of {pcm.size} samples are not finite (NaN or infinite)"
    peak = float(np.max(np.abs(pcm)))
    if peak > MAX_PEAK:
        return f"a peak of {peak:.3g}x full scale (over {MAX_PEAK:g}x)"
    return None


class SoundGuard:
    """Where every voice's audio passes on its way to the face: a sentence whose audio breaks
    ``audio_fault`` ends there, logged and counted, instead of crashing the turn downstream
    (the mouth face cannot turn NaN into an opening)."""

    def __init__(self) -> None:
        self.unsound = 0  # sentences cut short for unplayable audio

    async def sound(
        self, parts: AsyncGenerator[T, None], pcm_of: Callable[[T], np.ndarray], what: str
    ) -> AsyncGenerator[T, None]:
        """``parts`` up to the first whose audio is unplayable (the voice is closed there)."""
        async with contextlib.aclosing(parts) as parts:
            async for part in parts:
                if (fault := audio_fault(pcm_of(part))) is not None:
                    self.unsound += 1
                    log.error(
                        "the voice's audio for %s is unplayable (%s): the sentence ends there",
                        what,
                        fault,
                    )
                    return
                yield part


@runtime_checkable
class AlignedVoice(Voice, Protocol):
    """A voice that also reports when each phoneme starts (for visemes)."""

    def speak_aligned(
        self, text: str, lang: str | None = None
    ) -> AsyncGenerator[tuple[np.ndarray, list[tuple[float, str]]], None]: ...


def to_speech(
    pcm: np.ndarray,
    rate: int,
    sentence: Sentence,
    fps: int,
    phonemes: list[tuple[float, str]] | None = None,
) -> Speech:
    """Resample a voice's audio to 48 kHz, pad it to whole frames, and derive the 16 kHz copy.

    The 16 kHz copy is decimated from the padded 48 kHz signal (an exact 1/3 ratio), so both
    hold exactly ``frames`` frame-periods: 1920 and 640 samples per frame at 25 fps.
    """
    spf = samples_per_frame(fps)
    pcm48 = resample(pcm, rate, OUTPUT_RATE)
    frames = max(1, -(-pcm48.size // spf))
    padded = np.zeros(frames * spf, dtype=np.float32)
    padded[: pcm48.size] = pcm48
    pcm16 = resample(padded, OUTPUT_RATE, FACE_RATE)[: frames * samples_per_frame(fps, FACE_RATE)]
    visemes = tuple(frame_visemes(phonemes, frames, fps)) if phonemes is not None else None
    return Speech(
        turn_id=sentence.turn_id,
        sentence=sentence,
        pcm48k=padded,
        pcm16k=pcm16,
        frames=frames,
        visemes=visemes,
    )
