"""Width (and optional depth) pruning of a Hugging Face decoder LLM that respects grouped-query
attention, so the result is a vanilla model its own config describes.

Qwen2/2.5/3 and Llama-family models share the layout this needs: ``model.model.layers[i]``
with ``self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj``. In grouped-query attention
query head ``h`` reads KV head ``h // (heads / kv_heads)``, so removing query heads at random
would break the mapping. Two ways keep it:

- ``query``: every KV group keeps the same number of its own query heads (the most important
  ones); k/v are untouched, q rows and o_proj input columns of the removed heads go.
- ``groups``: whole KV groups go, their k/v heads and all their query heads with them (for
  models with many KV heads; it also shrinks the KV cache).

The MLP keeps the same number of intermediate channels in every layer (gate and up rows,
down_proj columns together), chosen per layer. Widths are uniform across layers so that
``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size`` and an explicit
``head_dim`` describe the result: ``save_pretrained`` writes a folder any transformers (and
vLLM, llama.cpp's converter) loads. Optional depth pruning drops the layers whose output is most
like their input (block influence, ShortGPT).

Importance is measured Minitron-style from activations on calibration text: a head's output
norm (o_proj's input), a channel's activation (down_proj's input), a layer's block influence.

The weights are sliced here rather than with Torch-Pruning: its dependency graph sees a
query head as ``head_dim`` independent channels and knows nothing of KV groups or of the config
fields a vanilla model is rebuilt from; tests check the slicing against the unpruned model
with the removed parts zeroed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from streambot.compress.common import HeadMode

GROUP_MODE_MIN_KV_HEADS = 8  # "auto" removes whole KV groups only where there are this many
CHANNEL_MULTIPLE = 32  # intermediate widths in multiples of this (GEMM tiles)


class LLMPruningError(RuntimeError):
    """The model cannot be pruned this way (the message says why)."""


@dataclass(frozen=True)
class LLMWidths:
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    layers: int

    @classmethod
    def of(cls, config: Any) -> LLMWidths:
        heads = config.num_attention_heads
        return cls(
            attention_heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            intermediate=config.intermediate_size,
            layers=config.num_hidden_layers,
        )

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class LLMImportance:
    """Per layer: each query head's, each MLP channel's importance; each layer's influence."""

    heads: list[torch.Tensor]
    channels: list[torch.Tensor]
    influence: torch.Tensor
    tokens: int = 0


@dataclass(frozen=True)
class PrunedLLM:
    model: nn.Module
    widths: LLMWidths
    before: LLMWidths
    mode: str
    kept_layers: tuple[int, ...]
    kept_heads: tuple[tuple[int, ...], ...]  # per kept layer, original query head indexes
    kept_kv_heads: tuple[tuple[int, ...], ...]
    kept_channels: tuple[tuple[int, ...], ...]  # per kept layer, original MLP channels
    params_before: int
    params_after: int
    record: dict = field(default_factory=dict)


def decoder_layers(model: nn.Module) -> list[Any]:
    """The model's decoder layers, checked to have the projections pruning slices (Hugging
    Face layers: their parts are reached by name, so they are typed as Any)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList) or not layers:
        raise LLMPruningError(
            f"{type(model).__name__} is not a Qwen/Llama-style causal LM (no model.layers)"
        )
    for i, layer in enumerate(layers):
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        for part, names in (
            (attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
            (mlp, ("gate_proj", "up_proj", "down_proj")),
        ):
            missing = [n for n in names if not isinstance(getattr(part, n, None), nn.Linear)]
            if missing:
                raise LLMPruningError(f"layer {i} has no {', '.join(missing)}: not prunable here")
    return list(layers)


def _first_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple | list) else value


@torch.inference_mode()
def measure_importance(model: nn.Module, samples: Iterable[torch.Tensor]) -> LLMImportance:
    """Run calibration token ids (1-D tensors, one text each) and gather activation statistics:
    the RMS over tokens of each head's output norm and of each MLP channel, and each layer's
    block influence (1 - cosine between its input and output hidden states)."""
    layers = decoder_layers(model)
    widths = LLMWidths.of(model.config)
    heads = [torch.zeros(widths.attention_heads, dtype=torch.float64) for _ in layers]
    channels = [torch.zeros(widths.intermediate, dtype=torch.float64) for _ in layers]
    influence = torch.zeros(len(layers), dtype=torch.float64)
    hooks = []

    def on_o_proj(i: int):
        def hook(_module: nn.Module, args: tuple) -> None:
            x = args[0].detach().double().reshape(-1, widths.attention_heads, widths.head_dim)
            heads[i].add_(x.norm(dim=-1).square().sum(0).cpu())

        return hook

    def on_down_proj(i: int):
        def hook(_module: nn.Module, args: tuple) -> None:
            x = args[0].detach().double().reshape(-1, widths.intermediate)
            channels[i].add_(x.square().sum(0).cpu())

        return hook

    def on_layer(i: int):
        def hook(_module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            before = args[0] if args else kwargs["hidden_states"]
            after = _first_tensor(output)
            cos = nn.functional.cosine_similarity(before.double(), after.double(), dim=-1)
            influence[i] += (1.0 - cos).sum().cpu()

        return hook

    for i, layer in enumerate(layers):
        hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(on_o_proj(i)))
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(on_down_proj(i)))
        hooks.append(layer.register_forward_hook(on_layer(i), with_kwargs=True))
    device = next(model.parameters()).device
    tokens = 0
    try:
        for ids in samples:
            model(input_ids=ids.reshape(1, -1).to(device), use_cache=False)
            tokens += ids.numel()
    finally:
        for hook in hooks:
            hook.remove()
    if tokens == 0:
        raise LLMPruningError("no calibration text: importance needs at least one sample")
    return LLMImportance(
        heads=[(h / tokens).sqrt() for h in heads],
        channels=[(c / tokens).sqrt() for c in channels],
        influence=influence / tokens,
        tokens=tokens,
    )


def _keep(count: int, ratio: float, multiple: int = 1) -> int:
    """How many of ``count`` to keep at ``ratio``: half up, in multiples of ``multiple`` where
    there are many (a real MLP's thousands of channels; a toy model keeps the exact count)."""
    keep = max(1, math.floor(count * (1.0 - ratio) + 0.5))
    if multiple > 1 and keep >= 8 * multiple:
        keep = math.floor(keep / multiple + 0.5) * multiple
    return min(count, keep)


def resolve_mode(mode: HeadMode, kv_heads: int) -> Literal["query", "groups"]:
    if mode == "auto":
        return "groups" if kv_heads >= GROUP_MODE_MIN_KV_HEADS else "query"
    if mode not in ("query", "groups"):
        raise LLMPruningError(f"unknown head pruning mode {mode!r} (query, groups or auto)")
    return mode


def plan_widths(
    before: LLMWidths, ratio: float, mode: HeadMode = "auto", drop_layers: int = 0
) -> LLMWidths:
    if not 0.0 <= ratio < 1.0:
        raise LLMPruningError(f"pruning ratio {ratio} must be in [0, 1)")
    if not 0 <= drop_layers < before.layers:
        raise LLMPruningError(f"cannot drop {drop_layers} of {before.layers} layers")
    if before.attention_heads % before.kv_heads:
        raise LLMPruningError(
            f"{before.attention_heads} query heads do not split into {before.kv_heads} KV groups"
        )
    per_group = before.attention_heads // before.kv_heads
    if resolve_mode(mode, before.kv_heads) == "groups":
        kv = _keep(before.kv_heads, ratio)
        heads = kv * per_group
    else:
        kv = before.kv_heads
        heads = kv * _keep(per_group, ratio)
    return LLMWidths(
        attention_heads=heads,
        kv_heads=kv,
        head_dim=before.head_dim,
        intermediate=_keep(before.intermediate, ratio, CHANNEL_MULTIPLE),
        layers=before.layers - drop_layers,
    )


def _slice_linear(
    linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> nn.Linear:
    weight = linear.weight.detach()
    if rows is not None:
        weight = weight[rows.to(weight.device)]
    if cols is not None:
        weight = weight[:, cols.to(weight.device)]
    bias = linear.bias
    out = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            b = bias.detach()
            out.bias.copy_(b[rows.to(b.device)] if rows is not None else b)
    return out


def head_rows(heads: Iterable[int], head_dim: int) -> torch.Tensor:
    """The q_proj rows (o_proj columns) of the given heads, head by head."""
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def choose_heads(
    importance: torch.Tensor, before: LLMWidths, after: LLMWidths
) -> tuple[list[int], list[int]]:
    """(query heads, KV heads) a layer keeps, in original numbering, grouped by KV head so
    that kept query head ``j`` reads kept KV head ``j // (heads / kv_heads)`` as before."""
    per_group = before.attention_heads // before.kv_heads
    by_group = importance.reshape(before.kv_heads, per_group)
    if after.kv_heads < before.kv_heads:  # whole groups, ranked by their heads' total
        groups = sorted(by_group.sum(1).topk(after.kv_heads).indices.tolist())
        return [g * per_group + j for g in groups for j in range(per_group)], groups
    keep = after.attention_heads // after.kv_heads
    heads = []
    for g in range(before.kv_heads):
        best = sorted(by_group[g].topk(keep).indices.tolist())
        heads.extend(g * per_group + j for j in best)
    return heads, list(range(before.kv_heads))


def _prune_layer(
    layer: Any,
    heads: list[int],
    kv_heads: list[int],
    channels: torch.Tensor,
    before: LLMWidths,
    after: LLMWidths,
) -> None:
    attn, mlp, d = layer.self_attn, layer.mlp, before.head_dim
    q_rows = head_rows(heads, d)
    attn.q_proj = _slice_linear(attn.q_proj, rows=q_rows)
    attn.o_proj = _slice_linear(attn.o_proj, cols=q_rows)
    if len(kv_heads) < before.kv_heads:
        kv_rows = head_rows(kv_heads, d)
        attn.k_proj = _slice_linear(attn.k_proj, rows=kv_rows)
        attn.v_proj = _slice_linear(attn.v_proj, rows=kv_rows)
    # the attention modules read these at run time (the head count itself comes from shapes)
    attn.num_key_value_groups = after.attention_heads // after.kv_heads
    for name in ("num_heads", "num_attention_heads"):
        if hasattr(attn, name):
            setattr(attn, name, after.attention_heads)
    if hasattr(attn, "num_key_value_heads"):
        attn.num_key_value_heads = after.kv_heads
    mlp.gate_proj = _slice_linear(mlp.gate_proj, rows=channels)
    mlp.up_proj = _slice_linear(mlp.up_proj, rows=channels)
    mlp.down_proj = _slice_linear(mlp.down_proj, cols=channels)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = after.intermediate


def _drop_layers(model: Any, kept: list[int]) -> None:
    layers = decoder_layers(model)
    model.model.layers = nn.ModuleList(layers[i] for i in kept)
    for new_index, layer in enumerate(layers[i] for i in kept):
        layer.self_attn.layer_idx = new_index  # the KV cache is indexed by it
    config = model.config
    config.num_hidden_layers = len(kept)
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        config.layer_types = [layer_types[i] for i in kept]


def parameter_count(model: nn.Module) -> int:
    # tied input/output embeddings are one tensor: count each parameter once
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def prune_llm(
    model: nn.Module,
    importance: LLMImportance,
    ratio: float,
    mode: HeadMode = "auto",
    drop_layers: int = 0,
) -> PrunedLLM:
    """A pruned copy of ``model`` (the original is left as it is: it is the teacher)."""
    layers = decoder_layers(model)
    before = LLMWidths.of(model.config)
    resolved = resolve_mode(mode, before.kv_heads)
    after = plan_widths(before, ratio, resolved, drop_layers)
    if len(importance.heads) != len(layers):
        raise LLMPruningError("the importance was measured on a model with other layers")
    student = copy.deepcopy(model)
    kept_layers = sorted(importance.influence.topk(after.layers).indices.tolist())
    kept_heads, kept_kv, kept_channels = [], [], []
    for i in kept_layers:
        heads, kv = choose_heads(importance.heads[i], before, after)
        channels = importance.channels[i].topk(after.intermediate).indices.sort().values
        _prune_layer(decoder_layers(student)[i], heads, kv, channels, before, after)
        kept_heads.append(tuple(heads))
        kept_kv.append(tuple(kv))
        kept_channels.append(tuple(channels.tolist()))
    if after.layers < before.layers:
        _drop_layers(student, kept_layers)
    config: Any = student.config
    config.num_attention_heads = after.attention_heads
    config.num_key_value_heads = after.kv_heads
    config.head_dim = after.head_dim  # no longer hidden_size / heads: say it explicitly
    config.intermediate_size = after.intermediate
    record = {
        "ratio": ratio,
        "mode": resolved,
        "drop_layers": drop_layers,
        "before": before.to_dict(),
        "after": after.to_dict(),
        "kept_layers": kept_layers,
        "calibration_tokens": importance.tokens,
    }
    return PrunedLLM(
        model=student.eval(),
        widths=after,
        before=before,
        mode=resolved,
        kept_layers=tuple(kept_layers),
        kept_heads=tuple(kept_heads),
        kept_kv_heads=tuple(kept_kv),
        kept_channels=tuple(kept_channels),
        params_before=parameter_count(model),
        params_after=parameter_count(student),
        record=record,
    )
