"""The LLM on a CPU in float32 against bfloat16: system prompt, a turn's prefill, decode.

One model file loaded once per dtype (``LocalLLM.from_loaded(dtype=)``, the daemon's own path:
the demo catalog's system prompt cached, a viewer's question encoded on top, then one token at
a time, greedy); the two dtypes' runs interleaved so a load that comes and goes slows both
alike; medians and the ratio. Which dtype answers right is ``bench/brain_eval.py --dtype``'s
question, not this one's.

    python bench/llm_dtype.py --model /models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from streambot.brain.llm import LocalLLM, cpu_has_bfloat16, forward_with_cache
from streambot.brain.llm_load import load_causal_lm
from streambot.brain.prompt import system_prompt, turn_messages
from streambot.catalog import Catalog
from streambot.events import ChatMessage
from streambot.turn import Turn

QUESTION = "Is the AeroBrew Coffee Grinder in stock, and how fast does it ship?"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder or a .gguf file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=24)
    return parser


def _runner(llm: LocalLLM, ids: torch.Tensor, tokens: int):
    """``run()``: (seconds to the first token after the cached system prompt, ms per token)."""

    @torch.inference_mode()
    def run() -> tuple[float, float]:
        started = time.perf_counter()
        cache, todo = llm.after_prefix(ids)
        logits, cache = forward_with_cache(llm.model, todo, cache)
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(tokens):
            token = torch.argmax(logits[0, -1]).reshape(1, 1)
            logits, cache = forward_with_cache(llm.model, token, cache)
        return first, (time.perf_counter() - started) * 1000.0 / tokens

    return run


def main() -> int:
    args = _parser().parse_args()
    catalog = Catalog.load()
    system = system_prompt(catalog)
    turn = Turn(1, "answer", ChatMessage("bench", "ann", QUESTION), "en")
    tokenizer, model = load_causal_lm(args.model)  # float32
    arms: dict[str, tuple[LocalLLM, object]] = {}
    prompt_s: dict[str, float] = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        llm = LocalLLM.from_loaded(tokenizer, model, dtype=dtype)
        llm.executor.shutdown()  # timed on this thread
        started = time.perf_counter()
        llm.set_system_prompt(system)
        prompt_s[name] = time.perf_counter() - started
        ids = llm.encode(turn_messages(turn, catalog), True)
        arms[name] = (llm, _runner(llm, ids, args.decode_tokens))
    for _, run in arms.values():
        run()  # warm-up
    first: dict[str, list[float]] = {name: [] for name in arms}
    per_token: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, (_, run) in arms.items():
            f, t = run()
            first[name].append(f)
            per_token[name].append(t)
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, native bfloat16: {cpu_has_bfloat16()}"
    )
    prefix = arms["float32"][0].prefix
    print(f"system prompt {prefix.length if prefix else 0} tokens, question {QUESTION!r}\n")
    print(
        "| dtype | system prompt s | first token after it s (median) | decode ms/token (median) |"
    )
    print("|---|---|---|---|")
    for name in arms:
        print(
            f"| {name} | {prompt_s[name]:.2f} | {statistics.median(first[name]):.2f} "
            f"| {statistics.median(per_token[name]):.0f} |"
        )
    ratio_first = statistics.median(first["float32"]) / statistics.median(first["bfloat16"])
    ratio_decode = statistics.median(per_token["float32"]) / statistics.median(
        per_token["bfloat16"]
    )
    print(f"\nbfloat16 against float32: first token {ratio_first:.2f}x, decode {ratio_decode:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
