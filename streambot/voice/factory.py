"""Builds the configured voice. A missing or broken Piper voice is reported once, clearly, and
the host speaks with espeak-ng instead, so it still goes live.

Each configured Piper voice speaks its own language; a reply in a language with no Piper voice
goes to espeak-ng (e.g. Mandarin replies with only an English Piper voice). With ``decoder =
"auto"`` a voice whose decoder ``build_engines.py`` pruned runs that engine, streamed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streambot.config import Config, PiperVoiceConfig
from streambot.lang import detect_lang
from streambot.resample import resample
from streambot.voice.base import AudioPiece, Voice, pieces_of
from streambot.voice.espeak import EspeakVoice

if TYPE_CHECKING:  # onnxruntime is an optional extra
    from streambot.voice.decoder_engine import OnnxDecoder, TorchDecoder
    from streambot.voice.piper import PiperVoice

log = logging.getLogger(__name__)
VOICE_KIND = "voice"  # the manifest kind of a voice's pruned decoder


class LanguageRoutedVoice:
    """Each language to its own voice, the rest to espeak-ng; ``speak`` resamples to the
    main voice's rate, ``speak_pieces`` hands pieces on at their own rate."""

    def __init__(self, voices: Mapping[str, Voice], fallback: EspeakVoice) -> None:
        if not voices:
            raise ValueError("a routed voice needs at least one voice")
        self.voices, self.fallback = dict(voices), fallback
        self.sample_rate = next(iter(self.voices.values())).sample_rate

    def voice_for(self, lang: str) -> Voice:
        return self.voices.get(lang, self.fallback)

    async def speak(self, text: str, lang: str | None = None) -> AsyncGenerator[np.ndarray, None]:
        lang = lang or detect_lang(text)
        voice = self.voice_for(lang)
        async for pcm in voice.speak(text, lang):
            yield resample(pcm, voice.sample_rate, self.sample_rate)

    async def speak_pieces(
        self, text: str, lang: str | None = None
    ) -> AsyncGenerator[AudioPiece, None]:
        lang = lang or detect_lang(text)
        async for piece in pieces_of(self.voice_for(lang), text, lang):
            yield piece


def http_voice(config: Config) -> Voice:
    """The TTS server's voice, with the local voice (Piper when one is configured, else
    espeak-ng) speaking whatever the server cannot."""
    from streambot.voice.http_speech import HttpSpeechVoice

    cfg = config.voice.http
    local = config.model_copy(deep=True)
    local.voice.backend = "piper" if config.voice.piper.model else "espeak"
    fallback = build_voice(local)
    log.info(
        "voice: TTS server %s (voice %r), %s when it fails",
        cfg.base_url,
        cfg.voice,
        type(fallback).__name__,
    )
    return HttpSpeechVoice(
        cfg.base_url,
        cfg.model,
        cfg.voice,
        cfg.api_key(),
        fallback,
        response_format=cfg.response_format,
        pcm_rate=cfg.pcm_rate,
        speed=cfg.speed,
        extra=cfg.extra,
        first_byte_timeout=cfg.first_byte_timeout_s,
        idle_timeout=cfg.idle_timeout_s,
        total_timeout=cfg.total_timeout_s,
        max_audio_floor=cfg.max_audio_floor_s,
        max_audio_per_char=cfg.max_audio_s_per_char,
        retries=cfg.retry.retries,
        failure_threshold=cfg.retry.failure_threshold,
        open_seconds=cfg.retry.open_seconds,
    )


def voice_language(voice: PiperVoice) -> str:
    """The language a Piper voice's .onnx.json says it speaks ("en", "zh", ...)."""
    lang = voice.voice_config.get("language", {}).get("family") or voice.espeak_voice[:2]
    return "zh" if lang in ("zh", "cmn") else lang


def piper_voice(config: Config, model: str = "") -> PiperVoice:
    """The configured Piper voice (``model``: one of ``voices``, else the main one), with the
    decoder ``cfg.decoder`` asks for; VoiceError (or ImportError) says what is wrong."""
    from streambot.voice.piper import PiperSettings, PiperVoice

    cfg = config.voice.piper
    model = model or cfg.model
    voice_json = cfg.config if model == cfg.model else ""
    engines_dir = config.engines.dir
    settings = PiperSettings(cfg.noise_scale, cfg.length_scale, cfg.noise_w, cfg.speaker_id)
    if cfg.decoder in ("auto", "engine"):
        engine, refused = built_decoder(Path(model), engines_dir)
        if engine is not None:
            from streambot.voice.piper_split import SplitPiperVoice

            log.info("voice %s: pruned decoder %s, streamed", Path(model).name, engine.path.name)
            return SplitPiperVoice(
                model,
                voice_json or None,
                work_dir=cfg.work_dir or None,
                decoder=engine,
                settings=settings,
            )
        if cfg.decoder == "auto":
            return _own_decoder_streamed(cfg, model, voice_json, settings)
        if cfg.decoder == "engine":
            from streambot.voice.piper import VoiceError

            why = "; ".join(refused) or f"{engines_dir} has none for {Path(model).name}"
            raise VoiceError(
                f"voice.piper.decoder is engine, but no engine is usable: {why} "
                "(python build_engines.py --only voice)"
            )
    if cfg.decoder == "split":
        from streambot.voice.piper_split import SplitPiperVoice

        return SplitPiperVoice(
            model, voice_json or None, work_dir=cfg.work_dir or None, settings=settings
        )
    return PiperVoice(model, voice_json or None, settings=settings)


def _own_decoder_streamed(cfg: PiperVoiceConfig, model: str, config: str, settings):
    """The voice with its own (unpruned) decoder, streamed: the first audio still leaves after
    one chunk. Without PyTorch (the piper extra alone) it cannot be split: the whole voice."""
    from streambot.voice.piper import PiperVoice

    try:
        from streambot.voice.decoder_engine import OnnxDecoder
        from streambot.voice.piper_split import SplitPiperVoice, own_decoder_path
    except ImportError as exc:
        log.info("voice %s: not streamed (%s); the whole voice per sentence", model, exc)
        return PiperVoice(model, config or None, settings=settings)
    decoder = OnnxDecoder(own_decoder_path(model, cfg.work_dir or None))
    log.info("voice %s: its own decoder, streamed (no usable pruned engine)", Path(model).name)
    return SplitPiperVoice(
        model, config or None, work_dir=cfg.work_dir or None, decoder=decoder, settings=settings
    )


def built_decoder(
    model: Path, engines_dir: str
) -> tuple[OnnxDecoder | TorchDecoder | None, list[str]]:
    """The pruned decoder build_engines.py made for ``model``, if one is usable here, and why
    each one that is not was refused (a changed voice file makes its engine stale)."""
    from streambot.runtime.manifest import Device
    from streambot.runtime.select import choose, voice_inputs
    from streambot.voice.decoder_engine import OnnxDecoder, TorchDecoder

    if not model.is_file():
        return None, []
    inputs = functools.partial(voice_inputs, model)
    choice = choose(VOICE_KIND, engines_dir, inputs, Device(), source=model.name)
    if choice.path is None or choice.artifact is None:
        return None, list(choice.refused)
    if choice.artifact.backend == "torch":  # the state dict + widths, when no ONNX is usable
        from streambot.models.hifigan import HiFiGAN

        return TorchDecoder(HiFiGAN.from_checkpoint(choice.path), choice.path), []
    return OnnxDecoder(choice.path), list(choice.refused)


def build_voice(config: Config) -> Voice:
    if config.voice.backend == "http":
        return http_voice(config)
    espeak = EspeakVoice(config.voice.espeak)
    if config.voice.backend != "piper":
        return espeak
    cfg = config.voice.piper
    try:
        from streambot.voice.piper import VoiceError
    except ImportError as exc:  # pragma: no cover - onnxruntime is imported lazily
        log.warning("Piper voice unavailable (%s), speaking with espeak-ng", exc)
        return espeak
    models = ([("", cfg.model)] if cfg.model else []) + list(cfg.voices.items())
    if not models:
        log.warning("voice.backend is piper but voice.piper.model is empty; using espeak-ng")
        return espeak
    voices: dict[str, Voice] = {}
    for wanted, model in models:
        try:
            voice = piper_voice(config, model)
        except (VoiceError, ImportError) as exc:
            log.warning("Piper voice unavailable, speaking with espeak-ng instead: %s", exc)
            continue
        lang = voice_language(voice)
        if wanted and lang != wanted:
            log.warning(
                "voice.piper.voices.%s: %s says it speaks %r; used for %s anyway",
                wanted,
                Path(model).name,
                lang,
                wanted,
            )
        lang = wanted or lang
        if lang in voices:
            log.warning("two Piper voices for %s: %s is not used", lang, Path(model).name)
            continue
        voices[lang] = voice
        log.info("Piper voice %s (%s, %d Hz)", Path(model).name, lang, voice.sample_rate)
    if not voices:
        return espeak
    return LanguageRoutedVoice(voices, espeak)
