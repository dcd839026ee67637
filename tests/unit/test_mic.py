"""The microphone chat source: WAV in, Silero VAD cuts, a tiny real Whisper model transcribes."""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper")

from faster_whisper.vad import VadOptions, get_speech_timestamps

from streambot.chat.audio_input import (
    FileAudioSource,
    MicError,
    MicUnavailable,
    SoundDeviceSource,
)
from streambot.chat.mic import MicChatSource
from streambot.chat.vad import SAMPLE_RATE, Utterance
from streambot.events import Kind
from streambot.resample import StreamResampler, resample

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from needs import need_torch
from whisper_fixture import build_tiny_whisper_ct2

WAV_RATE = 48_000  # a typical sound card rate, so the 48 kHz -> 16 kHz path is exercised
SPEECH = [(1.0, 2.5), (3.5, 5.0)]  # seconds where the speech-like bursts are
FAST = {"beam_size": 1, "temperature": 0.0, "max_new_tokens": 8}  # the random model babbles


def speechlike(seconds: float, rng: np.random.Generator, f0: float) -> np.ndarray:
    """Voiced harmonics with vibrato, vowel-like formants changing at a syllable rate of 4 Hz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3.0 * t) + 0.03 * np.sin(2 * np.pi * 7.3 * t))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    formants = [(700, 1200), (300, 2300), (500, 900), (400, 2000)]
    syllable = (t * 4).astype(int) % len(formants)
    sig = np.zeros_like(t)
    for k in range(1, 30):
        hk = k * f
        amp = np.zeros_like(t)
        for i, (f1, f2) in enumerate(formants):
            m = syllable == i
            amp[m] = np.exp(-(((hk[m] - f1) / 150) ** 2)) + 0.6 * np.exp(
                -(((hk[m] - f2) / 200) ** 2)
            )
            amp[m] += 0.05 / k
        sig += amp * np.sin(k * phase)
    sig *= 0.5 * (1 - np.cos(2 * np.pi * 4 * t))  # syllable-rate amplitude modulation
    sig = sig / np.max(np.abs(sig)) * 0.5 + 0.01 * rng.standard_normal(t.size)
    return sig.astype(np.float32)


def conversation16k() -> np.ndarray:
    rng = np.random.default_rng(0)

    def silence(s: float) -> np.ndarray:
        return (0.002 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32)

    return np.concatenate(
        [
            silence(1.0),
            speechlike(1.5, rng, 140.0),
            silence(1.0),
            speechlike(1.5, rng, 190.0),
            silence(1.0),
        ]
    )


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())
    return path


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The tiny model is built with torch + transformers, which the dev extra leaves out so
    # that no multi-GB CUDA build is pulled: `pip install torch` (a CPU build will do) to run.
    need_torch()
    return build_tiny_whisper_ct2(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def conversation_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pcm = resample(conversation16k(), SAMPLE_RATE, WAV_RATE)
    return write_wav(tmp_path_factory.mktemp("audio") / "cohost.wav", pcm, WAV_RATE)


def test_the_synthetic_signal_is_speech_to_silero() -> None:
    spans = get_speech_timestamps(
        conversation16k(), VadOptions(min_silence_duration_ms=500, speech_pad_ms=0)
    )
    got = [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in spans]
    assert len(got) == 2, got
    for (start, end), (want_start, want_end) in zip(got, SPEECH, strict=True):
        assert abs(start - want_start) < 0.3 and abs(end - want_end) < 0.3, got


def test_the_mics_stream_resampler_matches_one_shot_resampling() -> None:
    rng = np.random.default_rng(1)
    for rate in (48_000, 44_100, 16_000):
        x = rng.standard_normal(rate + 321).astype(np.float32)
        r, parts, i = StreamResampler(rate, SAMPLE_RATE), [], 0
        while i < x.size:
            n = int(rng.integers(1, 3000))
            parts.append(r.push(x[i : i + n]))
            i += n
        parts.append(r.flush())
        np.testing.assert_allclose(np.concatenate(parts), resample(x, rate, SAMPLE_RATE), atol=1e-6)


async def test_vad_cuts_two_utterances_at_the_right_times(
    tiny_whisper: Path, conversation_wav: Path
) -> None:
    mic = MicChatSource(str(tiny_whisper), audio_source=FileAudioSource(conversation_wav))
    cuts = [u async for u in mic.utterances()]
    assert [u.cut for u in cuts] == ["silence", "silence"]
    for u, (want_start, want_end) in zip(cuts, SPEECH, strict=True):
        assert abs(u.start_s - want_start) <= 0.3, cuts
        assert abs(u.end_s - want_end) <= 0.3, cuts
        assert u.pcm.dtype == np.float32
        assert u.pcm.size == round((u.end_s - u.start_s) * SAMPLE_RATE)


async def test_each_utterance_goes_through_the_real_whisper_model(
    tiny_whisper: Path, conversation_wav: Path
) -> None:
    mic = MicChatSource(
        str(tiny_whisper),
        language="en",
        user="alice",
        audio_source=FileAudioSource(conversation_wav),
        transcribe_options=FAST,
    )
    model = mic.load_model()
    calls: list[tuple[int, str, str | None]] = []
    real = model.transcribe

    def spy(audio: np.ndarray, **kwargs):
        calls.append((audio.size, str(audio.dtype), kwargs.get("language")))
        return real(audio, **kwargs)

    model.transcribe = spy
    messages = [m async for m in mic.messages()]
    assert len(calls) == 2
    for (size, dtype, language), (start, end) in zip(calls, SPEECH, strict=True):
        assert dtype == "float32" and language == "en"
        # 16 kHz audio covering the burst (plus the VAD's padding)
        assert (end - start) * SAMPLE_RATE <= size <= (end - start + 0.6) * SAMPLE_RATE
    assert len(messages) == 2  # this seed's random model babbles non-empty gibberish
    for m in messages:  # the text means nothing, but it comes out as voice chat
        assert (m.source, m.user, m.kind) == ("mic", "alice", Kind.VOICE)
        assert m.text.strip() and m.malformed is None
        assert m.meta["cut"] == "silence" and m.meta["language"] == "en"


async def test_a_dropped_input_is_retried(tiny_whisper: Path, conversation_wav: Path) -> None:
    class Flaky:
        name = "flaky"

        def __init__(self) -> None:
            self.inner, self.opens = FileAudioSource(conversation_wav), 0
            self.sample_rate: int | None = None

        async def chunks(self):
            self.opens += 1
            if self.opens == 1:
                raise MicUnavailable("unplugged")
            async for chunk in self.inner.chunks():
                self.sample_rate = self.inner.sample_rate
                yield chunk

    source = Flaky()
    mic = MicChatSource(str(tiny_whisper), audio_source=source, retry_s=0.01)
    cuts: list[Utterance] = [u async for u in mic.utterances()]
    assert source.opens == 2 and len(cuts) == 2


def test_a_missing_model_names_the_config_key(tmp_path: Path) -> None:
    for bad in ("", str(tmp_path / "nope"), str(tmp_path)):
        with pytest.raises(MicError, match=r"chat\.mic\.model"):
            MicChatSource(bad, audio_source=FileAudioSource(tmp_path / "x.wav"))


async def test_a_missing_audio_file_is_a_clear_error(tiny_whisper: Path, tmp_path: Path) -> None:
    mic = MicChatSource(str(tiny_whisper), audio_source=FileAudioSource(tmp_path / "x.wav"))
    with pytest.raises(MicError, match="audio file not found"):
        [m async for m in mic.messages()]


async def test_no_portaudio_or_device_is_a_clear_error() -> None:
    try:
        import sounddevice

        sounddevice.query_devices(kind="input")
    except Exception:
        pass
    else:
        pytest.skip("a real audio input device exists here")
    with pytest.raises(MicUnavailable, match=r"libportaudio2|chat\.mic\.device"):
        async for _ in SoundDeviceSource().chunks():
            break
