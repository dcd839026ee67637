"""What every section of ``bench/gpu_bench.py`` shares: the device and its timing (``Bench``),
a table row, the real-size Wav2Lip's inputs and engine, and a Qwen2 LLM of a published shape
with random weights (which bench/llm.py and bench/llm_prune.py build and time the same way)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from qwen_configs import LLM_CONFIGS as PUBLISHED_CONFIGS
from qwen_configs import qwen_config

if TYPE_CHECKING:
    from transformers import Qwen2ForCausalLM

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


# -- the LLM ----------------------------------------------------------------------------------
def random_llm(size: str, b: Bench) -> tuple[Qwen2ForCausalLM, torch.dtype]:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tiny = {"vocab_size": 1000, **LLM_CONFIGS["tiny"]} if size == "tiny" else {}
    config = Qwen2Config(**qwen_config(size, **tiny))
    dtype = torch.bfloat16 if b.cuda else torch.float32
    torch.manual_seed(0)
    with b.device:
        model = Qwen2ForCausalLM(config)
    return model.to(dtype).eval(), dtype
