import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import chirp, lfilter

from streambot.face import mel as mel_module
from streambot.face.mel import (
    HOP,
    MEL_STEP,
    N_MELS,
    SAMPLE_RATE,
    StreamingMel,
    StreamingMelWindows,
    mel_windows,
    melspectrogram,
    window_starts,
)

LENGTHS = [300, 640, 1001, 12345, 16000]  # very short (repeated reflection), one frame, odd


def speech_like(n: int, seed: int = 0) -> np.ndarray:
    """A chirp through the speech band with a little noise."""
    t = np.arange(n) / SAMPLE_RATE
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.3 * chirp(t, 100, 1.0, 4000) + 0.02 * noise).astype(np.float32)


def silence(n: int, seed: int = 0) -> np.ndarray:
    return np.zeros(n, np.float32)


def clipped_tone(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return np.clip(1.8 * np.sin(2 * np.pi * 330 * t), -1, 1).astype(np.float32)


def librosa_reference(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's audio.melspectrogram, computed with librosa's own STFT and filterbank."""
    librosa = pytest.importorskip("librosa")
    y = lfilter([1, -0.97], [1], wav.astype(np.float64))
    with warnings.catch_warnings():  # n_fft longer than very short inputs
        warnings.simplefilter("ignore", UserWarning)
        stft = librosa.stft(
            y, n_fft=800, hop_length=200, win_length=800, center=True, pad_mode="reflect"
        )
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    spec = np.dot(basis, np.abs(stft))
    db = 20 * np.log10(np.maximum(1e-5, spec)) - 20
    return np.clip(8 * ((db - -100) / 100) - 4, -4, 4)


def chunked(stream: StreamingMel, wav: np.ndarray, cuts: list[int]) -> np.ndarray:
    bounds = [0, *sorted(cuts), wav.size]
    parts = [stream.push(wav[a:b]) for a, b in itertools.pairwise(bounds)]
    return np.concatenate([*parts, stream.finish()], axis=1)


def chunked_windows(fps: int, wav: np.ndarray, cuts: list[int], n_frames: int) -> np.ndarray:
    stream = StreamingMelWindows(fps)
    bounds = [0, *sorted(cuts), wav.size]
    parts = [stream.push(wav[a:b]) for a, b in itertools.pairwise(bounds)]
    return np.concatenate([*parts, stream.finish(n_frames)])


# --- whole-signal features -------------------------------------------------------------------


def test_mel_basis_is_librosas():
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    assert mel_module._mel_basis().shape == (80, 401)
    assert np.abs(mel_module._mel_basis() - expected).max() <= 1e-7


def test_preemphasis_is_lfilter():
    x = speech_like(3000).astype(np.float64)
    expected = lfilter([1, -0.97], [1], x)
    np.testing.assert_allclose(mel_module._preemphasis(x, 0.0), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("signal", [speech_like, silence, clipped_tone])
@pytest.mark.parametrize("n", LENGTHS)
def test_matches_librosa_reference(signal, n):
    wav = signal(n)
    out = melspectrogram(wav)
    assert out.dtype == np.float32
    assert out.shape == (N_MELS, 1 + n // HOP)
    assert np.abs(out - librosa_reference(wav)).max() <= 1e-4


def test_silence_is_minus_four_and_loud_is_bounded():
    assert np.all(melspectrogram(silence(4000)) == -4.0)
    loud = melspectrogram(clipped_tone(4000))
    assert loud.min() >= -4.0 and loud.max() <= 4.0 and loud.max() > 2.0


def test_empty_and_bad_input():
    assert melspectrogram(np.zeros(0, np.float32)).shape == (N_MELS, 0)
    with pytest.raises(ValueError, match="mono"):
        melspectrogram(np.zeros((2, 640), np.float32))


# --- streaming features ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 4000),
    seed=st.integers(0, 2**16),
    fractions=st.lists(st.floats(0, 1), max_size=12),
)
def test_streaming_equals_whole_for_any_chunking(n, seed, fractions):
    wav = speech_like(n, seed)
    cuts = [int(f * n) for f in fractions]  # repeated cuts give empty pushes
    out = chunked(StreamingMel(), wav, cuts)
    expected = melspectrogram(wav)
    assert out.shape == expected.shape
    assert out.size == 0 or np.abs(out - expected).max() <= 1e-5


def test_streaming_one_sample_chunks_and_empty_pushes():
    wav = speech_like(1900, seed=3)
    stream = StreamingMel()
    parts = [stream.push(np.zeros(0, np.float32))]
    for sample in wav:
        parts.append(stream.push(np.array([sample])))
        parts.append(stream.push(np.zeros(0, np.float32)))
    out = np.concatenate([*parts, stream.finish()], axis=1)
    assert np.abs(out - melspectrogram(wav)).max() <= 1e-5


def test_frames_are_final_as_soon_as_their_samples_arrived():
    stream = StreamingMel()
    assert stream.push(np.ones(400, np.float32)).shape == (N_MELS, 0)  # left mirror needs 401
    assert stream.push(np.ones(1, np.float32)).shape == (N_MELS, 1)
    assert stream.push(np.ones(198, np.float32)).shape == (N_MELS, 0)
    assert stream.push(np.ones(1, np.float32)).shape == (N_MELS, 1)  # frame 1 ends at 600
    assert stream.finish().shape == (N_MELS, 1 + 600 // HOP - 2)


def test_streaming_memory_is_bounded_and_finish_resets():
    wav = speech_like(10 * SAMPLE_RATE, seed=5)
    stream = StreamingMel()
    parts = []
    for start in range(0, wav.size, 320):
        parts.append(stream.push(wav[start : start + 320]))
        assert stream._padded is None or stream._padded.size < 800 + 320
    first = np.concatenate([*parts, stream.finish()], axis=1)
    assert np.abs(first - melspectrogram(wav)).max() <= 1e-5
    again = chunked(StreamingMel(), wav[:5000], [1234])
    assert np.array_equal(chunked(stream, wav[:5000], [1234]), again)


# --- per-video-frame windows -----------------------------------------------------------------


def test_window_starts_at_25_fps():
    starts = window_starts(10, 1000, 25)
    assert starts.tolist() == [16 * i // 5 for i in range(10)]
    assert starts[1] == 3 and starts[2] == 6 and starts[5] == 16
    for fps in (24, 25, 30, 60):  # the exact form agrees with Wav2Lip's int(i * 80. / fps)
        i = np.arange(5000)
        assert np.array_equal(window_starts(5000, 10**6, fps), (i * (80.0 / fps)).astype(int))


def test_window_starts_clamp():
    assert window_starts(10, 20, 25).tolist() == [0, 3, 4, 4, 4, 4, 4, 4, 4, 4]
    assert window_starts(5, 16, 25).tolist() == [0] * 5
    assert window_starts(5, 7, 25).tolist() == [0] * 5  # shorter than one window
    assert window_starts(0, 100, 25).shape == (0,)
    with pytest.raises(ValueError):
        window_starts(3, 100, 0)


def test_mel_windows_shape_and_end_clamp():
    mel = np.tile(np.arange(30, dtype=np.float32), (N_MELS, 1))  # column j holds j
    windows = mel_windows(mel, 12, 25)
    assert windows.shape == (12, N_MELS, MEL_STEP) and windows.dtype == np.float32
    for i, start in enumerate(window_starts(12, 30, 25)):
        assert np.array_equal(windows[i], mel[:, start : start + MEL_STEP])
    assert windows[4, 0, 0] == 12  # 4 * 80 // 25, unclamped
    assert np.array_equal(windows[-1], mel[:, -MEL_STEP:])  # clamped to the last 16 frames
    assert windows[-1, 0, 0] == 14


def test_mel_windows_pads_short_mel_with_silence():
    mel = melspectrogram(speech_like(640))  # 4 mel frames for one video frame
    windows = mel_windows(mel, 1, 25)
    assert windows.shape == (1, N_MELS, MEL_STEP)
    assert np.array_equal(windows[0, :, :4], mel)
    assert np.all(windows[0, :, 4:] == -4.0)


@pytest.mark.parametrize("frames", [0, 1, 3, 5, 7, 50])
@pytest.mark.parametrize("chunk", [1, 333, 640, 2000, 10**6])
def test_streaming_windows_equal_mel_windows(frames, chunk):
    wav = speech_like(frames * 640, seed=frames)
    n_frames = wav.size // 640
    stream = StreamingMelWindows(25)
    parts, emitted = [], 0
    for start in range(0, wav.size, chunk):
        parts.append(stream.push(wav[start : start + chunk]))
        emitted += len(parts[-1])
        assert emitted <= n_frames  # push never runs ahead of the video
    out = np.concatenate([*parts, stream.finish(n_frames)])
    expected = mel_windows(melspectrogram(wav), n_frames, 25)
    assert out.shape == expected.shape == (n_frames, N_MELS, MEL_STEP)
    assert out.size == 0 or np.abs(out - expected).max() <= 1e-5


@settings(max_examples=40, deadline=None)
@given(
    frames=st.integers(0, 40),
    fps=st.sampled_from([25, 30, 12]),
    seed=st.integers(0, 2**16),
    fractions=st.lists(st.floats(0, 1), max_size=8),
    extra=st.integers(0, 5),
)
def test_streaming_windows_any_chunking(frames, fps, seed, fractions, extra):
    per_frame = SAMPLE_RATE // fps
    wav = speech_like(frames * per_frame, seed)
    n_frames = frames + extra  # video a little longer than the audio: clamped windows
    out = chunked_windows(fps, wav, [int(f * wav.size) for f in fractions], n_frames)
    expected = mel_windows(melspectrogram(wav), n_frames, fps)
    assert out.shape == expected.shape
    assert out.size == 0 or np.abs(out - expected).max() <= 1e-5


def test_streaming_windows_finish_too_few_frames_is_an_error():
    wav = speech_like(640 * 20)
    stream = StreamingMelWindows(25)
    emitted = len(stream.push(wav))
    assert emitted > 0
    with pytest.raises(ValueError, match="already returned"):
        stream.finish(emitted - 1)
    rest = stream.finish(20)  # the stream is still intact after the error
    assert emitted + len(rest) == 20
