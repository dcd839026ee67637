"""A bad path or value in the config stops the daemon with exit 2 and a message naming the
key (never a traceback), and doctor fails on the same line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def write_config(tmp_path, extra: str, store: str | None = None) -> str:
    path = tmp_path / "config.toml"
    store = store or str(tmp_path / "ok.db")
    path.write_text(
        "[stream]\nrealtime = false\nwidth = 320\nheight = 180\n"
        f"[metrics]\nenabled = false\n[store]\npath = '{store}'\n{extra}\n",
        encoding="utf-8",
    )
    return str(path)


def streambot(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STREAMBOT_CHAT_TOKEN"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "streambot", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def cases(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (config text, the key the message must name)."""
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[[product]\nid = ", encoding="utf-8")
    not_catalog = tmp_path / "not_catalog.toml"
    not_catalog.write_text("title = 'a shopping list'\n", encoding="utf-8")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    return {
        "missing catalog": (
            f"[brain.catalog]\npath = '{tmp_path / 'nope.toml'}'",
            "brain.catalog.path",
        ),
        "malformed catalog": (f"[brain.catalog]\npath = '{bad_toml}'", "brain.catalog.path"),
        "not a catalog": (f"[brain.catalog]\npath = '{not_catalog}'", "brain.catalog.path"),
        "store is a folder": (str(folder), "store.path"),
        "unknown espeak voice": ("[voice.espeak]\nvoice_en = 'xx-nope'", "voice.espeak.voice_en"),
        "missing replay": (
            f"[chat.local]\nhttp = false\nreplay = '{tmp_path / 'nope.jsonl'}'",
            "chat.local.replay",
        ),
        "open to the network without a token": (
            "[chat.local]\nhost = '0.0.0.0'\nport = 0",
            "chat.local.host",
        ),
        "missing GGUF model": (
            f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{tmp_path / 'nope.gguf'}'",
            "brain.llm.path",
        ),
    }


CASES = [
    "missing catalog",
    "malformed catalog",
    "not a catalog",
    "store is a folder",
    "unknown espeak voice",
    "missing replay",
    "open to the network without a token",
    "missing GGUF model",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_config_exits_2_naming_the_key_and_doctor_fails(tmp_path, case):
    text, key = cases(tmp_path)[case]
    if case == "store is a folder":
        config = write_config(tmp_path, "", store=text)
    else:
        config = write_config(tmp_path, text)
    run = streambot("run", "--config", config, "--seconds", "1")
    assert run.returncode == 2, run.stderr[-2000:]
    assert key in run.stderr and "Traceback" not in run.stderr
    doctor = streambot("doctor", "--config", config)
    assert doctor.returncode == 1 and "not ready" in doctor.stdout
    assert key in doctor.stdout


def test_a_token_makes_the_network_bind_allowed(tmp_path):
    config = write_config(tmp_path, "[chat.local]\nhost = '0.0.0.0'\nport = 0")
    run = streambot(
        "run",
        "--config",
        config,
        "--seconds",
        "1",
        env_extra={"STREAMBOT_CHAT_TOKEN": "tok-abcdef-123"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "tok-abcdef-123" not in run.stderr + run.stdout
