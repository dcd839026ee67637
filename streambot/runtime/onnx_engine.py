"""ONNX Runtime engine (CPU by default; CUDA provider when onnxruntime-gpu is installed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streambot.runtime.base import EngineError

if TYPE_CHECKING:
    import onnxruntime


def run_dense(
    session: onnxruntime.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``session.run`` for graphs whose outputs are all dense tensors (every engine here);
    a sparse, sequence or map output is refused by name instead of failing later."""
    chosen = list(names) if names is not None else [o.name for o in session.get_outputs()]
    outputs = session.run(chosen, dict(feeds))
    dense: list[np.ndarray] = []
    for name, output in zip(chosen, outputs, strict=True):
        if not isinstance(output, np.ndarray):
            raise EngineError(f"output {name!r} is a {type(output).__name__}, not a tensor")
        dense.append(output)
    return dense


class OnnxEngine:
    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError(
                "ONNX Runtime is not installed: pip install 'streambot[neural]'"
            ) from exc
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        available = set(ort.get_available_providers())
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=chosen)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.name = f"onnxruntime-{chosen[0].removesuffix('ExecutionProvider').lower()}"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], np.float32) for name in self.input_names}
        outputs = run_dense(self.session, feed, self.output_names)
        return dict(zip(self.output_names, outputs, strict=True))
