"""A real Triton Inference Server for the face, on a machine with no GPU Triton: PyTriton's
``tritonserver`` binary (its Python backend) serving one model of the repository
``build_engines.py --backends ...,triton`` writes, as that model's ``config.pbtxt`` says (name,
tensors, batch limit, dynamic batcher with its priority levels), the engine run by ONNX Runtime
inside the bound function.

It runs in a venv of its own (PyTriton pins numpy<2; ``../shared/REAL-MODELS.md``), made from
Debian's /usr/bin/python3 (the backend stub needs its standard library):

    /usr/bin/python3 -m venv .triton-venv
    .triton-venv/bin/pip install nvidia-pytriton onnxruntime
    .triton-venv/bin/python bench/triton_face_server.py engines/triton/wav2lip-p50-int8

It prints ``ready <model> http <port> grpc <port>`` once Triton serves the model. The tests
(tests/integration/test_triton_face.py) and bench/face_service.py start it with
``TritonProcess``, which waits for the model's readiness endpoint (KServe v2) instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonProcess:
    """This server as a process, on ports of its own, from the tests and the benchmark (which
    run in the main venv: only the standard library is used here)."""

    def __init__(
        self, python: Path, model_dir: Path, threads: int = 1, extra: Sequence[str] = ()
    ) -> None:
        self.python, self.model_dir = python, model_dir
        self.threads, self.extra = threads, list(extra)
        self.ports = [free_port() for _ in range(3)]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    def start(self, wait_s: float = 180.0) -> None:
        http, grpc, metrics = self.ports
        self.process = subprocess.Popen(
            [
                str(self.python),
                __file__,
                str(self.model_dir),
                "--http-port",
                str(http),
                "--grpc-port",
                str(grpc),
                "--metrics-port",
                str(metrics),
                "--threads",
                str(self.threads),
            ],
            stdout=subprocess.DEVNULL,  # a pipe nobody reads would fill and stop the server
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        raise AssertionError("the Triton server did not start")

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
                os.killpg(self.process.pid, 9)  # the server and its backend stubs
            self.process.wait(10)
            self.process = None

    def ready(self) -> bool:
        """Whether the server serves the model (KServe v2's readiness endpoint)."""
        url = f"http://{self.url}/v2/models/{self.model_dir.name}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return resp.status == 200
        except OSError:  # not listening yet, or not ready (an HTTP error is an OSError too)
            return False

    def stats(self, model: str) -> dict:
        """The model's statistics: ``inference_count`` frames in ``execution_count`` runs."""
        with urllib.request.urlopen(f"http://{self.url}/v2/models/{model}/stats") as resp:
            return json.loads(resp.read())["model_stats"][0]


def _config(folder: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    text = (folder / "config.pbtxt").read_text(encoding="utf-8")
    return text_format.Parse(text, model_config_pb2.ModelConfig()), model_config_pb2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="a model folder of the generated repository")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime's intra-op threads")
    p.add_argument(
        "--no-dynamic-batching",
        action="store_true",
        help="each request executed on its own, as a server that shares a model but not its "
        "batches does (the A of the batching A/B)",
    )
    return p


def _session(model: Path, threads: int) -> Any:
    """ONNX Runtime on the CPU for the model's engine, its threads not spinning when idle."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(model / "1" / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


def _infer_func(
    session: Any, config: Any, numpy_types: dict[int, type], one_by_one: bool
) -> Callable[..., Any]:
    """The function Triton calls: on each batch it joined, or on each request on its own."""
    from pytriton.decorators import batch

    outputs = [o.name for o in config.output]
    types = {t.name: numpy_types[t.data_type] for t in config.input}

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(value, types[name]) for name, value in inputs.items()}
        return dict(zip(outputs, session.run(outputs, feed), strict=True))

    @batch
    def infer_together(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return run(inputs)  # every request Triton joined, as one batch

    def infer_one_by_one(requests: list) -> list[dict[str, np.ndarray]]:
        return [run(dict(request.items())) for request in requests]  # each room on its own

    return infer_one_by_one if one_by_one else infer_together


def _tensors(section: Any, numpy_types: dict[int, type]) -> list[Any]:
    from pytriton.model_config import Tensor

    return [
        Tensor(name=t.name, dtype=numpy_types[t.data_type], shape=tuple(t.dims)) for t in section
    ]


def _model_config(config: Any, no_dynamic_batching: bool) -> Any:
    """PyTriton's model config: config.pbtxt's batch limit and dynamic batcher (or none)."""
    from pytriton.model_config import DynamicBatcher, ModelConfig

    batching = config.dynamic_batching
    return ModelConfig(
        max_batch_size=config.max_batch_size,
        batcher=None
        if no_dynamic_batching
        else DynamicBatcher(
            max_queue_delay_microseconds=batching.max_queue_delay_microseconds,
            preferred_batch_size=list(batching.preferred_batch_size),
            priority_levels=batching.priority_levels,
            default_priority_level=batching.default_priority_level,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    config, pb = _config(args.model)
    session = _session(args.model, args.threads)
    numpy_types = {pb.TYPE_FP32: np.float32, pb.TYPE_FP16: np.float16}
    if any(t.data_type not in numpy_types for t in (*config.input, *config.output)):
        print(f"{config.name}: only fp32 and fp16 tensors are served here", file=sys.stderr)
        return 2
    infer_func = _infer_func(session, config, numpy_types, args.no_dynamic_batching)
    model_config = _model_config(config, args.no_dynamic_batching)

    server = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port
    )
    # statistics open (the tests and the benchmark read the batcher's figures from them);
    # what changes the server stays behind PyTriton's token
    security = TritonSecurityConfig(restricted_endpoints=["model-repository", "trace", "logging"])
    with Triton(config=server, security_config=security) as triton:
        triton.bind(
            model_name=config.name,
            infer_func=infer_func,
            inputs=_tensors(config.input, numpy_types),
            outputs=_tensors(config.output, numpy_types),
            config=model_config,
            strict=True,
        )
        triton.run()
        print(f"ready {config.name} http {args.http_port} grpc {args.grpc_port}", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
