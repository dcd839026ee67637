"""Builds the configured voice. A missing or broken Piper voice is reported once, clearly, and
the host speaks with espeak-ng instead, so it still goes live."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streambot.config import Config, PiperVoiceConfig
from streambot.lang import detect_lang
from streambot.voice.base import Voice
from streambot.voice.espeak import EspeakVoice
from streambot.voice.resample import resample

if TYPE_CHECKING:  # onnxruntime is an optional extra
    from streambot.voice.piper import PiperVoice

log = logging.getLogger(__name__)


class LanguageRoutedVoice:
    """Piper for the languages its voice speaks, espeak for the rest (e.g. Mandarin replies
    with an English Piper voice), resampled to the main voice's rate."""

    def __init__(self, main: Voice, main_lang: str, fallback: EspeakVoice) -> None:
        self.main, self.main_lang, self.fallback = main, main_lang, fallback
        self.sample_rate = main.sample_rate

    async def speak(self, text: str, lang: str | None = None) -> AsyncIterator[np.ndarray]:
        lang = lang or detect_lang(text)
        if lang == self.main_lang:
            async for pcm in self.main.speak(text, lang):
                yield pcm
            return
        async for pcm in self.fallback.speak(text, lang):
            yield resample(pcm, self.fallback.sample_rate, self.sample_rate)


def piper_voice(cfg: PiperVoiceConfig) -> PiperVoice:
    """The configured Piper voice; VoiceError (or ImportError) says what is wrong with it."""
    from streambot.voice.piper import PiperSettings, PiperVoice

    settings = PiperSettings(cfg.noise_scale, cfg.length_scale, cfg.noise_w, cfg.speaker_id)
    if cfg.decoder == "split":
        from streambot.voice.piper_split import SplitPiperVoice

        return SplitPiperVoice(
            cfg.model, cfg.config or None, work_dir=cfg.work_dir or None, settings=settings
        )
    return PiperVoice(cfg.model, cfg.config or None, settings=settings)


def build_voice(config: Config) -> Voice:
    espeak = EspeakVoice(config.voice.espeak)
    if config.voice.backend != "piper":
        return espeak
    cfg = config.voice.piper
    try:
        from streambot.voice.piper import VoiceError
    except ImportError as exc:  # pragma: no cover - onnxruntime is imported lazily
        log.warning("Piper voice unavailable (%s), speaking with espeak-ng", exc)
        return espeak
    if not cfg.model:
        log.warning("voice.backend is piper but voice.piper.model is empty; using espeak-ng")
        return espeak
    try:
        voice = piper_voice(cfg)
    except (VoiceError, ImportError) as exc:
        log.warning("Piper voice unavailable, speaking with espeak-ng instead: %s", exc)
        return espeak
    lang = voice.voice_config.get("language", {}).get("family") or voice.espeak_voice[:2]
    lang = "zh" if lang in ("zh", "cmn") else "en" if lang == "en" else lang
    log.info("Piper voice %s (%s, %d Hz)", Path(cfg.model).name, lang, voice.sample_rate)
    return LanguageRoutedVoice(voice, lang, espeak)
