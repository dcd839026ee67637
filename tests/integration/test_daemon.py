"""The daemon as a user runs it: restarts keep accepted questions, signals shut down cleanly."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import av

from streambot.app import App
from streambot.record import Record


def write_replay(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def status_of(db_path, user):
    with Record.open(db_path) as record:
        [message] = record.by_user(user)
        return message.status


def test_unanswered_question_survives_a_restart_and_is_answered_after_it(fast_config, tmp_path):
    replay = tmp_path / "chat.jsonl"
    write_replay(
        replay,
        [
            {"at": 0.1, "user": "ann", "text": "hello!"},
            {"at": 0.2, "user": "bob", "text": "How much is the lamp?"},
        ],
    )
    fast_config.chat.local.replay = str(replay)
    asyncio.run(App(fast_config).run(1.0))  # stopped while greeting ann; bob still queued
    db = fast_config.store.path
    assert status_of(db, "ann") == "accepted" and status_of(db, "bob") == "accepted"

    fast_config.chat.local.replay = ""
    report = asyncio.run(App(fast_config).run(8.0))
    assert report.turns >= 1
    assert status_of(db, "bob") == "answered"
    assert status_of(db, "ann") == "expired"  # low-priority chat is not resumed
    with Record.open(db) as record:
        [reply] = [t.reply for t in record.turns() if t.user == "bob" and t.outcome == "played"]
    assert "$59" in (reply or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_shuts_down_cleanly_with_a_playable_recording(tmp_path):
    replay = tmp_path / "chat.jsonl"
    write_replay(replay, [{"at": 0.5, "user": "ann", "text": "how much is the grinder?"}])
    out, db, port = tmp_path / "live.mp4", tmp_path / "live.db", free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[stream]
width = 320
height = 180
[chat.local]
http = false
replay = "{replay}"
[sinks.file]
enabled = true
path = "{out}"
preset = "ultrafast"
[sinks.null]
enabled = false
[store]
path = "{db}"
[metrics]
port = {port}
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streambot", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    health = json.loads(r.read())
                if health["frames"] > 150:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert health and health["ok"] and [s["name"] for s in health["sinks"]] == ["file"]
        assert health["sinks"][0]["state"] == "up"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            assert "streambot_frames_total" in r.read().decode()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        v_dur, a_dur = float(v.duration * v.time_base), float(a.duration * a.time_base)
        assert v.frames > 100 and abs(v_dur - a_dur) <= 1 / 25
    with Record.open(db) as record:
        assert [m.status for m in record.messages()] == ["answered"]


def test_missing_virtual_camera_is_explained_and_the_other_sinks_go_on(fast_config, tmp_path):
    import glob

    if glob.glob("/dev/video*"):
        import pytest

        pytest.skip("a video device exists here")
    fast_config.sinks.virtualcam.enabled = True
    fast_config.sinks.file.enabled = True
    fast_config.sinks.file.path = str(tmp_path / "out.mp4")
    fast_config.sinks.file.preset = "ultrafast"
    report = asyncio.run(App(fast_config).run(2.0))
    assert "modprobe v4l2loopback" in report.unavailable_sinks["virtualcam"]
    assert report.frames == 50
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].frames == 50

    from streambot.doctor import report as doctor_report
    from streambot.doctor import run_checks

    text, healthy = doctor_report(run_checks(fast_config))
    assert not healthy and "[FAIL] virtual camera" in text and "modprobe" in text
