"""Many rooms against one face server: K rooms (1, 2, 4, 8) each asking a real Triton for its
frames at the stream's rate, with the rooms' requests batched together (Triton's dynamic
batcher) and run one by one (a server that shares the model but not its batches), in one run.

The engine is the real-size Wav2Lip pruned to p50 (``--prune``) with random weights (speed does
not depend on their values; fidelity is build_engines.py's), exported to ONNX and, with
``--int8``, quantized as the build does; its Triton model is written as
``build_engines.py --backends triton`` writes it and served by bench/triton_face_server.py
(PyTriton's tritonserver, ONNX Runtime in its Python backend, one intra-op thread per
``--server-threads``) from the venv ``--triton-python`` names.

Each room sends a batch of ``--batch`` frames when the stream needs it (a batch every
batch / fps seconds) and counts a frame late when its batch came back after the moment the
next batch was due. Reported per K: per-room FPS delivered, late frames, request latency p50
and p95, the server's mean batch (frames per execution, from its statistics) and bytes on the
wire per frame (inputs and output, binary). Unpaced throughput at 8 rooms (every room asks as
fast as answers come) is the batching A/B's ratio. ``--transport shm,wire`` runs each K with
the tensors in system shared memory (what a room on the server's host does) and on the wire.

    python bench/face_service.py --triton-python .triton-venv/bin/python --int8
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.triton_face_server import TritonProcess  # noqa: E402
from streambot.compress.triton_repo import TritonModel, onnx_tensors, place_model  # noqa: E402
from streambot.runtime.export import WAV2LIP_INPUTS, WAV2LIP_OUTPUTS  # noqa: E402
from streambot.runtime.triton_engine import TritonEngine  # noqa: E402


def build_model(work: Path, ratio: float, int8: bool) -> Path:
    """The p50 engine's Triton model folder (random weights)."""
    import torch

    from streambot.compress.prune import prune_wav2lip
    from streambot.compress.quantize import quantize_wav2lip
    from streambot.models.wav2lip import Wav2Lip
    from streambot.runtime.export import export_wav2lip_onnx

    torch.manual_seed(0)
    model = prune_wav2lip(Wav2Lip().eval(), ratio).model
    path = export_wav2lip_onnx(model, work / "wav2lip.onnx")
    if int8:
        rng = np.random.default_rng(0)
        calibration = (
            {
                "mel": rng.standard_normal((8, 1, 80, 16), dtype=np.float32),
                "face": rng.random((8, 6, 96, 96), dtype=np.float32),
            }
            for _ in range(8)
        )
        path = quantize_wav2lip(path, work / "wav2lip-int8.onnx", calibration, batches=8)
    name = f"wav2lip-p{round(ratio * 100):02d}" + ("-int8" if int8 else "")
    served = TritonModel(name, "onnxruntime", *onnx_tensors(path), gpu=False)
    return place_model(served, path, work / "triton")


def frames(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "mel": rng.standard_normal((batch, 1, 80, 16), dtype=np.float32),
        "face": rng.random((batch, 6, 96, 96), dtype=np.float32),
    }


def stats(server: TritonProcess, model: str) -> tuple[int, int]:
    figures = server.stats(model)
    return figures["inference_count"], figures["execution_count"]


def rooms(
    server: TritonProcess,
    model: str,
    k: int,
    args: argparse.Namespace,
    paced: bool,
    transport: str = "shm",
) -> dict:
    """K rooms for ``args.seconds``: their FPS, late frames, latencies and the mean batch."""
    period = args.batch / args.fps
    latencies: list[float] = []
    late, done = [0] * k, [0] * k
    start = time.monotonic() + 0.5
    lock = threading.Lock()

    def room(i: int) -> None:
        engine = TritonEngine(
            server.url,
            model,
            WAV2LIP_INPUTS,
            WAV2LIP_OUTPUTS,
            timeout_s=30,
            shared_memory="auto" if transport == "shm" else "off",
        )
        inputs = frames(args.batch, i)
        n = 0
        while (now := time.monotonic()) < start + args.seconds:
            due = start + n * period
            if paced and now < due:
                time.sleep(due - now)
            sent = time.monotonic()
            engine.run(inputs)
            back = time.monotonic()
            with lock:
                latencies.append(back - sent)
            done[i] += args.batch
            if paced and back > due + period:
                late[i] += args.batch
            n += 1

    before = stats(server, model)
    threads = [threading.Thread(target=room, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inferences, executions = (a - b for a, b in zip(stats(server, model), before, strict=True))
    latencies.sort()
    return {
        "fps_per_room": statistics.median(done) / args.seconds,
        "late_frames": sum(late),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "mean_batch": inferences / max(executions, 1),
        "frames": sum(done),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--triton-python", default=str(ROOT / ".triton-venv/bin/python"))
    p.add_argument("--rooms", default="1,2,4,8")
    p.add_argument("--prune", type=float, default=0.5)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--server-threads", type=int, default=2)
    p.add_argument(
        "--batching", default="on,off", help="on: rooms batched together; off: one by one"
    )
    p.add_argument("--transport", default="shm", help="shm (system shared memory), wire")
    args = p.parse_args()
    counts = [int(k) for k in args.rooms.split(",")]
    wire = 4 * (1 * 80 * 16 + 6 * 96 * 96 + 3 * 96 * 96)  # float32 in and out, per frame
    print(f"# python bench/face_service.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# {platform.machine()}, server and rooms on this machine; {wire} bytes/frame on wire")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp), args.prune, args.int8)
        print(
            "| batching | transport | rooms | FPS per room | late frames | p50 ms | p95 ms "
            "| mean batch |"
        )
        print("|---|---|---|---|---|---|---|---|")
        unpaced = {}
        for batching in (mode == "on" for mode in args.batching.split(",")):
            extra = [] if batching else ["--no-dynamic-batching"]
            server = TritonProcess(Path(args.triton_python), folder, args.server_threads, extra)
            server.start()
            try:
                rooms(server, folder.name, 1, args, paced=False)  # warm-up
                for k, transport in itertools.product(counts, args.transport.split(",")):
                    r = rooms(server, folder.name, k, args, paced=True, transport=transport)
                    print(
                        f"| {'on' if batching else 'off'} | {transport} | {k} | "
                        f"{r['fps_per_room']:.1f} | "
                        f"{r['late_frames']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                        f"{r['mean_batch']:.1f} |",
                        flush=True,
                    )
                top = max(counts)
                unpaced[batching] = rooms(server, folder.name, top, args, paced=False)["frames"]
            finally:
                server.stop()
        for batching, frames_done in unpaced.items():
            print(
                f"unpaced, {max(counts)} rooms, batching {'on' if batching else 'off'}: "
                f"{frames_done / args.seconds:.0f} frames/s"
            )
        if len(unpaced) == 2:
            print(f"batched / unbatched: {unpaced[True] / max(unpaced[False], 1):.2f}x")


if __name__ == "__main__":
    main()
