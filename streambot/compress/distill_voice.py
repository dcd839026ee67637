"""Distil a pruned HiFi-GAN decoder (the student) from the voice's own (the teacher).

No dataset is needed: the voice's ONNX encoder turns sentences of the stream (catalog, persona,
sales scripts) into latents, and the student learns to decode them as the teacher does. The
loss is the usual one for vocoders: multi-resolution STFT (spectral convergence + log
magnitude), L1 on log-mel spectrograms and L1 on the waveform. Latents are cut into random
segments so a step costs the same for any sentence length. The loop is the time-boxed,
resumable one of the Wav2Lip distillation (``distill.train_student``).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from streambot.compress.distill import DistilReport, train_student
from streambot.models.hifigan import HiFiGAN

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (fft size, hop)
MEL_BANDS = 80


def _flat(audio: torch.Tensor) -> torch.Tensor:
    return audio.reshape(-1, audio.shape[-1])


def _magnitudes(audio: torch.Tensor, fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(fft, device=audio.device)
    spectrum = torch.stft(audio, fft, hop, window=window, return_complex=True)
    return spectrum.abs().clamp_min(1e-5)


def stft_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over ``STFT_RESOLUTIONS`` of spectral convergence + log-magnitude L1, for
    waveforms (..., samples): 0 for the same audio."""
    student, teacher = _flat(student), _flat(teacher)
    total = student.new_zeros(())
    for fft, hop in STFT_RESOLUTIONS:
        s, t = _magnitudes(student, fft, hop), _magnitudes(teacher, fft, hop)
        convergence = torch.linalg.norm(t - s) / torch.linalg.norm(t).clamp_min(1e-9)
        total = total + convergence + (s.log() - t.log()).abs().mean()
    return total / len(STFT_RESOLUTIONS)


@functools.cache
def _mel_basis(sample_rate: int, fft: int) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=fft, n_mels=MEL_BANDS))


def mel_l1(student: torch.Tensor, teacher: torch.Tensor, sample_rate: int) -> torch.Tensor:
    basis = _mel_basis(sample_rate, 1024).to(student.device)
    student_mel, teacher_mel = (
        torch.log(basis @ _magnitudes(_flat(a), 1024, 256)).clamp_min(-11.5)
        for a in (student, teacher)
    )
    return F.l1_loss(student_mel, teacher_mel)


def decoder_loss(student: torch.Tensor, teacher: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The distillation loss: STFT distance + mel L1 + waveform L1 (all of similar scale)."""
    return (
        stft_distance(student, teacher)
        + mel_l1(student, teacher, sample_rate)
        + F.l1_loss(student, teacher)
    )


def latent_segments(
    latents: Sequence[torch.Tensor], frames: int = 32, batch: int = 4, seed: int = 0
) -> Iterator[torch.Tensor]:
    """Endless batches (batch, channels, frames) of random windows of ``latents`` (each
    (1, channels, T)); a latent shorter than ``frames`` is zero-padded, as silence."""
    rng = random.Random(seed)
    while True:
        windows = []
        for _ in range(batch):
            latent = rng.choice(latents)[0]
            if latent.shape[-1] < frames:
                latent = F.pad(latent, (0, frames - latent.shape[-1]))
            start = rng.randrange(latent.shape[-1] - frames + 1)
            windows.append(latent[:, start : start + frames])
        yield torch.stack(windows)


def distil_decoder(
    teacher: HiFiGAN,
    student: HiFiGAN,
    batches: Iterator[torch.Tensor],
    sample_rate: int,
    *,
    budget_s: float,
    max_steps: int | None = None,
    lr: float = 2e-4,
    resume_path: str | Path | None = None,
    save_every_s: float = 60.0,
    device: str = "cpu",
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int, float], None] | None = None,
) -> DistilReport:
    """Train ``student`` in place to decode ``batches`` of latents as ``teacher`` does."""
    teacher = teacher.to(device).eval()

    def loss_of(latent: torch.Tensor) -> torch.Tensor:
        latent = latent.to(device)
        with torch.no_grad():
            target = teacher(latent)
        return decoder_loss(student(latent), target, sample_rate)

    return train_student(
        student.to(device),
        batches,
        loss_of,
        widths=student.config.to_dict(),
        budget_s=budget_s,
        max_steps=max_steps,
        lr=lr,
        resume_path=resume_path,
        save_every_s=save_every_s,
        device=device,
        clock=clock,
        on_step=on_step,
    )


MCD_COEFFICIENTS = 24  # c1..c24; c0 (loudness) is left out, as usual
SPEECH_FLOOR_DB = -40.0  # teacher frames quieter than this below its loudest are silence


def mel_cepstral_distortion(student: np.ndarray, teacher: np.ndarray, sample_rate: int) -> float:
    """Mean mel-cepstral distortion in dB between two waveforms of the same latent (frames
    aligned sample for sample, so no time warping), over the teacher's speech frames.

    Cepstra are librosa MFCCs (orthonormal DCT of an 80-band log-mel in dB) rescaled to the
    cepstrum of the natural-log amplitude, log|X| = c0 + 2 sum c_k cos(...): x ln 10 / 20
    from dB power to log amplitude, / sqrt(2 x bands) from the orthonormal DCT's scale; then
    the usual (10 / ln 10) * sqrt(2 sum d^2). The mel front end is librosa's, not SPTK's
    mcep, so compare figures with figures from this function rather than with papers'.
    """
    import librosa

    def cepstra(audio: np.ndarray) -> np.ndarray:
        return librosa.feature.mfcc(
            y=np.asarray(audio, np.float32).reshape(-1),
            sr=sample_rate,
            n_mfcc=MCD_COEFFICIENTS + 1,
            n_fft=1024,
            hop_length=256,
            n_mels=MEL_BANDS,
        )[1:]

    s, t = cepstra(student), cepstra(teacher)
    frames = min(s.shape[1], t.shape[1])
    s, t = s[:, :frames], t[:, :frames]
    rms = librosa.feature.rms(
        y=np.asarray(teacher, np.float32).reshape(-1), frame_length=1024, hop_length=256
    )[0, :frames]
    loud = 20 * np.log10(np.maximum(rms, 1e-9))
    speech = loud >= loud.max() + SPEECH_FLOOR_DB
    diff = (s - t)[:, speech] * (np.log(10) / 20 / np.sqrt(2 * MEL_BANDS))
    per_frame = (10 / np.log(10)) * np.sqrt(2 * (diff**2).sum(axis=0))
    return float(per_frame.mean()) if per_frame.size else 0.0


def fidelity_figures(
    students: Sequence[np.ndarray], teachers: Sequence[np.ndarray], sample_rate: int
) -> dict[str, float]:
    """STFT distance and mel-cepstral distortion (dB), student vs teacher audio, averaged
    over held-out sentences."""
    pairs = list(zip(students, teachers, strict=True))
    stft = [
        float(stft_distance(torch.as_tensor(s).reshape(-1), torch.as_tensor(t).reshape(-1)))
        for s, t in pairs
    ]
    mcd = [mel_cepstral_distortion(s, t, sample_rate) for s, t in pairs]
    return {
        "stft_distance": round(float(np.mean(stft)), 4),
        "mcd_db": round(float(np.mean(mcd)), 3),
    }


@torch.no_grad()
def decoder_fidelity(teacher: HiFiGAN, student: HiFiGAN, latents: Sequence[torch.Tensor]) -> float:
    """Mean STFT distance student vs teacher over whole held-out latents."""
    distances = [float(stft_distance(student(z), teacher(z))) for z in latents]
    return sum(distances) / len(distances)
