"""Channel pruning of the voice's HiFi-GAN decoder with Torch-Pruning: channels removed, not
masked (issue 15's first step; distillation and the engine come after).

Inside an upsampling stage every conv feeds a residual add, and the stage's resblocks are
summed, so the upsampling ConvTranspose1d's outputs, every resblock conv and the next stage's
input form one dependency group: Torch-Pruning prunes them together and the stage keeps one
width. The latent input (the encoder's) and the final 1-channel conv stay untouched. Each
group keeps ``1 - ratio`` of its channels rounded to ``round_to``, by L2 magnitude; the result
is rebuilt as the project's own ``HiFiGAN`` from a plain state dict plus its widths
(``HiFiGANConfig``) and checked to give the pruned graph's waveform.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from streambot.compress.prune import (
    ModelT,
    PruningError,
    parameter_count,
    save_widths_checkpoint,
    torch_pruning,
    traceable_copy,
)
from streambot.models.hifigan import HiFiGAN, HiFiGANConfig, ResBlock1, ResBlock2


@dataclass(frozen=True)
class PrunedHiFiGAN:
    model: HiFiGAN
    ratio: float
    params_before: int
    params_after: int

    @property
    def config(self) -> HiFiGANConfig:
        return self.model.config


def fold_weight_norm(module: ModelT) -> ModelT:
    """Fold weight norm into plain weights, in place (both the parametrization and the legacy
    ``weight_g``/``weight_v`` forms): pruning must see the weights the convs really use."""
    from torch.nn.utils import parametrize

    for layer in module.modules():
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        elif hasattr(layer, "weight_g") and hasattr(layer, "weight_v"):
            torch.nn.utils.remove_weight_norm(layer)
    return module


def hifigan_widths(graph: HiFiGAN) -> HiFiGANConfig:
    """The widths of a (pruned) HiFi-GAN graph, read off its layers; refuses a graph whose
    resblocks are not one width per stage (what ``HiFiGANConfig`` can hold)."""
    stage_widths = tuple(up.out_channels for up in graph.ups)
    per_stage = graph.num_kernels
    for j, block in enumerate(graph.resblocks):
        width = stage_widths[j // per_stage]
        if isinstance(block, ResBlock1):
            convs = [*block.convs1, *block.convs2]
        elif isinstance(block, ResBlock2):
            convs = list(block.convs)
        else:
            raise PruningError(
                f"resblocks.{j} is a {type(block).__name__}, not a HiFi-GAN resblock"
            )
        for conv in convs:
            if conv.in_channels != width or conv.out_channels != width:
                raise PruningError(
                    f"resblocks.{j} has a {conv.in_channels}->{conv.out_channels} conv in a "
                    f"stage {width} channels wide"
                )
    return dataclasses.replace(
        graph.config,
        initial_channels=graph.conv_pre.out_channels,
        stage_widths=stage_widths,
    )


def example_latent(config: HiFiGANConfig, frames: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, config.in_channels, frames, generator=generator)


def prune_hifigan(decoder: HiFiGAN, ratio: float, round_to: int = 8) -> PrunedHiFiGAN:
    """A copy of ``decoder`` with ``ratio`` of the channels of every stage removed."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be between 0 and 1, got {ratio}")
    tp = torch_pruning()
    graph = fold_weight_norm(traceable_copy(decoder))
    latent = example_latent(graph.config)
    pruner = tp.pruner.MetaPruner(
        graph,
        example_inputs=latent,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[graph.conv_post],  # the 1-channel waveform conv
        round_to=round_to,
        global_pruning=False,  # one ratio everywhere: widths a HiFiGANConfig can hold
    )
    pruner.step()
    before, after = parameter_count(decoder), parameter_count(graph)
    if after >= before:
        raise PruningError(f"Torch-Pruning removed nothing ({before} parameters before and after)")
    pruned = HiFiGAN(hifigan_widths(graph))
    pruned.load_state_dict({k: v.detach().clone() for k, v in graph.state_dict().items()})
    pruned.eval()
    with torch.no_grad():
        expected, got = graph(latent), pruned(latent)
    if not torch.allclose(expected, got, atol=1e-5):
        raise PruningError("the rebuilt decoder does not match the pruned graph")
    for param in pruned.parameters():
        param.requires_grad_(False)
    return PrunedHiFiGAN(pruned, ratio, before, after)


def save_pruned_hifigan(result: PrunedHiFiGAN, path: str | Path) -> Path:
    """Save as ``{"state_dict", "widths", "pruning"}``: tensors, numbers and strings only, so
    ``HiFiGAN.from_checkpoint`` reloads it without unpickling code."""
    method = "torch-pruning, L2 group magnitude, uniform per stage"
    return save_widths_checkpoint(result, method, path)
