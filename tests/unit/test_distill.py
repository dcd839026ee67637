"""Distillation of a pruned tiny Wav2Lip, and the fidelity figures that judge it."""

from __future__ import annotations

import numpy as np
import pytest
from needs import need_torch_pruning

need_torch_pruning()

import torch  # noqa: E402

from streambot.compress.distill import distil, recalibrate_batchnorm  # noqa: E402
from streambot.compress.fidelity import mouth_fidelity, psnr, ssim  # noqa: E402
from streambot.compress.prune import prune_wav2lip  # noqa: E402
from streambot.models.wav2lip import Wav2Lip, Wav2LipConfig  # noqa: E402

TINY = Wav2LipConfig(
    face_widths=(16, 16, 32, 32, 64, 64, 64),
    audio_widths=(16, 16, 32, 32, 64, 64),
    decoder_widths=(64, 64, 64, 48, 32, 32, 16),
    output_width=16,
)


def batches(seed: int, batch: int = 8):
    """Face-like inputs (smooth images, the upper half of the target given) and mel windows."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        coarse = torch.rand(batch, 3, 6, 6, generator=generator)
        ref = torch.nn.functional.interpolate(coarse, size=96, mode="bilinear")
        target = ref.clone()
        target[:, :, 48:] = 0.0  # Wav2Lip's masked lower half
        mel = torch.randn(batch, 1, 80, 16, generator=generator)
        yield mel, torch.cat([target, ref], dim=1)


@pytest.fixture(scope="module")
def teacher() -> Wav2Lip:
    torch.manual_seed(0)
    model = Wav2Lip(TINY)
    recalibrate_batchnorm(model, batches(1), steps=10)  # else a random teacher is nearly flat
    return model


def outputs(model: Wav2Lip, seed: int) -> np.ndarray:
    mel, face = next(batches(seed, 16))
    with torch.no_grad():
        return model(mel, face).numpy()


def test_distillation_brings_the_pruned_student_closer_to_the_teacher(teacher, tmp_path):
    student = prune_wav2lip(teacher, 0.5).model
    held_out = outputs(teacher, 99)
    before = mouth_fidelity(outputs(student, 99), held_out)
    report = distil(
        teacher,
        student,
        batches(2, 4),
        budget_s=300,
        max_steps=30,
        lr=3e-3,
        resume_path=tmp_path / "resume.pt",
    )
    after = mouth_fidelity(outputs(student, 99), held_out)
    assert report.steps == 30 and len(report.losses) == 30
    assert report.last_loss < 0.8 * report.first_loss  # measured: 0.070 -> 0.049
    assert after["mouth_psnr_db"] > before["mouth_psnr_db"] + 2.0  # measured: 21.3 -> 24.4 dB
    assert after["mouth_ssim"] > before["mouth_ssim"]
    assert not any(p.requires_grad for p in student.parameters())  # back to inference


def test_distillation_resumes_where_it_stopped(teacher, tmp_path):
    student = prune_wav2lip(teacher, 0.5).model
    resume = tmp_path / "resume.pt"
    first = distil(teacher, student, batches(3, 2), budget_s=60, max_steps=5, resume_path=resume)
    again = prune_wav2lip(teacher, 0.5).model  # a fresh process: the same widths
    second = distil(teacher, again, batches(4, 2), budget_s=60, max_steps=3, resume_path=resume)
    assert (first.resumed_from, second.resumed_from) == (0, 5)
    saved = torch.load(resume, weights_only=True)
    assert saved["step"] == 8


def test_the_time_box_ends_training(teacher):
    student = prune_wav2lip(teacher, 0.5).model
    ticks = iter(range(1000))
    report = distil(teacher, student, batches(5, 2), budget_s=3, clock=lambda: float(next(ticks)))
    assert report.steps == 2  # the clock read at start, then once per step


def test_ssim_and_psnr_agree_with_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 48, 96))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    reference = np.mean(
        [
            metrics.structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5)
            for x, y in zip(a.reshape(-1, 48, 96), b.reshape(-1, 48, 96), strict=True)
        ]
    )
    assert ssim(a, b) == pytest.approx(reference, abs=1e-6)
    assert psnr(a, b) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=1.0))
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
