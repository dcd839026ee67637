"""Width and depth pruning of Hugging Face LLMs that keeps grouped-query attention consistent:
the pruned model is the unpruned one with the removed parts zeroed, and a vanilla folder."""

from __future__ import annotations

import copy

import pytest
from needs import need_torch

torch = need_torch()
transformers = pytest.importorskip("transformers")

from streambot.compress.prune_llm import (  # noqa: E402
    LLMPruningError,
    LLMWidths,
    head_rows,
    measure_importance,
    plan_widths,
    prune_llm,
)

FAMILIES = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 8}),  # q_norm/k_norm per head
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
}


def tiny_llm(family="qwen2", heads=8, kv_heads=2, layers=3, seed=0):
    config_name, model_name, extra = FAMILIES[family]
    config = getattr(transformers, config_name)(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        **extra,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():  # random init leaves biases at zero: give them values to slice
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def calibration(n=6, length=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 97, (length,), generator=g) for _ in range(n)]


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids.reshape(1, -1)).logits


def zeroed_reference(model, pruned):
    """The unpruned model with the pruned-away heads' o_proj columns and MLP channels zeroed."""
    reference = copy.deepcopy(model)
    d = pruned.before.head_dim
    for i, layer in enumerate(reference.model.layers):
        heads = set(pruned.kept_heads[i])
        removed = [h for h in range(pruned.before.attention_heads) if h not in heads]
        with torch.no_grad():
            if removed:
                layer.self_attn.o_proj.weight[:, head_rows(removed, d)] = 0
            channels = set(pruned.kept_channels[i])
            drop = [c for c in range(layer.mlp.down_proj.weight.shape[1]) if c not in channels]
            layer.mlp.down_proj.weight[:, drop] = 0
    return reference


@pytest.mark.parametrize("family", list(FAMILIES))
def test_query_heads_go_evenly_within_each_kv_group_and_the_model_equals_the_zeroed_one(
    family, tmp_path
):
    model = tiny_llm(family)
    importance = measure_importance(model, calibration())
    pruned = prune_llm(model, importance, ratio=0.5, mode="query")
    assert pruned.widths == LLMWidths(
        attention_heads=4, kv_heads=2, head_dim=8, intermediate=80, layers=3
    )
    for heads in pruned.kept_heads:  # 4 query heads per KV group before, 2 of each group after
        assert [h // 4 for h in heads] == [0, 0, 1, 1]
    attn = pruned.model.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (4 * 8, 64) and attn.o_proj.weight.shape == (64, 4 * 8)
    assert attn.k_proj.weight.shape == (2 * 8, 64)  # KV heads untouched in query mode
    assert pruned.model.model.layers[0].mlp.down_proj.weight.shape == (64, 80)
    assert pruned.params_after < pruned.params_before

    ids = calibration(1, 30, seed=7)[0]
    expected = logits(zeroed_reference(model, pruned), ids)
    assert torch.allclose(logits(pruned.model, ids), expected, atol=1e-5)
    assert not torch.allclose(logits(model, ids), expected, atol=1e-3)  # something was removed

    # a vanilla folder: the config alone describes the widths
    pruned.model.save_pretrained(tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_attention_heads == 4 and reloaded.config.head_dim == 8
    assert reloaded.config.intermediate_size == 80
    assert torch.allclose(logits(reloaded, ids), expected, atol=1e-5)


def test_whole_kv_groups_go_with_their_query_heads(tmp_path):
    model = tiny_llm(heads=8, kv_heads=4)
    importance = measure_importance(model, calibration())
    pruned = prune_llm(model, importance, ratio=0.5, mode="groups")
    assert (pruned.widths.attention_heads, pruned.widths.kv_heads) == (4, 2)
    for heads, groups in zip(pruned.kept_heads, pruned.kept_kv_heads, strict=True):
        assert len(groups) == 2 and [h // 2 for h in heads] == [g for g in groups for _ in "ab"]
    attn = pruned.model.model.layers[0].self_attn
    assert attn.k_proj.weight.shape == attn.v_proj.weight.shape == (2 * 8, 64)
    ids = calibration(1, 30, seed=7)[0]
    expected = logits(zeroed_reference(model, pruned), ids)
    assert torch.allclose(logits(pruned.model, ids), expected, atol=1e-5)
    pruned.model.save_pretrained(tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_key_value_heads == 2
    assert torch.allclose(logits(reloaded, ids), expected, atol=1e-5)


def test_importance_keeps_the_heads_and_channels_that_carry_the_signal():
    model = tiny_llm(heads=8, kv_heads=4)
    layer = model.model.layers[1]
    with torch.no_grad():  # KV group 1 and MLP channels 0-79 output nothing: they must go
        layer.self_attn.v_proj.weight[1 * 8 : 2 * 8] = 0
        layer.self_attn.v_proj.bias[1 * 8 : 2 * 8] = 0
        layer.mlp.up_proj.weight[:80] = 0
    importance = measure_importance(model, calibration())
    assert importance.heads[1][2:4].max() == 0 < importance.heads[1][[0, 1, 4, 5]].min()
    pruned = prune_llm(model, importance, ratio=0.5, mode="groups")
    assert 1 not in pruned.kept_kv_heads[1] and not {2, 3} & set(pruned.kept_heads[1])
    assert min(pruned.kept_channels[1]) >= 80  # none of the silent channels survived


def test_depth_pruning_drops_the_layer_that_changes_nothing_and_the_cache_still_works(tmp_path):
    model = tiny_llm(layers=4)
    with torch.no_grad():  # layer 2 adds nothing to the residual stream: an identity block
        model.model.layers[2].self_attn.o_proj.weight.zero_()
        model.model.layers[2].mlp.down_proj.weight.zero_()
    importance = measure_importance(model, calibration())
    assert int(importance.influence.argmin()) == 2
    pruned = prune_llm(model, importance, ratio=0.0, drop_layers=1)
    assert pruned.kept_layers == (0, 1, 3) and pruned.widths.layers == 3
    ids = calibration(1, 20, seed=3)[0]
    assert torch.allclose(logits(pruned.model, ids), logits(model, ids), atol=1e-5)
    pruned.model.save_pretrained(tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert len(reloaded.model.layers) == 3
    # greedy generation with the KV cache matches the uncached forward pass token by token
    with torch.no_grad():
        out = reloaded.generate(ids.reshape(1, -1), max_new_tokens=6, do_sample=False)
    sequence = out[0]
    for step in range(ids.numel(), sequence.numel()):
        assert int(logits(reloaded, sequence[:step])[0, -1].argmax()) == int(sequence[step])


def test_widths_stay_uniform_and_sensible():
    before = LLMWidths(attention_heads=14, kv_heads=2, head_dim=64, intermediate=4864, layers=24)
    half = plan_widths(before, 0.5, "query")  # Qwen2.5-0.5B: 7 heads per group -> 4
    assert (half.attention_heads, half.kv_heads, half.intermediate) == (8, 2, 2432)
    quarter = plan_widths(before, 0.25, "query")
    assert (quarter.attention_heads, quarter.intermediate) == (10, 3648)
    assert plan_widths(before, 0.5, "auto").kv_heads == 2  # too few KV heads for group pruning
    many = LLMWidths(attention_heads=32, kv_heads=8, head_dim=128, intermediate=14336, layers=32)
    assert plan_widths(many, 0.5, "auto").kv_heads == 4
    for ratio in (1.0, -0.1):
        with pytest.raises(LLMPruningError, match="ratio"):
            plan_widths(before, ratio)
    with pytest.raises(LLMPruningError, match="drop 24 of 24"):
        plan_widths(before, 0.5, drop_layers=24)


def test_a_model_without_the_expected_layout_is_refused_by_name():
    with pytest.raises(LLMPruningError, match="not a Qwen/Llama-style"):
        measure_importance(torch.nn.Linear(3, 3), calibration())
