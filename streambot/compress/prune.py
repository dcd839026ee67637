"""Channel pruning of Wav2Lip with Torch-Pruning: channels are removed, not masked.

Torch-Pruning traces the model and prunes whole dependency groups, so the U-Net's skip
concatenations, the ConvTranspose layers and the residual adds (which tie every conv of a
stage to one width) stay consistent. Each layer keeps ``1 - ratio`` of its channels, rounded to
multiples of ``round_to`` (tensor cores and SIMD like multiples of 8); the inputs and the
3-channel output conv are untouched. Importance is either the L2 magnitude of each group's
weights, or, given frames of the user's own avatar, how strongly each channel fires on them
(``ActivationImportance``): a channel that is large in the weights can still be idle on one
face, and the build keeps whichever choice measures closer to the teacher.

The result is rebuilt as the project's own ``Wav2Lip`` from a plain state dict plus its
widths (``Wav2LipConfig``), checked to give the same output as the pruned graph, and saved the
same way: no pickled modules, so it reloads with ``Wav2Lip.from_checkpoint``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol, TypeVar

import torch
from torch import nn

from streambot.compress.checkpoint import save_atomically
from streambot.models.wav2lip import (
    Conv2d,
    Conv2dTranspose,
    Wav2Lip,
    Wav2LipConfig,
    check_state_dict,
)

# Indexes of the last layer of each audio-encoder stage in ``Wav2Lip.audio_encoder``.
_AUDIO_STAGE_ENDS = (2, 5, 8, 10, 11, 12)


class PruningError(RuntimeError):
    """Pruning did not give a model the project's Wav2Lip can express (the message says why)."""


Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class PrunedWav2Lip:
    model: Wav2Lip
    ratio: float
    params_before: int
    params_after: int
    importance: str = "l2"

    @property
    def config(self) -> Wav2LipConfig:
        return self.model.config


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torch_pruning() -> ModuleType:
    """The Torch-Pruning module, or a PruningError that says how to install it."""
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise PruningError(
            "Torch-Pruning is not installed: pip install 'streambot[neural]'"
        ) from exc
    return tp


ModelT = TypeVar("ModelT", bound=nn.Module)


def traceable_copy(model: ModelT) -> ModelT:
    """A copy of ``model`` to prune: in eval mode, with gradients on. A model loaded for
    inference has requires_grad off, and Torch-Pruning then prunes nothing without a word
    (callers check the parameter count dropped)."""
    graph = copy.deepcopy(model).eval()
    for param in graph.parameters():
        param.requires_grad_(True)
    return graph


def _layers(stage: nn.Module) -> nn.Sequential:
    if not isinstance(stage, nn.Sequential):
        raise PruningError(f"expected a stage of Wav2Lip layers, found {type(stage).__name__}")
    return stage


def _width(layer: nn.Module) -> int:
    """The output channels of one of Wav2Lip's conv layers (its conv, before BatchNorm)."""
    conv = layer.conv_block[0] if isinstance(layer, Conv2d | Conv2dTranspose) else None
    if not isinstance(conv, nn.Conv2d | nn.ConvTranspose2d):
        raise PruningError(f"expected a Wav2Lip conv layer, found {type(layer).__name__}")
    return conv.out_channels


def widths_of(model: Wav2Lip) -> Wav2LipConfig:
    """The channel widths of a (pruned) Wav2Lip graph, read off its layers."""
    face = [_layers(stage) for stage in model.face_encoder_blocks]
    inner = _width(face[6][0])
    if inner != _width(face[6][-1]):
        # The 1x1 bottleneck's first conv has a width of its own, which the config ties to the
        # block's; uniform pruning keeps them equal (global pruning may not).
        raise PruningError(f"face_encoder_blocks.6.0 has {inner} channels, unlike its block")
    return Wav2LipConfig(
        face_widths=tuple(_width(stage[-1]) for stage in face),
        audio_widths=tuple(_width(model.audio_encoder[i]) for i in _AUDIO_STAGE_ENDS),
        decoder_widths=tuple(_width(_layers(stage)[0]) for stage in model.face_decoder_blocks),
        output_width=_width(model.output_block[0]),
        img_size=model.config.img_size,
    )


def example_inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of Wav2Lip's shapes for tracing: mel (B, 1, 80, 16), face (B, 6, 96, 96)."""
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, 1, 80, 16, generator=generator),
        torch.rand(batch, 6, 96, 96, generator=generator),
    )


def channel_activity(model: nn.Module, batches: Batches) -> dict[nn.Module, torch.Tensor]:
    """Mean |activation| of every channel after each BatchNorm of ``model``, over ``batches``
    of (mel, face): what each channel contributes on these frames."""
    sums: dict[nn.Module, torch.Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def record(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        per_channel = output.detach().abs().mean(dim=(0, 2, 3)) * output.shape[0]
        sums[module] = sums.get(module, 0) + per_channel
        counts[module] = counts.get(module, 0) + output.shape[0]

    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    hooks = [m.register_forward_hook(record) for m in norms]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for mel, face in batches:
                model(mel, face)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    if not counts:
        raise PruningError("no calibration frames: channel activity needs at least one batch")
    return {m: sums[m] / counts[m] for m in sums}


def _activation_importance(activity: dict[nn.Module, torch.Tensor]) -> object:
    import torch_pruning as tp

    class ActivationImportance(tp.importance.GroupMagnitudeImportance):
        """A group's channels scored by their measured activity after each BatchNorm in the
        group (normalised per layer, averaged over the group); a group with no BatchNorm
        (none in Wav2Lip but the untouched output conv) falls back to the L2 magnitude."""

        @torch.no_grad()
        def __call__(self, group: tp.Group) -> torch.Tensor | None:
            scores, root_indexes = [], []
            for i, (dep, idxs) in enumerate(group.items):
                if (
                    dep.pruning_fn == tp.pruner.function.prune_batchnorm_out_channels
                    and dep.layer in activity
                ):
                    scores.append(activity[dep.layer][idxs])
                    root_indexes.append(group[i].root_idxs)
            if not scores:
                return super().__call__(group)
            return self._normalize(self._reduce(scores, root_indexes), self.normalizer)

    return ActivationImportance(p=2)


def prune_wav2lip(
    model: Wav2Lip, ratio: float, round_to: int = 8, calibration: Batches | None = None
) -> PrunedWav2Lip:
    """A copy of ``model`` with ``ratio`` of the channels of every prunable layer removed;
    with ``calibration`` batches (the avatar's frames) the channels kept are the most active
    on them, otherwise those with the largest weights."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be between 0 and 1, got {ratio}")
    tp = torch_pruning()
    graph = traceable_copy(model)
    inputs = example_inputs()
    if calibration is None:
        importance, method = tp.importance.GroupMagnitudeImportance(p=2), "l2"
    else:
        activity = channel_activity(graph, calibration)
        importance, method = _activation_importance(activity), "activation"
    pruner = tp.pruner.MetaPruner(
        graph,
        example_inputs=inputs,
        importance=importance,
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
    return PrunedWav2Lip(pruned, ratio, before, after, method)


_METHODS = {"l2": "L2 group magnitude", "activation": "channel activity on the avatar"}


def save_pruned(result: PrunedWav2Lip, path: str | Path) -> Path:
    """Save as ``{"state_dict", "widths", "pruning"}``: tensors, numbers and strings only."""
    method = f"torch-pruning, {_METHODS[result.importance]}, uniform per layer"
    return save_widths_checkpoint(result, method, path)


class Widths(Protocol):
    def to_dict(self) -> dict: ...


class PrunedModel(Protocol):
    """What a pruner returns: the pruned module, its widths, and what the pruning removed."""

    @property
    def model(self) -> nn.Module: ...
    @property
    def config(self) -> Widths: ...
    @property
    def ratio(self) -> float: ...
    @property
    def params_before(self) -> int: ...
    @property
    def params_after(self) -> int: ...


def save_widths_checkpoint(result: PrunedModel, method: str, path: str | Path) -> Path:
    """Write a pruned model as ``{"state_dict", "widths", "pruning"}``."""
    payload = {
        "state_dict": result.model.state_dict(),
        "widths": result.config.to_dict(),
        "pruning": {
            "method": method,
            "ratio": result.ratio,
            "params_before": result.params_before,
            "params_after": result.params_after,
        },
    }
    return save_atomically(payload, Path(path))
