"""What the overlays cost per frame, on one core: every overlay on (AI label, two-line
caption, product card with picture, countdown) blended over a 1280x720 frame, against the
frame copy alone (what any compositing must pay: the face's frame may be shared).

Then the same blend beside a worker thread that runs Python (as overlay drawing, the voice
and the brain do in the daemon), at Python's default thread switch interval (5 ms) and at
the daemon's (clock.CLOCK_SWITCH_INTERVAL_S), in alternating blocks of frames: every NumPy
call of the blend lets go of the GIL, and getting it back can wait a whole interval.

    python bench/overlay.py --frames 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from streambot.catalog import Catalog, LiveCatalog
from streambot.clock import CLOCK_SWITCH_INTERVAL_S, VirtualClock, responsive_clock
from streambot.config import OverlayConfig
from streambot.events import ChatMessage
from streambot.stage.overlay.compositor import Compositor
from streambot.stage.overlay.director import OverlayDirector, build_compositor
from streambot.turn import Turn, TurnKind


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.95)] * 1e3


async def fill(director: OverlayDirector, catalog: Catalog) -> None:
    msg = ChatMessage(
        "local",
        "小明",
        "这个保温杯多少钱？还有货吗？ And is the lamp in stock, how fast is shipping?",
    )
    msg.spoken_name = "小明"
    turn = Turn(1, TurnKind.ANSWER, msg, "zh")
    director.turn_started(turn)
    director.countdown_until(director.clock.now() + 600)
    await director.settle()


def beside_python(compose, frames: list[np.ndarray], count: int) -> dict[float, list[float]]:
    """Blend times with a worker thread running Python, per switch interval (alternating
    blocks of 50 frames, so a load that comes and goes falls on both alike)."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(i * i for i in range(2000))

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    times: dict[float, list[float]] = {0.005: [], CLOCK_SWITCH_INTERVAL_S: []}
    try:
        for block in range(count // 50):
            interval = list(times)[block % 2]
            with responsive_clock(interval):
                for k in range(50):
                    frame = frames[k % len(frames)]
                    started = time.perf_counter()
                    compose(frame)
                    times[interval].append(time.perf_counter() - started)
                    time.sleep(0.002)  # the loop's other work between frames
    finally:
        stop.set()
        worker.join()
    return times


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", default="1280x720")
    return parser


def _filled_director(width: int, height: int, rng: np.random.Generator) -> OverlayDirector:
    """A director with every overlay up, the bottle's picture a random image."""
    with tempfile.TemporaryDirectory() as tmp:
        picture = Path(tmp) / "bottle.png"
        Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(picture)
        catalog = Catalog.load()
        bottle = catalog.find("保温杯")[0]
        bottle.image = str(picture)
        config = OverlayConfig()
        director = OverlayDirector(
            config,
            build_compositor(config, width, height),
            LiveCatalog.fixed(catalog),
            VirtualClock(),
        )
        asyncio.run(fill(director, catalog))
    return director


def _copy_and_compose_times(
    compositor: Compositor, frames: list[np.ndarray], count: int
) -> tuple[list[float], list[float]]:
    """Seconds per frame for a bare frame copy, and for composing every overlay onto it."""
    copy_times, compose_times = [], []
    for k in range(count):
        frame = frames[k % len(frames)]
        started = time.perf_counter()
        frame.copy()
        copy_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        compositor.compose(frame)
        compose_times.append(time.perf_counter() - started)
    return copy_times, compose_times


def _label_only_times(compositor: Compositor, frames: list[np.ndarray], count: int) -> list[float]:
    """Seconds per compose with the AI label alone (the idle stream), all overlays on after."""
    label_only = []
    director_images = {slot: compositor.shown(slot) for slot in ("caption", "card", "countdown")}
    for slot in ("caption", "card", "countdown"):
        compositor.show(slot, None)
    for k in range(count):  # the idle stream: the AI label alone
        frame = frames[k % len(frames)]
        started = time.perf_counter()
        compositor.compose(frame)
        label_only.append(time.perf_counter() - started)
    for slot in ("caption", "card", "countdown"):  # all on again
        compositor.show(slot, director_images[slot])
    return label_only


def _print_steps(rows: tuple[tuple[str, list[float]], ...]) -> None:
    print("| step | median ms | p95 ms |")
    print("|---|---|---|")
    for name, samples in rows:
        p50, p95 = quantiles(samples)
        print(f"| {name} | {p50:.2f} | {p95:.2f} |")


def _print_beside_python(compositor: Compositor, frames: list[np.ndarray], count: int) -> None:
    print()
    print("| all overlays, beside a thread running Python | median ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for interval, samples in beside_python(compositor.compose, frames, count).items():
        p50, p95 = quantiles(samples)
        print(
            f"| switch interval {interval * 1e3:g} ms | {p50:.2f} | {p95:.2f} | "
            f"{max(samples) * 1e3:.2f} |"
        )


def main() -> int:
    args = _parser().parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    director = _filled_director(width, height, rng)
    compositor = director.compositor
    slots = [s for s in ("label", "caption", "card", "countdown") if compositor.box(s)]
    covered = sum(compositor.box(s)[2] * compositor.box(s)[3] for s in slots)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    copy_times, compose_times = _copy_and_compose_times(compositor, frames, args.frames)
    print(f"# bench/overlay.py --frames {args.frames} --size {args.size}")
    print(
        f"# {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, numpy single-threaded"
    )
    print(f"overlays shown: {', '.join(slots)}; {covered / (width * height):.1%} of the frame")
    label_only = _label_only_times(compositor, frames, args.frames)
    rows = (
        ("frame copy alone", copy_times),
        ("copy + all overlays", compose_times),
        ("copy + the AI label alone (idle)", label_only),
    )
    _print_steps(rows)
    _print_beside_python(compositor, frames, args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
