"""The LLM pruned by width (compress/prune_llm.py), unpruned vs each ratio in one run.

Real-size architecture with random weights (Qwen2.5-0.5B's published config by default): the
speed figures hold for trained weights of that shape, the KL figure does not say anything about
quality (random weights have no knowledge to lose; the build's report measures that on the
user's model). Per model: time to first token of a 40-token turn after a cached 1,100-token
system prefix, decode tokens/s, weights + prefix KV cache memory, and the pruned folder reloaded
in vanilla transformers with the same logits. Timings are interleaved A/B/C, medians.

    python bench/llm_prune.py                     # 0.5B config, ratios 0.25 and 0.5, CPU
    python bench/llm_prune.py --size 1.5b --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile

import torch
from gpu_common import Bench, random_llm
from qwen_configs import LLM_CONFIGS
from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

from streambot.brain.llm import PrefixCache, forward_with_cache
from streambot.compress.distill_llm import full_kl
from streambot.compress.prune_llm import (
    LLMWidths,
    measure_importance,
    parameter_count,
    prune_llm,
)


def kv_bytes(model: torch.nn.Module, tokens: int) -> int:
    w = LLMWidths.of(model.config)
    element = next(model.parameters()).element_size()
    return 2 * w.layers * w.kv_heads * w.head_dim * tokens * element


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(LLM_CONFIGS), default="0.5b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ratios", default="0.25,0.5")
    parser.add_argument("--prefix-tokens", type=int, default=1100)
    parser.add_argument("--turn-tokens", type=int, default=40)
    parser.add_argument("--decode-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    return parser


def _pruned_models(
    base: Qwen2ForCausalLM, ratios: str, g: torch.Generator
) -> dict[str, Qwen2ForCausalLM]:
    """The unpruned model, then one pruned per ratio, by name."""
    calibration = [torch.randint(0, 150_000, (128,), generator=g) for _ in range(8)]
    importance = measure_importance(base, calibration)
    models = {"unpruned": base}
    for ratio in (float(r) for r in ratios.split(",")):
        pruned = prune_llm(base, importance, ratio, mode="query")
        models[f"pruned {ratio:g}"] = pruned.model
    return models


def _timings(
    models: dict[str, Qwen2ForCausalLM],
    prefix: torch.Tensor,
    turn: torch.Tensor,
    args: argparse.Namespace,
    bench: Bench,
) -> dict[str, dict[str, list[float]]]:
    """Per model: seconds to the first token, decode tokens/s; repeats interleaved A/B/C."""
    results: dict[str, dict[str, list[float]]] = {
        name: {"ttft": [], "decode": []} for name in models
    }
    caches = {name: PrefixCache(m, prefix) for name, m in models.items()}

    def first_token(name: str) -> tuple[torch.Tensor, object]:
        return forward_with_cache(models[name], turn, caches[name].fresh())

    def decode(name: str) -> None:
        logits, kv = first_token(name)
        for _ in range(args.decode_tokens):
            token = logits[:, -1:].argmax(-1)
            logits, kv = forward_with_cache(models[name], token, kv)

    for name in models:  # warm-up
        first_token(name)
    for _ in range(args.repeats):
        for name in models:
            results[name]["ttft"].append(bench.timed(lambda n=name: first_token(n)))
        for name in models:
            seconds = bench.timed(lambda n=name: decode(n))
            ttft = results[name]["ttft"][-1]
            results[name]["decode"].append(args.decode_tokens / max(1e-9, seconds - ttft))
    return results


def _fidelity(
    models: dict[str, Qwen2ForCausalLM],
    held_out: torch.Tensor,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, float]]:
    """Per pruned model: KL from the unpruned's logits, and max |logit change| once reloaded."""
    base_logits = models["unpruned"](input_ids=held_out[None]).logits[0]
    kls, reload_diff = {}, {}
    for name, model in models.items():
        if name == "unpruned":
            continue
        logits = model(input_ids=held_out[None]).logits[0]
        kls[name] = float(full_kl(logits, base_logits))
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            again = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
            diff = again(input_ids=held_out[None]).logits[0] - logits
            reload_diff[name] = float(diff.abs().max())
    return kls, reload_diff


def _print_table(
    models: dict[str, Qwen2ForCausalLM],
    results: dict[str, dict[str, list[float]]],
    kls: dict[str, float],
    reload_diff: dict[str, float],
    prefix_tokens: int,
) -> None:
    header = (
        "heads/kv",
        "MLP",
        "params",
        "weights+KV",
        "1st token",
        "x",
        "decode tok/s",
        "x",
        "KL vs unpruned",
        "reload max|diff|",
    )
    print(f"{'model':<14}" + "".join(f"{h:>16}" for h in header))
    ttft0 = statistics.median(results["unpruned"]["ttft"])
    rate0 = statistics.median(results["unpruned"]["decode"])
    for name, model in models.items():
        c = model.config
        ttft = statistics.median(results[name]["ttft"])
        rate = statistics.median(results[name]["decode"])
        params = parameter_count(model)
        memory = params * next(model.parameters()).element_size() + kv_bytes(model, prefix_tokens)
        cells = (
            f"{c.num_attention_heads}/{c.num_key_value_heads}",
            str(c.intermediate_size),
            f"{params / 1e6:.0f}M",
            f"{memory / 2**20:.0f} MiB",
            f"{ttft * 1000:.0f} ms",
            f"{ttft0 / ttft:.2f}",
            f"{rate:.1f}",
            f"{rate / rate0:.2f}",
            f"{kls[name]:.3f}" if name in kls else "-",
            f"{reload_diff[name]:.1e}" if name in reload_diff else "-",
        )
        print(f"{name:<14}" + "".join(f"{x:>16}" for x in cells))


def main() -> int:
    args = _parser().parse_args()
    bench = Bench(args.device, quick=False)
    device = bench.device
    base, dtype = random_llm(args.size, bench)
    g = torch.Generator().manual_seed(1)
    models = _pruned_models(base, args.ratios, g)

    prefix = torch.randint(0, 150_000, (1, args.prefix_tokens), generator=g).to(device)
    turn = torch.randint(0, 150_000, (1, args.turn_tokens), generator=g).to(device)
    held_out = torch.randint(0, 150_000, (256,), generator=g).to(device)

    with torch.inference_mode():
        results = _timings(models, prefix, turn, args, bench)
        kls, reload_diff = _fidelity(models, held_out, dtype, device)

    print(f"# python bench/llm_prune.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"# Qwen2.5-{args.size} config, random weights, {dtype}, {device}, "
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"turn {args.turn_tokens} tokens after a cached {args.prefix_tokens}-token prefix; "
        f"medians of {args.repeats}"
    )
    _print_table(models, results, kls, reload_diff, args.prefix_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
