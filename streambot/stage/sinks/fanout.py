"""Runs each sink in its own thread behind a small bounded queue.

Encoding or a slow device never blocks the presenter's clock: a live sink that falls behind
loses frames (counted), a recording sink makes the presenter wait, and a sink that raises is
closed and dropped with a logged reason while the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque

import numpy as np

from streambot.stage.sinks.base import Sink, SinkUnavailable, StreamFormat

log = logging.getLogger(__name__)
_STOP = object()


class SinkWorker:
    def __init__(self, sink: Sink, queue_frames: int) -> None:
        self.sink = sink
        self.dropped = 0
        self.written = 0
        self.failed: str | None = None
        # Frames held back before writing: a picture-only sink (the virtual camera) waits for
        # the sound card's output delay so that lips and voice leave the machine together.
        self.delay_frames = 0
        self._held: deque = deque()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self.failed:
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
                self.failed = f"{type(exc).__name__}: {exc}"
                log.error("sink %s failed and was dropped: %s", self.sink.name, self.failed)
        try:
            self.sink.close()
        except Exception as exc:
            log.error("sink %s failed to close: %s", self.sink.name, exc)

    async def submit(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        if self.failed:
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
    def __init__(self, sinks: list[Sink], fmt: StreamFormat, queue_frames: int = 12) -> None:
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
            worker = SinkWorker(sink, queue_frames)
            worker.start()
            self.workers.append(worker)

    def delay_pictures(self, frames: int) -> list[str]:
        """Hold back ``frames`` frames on every picture-only sink; returns their names."""
        delayed = []
        for worker in self.workers:
            if getattr(worker.sink, "picture_only", False):
                worker.delay_frames = frames
                delayed.append(worker.sink.name)
        return delayed

    @property
    def dropped(self) -> int:
        return sum(w.dropped for w in self.workers)

    async def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        for worker in self.workers:
            await worker.submit(index, frame, pcm)

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
