"""Whether a late frame was the machine's or the program's: a sampler in a process of its own
that every 20 ms reads the host's stolen CPU time (a virtual machine's vCPU run elsewhere), its
own oversleep (the whole guest stalled), the kernel's fault, huge-page and compaction counters,
and which threads of the watched process ran; and, for each late frame, the samples around it.

    python bench/stalls.py --pid 1234 --out samples.jsonl   # what bench/pipeline.py --why-late runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PERIOD_S = 0.02
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
VMSTAT = ("pgmajfault", "thp_fault_alloc", "compact_stall", "pswpin")


def _cpu_ticks() -> list[int]:
    with open("/proc/stat") as f:  # cpu user nice system idle iowait irq softirq steal
        return [int(v) for v in f.readline().split()[1:9]]


def _vmstat() -> dict[str, int]:
    counts = {}
    with open("/proc/vmstat") as f:
        for line in f:
            key, value = line.split()
            if key in VMSTAT:
                counts[key] = int(value)
    return counts


def _threads(pid: int) -> dict[str, int]:
    """Each thread's CPU ticks (user + system), by OS thread id."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended between the listing and the read
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (one that ended but was not yet waited for, a zombie, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sample(pid: int, out: Path) -> None:
    """Write one JSON line a period until ``pid`` ends: the wall time, how long the period
    really was, the stolen and idle CPU seconds in it, the counters that moved, and the
    threads of ``pid`` that ran (CPU seconds)."""
    before = (time.time(), _cpu_ticks(), _vmstat(), _threads(pid))
    with out.open("w") as f:
        while _alive(pid):
            time.sleep(PERIOD_S)
            try:
                now = (time.time(), _cpu_ticks(), _vmstat(), _threads(pid))
            except OSError:
                break  # the process ended
            cpu = [a - b for a, b in zip(now[1], before[1], strict=True)]
            row = {
                "t": round(now[0], 4),
                "period_ms": round((now[0] - before[0]) * 1e3, 1),
                "steal_ms": round(cpu[7] * TICK_S * 1e3),
                "idle_ms": round(cpu[3] * TICK_S * 1e3),
                "counters": {k: v - before[2].get(k, 0) for k, v in now[2].items()},
                "threads_ms": {
                    tid: round((ticks - before[3].get(tid, 0)) * TICK_S * 1e3)
                    for tid, ticks in now[3].items()
                    if ticks != before[3].get(tid, 0)
                },
            }
            row["counters"] = {k: v for k, v in row["counters"].items() if v}
            f.write(json.dumps(row) + "\n")
            f.flush()  # the sampler is stopped by a signal when the run ends
            before = now


def start(out: Path) -> subprocess.Popen:
    """The sampler, watching this process, in a process of its own (it must keep sampling
    while this one is stalled)."""
    cmd = [sys.executable, __file__, "--pid", str(os.getpid()), "--out", str(out)]
    return subprocess.Popen(cmd)


@dataclass
class Late:
    at: float  # wall time the frame was found late
    line: str  # the presenter's debug line


def explain(
    late: list[Late], samples: Path, names: dict[int, str], before_s: float = 0.2
) -> list[str]:
    """For each late frame, its line and what the machine did in the ``before_s`` before it:
    the longest sampling period (a stalled guest oversleeps), stolen CPU, the counters, and
    the threads that ran most."""
    rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    lines = []
    for event in late:
        near = [r for r in rows if event.at - before_s <= r["t"] <= event.at + PERIOD_S]
        steal = sum(r["steal_ms"] for r in near)
        longest = max((r["period_ms"] for r in near), default=0.0)
        counters: dict[str, int] = {}
        threads: dict[str, int] = {}
        for r in near:
            for k, v in r["counters"].items():
                counters[k] = counters.get(k, 0) + v
            for tid, ms in r["threads_ms"].items():
                name = names.get(int(tid)) or tid
                threads[name] = threads.get(name, 0) + ms
        busiest = sorted(threads.items(), key=lambda kv: -kv[1])[:4]
        lines.append(
            f"{event.line}\n    the {before_s * 1e3:.0f} ms before: longest sampler period "
            f"{longest:.0f} ms (20 asked), stolen CPU {steal} ms, {counters or 'no faults'}, "
            f"threads ran {', '.join(f'{n} {ms} ms' for n, ms in busiest) or 'none'}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sample(args.pid, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
