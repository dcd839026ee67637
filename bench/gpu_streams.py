"""``bench/gpu_bench.py --section streams``: N pipelines sharing one Wav2Lip on the device,
each a thread with its own CUDA stream; the largest N whose every pipeline keeps 25 fps."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time
from typing import Any

import torch
from gpu_common import TARGET_FPS, Bench, Row, row, wav2lip_engine, wav2lip_inputs


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
