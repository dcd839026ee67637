"""A live stream sink whose RTMP ingest goes away and comes back: the sink reconnects with
backoff, /healthz goes red while it is down and green again after; a recording sink that
fails reports its error. The ingest is FFmpeg's own RTMP server (listen mode) on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import av
import pytest

from streambot.app import App
from streambot.stage.sinks.base import StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.timing import DEFAULT_FPS, OUTPUT_RATE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtmpIngest:
    """One FFmpeg RTMP listener: takes a publisher, reads ``frames`` video frames, hangs up."""

    def __init__(self, url: str, frames: int) -> None:
        self.url, self.frames = url, frames
        self.got = 0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            options = {"listen": "1", "timeout": "30"}
            with av.open(self.url, mode="r", format="flv", options=options) as container:
                for _ in container.decode(video=0):
                    self.got += 1
                    if self.got >= self.frames:
                        break
        except Exception as exc:
            self.error = exc


def healthz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as err:  # 503: not ok, with the same report
        assert err.code == 503
        return json.loads(err.read())
    except urllib.error.URLError:  # not listening yet
        return {"ok": None}


async def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(check)
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
async def test_a_dropped_rtmp_ingest_is_reconnected_and_health_goes_red_then_green(fast_config):
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/sekrit-key"
    first = RtmpIngest(url, frames=25)
    await asyncio.sleep(0.3)  # the listener binds
    cfg = fast_config
    cfg.stream.realtime = True
    cfg.sinks.null.enabled = False
    cfg.sinks.stream.enabled, cfg.sinks.stream.url = True, url
    cfg.sinks.stream.preset = "ultrafast"
    cfg.metrics.enabled, cfg.metrics.port = True, free_port()
    app = App(cfg)
    task = asyncio.create_task(app.run())
    try:
        green = await wait_for(lambda: (h := healthz(cfg.metrics.port))["ok"] and h, 20, "green")
        assert green["sinks"][0]["name"] == "stream" and green["sinks"][0]["state"] == "up"
        # the first ingest hangs up after 25 frames: the sink goes down, health goes red
        red = await wait_for(
            lambda: (h := healthz(cfg.metrics.port))["ok"] is False and h, 20, "red"
        )
        sink = red["sinks"][0]
        assert sink["state"] == "reconnecting" and "sekrit-key" not in json.dumps(red)
        await asyncio.to_thread(first.thread.join, 10)
        assert first.error is None and first.got == 25
        second = RtmpIngest(url, frames=50)  # the ingest comes back
        back = await wait_for(
            lambda: (h := healthz(cfg.metrics.port))["ok"] and h, 40, "green again"
        )
        assert back["sinks"][0]["state"] == "up" and back["sinks"][0]["reconnects"] == 1
        await asyncio.to_thread(second.thread.join, 20)
        assert second.error is None and second.got == 50  # the stream really flows again
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


class FlakySink:
    """A live sink whose first ``failures`` writes after frame 5 raise, then it works."""

    name, live = "flaky", True

    def __init__(self, failures: int) -> None:
        self.failures, self.opens, self.writes = failures, 0, []

    def open(self, fmt):
        self.opens += 1
        if 1 < self.opens <= 2:  # the first reconnect attempt fails too
            raise OSError("ingest refused")

    def write(self, index, frame, pcm):
        if index >= 5 and self.failures:
            self.failures -= 1
            raise OSError("broken pipe")
        self.writes.append(index)

    def close(self):
        pass


class FullDisk(FlakySink):
    name, live = "file", False


async def test_live_sinks_reconnect_with_backoff_and_recordings_report_their_error():
    import numpy as np

    fmt = StreamFormat(64, 64, DEFAULT_FPS, OUTPUT_RATE)
    flaky, disk = FlakySink(failures=1), FullDisk(failures=1)
    fanout = SinkFanout([flaky, disk], fmt, queue_frames=1000, reconnect_base_s=0.05)
    frame, pcm = np.zeros((64, 64, 3), np.uint8), np.zeros(fmt.samples_per_frame, np.float32)
    for index in range(40):
        await fanout.write(index, frame, pcm)
        await asyncio.sleep(0.01)
    health = {h["name"]: h for h in fanout.health()}
    await fanout.close()
    assert health["flaky"]["state"] == "up" and health["flaky"]["reconnects"] == 1
    assert flaky.opens == 3  # the first try, one refused reconnect, one that worked
    assert flaky.writes[:5] == [0, 1, 2, 3, 4] and flaky.writes[-1] == 39
    assert health["flaky"]["dropped"] > 0  # frames while it was down are lost, and counted
    assert health["file"]["state"] == "failed" and "broken pipe" in health["file"]["error"]
    assert disk.writes == [0, 1, 2, 3, 4]
