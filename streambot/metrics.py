"""Prometheus metrics and the /healthz endpoint, served by aiohttp on the metrics port."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "streambot_messages", "Chat messages received", ["source"], registry=r
        )
        self.decisions = Counter(
            "streambot_triage_decisions", "Triage decisions", ["decision", "reason"], registry=r
        )
        self.turns = Counter("streambot_turns", "Turns by outcome", ["kind", "outcome"], registry=r)
        self.frames = Counter("streambot_frames", "Frames sent to the sinks", registry=r)
        self.late_frames = Counter("streambot_late_frames", "Frames that were late", registry=r)
        self.inbox = Gauge("streambot_inbox_depth", "Messages waiting to be answered", registry=r)
        self.stage_latency = Histogram(
            "streambot_stage_latency_seconds",
            "Time from a message's arrival to each stage",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.started = time.time()

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(
    metrics: Metrics, host: str, port: int, health: Callable[[], dict]
) -> web.AppRunner:
    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health_handler(_: web.Request) -> web.Response:
        report = health()
        return web.json_response(report, status=200 if report.get("ok") else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
