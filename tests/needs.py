"""Skips for tests whose optional dependencies are missing, each saying how to run them.

torch is left out of the dev extra on purpose (a bare ``pip install torch`` may pull a
multi-GB CUDA build); CI installs a CPU build first and sets ``STREAMBOT_REQUIRE_TORCH=1``,
which turns these skips into failures (see ``conftest.py``).
"""

from __future__ import annotations

import types

import pytest

TORCH_HINT = (
    "needs torch, which the dev extra does not install: `pip install torch` "
    "(a CPU build is enough, e.g. from https://download.pytorch.org/whl/cpu) to run this test"
)


def need_torch() -> types.ModuleType:
    return pytest.importorskip("torch", reason=TORCH_HINT)


PRUNING_HINT = (
    "needs torch and Torch-Pruning, which the dev extra does not install: "
    "`pip install torch torch-pruning` (a CPU torch build is enough) to run this test"
)


def need_torch_pruning() -> types.ModuleType:
    need_torch()
    return pytest.importorskip("torch_pruning", reason=PRUNING_HINT)


GGUF_HINT = (
    "needs torch, transformers, gguf and accelerate (accelerate requires torch, so the dev "
    "extra does not install it): `pip install torch accelerate 'streambot[dev]'` (a CPU torch "
    "build is enough) to run this test"
)


def need_gguf() -> types.ModuleType:
    """torch, transformers, accelerate (transformers loads a GGUF file with it) and gguf."""
    need_torch()
    for module in ("transformers", "accelerate"):
        pytest.importorskip(module, reason=GGUF_HINT)
    return pytest.importorskip("gguf", reason=GGUF_HINT)


def need_tensorrt_gpu() -> None:
    """Skip unless TensorRT imports and torch sees a CUDA GPU (never the case in this
    project's workplace: TensorRT cannot be installed there)."""
    torch = pytest.importorskip("torch")
    from streambot.runtime.base import EngineError
    from streambot.runtime.tensorrt_engine import load_tensorrt

    try:
        load_tensorrt()
    except EngineError as exc:
        pytest.skip(str(exc))
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
