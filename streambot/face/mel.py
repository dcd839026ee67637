"""Wav2Lip's audio features: 80-band log-mel frames at 80 Hz and the per-video-frame windows.

The official Wav2Lip checkpoints were trained on the features of its ``audio.py`` (librosa 0.7):
pre-emphasis 0.97, a centred STFT (n_fft 800, hop 200, periodic Hann window, reflect-padded
ends), a Slaney mel filterbank (80 bands, 55-7600 Hz, area-normalised), dB with a 1e-5
amplitude floor and a 20 dB reference, then a symmetric scaling clipped to [-4, 4]. Any drift
from that changes what the network sees, so this module reproduces it with numpy/scipy only;
librosa is just the reference in the tests.

Video frame ``i`` at ``fps`` gets the 16 mel frames (0.2 s) from mel frame ``i * 80 // fps``;
a window that would run past the end is pulled back to the last 16 frames. `StreamingMel` and
`StreamingMelWindows` give the same numbers for audio that arrives in chunks.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import get_window

from streambot.timing import FACE_RATE

SAMPLE_RATE = FACE_RATE  # the features are defined at 16 kHz only: the checkpoints' rate
HOP = 200  # 12.5 ms: 80 mel frames per second
N_MELS = 80
MEL_STEP = 16  # mel frames per video-frame window

_N_FFT = 800
_PAD = _N_FFT // 2  # centred frames: frame t is centred on sample t * HOP
_MEL_RATE = SAMPLE_RATE // HOP
_FMIN, _FMAX = 55.0, 7600.0
_PREEMPHASIS = 0.97
_REF_LEVEL_DB = 20.0
_MIN_LEVEL_DB = -100.0
_MIN_AMPLITUDE = 1e-5  # 10 ** (_MIN_LEVEL_DB / 20), as Wav2Lip writes it
_MAX_ABS = 4.0
_SILENCE = -_MAX_ABS  # the value every band takes on digital silence


def _empty_mel() -> np.ndarray:
    return np.empty((N_MELS, 0), np.float32)


def _as_signal(wav: np.ndarray) -> np.ndarray:
    signal = np.asarray(wav)
    if signal.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {signal.shape}")
    # float64 throughout: the features are a log of the spectrum, so rounding near the
    # 1e-5 floor would otherwise show up in the output.
    return signal.astype(np.float64, copy=False)


def _preemphasis(x: np.ndarray, previous: float) -> np.ndarray:
    """y[n] = x[n] - 0.97 * x[n-1], with x[-1] = ``previous`` (0 at the start of a stream)."""
    y = np.empty_like(x)
    if x.size:
        y[0] = x[0] - _PREEMPHASIS * previous
        y[1:] = x[1:] - _PREEMPHASIS * x[:-1]
    return y


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    log_part = min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, hz / f_sp)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_part = min_log_hz * np.exp(logstep * (np.maximum(mels, min_log_mel) - min_log_mel))
    return np.where(mels >= min_log_mel, log_part, f_sp * mels)


@cache
def _mel_basis() -> np.ndarray:
    """(80, 401) triangular filters, as librosa.filters.mel(sr=16000, n_fft=800, n_mels=80,
    fmin=55, fmax=7600) builds them (Slaney scale and area normalisation)."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, 1 + _N_FFT // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(_FMIN), _hz_to_mel(_FMAX), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    # librosa keeps the filters in float32 (rounded before and after the area
    # normalisation); doing the same keeps the basis bit-identical to the trained one.
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    area = 2.0 / (edges[2:] - edges[:-2])
    basis = (weights * area[:, None]).astype(np.float32).astype(np.float64)
    basis.setflags(write=False)
    return basis


@cache
def _window() -> np.ndarray:
    # periodic, as librosa's stft uses
    window = np.asarray(get_window("hann", _N_FFT, fftbins=True))
    window.setflags(write=False)
    return window


def _mel_frames(padded: np.ndarray) -> np.ndarray:
    """Features (80, k) of every whole frame of an already padded, pre-emphasised signal."""
    if padded.size < _N_FFT:
        return _empty_mel()
    frames = sliding_window_view(padded, _N_FFT)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * _window(), axis=1))  # (k, 401)
    mel = magnitude @ _mel_basis().T
    db = 20.0 * np.log10(np.maximum(_MIN_AMPLITUDE, mel)) - _REF_LEVEL_DB
    scaled = (2 * _MAX_ABS) * ((db - _MIN_LEVEL_DB) / -_MIN_LEVEL_DB) - _MAX_ABS
    return np.ascontiguousarray(np.clip(scaled, -_MAX_ABS, _MAX_ABS).T, dtype=np.float32)


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel features of mono 16 kHz audio.

    Returns float32 (80, 1 + len(wav) // 200) in [-4, 4] (-4 is silence); (80, 0) when
    ``wav`` is empty.
    """
    x = _as_signal(wav)
    if x.size == 0:
        return _empty_mel()
    return _mel_frames(np.pad(_preemphasis(x, 0.0), _PAD, mode="reflect"))


def _check_fps(fps: int) -> None:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def _window_starts_of(frames: np.ndarray, n_mel: int, fps: int) -> np.ndarray:
    # Exact integer form of Wav2Lip's int(i * 80. / fps), which float rounding could shift.
    starts = (frames * _MEL_RATE) // fps
    return np.minimum(starts, max(n_mel - MEL_STEP, 0))


def window_starts(n_frames: int, n_mel: int, fps: int) -> np.ndarray:
    """First mel frame of each video frame's window: ``min(i * 80 // fps, n_mel - 16)``.

    The clamp keeps the last windows inside the mel; all starts are 0 when ``n_mel < 16``.
    Returns int64 (n_frames,).
    """
    _check_fps(fps)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    return _window_starts_of(np.arange(n_frames, dtype=np.int64), n_mel, fps)


def _gather(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(len(starts), 80, 16) float32 windows of ``mel`` (80, >= 16) at ``starts``."""
    view = sliding_window_view(mel, MEL_STEP, axis=1)  # (80, n - 15, 16), no copy
    return np.ascontiguousarray(view[:, starts].transpose(1, 0, 2), dtype=np.float32)


def _pad_to_window(mel: np.ndarray) -> np.ndarray:
    # Too little audio for one window: complete it with silence on the right.
    short = MEL_STEP - mel.shape[1]
    if short <= 0:
        return mel
    return np.pad(mel, ((0, 0), (0, short)), constant_values=_SILENCE)


def mel_windows(mel: np.ndarray, n_frames: int, fps: int) -> np.ndarray:
    """The Wav2Lip audio input of each video frame: float32 (n_frames, 80, 16).

    ``mel`` is (80, T) from `melspectrogram`; when T < 16 it is first padded on the right with
    silence (-4). Windows start at `window_starts`.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] != N_MELS:
        raise ValueError(f"expected a ({N_MELS}, T) mel, got shape {mel.shape}")
    mel = _pad_to_window(mel)
    return _gather(mel, window_starts(n_frames, mel.shape[1], fps))


class StreamingMel:
    """`melspectrogram` for audio that arrives in chunks.

    `push` returns the mel frames that no later audio can change; `finish` returns the rest
    (the frames that reach into the reflect padding of the right end) and readies the object
    for a new stream. All outputs concatenated equal ``melspectrogram(whole)`` for any chunking.
    Only the samples that frames still to come will read are kept.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._previous = 0.0  # last raw sample: pre-emphasis carries across chunks
        self._total = 0  # samples received
        self._emitted = 0  # mel frames returned
        # Pre-emphasised samples kept until the left reflect padding can be built.
        self._head = np.empty(0)
        # Once it can: the padded signal (sample n at index n + 400) from index _start on.
        self._padded: np.ndarray | None = None
        self._start = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add mono 16 kHz samples; returns float32 (80, k) frames that are now final."""
        x = _as_signal(chunk)
        if x.size == 0:
            return _empty_mel()
        y = _preemphasis(x, self._previous)
        self._previous = float(x[-1])
        self._total += x.size
        if self._padded is None:
            self._head = np.concatenate([self._head, y])
            # The left padding mirrors samples 1..400. With 400 samples or fewer in all,
            # numpy reflects repeatedly instead, so nothing is final before sample 400.
            if self._total <= _PAD:
                return _empty_mel()
            self._padded = np.concatenate([self._head[_PAD:0:-1], self._head])
            self._head = np.empty(0)
        else:
            self._padded = np.concatenate([self._padded, y])
        # Frame t reads padded samples [t*HOP, t*HOP + 800): final once all have arrived.
        final = (_PAD + self._total - _N_FFT) // HOP + 1
        if final <= self._emitted:
            return _empty_mel()
        lo = self._emitted * HOP - self._start
        hi = lo + (final - 1 - self._emitted) * HOP + _N_FFT
        out = _mel_frames(self._padded[lo:hi])
        self._emitted = final
        # The next frame starts at padded index final * HOP; nothing before it is read again.
        drop = final * HOP - self._start
        self._padded = self._padded[drop:].copy()
        self._start += drop
        return out

    def finish(self) -> np.ndarray:
        """Returns the remaining float32 (80, k) frames and resets for a new stream."""
        try:
            if self._padded is None:  # 400 samples or fewer: the whole-signal path
                if self._head.size == 0:
                    return _empty_mel()
                return _mel_frames(np.pad(self._head, _PAD, mode="reflect"))
            # The kept tail is >= 600 samples, so mirroring it equals padding the whole.
            return _mel_frames(np.pad(self._padded, (0, _PAD), mode="reflect"))
        finally:
            self._reset()


class StreamingMelWindows:
    """`mel_windows` for audio that arrives in chunks, at ``fps`` video frames per second.

    `push` returns the windows of the next video frames whose 16 mel frames are all final;
    `finish(n_frames)` returns the rest, so that the windows total ``n_frames`` and equal
    ``mel_windows(melspectrogram(whole), n_frames, fps)``, and readies a new stream.
    """

    def __init__(self, fps: int) -> None:
        _check_fps(fps)
        self._fps = fps
        self._mel = StreamingMel()
        self._reset()

    def _reset(self) -> None:
        self._mel_buf = _empty_mel()  # final mel frames from index _offset on
        self._offset = 0
        self._n_mel = 0  # final mel frames so far
        self._next = 0  # next video frame to emit

    def _append(self, frames: np.ndarray) -> None:
        if frames.shape[1]:
            self._mel_buf = np.concatenate([self._mel_buf, frames], axis=1)
            self._n_mel += frames.shape[1]

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add mono 16 kHz samples; returns float32 (k, 80, 16) windows now final."""
        self._append(self._mel.push(chunk))
        if self._n_mel < MEL_STEP:
            return np.empty((0, N_MELS, MEL_STEP), np.float32)
        # Windows i with i * 80 // fps + 16 <= n_mel. The total mel length is at least n_mel,
        # so the end clamp, which moves only windows that overrun it, leaves these alone.
        count = ((self._n_mel - MEL_STEP + 1) * self._fps - 1) // _MEL_RATE + 1
        frames = np.arange(self._next, max(count, self._next), dtype=np.int64)
        out = _gather(self._mel_buf, (frames * _MEL_RATE) // self._fps - self._offset)
        self._next += frames.size
        # Later windows start at the next one's start or, if clamped, at total - 16 >=
        # n_mel - 16; everything before the smaller of the two can go.
        next_start = (self._next * _MEL_RATE) // self._fps
        keep = min(next_start, self._n_mel - MEL_STEP)
        self._mel_buf = self._mel_buf[:, keep - self._offset :].copy()
        self._offset = keep
        return out

    def finish(self, n_frames: int) -> np.ndarray:
        """Returns windows for video frames up to ``n_frames`` (total) and resets.

        Raises ValueError (leaving the stream as it was) if ``n_frames`` is negative or `push`
        already returned more than ``n_frames`` windows.
        """
        if n_frames < 0:
            raise ValueError(f"n_frames must be >= 0, got {n_frames}")
        if n_frames < self._next:
            raise ValueError(f"{self._next} windows already returned, more than {n_frames}")
        try:
            self._append(self._mel.finish())
            # Fewer than 16 frames in all: nothing was dropped (offset 0); pad like mel_windows.
            mel = _pad_to_window(self._mel_buf)
            n_mel = max(self._n_mel, MEL_STEP)
            frames = np.arange(self._next, n_frames, dtype=np.int64)
            starts = _window_starts_of(frames, n_mel, self._fps) - self._offset
            return _gather(mel, starts)
        finally:
            self._reset()
