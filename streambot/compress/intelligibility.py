"""How intelligible a voice is: what a trained speech recogniser hears, as a word error rate.

Spectral distances say how far a pruned decoder's audio is from the original's; they do not say
whether a listener still understands it. A recogniser does, roughly: the same sentences are
spoken by both decoders and transcribed, and the two word error rates are compared. The
recogniser is PocketSphinx with the trained US-English acoustic model and language model its
wheel ships (offline, no download); its error rate on clean synthetic speech is well above
zero, so only the difference between voices means anything, not the figure on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from streambot.resample import resample

ASR_RATE = 16_000  # the acoustic model's sample rate
# Heard from each decoder: plain words the recogniser's dictionary has, none of them product
# names (which it cannot spell) and none from the text the decoder was distilled on.
EVERYDAY_EN = (
    "Thank you for watching, see you tomorrow.",
    "The lamp is in stock and ships in two days.",
    "Yes, it comes in black, white and green.",
    "The price today is twenty nine dollars.",
    "Free shipping on every order over fifty dollars.",
    "This bottle keeps your coffee hot all morning.",
    "Please ask me anything about the sizes.",
    "We have only three left, so order soon.",
    "The battery lasts about ten hours.",
    "It is made of steel and weighs very little.",
    "You can return it within thirty days.",
    "Welcome to the stream, my friend.",
    "The new colors arrive next week.",
    "Good question, let me check that for you.",
    "The small one fits in any bag.",
    "Every order comes with a two year warranty.",
    "I love this one, it is my favorite.",
    "The kitchen set is on sale this weekend.",
    "Hello everyone, thanks for joining us tonight.",
    "That is a great choice for a gift.",
)


class IntelligibilityError(RuntimeError):
    pass


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped, as the recogniser writes them."""
    return re.findall(r"[a-z']+", text.lower())


def word_errors(reference: Sequence[str], heard: Sequence[str]) -> int:
    """Substitutions + deletions + insertions turning ``reference`` into ``heard``
    (Levenshtein over words: a dozen lines, not worth a dependency)."""
    row = list(range(len(heard) + 1))
    for i, ref in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, got in enumerate(heard, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref != got))
    return row[-1]


def word_error_rate(references: Sequence[str], transcripts: Sequence[str]) -> float:
    """Errors over all sentences / reference words over all sentences."""
    refs = [words(r) for r in references]
    errors = sum(word_errors(r, words(t)) for r, t in zip(refs, transcripts, strict=True))
    return errors / max(1, sum(len(r) for r in refs))


class Transcriber:
    """English speech to text with PocketSphinx's packaged model, one utterance at a time."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise IntelligibilityError(
                "measuring intelligibility needs pocketsphinx: pip install pocketsphinx"
            ) from exc
        self._decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")

    def transcribe(self, pcm: np.ndarray, rate: int) -> str:
        audio = resample(np.asarray(pcm, dtype=np.float32), rate, ASR_RATE)
        raw = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(raw, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""
