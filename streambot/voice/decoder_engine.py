"""Voice decoders called like engines: latent (1, channels, frames) in, samples out. The ONNX
one ``build_engines.py`` writes (pruned, distilled, exported), run by ONNX Runtime, and a
PyTorch module (the voice's own decoder, or a pruned one from its state dict + widths)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streambot.runtime.onnx_engine import run_dense
from streambot.voice.piper import VoiceError, voice_session

if TYPE_CHECKING:
    import torch


class OnnxDecoder:
    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        self.session = voice_session(self.path, threads, what="the voice engine")
        names = [i.name for i in self.session.get_inputs()]
        if names != ["latent"]:
            raise VoiceError(f"{self.path}: not a voice decoder engine (inputs {names})")

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        (audio,) = run_dense(self.session, {"latent": latent.astype(np.float32, copy=False)})
        return audio.reshape(-1)


class TorchDecoder:
    """A decoder module called like an engine (numpy in, numpy out, no autograd); ``path``:
    the file its weights came from."""

    def __init__(self, module: torch.nn.Module, path: Path) -> None:
        self.module, self.path = module, path

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(latent)).numpy().reshape(-1)
