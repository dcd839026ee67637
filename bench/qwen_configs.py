"""Published Qwen2.5 architectures (config.json of Qwen/Qwen2.5-0.5B-Instruct and
-1.5B-Instruct), for benches that build them with random weights; no weights are downloaded."""

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
LLM_CONFIGS: dict[str, dict[str, int]] = {
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
}
