"""The embedded default voice: espeak-ng (from the espeakng-loader wheel), English and Mandarin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np

from streambot.config import ConfigError, EspeakVoiceConfig
from streambot.lang import detect_lang
from streambot.sentences import split_sentences
from streambot.voice.espeak_lib import EspeakError, EspeakLibrary, Synthesis

# espeak pads each utterance with silence; keep a little so sentences do not run together.
_KEEP_SILENCE_S = 0.06
_SILENCE_LEVEL = 0.01


def trim_bounds(pcm: np.ndarray, rate: int) -> tuple[int, int]:
    """[start, end) of the audible part plus a little silence either side."""
    loud = np.flatnonzero(np.abs(pcm) > _SILENCE_LEVEL)
    if loud.size == 0:
        return 0, 0
    keep = int(_KEEP_SILENCE_S * rate)
    return max(0, int(loud[0]) - keep), min(pcm.size, int(loud[-1]) + 1 + keep)


class EspeakVoice:
    def __init__(self, config: EspeakVoiceConfig) -> None:
        self._config = config
        self._lib = EspeakLibrary.get()
        self.sample_rate = self._lib.sample_rate
        # Fail at start-up, not mid-stream, when a configured voice does not exist.
        for key, voice in (("voice_en", config.voice_en), ("voice_zh", config.voice_zh)):
            try:
                self._lib.synth("", voice)
            except EspeakError as exc:
                raise ConfigError(f"voice.espeak.{key}: {exc}") from None

    def voice_for(self, lang: str) -> str:
        return self._config.voice_zh if lang == "zh" else self._config.voice_en

    def synth(self, text: str, lang: str | None = None) -> Synthesis:
        """Blocking synthesis of one sentence (call from a worker thread)."""
        lang = lang or detect_lang(text)
        return self._lib.synth(text, self.voice_for(lang), self._config.words_per_minute)

    def synth_aligned(
        self, text: str, lang: str | None = None
    ) -> tuple[np.ndarray, list[tuple[float, str]]]:
        """Float audio, silence-trimmed, and its phonemes as (start seconds, mnemonic)."""
        synthesis = self.synth(text, lang)
        pcm = synthesis.pcm.astype(np.float32) / 32768.0
        start, end = trim_bounds(pcm, self.sample_rate)
        pcm = np.clip(pcm[start:end] * self._config.gain, -1.0, 1.0)
        events = [
            ((event.sample - start) / self.sample_rate, event.phoneme)
            for event in synthesis.phonemes
        ]
        return pcm, events

    def synth_float(self, text: str, lang: str | None = None) -> np.ndarray:
        return self.synth_aligned(text, lang)[0]

    async def speak(self, text: str, lang: str | None = None) -> AsyncGenerator[np.ndarray, None]:
        for sentence in split_sentences(text, early_first_clause=False):
            yield await asyncio.to_thread(self.synth_float, sentence, lang)

    async def speak_aligned(
        self, text: str, lang: str | None = None
    ) -> AsyncGenerator[tuple[np.ndarray, list[tuple[float, str]]], None]:
        """Like ``speak``, with each sentence's phoneme timing for visemes."""
        for sentence in split_sentences(text, early_first_clause=False):
            yield await asyncio.to_thread(self.synth_aligned, sentence, lang)
