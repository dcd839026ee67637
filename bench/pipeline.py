"""Pipeline latency and pacing benchmark on the embedded defaults, in real time.

Questions (English and Chinese, rotating) arrive every --interval seconds, spaced so that each
is answered from an idle host; the run reports, per message, p50/p95 from arrival to queue
exit, first brain text, first voice audio and first frame at the sink, plus sustained FPS and
late frames.

    python bench/pipeline.py --seconds 300 --sink file
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import stalls  # bench/stalls.py, beside this file

from streambot import clock
from streambot.app import App, RunReport
from streambot.config import Config
from streambot.logs import setup_logging
from streambot.panel.server import Panel
from streambot.report import format_latency_table
from streambot.store import Store

QUESTIONS = [
    "How much is the AeroBrew coffee grinder?",
    "保温杯多少钱？",
    "Is the LumaDesk lamp in stock?",
    "耳机几天发货？",
    "What's special about the thermo bottle?",
    "how long does shipping take for the earbuds?",
]


def build_config(args: argparse.Namespace, work: Path) -> Config:
    replay = work / "bench_chat.jsonl"
    rows = []
    at, i = 1.0, 0
    while at < args.seconds - 6:
        rows.append({"at": at, "user": f"viewer{i}", "text": QUESTIONS[i % len(QUESTIONS)]})
        at += args.interval
        i += 1
    replay.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    config = Config()
    width, height = (int(v) for v in args.size.split("x"))
    config.stream.width, config.stream.height = width, height
    config.chat.local.http = False
    config.chat.local.replay = str(replay)
    config.metrics.enabled = False
    config.store.path = str(work / "bench.db")
    config.triage.idle_pitch_after_s = 1e6  # measure answers only
    config.sinks.null.enabled = args.sink == "null"
    config.sinks.file.enabled = args.sink == "file"
    config.sinks.file.path = str(work / "bench.mp4")
    config.overlay.enabled = args.overlay == "on"
    return config


def collection_pauses() -> list[float]:
    """Seconds each full (generation 2) garbage collection from now on stops every thread."""
    pauses: list[float] = []
    started: list[float] = []

    def timed(phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(timed)
    return pauses


def late_frames() -> list[stalls.Late]:
    """Each frame the presenter logs as late from now on, with when it was found late."""
    found: list[stalls.Late] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "missed its slot" in record.getMessage():
                found.append(stalls.Late(record.created, record.getMessage()))

    presenter = logging.getLogger("streambot.stage.presenter")
    presenter.setLevel(logging.DEBUG)
    presenter.addHandler(Collect())
    presenter.propagate = False
    return found


def thread_names() -> dict[int, str]:
    """The OS thread id of every Python thread seen from now on, with its name (Python 3.11
    names no OS thread), so per-thread CPU from /proc/<pid>/task can be read by name."""
    names: dict[int, str] = {}

    def watch() -> None:
        while True:
            names.update({t.native_id or 0: t.name for t in threading.enumerate()})
            time.sleep(0.5)

    threading.Thread(target=watch, name="thread-names", daemon=True).start()
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=6.0, help="seconds between questions")
    parser.add_argument("--sink", choices=["null", "file"], default="file")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--overlay", choices=["on", "off"], default="on")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=clock.CLOCK_SWITCH_INTERVAL_S * 1e3,
        help="the interpreter's thread switch interval while the stream runs (Python's own: 5)",
    )
    parser.add_argument(
        "--why-late",
        action="store_true",
        help="log each late frame with where its time went (the presenter's debug line)",
    )
    return parser


def _print_run(args: argparse.Namespace, report: RunReport, wall: float) -> None:
    print(
        f"# bench/pipeline.py --seconds {args.seconds:g} --interval {args.interval:g} "
        f"--sink {args.sink} --size {args.size} --overlay {args.overlay} "
        f"--switch-interval-ms {args.switch_interval_ms:g}"
    )
    print(f"# {platform.processor() or platform.machine()}, python {sys.version.split()[0]}")
    print(
        f"frames {report.frames}, wall {wall:.1f}s, sustained {report.fps:.2f} fps, "
        f"late frames {report.late_frames}, live-sink drops {report.sink_drops}, "
        f"turns {report.turns}"
    )


def _print_overlay_times(app: App) -> None:
    if app.overlay is not None:
        times = sorted(app.overlay.compositor.recent_seconds)
        if times:
            p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
            print(
                f"overlay compose per frame: median {p50 * 1e3:.2f} ms, "
                f"p95 {p95 * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms "
                f"(last {len(times)} frames)"
            )


def _print_slot_use(app: App) -> None:
    """How far into its 40 ms slot each frame reached the sinks: the tail says how close the
    stream came to late frames, with far more events to compare runs by than late frames."""
    use = sorted(app.presenter.recent_slot_use)
    if use:
        p99 = use[min(len(use) - 1, int(len(use) * 0.99))]
        near = sum(u > 0.5 for u in use)
        print(
            f"frame handed over, share of its slot used: median {use[len(use) // 2]:.2f}, "
            f"p99 {p99:.2f}, max {use[-1]:.2f}; over half a slot: {near} "
            f"(last {len(use)} frames)"
        )


def _print_collections(pauses: list[float]) -> None:
    full = sorted(pauses)
    spread = (
        f", median {full[len(full) // 2] * 1e3:.1f} ms, max {full[-1] * 1e3:.1f} ms" if full else ""
    )
    print(f"full garbage collections while streaming: {len(full)}{spread}")


def main() -> int:
    args = _parser().parse_args()
    clock.CLOCK_SWITCH_INTERVAL_S = args.switch_interval_ms / 1e3
    pauses = collection_pauses()
    setup_logging("WARNING")
    logging.getLogger("streambot").setLevel(logging.WARNING)
    names = thread_names() if args.why_late else {}
    late = late_frames() if args.why_late else []
    with tempfile.TemporaryDirectory() as tmp:
        config = build_config(args, Path(tmp))
        sampler = stalls.start(Path(tmp) / "stalls.jsonl") if args.why_late else None
        started = time.perf_counter()
        app = App(config, panel=Panel)  # as `streambot run` serves it
        report = asyncio.run(app.run(args.seconds))
        wall = time.perf_counter() - started
        if sampler is not None:
            sampler.terminate()
            sampler.wait()
        _print_run(args, report, wall)
        _print_overlay_times(app)
        _print_slot_use(app)
        _print_collections(pauses)
        if sampler is not None:
            print(f"late frames explained ({len(late)}):")
            for line in stalls.explain(late, Path(tmp) / "stalls.jsonl", names):
                print(line)
        store = Store(config.store.path)
        print(format_latency_table(store))
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
