"""kill -9 in the middle of a burst of chat: every message that got its 202 is in the store
after a restart (the daemon acknowledges only after the commit)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest

from streambot.record import Record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(config: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streambot", "run", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_listening(url: str, proc: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert proc.poll() is None, "the daemon exited"
            try:
                await http.get(url)  # 405: the port is up
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise AssertionError("the daemon never listened")


async def burst(url: str, senders: int, acked: list, stop: asyncio.Event) -> int:
    """Send from ``senders`` connections until the daemon dies; record (id, text) of 202s.
    Returns how many requests were started (those in flight at the kill got no answer)."""
    sent = 0

    async def sender(k: int) -> None:
        nonlocal sent
        async with aiohttp.ClientSession() as http:
            for n in range(100_000):
                text = f"how much is the lamp? sender {k} message {n}"
                sent += 1
                try:
                    async with http.post(url, json={"user": f"v{k}", "text": text}) as reply:
                        if reply.status == 202:
                            acked.append(((await reply.json())["id"], text))
                except aiohttp.ClientError:
                    stop.set()
                    return

    await asyncio.gather(*(sender(k) for k in range(senders)))
    return sent


@pytest.mark.slow
async def test_kill_9_mid_burst_loses_no_acknowledged_message(tmp_path):
    port, db = free_port(), tmp_path / "store.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f"[stream]\nwidth = 320\nheight = 180\n[chat.local]\nport = {port}\n"
        f"[metrics]\nenabled = false\n[store]\npath = '{db}'\n"
    )
    url = f"http://127.0.0.1:{port}/chat"
    proc = start_daemon(str(config))
    try:
        await wait_listening(url, proc)
        acked: list[tuple[int, str]] = []
        stop = asyncio.Event()
        sending = asyncio.create_task(burst(url, 16, acked, stop))
        while len(acked) < 300:
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-burst: requests are in flight
        sent = await asyncio.wait_for(sending, 30)
        proc.wait(10)
    finally:
        proc.kill()
    assert sent > len(acked) >= 300
    # restart on the same store, as a supervisor would, then stop it cleanly
    again = start_daemon(str(config))
    try:
        await wait_listening(url, again)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
    with Record.open(db) as record:
        rows = {m.id: m.text for m in record.messages()}
    missing = [(i, text) for i, text in acked if rows.get(i) != text]
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged messages were lost"
