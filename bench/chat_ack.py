"""The daemon's POST /chat under load: acknowledged throughput with store-before-ack, and late
frames at 25 fps under a chat flood.

The real daemon (``python -m streambot run``, embedded defaults: 1280x720, the mouth face,
the null sink, a fresh store) is pinned to one core and the load to the other:

1. Throughput: ``wrk`` (Debian's ``wrk`` package; a Python client is used without it, and says
   so) posts distinct messages from 32 connections as fast as the daemon acknowledges them, for
   ``--seconds`` per run, ``--runs`` times. Every 202 means the message is committed; the store
   is counted afterwards to confirm it.
2. Late frames: the same daemon for ``--flood-seconds`` without chat (A), then with a paced
   flood of ``--flood`` messages from 200 connections over the same time (B). Late frames are
   read from ``/healthz`` before and after each phase. With ``--panel N``, N operator's panel
   pages are open through both phases: each reads its ``/events`` stream and fetches each new
   preview JPEG, as the page does (the state is worked out and pushed four times a second).

    python bench/chat_ack.py                  # 3 x 10 s throughput, 60 s A, 60 s B (20,000)
    python bench/chat_ack.py --runs 1 --seconds 5 --flood-seconds 20 --flood 6000
    python bench/chat_ack.py --runs 0 --panel     # the flood with the panel open
    python bench/chat_ack.py --runs 0 --panel 2000   # and 2,000 pages trying to open it
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WRK_SCRIPT = """
local counter = 0
local texts = {"how much is the lamp?", "hello!", "is the grinder in stock?", "lol",
               "主播好", "这个保温杯多少钱？"}
request = function()
  counter = counter + 1
  local body = string.format('{"user": "viewer%d", "text": "%s %d"}',
                             counter % 5000, texts[(counter % #texts) + 1], counter)
  return wrk.format("POST", "/chat", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d non2xx=%d p50_ms=%.2f p99_ms=%.2f\\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
"""
TEXTS = ["how much is the lamp?", "hello!", "is the grinder in stock?", "lol", "主播好"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > core:
        os.sched_setaffinity(0, {core})


class Daemon:
    def __init__(self, folder: Path) -> None:
        self.chat_port, self.metrics_port = free_port(), free_port()
        self.panel_port = free_port()
        self.db = folder / "store.db"
        config = folder / "config.toml"
        config.write_text(
            f"[chat.local]\nport = {self.chat_port}\n[metrics]\nport = {self.metrics_port}\n"
            f"[panel]\nport = {self.panel_port}\n"
            f"[store]\npath = '{self.db}'\n[logging]\nlevel = 'INFO'\n"
        )
        self.log = open(folder / "daemon.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streambot", "run", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: pin(0),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.health()["frames"] > 25:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the daemon did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.chat_port}/chat"

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2
            ) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return json.loads(err.read())

    def stored(self) -> int:
        return sqlite3.connect(self.db).execute("SELECT count(*) FROM messages").fetchone()[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def wrk_run(url: str, seconds: float, folder: Path) -> dict:
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds:g}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        preexec_fn=lambda: pin(1),
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    return {k: float(v) for k, v in fields.items()}


async def python_load(url: str, seconds: float, connections: int, rate: float | None) -> dict:
    """Post for ``seconds`` from ``connections`` clients; paced to ``rate`` msg/s if given
    (then exactly ``rate * seconds`` messages in all)."""
    import aiohttp

    counts = {"requests": 0.0, "non2xx": 0.0}
    start = time.perf_counter()
    interval = connections / rate if rate else 0.0
    per_client = round(rate * seconds / connections) if rate else None

    async def client(k: int) -> None:
        async with aiohttp.ClientSession() as http:
            n = 0
            while (now := time.perf_counter() - start) < seconds or per_client is not None:
                if per_client is not None and n >= per_client:
                    return
                if interval:
                    await asyncio.sleep(max(0.0, n * interval + k * interval / connections - now))
                body = {"user": f"viewer{k}-{n % 50}", "text": f"{TEXTS[n % len(TEXTS)]} {n}"}
                async with http.post(url, json=body) as reply:
                    counts["requests"] += 1
                    counts["non2xx"] += reply.status != 202
                n += 1

    await asyncio.gather(*(client(k) for k in range(connections)))
    return counts


def throughput(args: argparse.Namespace, folder: Path) -> list[dict]:
    results = []
    for run in range(args.runs):
        sub = folder / f"run{run}"
        sub.mkdir()
        daemon = Daemon(sub)
        try:
            if shutil.which("wrk"):
                r = wrk_run(daemon.url, args.seconds, sub)
                r["client"] = "wrk"
            else:
                pin(1)
                r = asyncio.run(python_load(daemon.url, args.seconds, 32, None))
                r["client"] = "python (wrk not found: apt install wrk)"
            r["late"] = daemon.health()["late_frames"]
        finally:
            daemon.stop()
        r["acked"] = r["requests"] - r["non2xx"]
        r["rate"] = r["acked"] / args.seconds
        r["stored"] = daemon.stored()
        results.append(r)
    return results


async def watch_panel(port: int, stop: asyncio.Event, pages: int) -> dict:
    """What ``pages`` open panel pages do: each reads the event stream and fetches each new
    preview. A page the panel turns away (its cap on event streams) is counted as refused."""
    import aiohttp

    seen = {"states": 0, "previews": 0, "refused": 0}
    base = f"http://127.0.0.1:{port}"

    async def page(http: aiohttp.ClientSession) -> None:
        async with http.get(f"{base}/events") as events:
            if events.status != 200:
                seen["refused"] += 1
                return
            preview_next = False
            async for line in events.content:
                if line.startswith(b"event: state"):
                    seen["states"] += 1
                elif line.startswith(b"event: preview"):
                    preview_next = True
                elif line.startswith(b"data: ") and preview_next:
                    preview_next = False
                    async with http.get(f"{base}/preview.jpg?frame={line[6:].strip().decode()}"):
                        seen["previews"] += 1

    connector = aiohttp.TCPConnector(limit=0)  # every page its own connection, as browsers do
    async with aiohttp.ClientSession(connector=connector) as http:
        readers = [asyncio.ensure_future(page(http)) for _ in range(pages)]
        await stop.wait()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return seen


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def flood_phases(args: argparse.Namespace, daemon: Daemon) -> tuple[dict, dict, dict, dict]:
    """Health before and after the quiet phase and the flood, with the panel open if asked."""

    async def phases() -> tuple[dict, dict, dict, dict, dict]:
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(watch_panel(daemon.panel_port, stop, args.panel))
        h0 = await asyncio.to_thread(daemon.health)
        await asyncio.sleep(args.flood_seconds)
        h1 = await asyncio.to_thread(daemon.health)
        rate = args.flood / args.flood_seconds
        sent = await python_load(daemon.url, args.flood_seconds, 200, rate)
        h2 = await asyncio.to_thread(daemon.health)
        h2["rss_mib"] = rss_mib(daemon.proc.pid)
        stop.set()
        seen = await watcher
        return h0, h1, h2, sent, seen

    h0, h1, h2, sent, seen = asyncio.run(phases())
    sent["panel"] = seen
    return h0, h1, h2, sent


def flood(args: argparse.Namespace, folder: Path) -> dict:
    sub = folder / "flood"
    sub.mkdir()
    daemon = Daemon(sub)
    pin(1)
    try:
        h0, h1, h2, sent = flood_phases(args, daemon)
    finally:
        daemon.stop()
    return {
        "quiet": (h1["frames"] - h0["frames"], h1["late_frames"] - h0["late_frames"]),
        "flood": (h2["frames"] - h1["frames"], h2["late_frames"] - h1["late_frames"]),
        "causes": {key: h2[key] - h1[key] for key in ("late_not_ready", "late_missed_slots")},
        "sent": sent["requests"],
        "non2xx": sent["non2xx"],
        "stored": daemon.stored(),
        "panel": sent["panel"],
        "rss_mib": h2["rss_mib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (0: flood only)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", type=int, default=20_000)
    parser.add_argument("--flood-seconds", type=float, default=60.0)
    parser.add_argument(
        "--panel",
        type=int,
        nargs="?",
        const=1,
        default=0,
        help="panel pages open through both phases (--panel: one)",
    )
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
        "daemon pinned to core 0, load to core 1"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = throughput(args, folder) if args.runs else []
        if runs:
            print(
                f"\nacknowledged throughput ({runs[0]['client']}, 32 connections, "
                f"{args.seconds:g} s per run)"
            )
            print("| run | acked msg/s | non-2xx | stored / acked | late frames |")
            print("|---|---|---|---|---|")
            for i, r in enumerate(runs, 1):
                print(
                    f"| {i} | {r['rate']:,.0f} | {r['non2xx']:.0f} | "
                    f"{r['stored']:,} / {r['acked']:,.0f} | {r['late']} |"
                )
            median = statistics.median(r["rate"] for r in runs)
            goal = "met" if median >= 5000 else "NOT met"
            print(f"median {median:,.0f} msg/s; goal >= 5,000: {goal}")
        f = flood(args, folder)
        print(f"\nlate frames at 25 fps, {args.flood_seconds:g} s each (same daemon)")
        print("| phase | frames | late frames |")
        print("|---|---|---|")
        print(f"| A: no chat | {f['quiet'][0]:,} | {f['quiet'][1]} |")
        print(
            f"| B: {args.flood:,} messages from 200 connections | {f['flood'][0]:,} | "
            f"{f['flood'][1]} |"
        )
        causes = f["causes"]
        print(
            f"flood's late frames: {causes['late_not_ready']} not rendered in time, "
            f"{causes['late_missed_slots']} handed over after their slot"
        )
        print(f"sent {f['sent']:,.0f}, non-2xx {f['non2xx']:.0f}, stored {f['stored']:,}")
        print(f"daemon memory after the flood: {f['rss_mib']:.0f} MiB")
        if args.panel:
            print(
                f"{args.panel} panel page(s) open throughout: {f['panel']['refused']} refused, "
                f"{f['panel']['states']} state pushes, {f['panel']['previews']} previews "
                "fetched"
            )


if __name__ == "__main__":
    main()
