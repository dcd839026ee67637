"""Latency from the presenter's frame to what OBS shows, and of OBS scene switches.

Runs a real OBS under Xvfb (or uses one you name with --port), points its Media Source at a
udp:// MPEG-TS stream from ``StreamSink``, and has the presenter (monotonic clock, 25 fps) send
test cards: frame k shows k (streambot/stage/testcard.py). Every ``--interval`` seconds it asks
OBS for a screenshot of the Media Source and reads the frame number n in it.

The age of the picture OBS shows is measured from the moment the presenter handed frame n to
the sinks. OBS renders the screenshot at some instant between sending the request (t0) and the
answer (t1), so the true age lies between ``t0 - sent[n]`` and ``t1 - sent[n]``; both are
reported (medians), with the screenshot round trip. Scene switches are timed as the round
trip of ``SetCurrentProgramScene`` through the controller (OBS answers once it has switched).

    python bench/obs_latency.py --seconds 120
    python bench/obs_latency.py --port 4455 --password-env OBS_WEBSOCKET_PASSWORD
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.obs_real

from streambot.clock import MonotonicClock
from streambot.stage.obs import ObsController
from streambot.stage.presenter import Presenter
from streambot.stage.sinks.base import StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.stage.sinks.stream import StreamSink
from streambot.stage.testcard import read_test_card
from streambot.timing import DEFAULT_FPS, OUTPUT_RATE
from tests.obs_real import CardFace, RealObs, TapSink, free_port, obs_available


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _frame_number(png: bytes) -> int | None:
    return read_test_card(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))


async def measure(args: argparse.Namespace, port: int, password: str) -> dict:
    fmt = StreamFormat(args.width, args.height, args.fps, OUTPUT_RATE)
    url = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    controller = ObsController(port=port, password=SecretStr(password), stream_url=url)
    report = await controller.setup(url)
    if not report.ok:
        raise SystemExit("obs setup failed:\n" + "\n".join(report.lines()))
    await controller.start()
    await controller.wait_connected(10)
    await controller.set_state("idle", caption="")
    tap = TapSink(keep=round(10 * fmt.fps))
    sinks = SinkFanout([StreamSink(url, gop_seconds=args.gop), tap], fmt)
    presenter = Presenter(CardFace(fmt.width, fmt.height), sinks, MonotonicClock(), fmt.fps)
    stop = asyncio.Event()
    running = asyncio.create_task(presenter.run(stop))
    low, high, rtts, unreadable = [], [], [], 0
    await asyncio.sleep(args.warmup)
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        png = await controller.screenshot(controller.scenes.stream)
        t1 = time.perf_counter()
        number = await asyncio.to_thread(_frame_number, png) if png else None
        sent = tap.sent_at.get(number) if number is not None else None
        if sent is None:
            unreadable += 1
        else:
            low.append((t0 - sent) * 1000)
            high.append((t1 - sent) * 1000)
            rtts.append((t1 - t0) * 1000)
        await asyncio.sleep(args.interval)
    switches = []
    for i in range(args.switches):
        state = "talking" if i % 2 == 0 else "idle"
        t0 = time.perf_counter()
        await controller.set_state(state)
        switches.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.2)
    stop.set()
    await running
    await sinks.close()
    await controller.stop()
    return {
        "samples": len(low),
        "unreadable": unreadable,
        "age_low_p50": statistics.median(low) if low else float("nan"),
        "age_high_p50": statistics.median(high) if high else float("nan"),
        "age_low_p90": percentile(low, 90),
        "age_high_p90": percentile(high, 90),
        "rtt_p50": statistics.median(rtts) if rtts else float("nan"),
        "switch_p50": statistics.median(switches) if switches else float("nan"),
        "switch_p90": percentile(switches, 90),
        "frames": presenter.stats.frames,
        "late_frames": presenter.stats.late_frames,
        "sink_drops": sinks.dropped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measuring time")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--interval", type=float, default=0.25, help="between screenshots")
    parser.add_argument("--switches", type=int, default=40, help="timed scene switches")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--gop", type=float, default=1.0, help="keyframe interval (s)")
    parser.add_argument("--port", type=int, default=None, help="use a running OBS")
    parser.add_argument("--password-env", default="OBS_WEBSOCKET_PASSWORD")
    args = parser.parse_args()

    obs = None
    if args.port is None:
        why = obs_available()
        if why:
            raise SystemExit(f"cannot start OBS: {why}")
        obs = RealObs(Path(tempfile.mkdtemp(prefix="streambot-obs-")))
        obs.start()
        port, password = obs.port, obs.password
    else:
        port, password = args.port, os.environ.get(args.password_env, "")
    try:
        result = asyncio.run(measure(args, port, password))
    finally:
        if obs is not None:
            obs.stop()
    print(f"command: python {shlex.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"stream: {args.width}x{args.height} @ {args.fps} fps, GOP {args.gop:g}s, udp MPEG-TS; "
        f"{result['frames']} frames, {result['late_frames']} late, "
        f"{result['sink_drops']} dropped"
    )
    print(
        f"presenter -> OBS picture age (n={result['samples']}, "
        f"unreadable {result['unreadable']}): p50 {result['age_low_p50']:.0f}"
        f"-{result['age_high_p50']:.0f} ms, p90 {result['age_low_p90']:.0f}"
        f"-{result['age_high_p90']:.0f} ms (screenshot round trip p50 "
        f"{result['rtt_p50']:.0f} ms)"
    )
    print(
        f"scene switch round trip (n={args.switches}): p50 {result['switch_p50']:.1f} ms, "
        f"p90 {result['switch_p90']:.1f} ms"
    )


if __name__ == "__main__":
    main()
