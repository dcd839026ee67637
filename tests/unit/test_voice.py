import gc
import tracemalloc

import numpy as np
import pytest

from streambot.config import ConfigError, EspeakVoiceConfig
from streambot.events import Sentence
from streambot.resample import resample
from streambot.timing import FACE_RATE, OUTPUT_RATE, samples_per_frame
from streambot.voice.base import to_speech
from streambot.voice.espeak import EspeakVoice


@pytest.fixture(scope="module")
def voice() -> EspeakVoice:
    return EspeakVoice(EspeakVoiceConfig())


def test_espeak_rate_and_plausible_length(voice):
    assert voice.sample_rate == 22_050
    short = voice.synth_float("Hello.")
    long = voice.synth_float("Hello, the grinder ships free in two to four days, order now.")
    assert short.dtype == np.float32 and np.abs(short).max() > 0.1
    assert 0.2 < short.size / 22_050 < 1.5
    assert long.size > 3 * short.size


def test_chinese_uses_the_mandarin_voice(voice):
    assert voice.voice_for("zh") == "cmn"
    pcm = voice.synth_float("保温杯的价格是二十四元。")
    assert pcm.size / 22_050 > 1.0 and np.abs(pcm).max() > 0.1


def test_synthesis_keeps_no_memory_per_sentence(voice):
    """A 24/7 host speaks millions of sentences: nothing may pile up per sentence (ctypes
    array types made per chunk length once leaked about 5 KiB a sentence here)."""
    voice.synth("Warm up.", "en")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for words in range(1, 60):  # every length differs, so every last chunk does too
            voice.synth(" ".join(["word"] * words) + ".", "en")
        voice.synth("Done.", "en")  # the last sentence's own buffers are small
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    retained = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert retained < 64 * 1024, f"{retained} bytes kept after 59 sentences"


async def test_speak_streams_one_array_per_sentence(voice):
    parts = [p async for p in voice.speak("Hi there, welcome. The lamp is sold out, sorry!")]
    assert len(parts) == 2  # whole sentences: the splitter upstream already released clauses


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"voice\.espeak\.voice_en: .*no voice named 'xx-nope'"):
        EspeakVoice(EspeakVoiceConfig(voice_en="xx-nope"))


@pytest.mark.parametrize("n", [1, 147, 22_050, 22_051, 33_333])
def test_speech_is_whole_frames_at_exact_rates(n):
    pcm = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    speech = to_speech(pcm, 22_050, Sentence(1, 0, "x", "en"), fps=25)
    expected_48k = int(np.ceil(n * OUTPUT_RATE / 22_050))
    assert speech.frames == -(-expected_48k // samples_per_frame(25))
    assert speech.pcm48k.size == speech.frames * samples_per_frame(25)
    assert speech.pcm16k.size == speech.frames * samples_per_frame(25, FACE_RATE)


def test_resampled_tone_keeps_its_pitch():
    rate_in, f = 22_050, 440.0
    t = np.arange(rate_in) / rate_in
    out = resample(np.sin(2 * np.pi * f * t).astype(np.float32), rate_in, 48_000)
    assert out.size == 48_000
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert abs(np.argmax(spectrum) * 48_000 / out.size - f) < 2
