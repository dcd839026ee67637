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
(tests/integration/test_triton_face.py) and bench/face_service.py start it this way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np


def _config(folder: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    text = (folder / "config.pbtxt").read_text(encoding="utf-8")
    return text_format.Parse(text, model_config_pb2.ModelConfig()), model_config_pb2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="a model folder of the generated repository")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime's intra-op threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import onnxruntime as ort
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    config, pb = _config(args.model)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if args.threads:
        options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(
        str(args.model / "1" / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    outputs = [o.name for o in config.output]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(value, np.float32) for name, value in inputs.items()}
        return dict(zip(outputs, session.run(outputs, feed), strict=True))

    def tensors(section) -> list[Tensor]:
        return [Tensor(name=t.name, dtype=np.float32, shape=tuple(t.dims)) for t in section]

    batching = config.dynamic_batching
    model_config = ModelConfig(
        max_batch_size=config.max_batch_size,
        batcher=DynamicBatcher(
            max_queue_delay_microseconds=batching.max_queue_delay_microseconds,
            preferred_batch_size=list(batching.preferred_batch_size),
            priority_levels=batching.priority_levels,
            default_priority_level=batching.default_priority_level,
        ),
    )
    server = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port
    )
    if any(t.data_type != pb.TYPE_FP32 for t in (*config.input, *config.output)):
        print(f"{config.name}: only fp32 tensors are served here", file=sys.stderr)
        return 2
    # statistics open (the tests and the benchmark read the batcher's figures from them);
    # what changes the server stays behind PyTriton's token
    security = TritonSecurityConfig(restricted_endpoints=["model-repository", "trace", "logging"])
    with Triton(config=server, security_config=security) as triton:
        triton.bind(
            model_name=config.name,
            infer_func=infer,
            inputs=tensors(config.input),
            outputs=tensors(config.output),
            config=model_config,
            strict=True,
        )
        triton.run()
        print(f"ready {config.name} http {args.http_port} grpc {args.grpc_port}", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
