"""A voice decoder built by ``build_engines.py`` (pruned, distilled, exported to ONNX), run by
ONNX Runtime: latent (1, channels, frames) in, samples out, like the voice's own decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streambot.voice.piper import VoiceError, voice_session


class OnnxDecoder:
    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        self.session = voice_session(self.path, threads, what="the voice engine")
        names = [i.name for i in self.session.get_inputs()]
        if names != ["latent"]:
            raise VoiceError(f"{self.path}: not a voice decoder engine (inputs {names})")

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        (audio,) = self.session.run(None, {"latent": latent.astype(np.float32, copy=False)})
        return audio.reshape(-1)
