"""Wav2Lip render-path throughput: full path (mel + model + paste-back into 1280x720) against
the bare model forward, per backend and batch size, real-size random weights, in one run.

    python bench/wav2lip.py                    # torch CPU and ONNX Runtime CPU, batch 1/8/32
    python bench/wav2lip.py --cuda-batch 64    # adds torch CUDA fp16 when a GPU is present
    python bench/wav2lip.py --backends onnx --batches 8 --prune 0,0.3,0.5   # pruned vs not

``--prune`` ratios are pruned with ``streambot.compress.prune`` (Torch-Pruning): random weights,
since speed does not depend on their values; fidelity is measured by ``build_engines.py``.
``--fp16`` adds the fp16 ONNX export (the TensorRT input) on ONNX Runtime CPU, and ``--slim``
the fp32 export after onnxslim's graph simplification (``pip install onnxslim``; it prints the
node counts before and after), so either is kept or dropped on a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from streambot.face.avatar import PreparedAvatar
from streambot.face.wav2lip import Wav2LipFace
from streambot.models.wav2lip import Wav2Lip
from streambot.runtime.base import Engine
from streambot.runtime.torch_engine import TorchEngine
from streambot.timing import DEFAULT_FPS, FACE_RATE, samples_per_frame


def astronaut_avatar(work: Path) -> PreparedAvatar:
    from PIL import Image
    from skimage.data import astronaut

    from streambot.face.wav2lip import prepare_for_output

    path = work / "astronaut.png"
    Image.fromarray(astronaut()).save(path)
    return prepare_for_output(path, work / "avatars", 1280, 720, fps=DEFAULT_FPS)


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    engine: Engine, avatar: PreparedAvatar, batch: int, frames: int, repeats: int
) -> tuple[float, float, float]:
    """Median bare FPS, median full-path FPS, and the median of their per-pair ratio.

    Bare and full passes alternate, so machine noise hits both sides of each ratio alike.
    """
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((batch, 1, 80, 16)).astype(np.float32)
    face_in = rng.random((batch, 6, 96, 96)).astype(np.float32)
    steps = max(1, frames // batch)
    n = steps * batch

    def bare() -> None:
        for _ in range(steps):
            engine.run({"mel": mel, "face": face_in})

    face = Wav2LipFace(engine, avatar, 1280, 720, DEFAULT_FPS, first_batch=batch, batch=batch)
    spf = samples_per_frame(DEFAULT_FPS, FACE_RATE)
    pcm = (0.3 * rng.standard_normal(n * spf)).astype(np.float32)

    async def full_async() -> None:
        async for _ in face.render(pcm, 0):
            pass

    loop = asyncio.new_event_loop()  # one loop and worker pool, as in the running daemon

    def full() -> None:
        loop.run_until_complete(full_async())

    try:
        bare(), full()  # warm-up: allocations, kernel selection, thread pools
        pairs = [(timed(bare), timed(full)) for _ in range(repeats)]
    finally:
        loop.close()
    bare_fps = statistics.median(n / b for b, _ in pairs)
    full_fps = statistics.median(n / f for _, f in pairs)
    ratio = statistics.median(b / f for b, f in pairs)
    return bare_fps, full_fps, ratio


def _int8_engine(fp32: Path, avatar: PreparedAvatar) -> Engine:
    """int8 static QDQ of ``fp32``, calibrated on the avatar's crops with random mel windows
    (speed only: the build calibrates on the voice's mel and measures the fidelity)."""
    from streambot.compress.quantize import quantize_wav2lip
    from streambot.compress.wav2lip_data import face_inputs
    from streambot.runtime.onnx_engine import OnnxEngine

    rng = np.random.default_rng(1)

    def calibration():
        for start in range(0, 128, 8):
            yield {
                "mel": rng.standard_normal((8, 1, 80, 16)).astype(np.float32),
                "face": face_inputs(avatar, range(start, start + 8)),
            }

    engine = OnnxEngine(
        quantize_wav2lip(fp32, fp32.with_name(fp32.stem + "-int8.onnx"), calibration())
    )
    engine.name += " int8"
    return engine


def _slim_engine(fp32: Path) -> Engine:
    """``fp32`` after onnxslim (constant folding, fusion, dead-node removal)."""
    import onnx
    import onnxslim

    from streambot.runtime.onnx_engine import OnnxEngine

    before = len(onnx.load(str(fp32)).graph.node)
    slim = fp32.with_name(fp32.stem + "-slim.onnx")
    onnx.save(onnxslim.slim(str(fp32)), str(slim))
    after = len(onnx.load(str(slim)).graph.node)
    print(f"# onnxslim {fp32.name}: {before} nodes -> {after}")
    engine = OnnxEngine(slim)
    engine.name += " slim"
    return engine


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--frames", type=int, default=32, help="frames per timed pass")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cuda-batch", type=int, default=64)
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--prune", default="0", help="pruning ratios, e.g. 0,0.3,0.5")
    parser.add_argument("--int8", action="store_true", help="also int8 static QDQ (ONNX)")
    parser.add_argument("--fp16", action="store_true", help="also the fp16 ONNX export")
    parser.add_argument("--slim", action="store_true", help="also the onnxslim'd fp32 ONNX")
    return parser


def _cpu_engines(
    model: Wav2Lip, tag: str, work: Path, avatar: PreparedAvatar, args: argparse.Namespace
) -> list[Engine]:
    """The CPU engines --backends, --int8, --fp16 and --slim ask for, built from `model`."""
    engines = []
    if "torch" in args.backends:
        engines.append(TorchEngine(model, ["mel", "face"], ["frame"], device="cpu"))
    if "onnx" in args.backends:
        from streambot.runtime.export import export_wav2lip_onnx
        from streambot.runtime.onnx_engine import OnnxEngine

        path = export_wav2lip_onnx(model, work / f"w2l{tag.strip()}.onnx")
        engines.append(OnnxEngine(path))
        if args.int8:
            engines.append(_int8_engine(path, avatar))
        if args.fp16:
            half = export_wav2lip_onnx(
                model, work / f"w2l{tag.strip()}-fp16.onnx", precision="fp16"
            )
            engines.append(OnnxEngine(half))
            engines[-1].name += " fp16"
        if args.slim:
            engines.append(_slim_engine(path))
    return engines


def _report(rows: list[tuple[str, int, float, float, float]]) -> None:
    print(f"# python bench/wav2lip.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'backend':<22}{'batch':>6}{'bare fps':>11}{'full fps':>11}{'full/bare':>11}")
    for name, batch, bare, full, ratio in rows:
        print(f"{name:<22}{batch:>6}{bare:>11.1f}{full:>11.1f}{ratio:>11.2f}")


def main() -> int:
    args = _parser().parse_args()
    torch.manual_seed(0)
    unpruned = Wav2Lip().eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        avatar = astronaut_avatar(work)
        batches = [int(b) for b in args.batches.split(",")]
        for ratio in (float(r) for r in args.prune.split(",")):
            model = unpruned
            if ratio > 0:
                from streambot.compress.prune import prune_wav2lip

                model = prune_wav2lip(unpruned, ratio).model
            tag = f" p{round(ratio * 100):02d}" if ratio > 0 else ""
            for engine in _cpu_engines(model, tag, work, avatar, args):
                for batch in batches:
                    frames = max(args.frames, batch)
                    measured = measure(engine, avatar, batch, frames, args.repeats)
                    rows.append((engine.name + tag, batch, *measured))
            if torch.cuda.is_available():
                engine = TorchEngine(model, ["mel", "face"], ["frame"], device="cuda")
                b = args.cuda_batch
                measured = measure(engine, avatar, b, 16 * b, args.repeats)
                rows.append((engine.name + tag, b, *measured))
    _report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
