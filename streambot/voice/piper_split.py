"""Split a Piper voice at its decoder: the ONNX encoder (text -> latent) plus a PyTorch HiFi-GAN
rebuilt from the voice's own decoder weights. The decoder is most of the compute and is what
pruning shrinks; the encoder (text encoder, duration predictor, flow) stays in ONNX.

With noise scales at 0 the voice is deterministic and the split path reproduces the full
graph's waveform (tests state the tolerance).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from streambot.models.hifigan import HiFiGAN, HiFiGANConfig
from streambot.voice.base import AudioPiece
from streambot.voice.chunked import decode_chunks, hop, receptive_frames
from streambot.voice.piper import PiperVoice, VoiceError, voice_session

if TYPE_CHECKING:
    import onnx

DECODER_PREFIX = "dec."


def _onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as exc:
        raise VoiceError("splitting a voice needs the onnx package: pip install onnx") from exc
    return onnx


def decoder_input_name(model: onnx.ModelProto) -> str:
    """The tensor that feeds the decoder's first conv: the latent z * mask."""
    for node in model.graph.node:
        if node.op_type == "Conv" and f"{DECODER_PREFIX}conv_pre.weight" in node.input:
            return node.input[0]
    raise VoiceError("no HiFi-GAN decoder (dec.conv_pre) found in this voice")


def hifigan_from_onnx(model: onnx.ModelProto) -> HiFiGAN:
    """Rebuild the decoder from the voice's initializers and its nodes' attributes."""
    onnx_module = _onnx()
    from onnx import numpy_helper

    weights = {
        i.name.removeprefix(DECODER_PREFIX): torch.from_numpy(numpy_helper.to_array(i).copy())
        for i in model.graph.initializer
        if i.name.startswith(DECODER_PREFIX)
    }
    attrs = {}
    for node in model.graph.node:
        for name in node.input:
            if name.startswith(DECODER_PREFIX) and name.endswith(".weight"):
                attrs[name.removeprefix(DECODER_PREFIX)] = {
                    a.name: onnx_module.helper.get_attribute_value(a) for a in node.attribute
                }
    n_ups = len([k for k in weights if k.startswith("ups.") and k.endswith(".weight")])
    ups = [attrs[f"ups.{i}.weight"] for i in range(n_ups)]
    n_res = len({k.split(".")[1] for k in weights if k.startswith("resblocks.")})
    per_stage = n_res // n_ups
    first = [k for k in weights if k.startswith("resblocks.0.")]
    resblock_type = "1" if any(".convs1." in k for k in first) else "2"
    conv_key = "convs1" if resblock_type == "1" else "convs"
    kernels, dilations = [], []
    for j in range(per_stage):
        convs = sorted(
            (
                k
                for k in weights
                if k.startswith(f"resblocks.{j}.{conv_key}.") and k.endswith("weight")
            ),
            key=lambda k: int(k.split(".")[3]),
        )
        kernels.append(int(weights[convs[0]].shape[-1]))
        dilations.append(tuple(int(attrs[k]["dilations"][0]) for k in convs))
    config = HiFiGANConfig(
        in_channels=int(weights["conv_pre.weight"].shape[1]),
        initial_channels=int(weights["conv_pre.weight"].shape[0]),
        stage_widths=tuple(int(weights[f"ups.{i}.weight"].shape[1]) for i in range(n_ups)),
        upsample_rates=tuple(int(a["strides"][0]) for a in ups),
        upsample_kernels=tuple(int(a["kernel_shape"][0]) for a in ups),
        upsample_paddings=tuple(int(a["pads"][0]) for a in ups),
        resblock_kernels=tuple(kernels),
        resblock_dilations=tuple(dilations),
        resblock_type=resblock_type,
        post_bias="conv_post.bias" in weights,
    )
    decoder = HiFiGAN(config)
    decoder.load_state_dict(weights)  # strict: every decoder weight has its place
    return decoder.eval()


def extract_encoder(model_path: Path, out_path: Path) -> str:
    """Write the sub-graph from the voice's inputs to the decoder's input; returns its name."""
    onnx = _onnx()
    model = onnx.load(str(model_path))
    latent = decoder_input_name(model)
    inputs = [i.name for i in model.graph.input]
    onnx.utils.extract_model(str(model_path), str(out_path), inputs, [latent])
    return latent


class SplitPiperVoice(PiperVoice):
    """A Piper voice run as ONNX encoder + a separate decoder: the voice's own, rebuilt in
    PyTorch, or a pruned one (a module, or an engine: any callable from latent to samples).

    It streams: ``speak_pieces`` decodes each sentence's latent in chunks (voice/chunked.py)
    and hands over the first as soon as it is decoded."""

    def __init__(
        self,
        model: str | Path,
        config: str | Path | None = None,
        work_dir: str | Path | None = None,
        decoder: torch.nn.Module | Callable[[np.ndarray], np.ndarray] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(model, config, **kwargs)
        onnx = _onnx()
        work = Path(work_dir) if work_dir else self.model_path.parent
        encoder_path = work / f"{self.model_path.stem}.encoder.onnx"
        if not encoder_path.is_file():
            extract_encoder(self.model_path, encoder_path)
        self.encoder = voice_session(encoder_path, what="the voice's encoder")
        own = hifigan_from_onnx(onnx.load(str(self.model_path)))
        self.decoder = decoder if decoder is not None else own
        # pruning changes widths, never kernels, strides or dilations: the voice's own layout
        # gives the hop and receptive field of any decoder built from it
        self.hop, self.context = hop(own.config), receptive_frames(own.config)

    def latent(self, ids: list[int]) -> np.ndarray:
        return self.encoder.run(None, self.model_inputs(ids))[0]

    @torch.inference_mode()
    def decode(self, latent: np.ndarray) -> np.ndarray:
        if isinstance(self.decoder, torch.nn.Module):
            return self.decoder(torch.from_numpy(latent)).numpy().reshape(-1)
        return self.decoder(latent)

    def ids_to_audio(self, ids: list[int]) -> np.ndarray:
        return np.clip(self.decode(self.latent(ids)), -1.0, 1.0).astype(np.float32)

    async def speak_pieces(self, text: str, lang: str | None = None) -> AsyncIterator[AudioPiece]:
        for sentence in await asyncio.to_thread(self.phonemize, text):
            latent = await asyncio.to_thread(self.latent, self.phonemes_to_ids(sentence))
            chunks = decode_chunks(self.decode, latent, self.hop, self.context)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                audio, last = chunk
                yield AudioPiece(np.clip(audio, -1.0, 1.0).astype(np.float32), self.sample_rate,
                                 last)  # fmt: skip
