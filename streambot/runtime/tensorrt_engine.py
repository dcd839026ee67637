"""TensorRT: build an engine from an ONNX model and run it on CUDA tensors.

Written against TensorRT 10 and 11. Networks are *strongly typed*: precision comes from the
ONNX's own types (an fp16 ONNX gives an fp16 engine), because TensorRT 11 has no FP16 builder
flag; on 10 the STRONGLY_TYPED creation flag asks for the same, and on 11 (where it is
deprecated and strong typing is always on) it is set only if the enum still has it. The
optimization profile covers batch 1..64 (opt 16) on every input's first axis; the timing cache
is kept beside the engine so a rebuild is quick. Engines and caches are tied to the GPU model
and the TensorRT version: the manifest records both.

TensorRT cannot be installed in this project's workplace (its wheels fetch the libraries from
NVIDIA's own index): this module is checked there only against the API's names, and runs
wherever ``tensorrt`` imports and a CUDA GPU exists (tests marked ``gpu``).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from streambot.runtime.base import EngineError

BATCH_MIN, BATCH_OPT, BATCH_MAX = 1, 16, 64
WORKSPACE_BYTES = 2 << 30


def load_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or EngineError saying why it cannot be used here."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or the bindings' missing native libraries
        raise EngineError(f"TensorRT is not available here ({type(exc).__name__}: {exc})") from exc
    if not hasattr(trt, "Builder"):  # e.g. only type stubs are installed
        raise EngineError("TensorRT is not available here (the tensorrt module has no Builder)")
    return trt


def _network_flags(trt: ModuleType) -> int:
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    timing_cache: str | Path,
    batch: tuple[int, int, int] = (BATCH_MIN, BATCH_OPT, BATCH_MAX),
) -> Path:
    """Compile ``onnx_path`` into a serialized engine at ``engine_path``."""
    trt = load_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]  # (batch, ...): only the batch axis is dynamic
        low, opt, high = ((b, *rest) for b in batch)
        profile.set_shape(tensor.name, low, opt, high)
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache)
    cached = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(cached)
    config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine from {onnx_path} (see its log)")
    engine_path = Path(engine_path)
    engine_path.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return engine_path


class TensorRTEngine:
    """Runs a serialized engine: inputs copied to CUDA tensors, outputs back to numpy."""

    def __init__(self, engine_path: str | Path) -> None:
        trt = load_tensorrt()
        try:
            import torch
        except ImportError as exc:
            raise EngineError("the TensorRT engine needs torch (CUDA tensors)") from exc
        if not torch.cuda.is_available():
            raise EngineError("the TensorRT engine needs a CUDA GPU")
        self._trt, self._torch = trt, torch
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise EngineError(f"{engine_path} was built for another GPU or TensorRT version")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input_names = [n for n in names if self._engine.get_tensor_mode(n) == mode]
        self.output_names = [n for n in names if self._engine.get_tensor_mode(n) != mode]
        self._stream = torch.cuda.Stream()
        self.name = "tensorrt-cuda"

    def _torch_dtype(self, name: str) -> Any:
        trt, torch = self._trt, self._torch
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16}
        return dtypes[self._engine.get_tensor_dtype(name)]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        keep = []  # the tensors must live until the stream has run
        with torch.cuda.stream(self._stream):
            for name in self.input_names:
                tensor = torch.from_numpy(np.ascontiguousarray(inputs[name])).to(
                    "cuda", self._torch_dtype(name), non_blocking=True
                )
                self._context.set_input_shape(name, tuple(tensor.shape))
                self._context.set_tensor_address(name, tensor.data_ptr())
                keep.append(tensor)
            outputs = {}
            for name in self.output_names:
                shape = tuple(self._context.get_tensor_shape(name))
                tensor = torch.empty(shape, dtype=self._torch_dtype(name), device="cuda")
                self._context.set_tensor_address(name, tensor.data_ptr())
                outputs[name] = tensor
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise EngineError("TensorRT execution failed")
        self._stream.synchronize()
        return {name: t.float().cpu().numpy() for name, t in outputs.items()}
