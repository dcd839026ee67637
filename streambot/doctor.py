"""``python -m streambot doctor``: check that this machine can run the configured host."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streambot.config import Config


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _try(name: str, probe: Callable[[], str], required: bool = True) -> Check:
    try:
        return Check(name, True, probe(), required)
    except Exception as exc:  # every failure becomes a readable line
        return Check(name, False, f"{type(exc).__name__}: {exc}", required)


def _espeak(config: Config) -> str:
    from streambot.voice.espeak import EspeakVoice

    voice = EspeakVoice(config.voice.espeak)
    en = voice.synth_float("Hello.", "en").size / voice.sample_rate
    zh = voice.synth_float("你好。", "zh").size / voice.sample_rate
    return f"{voice.sample_rate} Hz; en {en:.2f}s, zh {zh:.2f}s of speech"


def _encoders() -> str:
    import av

    for codec in ("libx264", "aac"):
        av.codec.Codec(codec, "w")
    return f"PyAV {av.__version__}: libx264 and aac encoders present"


def _virtualcam(config: Config) -> str:
    from streambot.stage.sinks.base import StreamFormat
    from streambot.stage.sinks.virtualcam import VirtualCamSink

    sink = VirtualCamSink(config.sinks.virtualcam.device)
    s = config.stream
    sink.open(StreamFormat(s.width, s.height, s.fps, s.sample_rate))
    sink.close()
    return "virtual camera opens"


def _port_free(host: str, port: int) -> str:
    with socket.socket() as sock:
        sock.bind((host, port))
    return f"{host}:{port} is free"


def _store_writable(path: str) -> str:
    parent = Path(path).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    probe = parent / ".streambot-doctor"
    probe.write_text("ok")
    probe.unlink()
    return f"{path} is writable"


def run_checks(config: Config) -> list[Check]:
    local = config.chat.local
    checks = [
        _try("espeak-ng voice", lambda: _espeak(config)),
        _try("video/audio encoders", _encoders, required=config.sinks.file.enabled),
        _try("virtual camera", lambda: _virtualcam(config), config.sinks.virtualcam.enabled),
        _try("store", lambda: _store_writable(config.store.path)),
    ]
    if local.http:
        checks.append(_try("chat HTTP port", lambda: _port_free(local.host, local.port)))
    if config.obs.enabled:
        checks.extend(_obs_checks(config))
    if config.metrics.enabled:
        m = config.metrics
        checks.append(_try("metrics port", lambda: _port_free(m.host, m.port)))
    return checks


def _obs_checks(config: Config) -> list[Check]:
    """OBS reachable, and every scene and source the stage director uses exists."""
    import asyncio

    from streambot.stage.director import obs_controller

    try:
        controller = obs_controller(config)
    except ImportError as exc:
        return [Check("OBS", False, f"{exc}; pip install 'streambot[stage]'")]
    results = asyncio.run(controller.check())
    return [Check(f"OBS {name}", ok, detail) for name, ok, detail in results]


def report(checks: list[Check]) -> tuple[str, bool]:
    lines, healthy = [], True
    for check in checks:
        mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
        healthy &= check.ok or not check.required
        lines.append(f"[{mark}] {check.name}: {check.detail}")
    return "\n".join(lines), healthy
