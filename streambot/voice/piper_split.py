"""Split a Piper voice at its decoder: the ONNX encoder (text -> latent) plus a PyTorch HiFi-GAN
rebuilt from the voice's own decoder weights. The decoder is most of the compute and is what
pruning shrinks; the encoder stays in ONNX, itself cut in two: the prior (text encoder and
duration predictor: text -> the prior's frames) and the flow (those frames -> the latent),
so that streaming runs the flow window by window (voice/chunked.py) as the decoder does.

With noise scales at 0 the voice is deterministic and the split path reproduces the full
graph's waveform (tests state the tolerance).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from streambot.models.hifigan import HiFiGAN, HiFiGANConfig
from streambot.runtime.manifest import sha256_file
from streambot.runtime.onnx_engine import run_dense
from streambot.voice.base import AudioPiece
from streambot.voice.chunked import FlowedLatent, decode_chunks, hop, receptive_frames
from streambot.voice.decoder_engine import TorchDecoder
from streambot.voice.piper import PiperSettings, PiperVoice, VoiceError, voice_session

if TYPE_CHECKING:
    import onnx

DECODER_PREFIX = "dec."
FLOW_SCOPE = "/flow/"


def _onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as exc:
        raise VoiceError("splitting a voice needs the onnx package: pip install onnx") from exc
    return onnx


def load_voice_graph(path: str | Path) -> onnx.ModelProto:
    """The voice's ONNX graph, or a VoiceError naming the file."""
    try:
        return _onnx().load(str(path))
    except Exception as exc:  # protobuf's DecodeError, OSError: the file is not a model
        raise VoiceError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from exc


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


def _ancestors(model: onnx.ModelProto, tensor: str) -> set[int]:
    """Indexes of the nodes ``tensor`` depends on."""
    producer = {o: i for i, n in enumerate(model.graph.node) for o in n.output}
    seen: set[int] = set()
    todo = [tensor]
    while todo:
        i = producer.get(todo.pop())
        if i is not None and i not in seen:
            seen.add(i)
            todo.extend(model.graph.node[i].input)
    return seen


def flow_cut(model: onnx.ModelProto) -> tuple[list[str], int]:
    """The tensors the VITS flow reads from the rest of the graph (the prior's frames, the
    mask, a speaker embedding), and the flow's receptive field in frames on each side.

    The flow is every node before the latent that depends on a node of the flow's scope (the
    export leaves some fused activations outside the scope's name). Its inputs are the
    tensors it reads that come from the voice's inputs rather than from itself or constants.
    """
    latent = decoder_input_name(model)
    before = _ancestors(model, latent)
    graph_inputs = {i.name for i in model.graph.input}
    flow_out: set[str] = set()
    dynamic = set(graph_inputs)
    flow_nodes = []
    for i, node in enumerate(model.graph.node):  # ONNX keeps nodes in topological order
        if i not in before:
            continue
        if node.name.startswith(FLOW_SCOPE) or any(x in flow_out for x in node.input):
            flow_nodes.append(node)
            flow_out.update(node.output)
        if any(x in dynamic for x in node.input):
            dynamic.update(node.output)
    if not flow_nodes:
        raise VoiceError("no VITS flow (/flow/) found in this voice")
    cut = list(
        dict.fromkeys(x for n in flow_nodes for x in n.input if x in dynamic and x not in flow_out)
    )
    onnx_module = _onnx()
    radius = 0
    for node in flow_nodes:
        if node.op_type == "Conv":
            a = {x.name: onnx_module.helper.get_attribute_value(x) for x in node.attribute}
            radius += (a["kernel_shape"][0] - 1) // 2 * a.get("dilations", [1])[0]
    return cut, radius + 1  # one frame more, as for the decoder's bound


def extract_prior_and_flow(model_path: Path, prior_path: Path, flow_path: Path) -> list[str]:
    """Write the voice's inputs -> the flow's inputs, and the flow's inputs -> the latent."""
    onnx = _onnx()
    model = load_voice_graph(model_path)
    latent = decoder_input_name(model)
    cut, _ = flow_cut(model)
    inputs = [i.name for i in model.graph.input]
    onnx.utils.extract_model(str(model_path), str(prior_path), inputs, cut)
    onnx.utils.extract_model(str(model_path), str(flow_path), cut, [latent])
    return cut


def extract_decoder(model_path: Path, out_path: Path) -> Path:
    """Write the voice's own decoder (latent -> samples) as an ONNX graph whose input is named
    ``latent``, as the builder's engines are: the unpruned decoder, streamed, exactly as the
    voice decodes (no PyTorch round trip)."""
    onnx = _onnx()
    model = load_voice_graph(model_path)
    latent = decoder_input_name(model)
    outputs = [o.name for o in model.graph.output]
    onnx.utils.extract_model(str(model_path), str(out_path), [latent], outputs)
    decoder = onnx.load(str(out_path))
    for node in decoder.graph.node:
        node.input[:] = ["latent" if name == latent else name for name in node.input]
    decoder.graph.input[0].name = "latent"
    onnx.save(decoder, str(out_path))
    return out_path


@functools.lru_cache(maxsize=16)
def _digest(path: str, _size: int, _mtime_ns: int) -> str:
    return sha256_file(path)


def voice_part(model_path: Path, work_dir: str | Path | None, part: str) -> Path:
    """Where a part cut from this very voice file is kept: a changed voice gets its own."""
    work = Path(work_dir) if work_dir else model_path.parent
    if not model_path.is_file():
        raise VoiceError(f"Piper voice file not found: {model_path}")
    stat = model_path.stat()
    digest = _digest(str(model_path), stat.st_size, stat.st_mtime_ns)
    return work / f"{model_path.stem}.{digest[:12]}.{part}.onnx"


def own_decoder_path(model_path: str | Path, work_dir: str | Path | None = None) -> Path:
    """The voice's own decoder as an ONNX engine, cut from the voice the first time."""
    path = voice_part(Path(model_path), work_dir, "decoder")
    if not path.is_file():
        extract_decoder(Path(model_path), path)
    return path


class SplitPiperVoice(PiperVoice):
    """A Piper voice run as ONNX encoder + a separate decoder: the voice's own, rebuilt in
    PyTorch, or a pruned one (any callable from latent to samples: voice/decoder_engine.py).

    It streams: ``speak_pieces`` decodes each sentence's latent in chunks (voice/chunked.py)
    and hands over the first as soon as it is decoded."""

    def __init__(
        self,
        model: str | Path,
        config: str | Path | None = None,
        work_dir: str | Path | None = None,
        decoder: Callable[[np.ndarray], np.ndarray] | None = None,
        settings: PiperSettings | None = None,
        threads: int = 0,
    ) -> None:
        super().__init__(model, config, settings, threads)
        model_proto = load_voice_graph(self.model_path)
        prior_path = voice_part(self.model_path, work_dir, "prior")
        flow_path = voice_part(self.model_path, work_dir, "flow")
        if not (prior_path.is_file() and flow_path.is_file()):
            extract_prior_and_flow(self.model_path, prior_path, flow_path)
        self.prior = voice_session(prior_path, what="the voice's text encoder")
        self.flow = voice_session(flow_path, what="the voice's flow")
        _, self.flow_context = flow_cut(model_proto)
        self.hifigan = hifigan_from_onnx(model_proto)  # the voice's own decoder, in PyTorch
        self.decoder = (
            decoder if decoder is not None else TorchDecoder(self.hifigan, self.model_path)
        )
        # pruning changes widths, never kernels, strides or dilations: the voice's own layout
        # gives the hop and receptive field of any decoder built from it
        self.hop = hop(self.hifigan.config)
        self.context = receptive_frames(self.hifigan.config)

    def prior_frames(self, ids: list[int]) -> FlowedLatent:
        """The sentence's latent, to be computed by the flow window by window."""
        names = [o.name for o in self.prior.get_outputs()]
        outputs = dict(zip(names, run_dense(self.prior, self.model_inputs(ids)), strict=True))
        frames = max(x.shape[-1] for x in outputs.values())

        def flow(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return run_dense(self.flow, feeds)[0]

        return FlowedLatent(flow, outputs, frames, self.flow_context)

    def latent(self, ids: list[int]) -> np.ndarray:
        whole = self.prior_frames(ids)
        return whole.window(0, whole.frames)

    def decode(self, latent: np.ndarray) -> np.ndarray:
        return self.decoder(latent)

    def ids_to_audio(self, ids: list[int]) -> np.ndarray:
        return np.clip(self.decode(self.latent(ids)), -1.0, 1.0).astype(np.float32)

    async def speak_pieces(
        self, text: str, lang: str | None = None
    ) -> AsyncGenerator[AudioPiece, None]:
        for sentence in await asyncio.to_thread(self.phonemize, text):
            latent = await asyncio.to_thread(self.prior_frames, self.phonemes_to_ids(sentence))
            chunks = decode_chunks(self.decode, latent, self.hop, self.context)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                audio, last = chunk
                yield AudioPiece(
                    np.clip(audio, -1.0, 1.0).astype(np.float32), self.sample_rate, last
                )
