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
    mels = [
        torch.log(basis @ _magnitudes(_flat(a), 1024, 256)).clamp_min(-11.5)
        for a in (student, teacher)
    ]
    return F.l1_loss(*mels)


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
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int, float], None] | None = None,
) -> DistilReport:
    """Train ``student`` in place to decode ``batches`` of latents as ``teacher`` does."""
    teacher.eval()

    def loss_of(latent: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(latent)
        return decoder_loss(student(latent), target, sample_rate)

    return train_student(
        student,
        batches,
        loss_of,
        budget_s=budget_s,
        max_steps=max_steps,
        lr=lr,
        resume_path=resume_path,
        save_every_s=save_every_s,
        clock=clock,
        on_step=on_step,
    )


@torch.no_grad()
def decoder_fidelity(teacher: HiFiGAN, student: HiFiGAN, latents: Sequence[torch.Tensor]) -> float:
    """Mean STFT distance student vs teacher over whole held-out latents."""
    distances = [float(stft_distance(student(z), teacher(z))) for z in latents]
    return sum(distances) / len(distances)
