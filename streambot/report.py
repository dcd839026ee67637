"""Latency report from the store: per answered message, p50/p95 of each stage."""

from __future__ import annotations

import numpy as np

from streambot.store import Store

STAGES = [
    ("queue wait", "queue_wait_ms"),
    ("first brain text", "first_text_ms"),
    ("first voice audio", "first_audio_ms"),
    ("first frame at sink", "first_frame_ms"),
]


def latency_rows(store: Store, recent: int | None = None) -> dict[str, list[float]]:
    """Per stage, the latencies of every answer (``recent``: of the latest that many only,
    read from the end of the table rather than all of it)."""
    rows = store.answer_timings(recent)
    out: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    out["processing (dequeue to first frame)"] = []
    for queue_wait, text, audio, frame in rows:
        for (name, _), value in zip(STAGES, (queue_wait, text, audio, frame), strict=True):
            if value is not None:
                out[name].append(value)
        if frame is not None and queue_wait is not None:
            out["processing (dequeue to first frame)"].append(frame - queue_wait)
    return out


def format_latency_table(store: Store) -> str:
    lines = [f"{'stage (ms from message arrival)':<38}{'n':>4}{'p50':>9}{'p95':>9}"]
    for name, values in latency_rows(store).items():
        if values:
            p50, p95 = np.percentile(values, [50, 95])
            lines.append(f"{name:<38}{len(values):>4}{p50:>9.1f}{p95:>9.1f}")
        else:
            lines.append(f"{name:<38}{0:>4}{'-':>9}{'-':>9}")
    return "\n".join(lines)
