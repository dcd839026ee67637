"""ONNX export of the models, from the same PyTorch modules the torch engine runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from streambot.models.wav2lip import Wav2Lip, fold_batchnorm

WAV2LIP_INPUTS = ("mel", "face")
WAV2LIP_OUTPUTS = ("frame",)


def export_wav2lip_onnx(model: Wav2Lip, path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` (BatchNorm folded) as ONNX with a dynamic batch axis on every tensor."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folded = fold_batchnorm(model).float().eval()
    size = model.config.img_size
    example = (torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, size, size))
    axes = {name: {0: "batch"} for name in (*WAV2LIP_INPUTS, *WAV2LIP_OUTPUTS)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not our problem
        torch.onnx.export(
            folded,
            example,
            str(path),
            input_names=list(WAV2LIP_INPUTS),
            output_names=list(WAV2LIP_OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path
