"""Prometheus metrics and the /healthz endpoint, served by aiohttp on the metrics port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

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
        self._voice_health: Callable[[], Mapping[str, Any]] | None = None

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # The voice keeps its own counts (it reports them to /healthz too): read at each scrape.
    _VOICE_COUNTS: ClassVar[dict[str, str]] = {
        "requests": "Requests to the TTS server",
        "fallbacks": "Sentences the local voice spoke for the TTS server",
        "broken_off": "Sentences the TTS server broke off (ended where its audio stopped)",
        "failures": "Requests the TTS server failed, as its circuit breaker counts them",
        "unplayable": "Sentences cut short for unplayable audio (NaN, far beyond full scale)",
    }

    def watch_voice(self, health: Callable[[], Mapping[str, Any]]) -> None:
        """Export the voice's figures, as ``health`` reports them, at each scrape."""
        if self._voice_health is None:
            self.registry.register(self)  # the registry calls collect() at each scrape
        self._voice_health = health

    def collect(self) -> Iterator[Metric]:
        """The figures kept elsewhere (the voice's own counts), as the registry asks for them
        at each scrape."""
        if self._voice_health is None:
            return
        report = self._voice_health()
        for key, text in self._VOICE_COUNTS.items():
            if key in report:
                yield CounterMetricFamily(f"streambot_voice_{key}", text, value=report[key])
        up = "1 while the configured voice is up (a TTS server: its breaker closed)"
        yield GaugeMetricFamily("streambot_voice_up", up, value=report["state"] == "up")
        if "breaker" in report:
            breaker = GaugeMetricFamily(
                "streambot_voice_breaker",
                "The TTS server's circuit breaker: 1 for its state",
                labels=["state"],
            )
            for state in ("closed", "open", "half-open"):
                breaker.add_metric([state], report["breaker"] == state)
            yield breaker


async def serve_metrics(
    metrics: Metrics,
    host: str,
    port: int,
    health: Callable[[], dict],
    allowed_hosts: list[str] | tuple[str, ...] = (),
) -> web.AppRunner:
    """/metrics and /healthz on ``host``:``port``, for requests whose Host is this computer or
    ``allowed_hosts`` (http_guard: a DNS rebinding page reads neither)."""
    from streambot.http_guard import Guard

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health_handler(_: web.Request) -> web.Response:
        report = health()
        return web.json_response(report, status=200 if report.get("ok") else 503)

    app = Guard("metrics", host, allowed_hosts).application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
