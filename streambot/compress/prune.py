"""Channel pruning of Wav2Lip with Torch-Pruning: channels are removed, not masked.

Torch-Pruning traces the model and prunes whole dependency groups, so the U-Net's skip
concatenations, the ConvTranspose layers and the residual adds (which tie every conv of a
stage to one width) stay consistent. Each layer keeps ``1 - ratio`` of its channels, rounded to
multiples of ``round_to`` (tensor cores and SIMD like multiples of 8); the inputs and the
3-channel output conv are untouched. Importance is the L2 magnitude of each group's weights.

The result is rebuilt as the project's own ``Wav2Lip`` from a plain state dict plus its
widths (``Wav2LipConfig``), checked to give the same output as the pruned graph, and saved the
same way: no pickled modules, so it reloads with ``Wav2Lip.from_checkpoint``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from streambot.models.wav2lip import Wav2Lip, Wav2LipConfig, check_state_dict

# Indexes of the last layer of each audio-encoder stage in ``Wav2Lip.audio_encoder``.
_AUDIO_STAGE_ENDS = (2, 5, 8, 10, 11, 12)


class PruningError(RuntimeError):
    """Pruning did not give a model the project's Wav2Lip can express (the message says why)."""


@dataclass(frozen=True)
class PrunedWav2Lip:
    model: Wav2Lip
    ratio: float
    params_before: int
    params_after: int

    @property
    def config(self) -> Wav2LipConfig:
        return self.model.config


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def widths_of(model: Wav2Lip) -> Wav2LipConfig:
    """The channel widths of a (pruned) Wav2Lip graph, read off its layers."""
    face = model.face_encoder_blocks
    inner = face[6][0].conv_block[0].out_channels
    if inner != face[6][-1].conv_block[0].out_channels:
        # The 1x1 bottleneck's first conv has a width of its own, which the config ties to the
        # block's; uniform pruning keeps them equal (global pruning may not).
        raise PruningError(f"face_encoder_blocks.6.0 has {inner} channels, unlike its block")
    return Wav2LipConfig(
        face_widths=tuple(block[-1].conv_block[0].out_channels for block in face),
        audio_widths=tuple(
            model.audio_encoder[i].conv_block[0].out_channels for i in _AUDIO_STAGE_ENDS
        ),
        decoder_widths=tuple(
            block[0].conv_block[0].out_channels for block in model.face_decoder_blocks
        ),
        output_width=model.output_block[0].conv_block[0].out_channels,
        img_size=model.config.img_size,
    )


def example_inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of Wav2Lip's shapes for tracing: mel (B, 1, 80, 16), face (B, 6, 96, 96)."""
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 1, 80, 16, generator=generator),
        torch.rand(batch, 6, 96, 96, generator=generator),
    )


def prune_wav2lip(model: Wav2Lip, ratio: float, round_to: int = 8) -> PrunedWav2Lip:
    """A copy of ``model`` with ``ratio`` of the channels of every prunable layer removed."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be between 0 and 1, got {ratio}")
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise PruningError(
            "Torch-Pruning is not installed: pip install 'streambot[neural]'"
        ) from exc
    graph = copy.deepcopy(model).eval()
    # A model loaded for inference has requires_grad off, and Torch-Pruning then prunes nothing
    # without a word: switch gradients on for the trace, and check the count dropped below.
    for param in graph.parameters():
        param.requires_grad_(True)
    inputs = example_inputs()
    pruner = tp.pruner.MetaPruner(
        graph,
        example_inputs=inputs,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[graph.output_block[1]],  # the 3-channel output conv
        round_to=round_to,
        global_pruning=False,  # the same ratio everywhere: widths a Wav2LipConfig can hold
    )
    pruner.step()
    before, after = parameter_count(model), parameter_count(graph)
    if after >= before:
        raise PruningError(f"Torch-Pruning removed nothing ({before} parameters before and after)")
    config = widths_of(graph)
    pruned = Wav2Lip(config)
    state = {k: v.detach().clone() for k, v in graph.state_dict().items()}
    check_state_dict(pruned, state)  # every pruned shape must fit the rebuilt model
    pruned.load_state_dict(state)
    pruned.eval()
    with torch.no_grad():
        graph.eval()
        expected, got = graph(*inputs), pruned(*inputs)
    if not torch.allclose(expected, got, atol=1e-5):
        raise PruningError("the rebuilt model does not match the pruned graph")
    for param in pruned.parameters():
        param.requires_grad_(False)
    return PrunedWav2Lip(pruned, ratio, before, after)


def save_pruned(result: PrunedWav2Lip, path: str | Path) -> Path:
    """Save as ``{"state_dict", "widths", "pruning"}``: tensors, numbers and strings only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": result.model.state_dict(),
        "widths": result.config.to_dict(),
        "pruning": {
            "method": "torch-pruning, L2 group magnitude, uniform per layer",
            "ratio": result.ratio,
            "params_before": result.params_before,
            "params_after": result.params_after,
        },
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)  # a crash mid-write never leaves a half file under the real name
    return path
