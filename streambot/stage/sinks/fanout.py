"""Runs each sink in its own thread behind a small bounded queue.

Encoding or a slow device never blocks the presenter's clock: a live sink that falls behind
loses frames (counted), a recording sink makes the presenter wait. A live sink whose writes
fail (an RTMP ingest that drops) is closed and opened again with capped exponential backoff and
jitter, losing the frames in between (counted); a recording sink that fails (a full disk) stops
with its error. Either way the others go on, and ``health()`` says what each sink is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque

import numpy as np

from streambot.backoff import Backoff
from streambot.logs import redact
from streambot.stage.sinks.base import PictureSink, Sink, SinkUnavailable, StreamFormat

log = logging.getLogger(__name__)
_STOP = object()
RECONNECT_BASE_S = 1.0
RECONNECT_CAP_S = 30.0

UP, RECONNECTING, FAILED = "up", "reconnecting", "failed"


class SinkWorker:
    def __init__(
        self,
        sink: Sink,
        queue_frames: int,
        fmt: StreamFormat | None = None,
        reconnect_base_s: float = RECONNECT_BASE_S,
        reconnect_cap_s: float = RECONNECT_CAP_S,
    ) -> None:
        self.sink = sink
        self.format = fmt
        self.dropped = 0
        self.written = 0
        self.reconnects = 0
        self.state = UP
        self.error: str | None = None  # the last failure, kept after a reconnect for the record
        self._backoff = Backoff(reconnect_base_s, reconnect_cap_s)
        self._retry_at = 0.0
        # Frames held back before writing: a picture-only sink (the virtual camera) waits for
        # the sound card's output delay so that lips and voice leave the machine together.
        self.delay_frames = 0
        self._held: deque = deque()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def failed(self) -> str | None:
        """The error of a sink that has stopped for good (a recording), else None."""
        return self.error if self.state == FAILED else None

    def health(self) -> dict:
        return {
            "name": self.sink.name,
            "state": self.state,
            "error": redact(self.error) if self.error else None,
            "reconnects": self.reconnects,
            "written": self.written,
            "dropped": self.dropped,
        }

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self.state == FAILED:
                continue
            if self.state == RECONNECTING and not self._reopen():
                self.dropped += 1  # the stream is down: this frame is lost, the rest go on
                continue
            if self.delay_frames:
                self._held.append(item)
                if len(self._held) <= self.delay_frames:
                    continue
                item = self._held.popleft()
            try:
                self.sink.write(*item)
                self.written += 1
            except Exception as exc:  # a sink that disappears must not take the stream down
                self._went_down(exc)
        try:
            self.sink.close()
        except Exception as exc:
            log.error("sink %s failed to close: %s", self.sink.name, exc)

    def _went_down(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self._held.clear()
        with contextlib.suppress(Exception):  # already broken; closing is best effort
            self.sink.close()
        if not self.sink.live or self.format is None:
            self.state = FAILED
            log.error("sink %s failed and was stopped: %s", self.sink.name, self.error)
            return
        self.state = RECONNECTING
        self._backoff.reset()
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        log.error("sink %s failed (%s); reconnecting", self.sink.name, self.error)

    def _reopen(self) -> bool:
        """One reconnect attempt when its time has come; True once the sink is up again."""
        if time.monotonic() < self._retry_at:
            return False
        assert self.format is not None
        try:
            self.sink.open(self.format)
        except Exception as exc:
            delay = self._backoff.next_delay()
            self._retry_at = time.monotonic() + delay
            log.warning("sink %s still down (%s); next try in %.1fs", self.sink.name, exc, delay)
            return False
        self.state = UP
        self.reconnects += 1
        tries = self._backoff.attempt - 1  # the first delay came before any try
        log.info("sink %s reconnected (after %d failed tries)", self.sink.name, tries)
        return True

    async def submit(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        if self.state == FAILED:
            return
        item = (index, frame, pcm)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if self.sink.live:
                self.dropped += 1
            else:
                await asyncio.to_thread(self._queue.put, item)

    def stop(self, timeout: float | None = None) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)


class SinkFanout:
    def __init__(
        self,
        sinks: list[Sink],
        fmt: StreamFormat,
        queue_frames: int = 12,
        reconnect_base_s: float = RECONNECT_BASE_S,
        reconnect_cap_s: float = RECONNECT_CAP_S,
    ) -> None:
        self.format = fmt
        self.workers: list[SinkWorker] = []
        self.unavailable: dict[str, str] = {}
        for sink in sinks:
            try:
                sink.open(fmt)
            except SinkUnavailable as exc:
                self.unavailable[sink.name] = str(exc)
                log.error("sink %s unavailable, continuing without it: %s", sink.name, exc)
                continue
            worker = SinkWorker(sink, queue_frames, fmt, reconnect_base_s, reconnect_cap_s)
            worker.start()
            self.workers.append(worker)

    def delay_pictures(self, frames: int) -> list[str]:
        """Hold back ``frames`` frames on every picture-only sink; returns their names."""
        delayed = []
        for worker in self.workers:
            if isinstance(worker.sink, PictureSink) and worker.sink.picture_only:
                worker.delay_frames = frames
                delayed.append(worker.sink.name)
        return delayed

    def health(self) -> list[dict]:
        """Every configured sink with its state: up, reconnecting, failed or unavailable."""
        report = [w.health() for w in self.workers]
        report += [
            {"name": name, "state": "unavailable", "error": why}
            for name, why in sorted(self.unavailable.items())
        ]
        return report

    @property
    def dropped(self) -> int:
        return sum(w.dropped for w in self.workers)

    async def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        for worker in self.workers:
            await worker.submit(index, frame, pcm)

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
