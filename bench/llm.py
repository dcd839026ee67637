"""Time to first token with and without the system-prompt KV cache, as a ratio in one run.

Real-size architecture with random weights (speed does not depend on the weights' values):
Qwen2.5-0.5B's config by default. The prompt is a >= 1,000-token system prefix plus a
40-token turn; "with cache" includes copying the cached prefix, as every reply does.

    python bench/llm.py                      # Qwen2.5-0.5B config, CPU
    python bench/llm.py --size 1.5b --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch
from gpu_common import Bench, random_llm
from qwen_configs import LLM_CONFIGS
from transformers import Qwen2ForCausalLM

from streambot.brain.llm import PrefixCache


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(LLM_CONFIGS), default="0.5b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prefix-tokens", type=int, default=1100)
    parser.add_argument("--turn-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=32)
    return parser


def _first_token_pairs(
    model: Qwen2ForCausalLM,
    cache: PrefixCache,
    full: torch.Tensor,
    turn: torch.Tensor,
    repeats: int,
    bench: Bench,
) -> list[list[float]]:
    """Seconds to the first token (without, with the prefix cache), a pair per repeat."""

    def without_cache() -> None:
        model(input_ids=full, use_cache=True, logits_to_keep=1)

    def with_cache() -> None:
        model(input_ids=turn, past_key_values=cache.fresh(), use_cache=True, logits_to_keep=1)

    pairs = []
    without_cache(), with_cache()  # warm-up
    for _ in range(repeats):
        pairs.append([bench.timed(fn) for fn in (without_cache, with_cache)])
    return pairs


def _decode_time(
    model: Qwen2ForCausalLM,
    cache: PrefixCache,
    turn: torch.Tensor,
    tokens: int,
    bench: Bench,
) -> tuple[float, float | None]:
    """Seconds to decode `tokens` tokens after the first, and the peak GPU GiB (None on CPU)."""

    def decode() -> None:
        past = model(
            input_ids=turn, past_key_values=cache.fresh(), use_cache=True, logits_to_keep=1
        )
        token = past.logits[:, -1:].argmax(-1)
        kv = past.past_key_values
        for _ in range(tokens):
            out = model(input_ids=token, past_key_values=kv, use_cache=True, logits_to_keep=1)
            kv, token = out.past_key_values, out.logits[:, -1:].argmax(-1)

    bench.reset_peak()
    decode_s = bench.timed(decode)
    return decode_s, bench.peak_gib()


def _report(
    args: argparse.Namespace,
    params: float,
    dtype: torch.dtype,
    device: torch.device,
    encode_prefix: float,
    pairs: list[list[float]],
    decode_s: float,
    peak: float | None,
) -> None:
    no_cache = statistics.median(p[0] for p in pairs)
    cached = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    print(f"# python bench/llm.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"# Qwen2.5-{args.size} config, {params:.2f} B params, random weights, {dtype}, "
        f"{device}, {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"system prefix {args.prefix_tokens} tokens (encoded once in {encode_prefix:.2f}s), "
        f"turn {args.turn_tokens} tokens, median of {args.repeats} pairs"
    )
    print(f"time to first token without prefix cache: {no_cache * 1000:.0f} ms")
    print(f"time to first token with prefix cache:    {cached * 1000:.0f} ms")
    print(f"speed-up (median of per-pair ratios):     {ratio:.1f}x")
    rate = args.decode_tokens / decode_s
    print(f"decode: {rate:.1f} tokens/s after the first token ({args.decode_tokens} tokens)")
    if peak is not None:
        print(f"peak GPU memory: {peak:.2f} GiB")


def main() -> int:
    args = _parser().parse_args()
    bench = Bench(args.device, quick=False)
    device = bench.device
    model, dtype = random_llm(args.size, bench)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    prefix = torch.randint(0, 150_000, (1, args.prefix_tokens), device=device)
    turn = torch.randint(0, 150_000, (1, args.turn_tokens), device=device)
    full = torch.cat([prefix, turn], dim=1)

    with torch.inference_mode():
        started = time.perf_counter()
        cache = PrefixCache(model, prefix)
        bench.sync()
        encode_prefix = time.perf_counter() - started
        pairs = _first_token_pairs(model, cache, full, turn, args.repeats, bench)
        decode_s, peak = _decode_time(model, cache, turn, args.decode_tokens, bench)

    _report(args, params, dtype, device, encode_prefix, pairs, decode_s, peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
