"""Published Qwen2.5 architectures (config.json of Qwen/Qwen2.5-0.5B-Instruct, -1.5B-Instruct
and -7B-Instruct), for benches that build them with random weights; no weights are
downloaded. The one table of them: every bench reads its sizes here."""

from __future__ import annotations

from typing import Any

QWEN_COMMON: dict[str, Any] = dict(
    vocab_size=151_936,
    max_position_embeddings=32_768,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    hidden_act="silu",
)
LLM_CONFIGS: dict[str, dict[str, Any]] = {
    "0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
    ),
    "1.5b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
    ),
    "7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        tie_word_embeddings=False,
    ),
}


def qwen_config(size: str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of ``transformers.Qwen2Config`` for a published ``size`` (or one
    of ``overrides``' own shapes): the common settings, the size's, then ``overrides``."""
    return {**QWEN_COMMON, **LLM_CONFIGS.get(size, {}), **overrides}
