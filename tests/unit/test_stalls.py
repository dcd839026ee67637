"""bench/stalls.py: a late frame is shown beside what the machine did just before it, and the
sampler really reads this machine's counters for a live process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench_script import load

stalls = load("stalls")

linux_proc = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")


def row(t: float, period_ms: float, steal_ms: int = 0, clock_ms: int = 0) -> str:
    """One sample; the clock thread is OS thread 101, a steal comes with a huge-page fault."""
    return json.dumps(
        {
            "t": t,
            "period_ms": period_ms,
            "steal_ms": steal_ms,
            "idle_ms": 0,
            "counters": {"thp_fault_alloc": 1} if steal_ms else {},
            "threads_ms": {"101": clock_ms} if clock_ms else {},
        }
    )


def test_a_late_frame_is_explained_by_the_samples_just_before_it(tmp_path):
    samples = tmp_path / "stalls.jsonl"
    samples.write_text(
        "\n".join(
            [
                row(99.0, 20),  # long before: not counted
                row(99.90, 20, clock_ms=10),
                row(100.0, 120, steal_ms=90, clock_ms=10),  # the guest stalled
                row(100.5, 20),  # after: not counted
            ]
        )
    )
    (line,) = stalls.explain(
        [stalls.Late(100.01, "frame 7 missed its slot by 80.0 ms")], samples, {101: "MainThread"}
    )
    assert line.startswith("frame 7 missed its slot")
    assert "longest sampler period 120 ms" in line and "stolen CPU 90 ms" in line
    assert "thp_fault_alloc" in line and "MainThread 20 ms" in line


@linux_proc
def test_the_sampler_reads_a_live_process_until_it_ends(tmp_path):
    out = tmp_path / "stalls.jsonl"
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass"]
    )
    stalls.sample(busy.pid, out)  # returns when the process is gone
    busy.wait()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) >= 5
    assert all(r["period_ms"] >= 15 for r in rows)
    assert sum(sum(r["threads_ms"].values()) for r in rows) > 0  # its one thread ran
    assert time.time() - rows[-1]["t"] < 60
