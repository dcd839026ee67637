"""ONNX export of the models, from the same PyTorch modules the torch engine runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from streambot.models.hifigan import HiFiGAN
from streambot.models.wav2lip import Wav2Lip, fold_batchnorm

WAV2LIP_INPUTS = ("mel", "face")
WAV2LIP_OUTPUTS = ("frame",)
PRECISIONS = ("fp32", "fp16")


class _Fp16Inside(nn.Module):
    """fp32 in and out, fp16 inside: the graph starts and ends with a Cast, so every engine
    (ONNX Runtime, TensorRT) feeds it the same fp32 arrays, and a strongly typed TensorRT
    network built from it runs its convs in fp16."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return self.model(mel.half(), face.half()).float()


def export_wav2lip_onnx(
    model: Wav2Lip, path: str | Path, opset: int = 17, precision: str = "fp32"
) -> Path:
    """Write ``model`` (BatchNorm folded) as ONNX with a dynamic batch axis on every tensor;
    ``precision="fp16"`` keeps fp32 inputs and output around fp16 weights and activations."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    path = Path(path)
    folded: nn.Module = fold_batchnorm(model).float().eval()
    if precision == "fp16":
        folded = _Fp16Inside(folded).eval()
    size = model.config.img_size
    example = (torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, size, size))
    axes = {name: {0: "batch"} for name in (*WAV2LIP_INPUTS, *WAV2LIP_OUTPUTS)}
    return _export(folded, example, path, WAV2LIP_INPUTS, WAV2LIP_OUTPUTS, axes, opset)


def _export(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    axes: dict[str, dict[int, str]],
    opset: int,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not our problem
        torch.onnx.export(
            model,
            example,
            str(temporary),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    temporary.replace(path)  # a half-written export never sits under the real name
    return path


HIFIGAN_INPUTS = ("latent",)
HIFIGAN_OUTPUTS = ("audio",)


def export_hifigan_onnx(model: HiFiGAN, path: str | Path, opset: int = 17) -> Path:
    """Write a HiFi-GAN decoder as ONNX: latent (batch, channels, frames) -> audio, dynamic
    in batch and frames (a sentence's latent has any length)."""
    example = (torch.zeros(1, model.config.in_channels, 32),)
    axes = {"latent": {0: "batch", 2: "frames"}, "audio": {0: "batch", 2: "samples"}}
    model = model.float().eval()
    return _export(model, example, Path(path), HIFIGAN_INPUTS, HIFIGAN_OUTPUTS, axes, opset)
