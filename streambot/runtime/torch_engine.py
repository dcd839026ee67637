"""PyTorch engine: CPU fp32, or CUDA fp16 with channels_last when a GPU is present."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class TorchEngine:
    def __init__(
        self,
        module: nn.Module,
        input_names: Sequence[str],
        output_names: Sequence[str],
        device: str = "auto",
        half: bool | None = None,
    ) -> None:
        self.device = pick_device(device)
        # Half precision and channels_last are what make convs fast on tensor cores; on a CPU
        # they are slower or unsupported, so the CPU path stays fp32 / contiguous.
        self.half = self.device.type == "cuda" if half is None else half
        self.channels_last = self.device.type == "cuda"
        self.dtype = torch.float16 if self.half else torch.float32
        module = module.eval().to(self.device, self.dtype)
        if self.channels_last:
            # nn.Module.to takes memory_format, though torch's overloads leave it out
            module = module.to(memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]
        self.module = module
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.name = f"torch-{self.device.type}-{'fp16' if self.half else 'fp32'}"

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtype)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    @torch.inference_mode()
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self._tensor(inputs[name]) for name in self.input_names]
        outputs = self.module(*args)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return {
            name: out.float().cpu().numpy()
            for name, out in zip(self.output_names, outputs, strict=True)
        }
