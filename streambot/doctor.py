"""``python -m streambot doctor``: check that this machine can run the configured host."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streambot.config import Config, ConfigError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _config_check(name: str, probe: Callable[[Config], str], config: Config) -> Check:
    try:
        return Check(name, True, probe(config))
    except ConfigError as exc:  # its message names the key
        return Check(name, False, str(exc))


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
    from av.codec import Codec

    for codec in ("libx264", "aac"):
        Codec(codec, "w")
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


def _piper(config: Config) -> str:
    from streambot.voice.factory import piper_voice

    voice = piper_voice(config)
    seconds = sum(pcm.size for pcm in voice.synthesize("Hello.")) / voice.sample_rate
    return f"{Path(config.voice.piper.model).name}: {voice.sample_rate} Hz, {seconds:.2f}s"


def _wav2lip_checkpoint(config: Config) -> str:
    from streambot.models.wav2lip import Wav2Lip

    model = Wav2Lip.from_checkpoint(Path(config.face.wav2lip.checkpoint))
    params = sum(p.numel() for p in model.parameters())
    return f"{Path(config.face.wav2lip.checkpoint).name}: {params / 1e6:.1f} M parameters"


def _avatar(config: Config) -> Check:
    """Prepared for this stream already, or how to prepare it ahead of going live."""
    from streambot.face.avatar import AvatarNotPrepared
    from streambot.face.factory import configured_avatar

    name = "avatar"
    try:
        avatar = configured_avatar(config, cached_only=True)
    except AvatarNotPrepared as exc:
        hint = f"python -m streambot avatar prepare {config.face.wav2lip.avatar} --config ..."
        return Check(name, False, f"{exc}; going live prepares it first, or run: {hint}", False)
    except Exception as exc:  # unreadable source, bad cache: a readable line
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    height, width = avatar.frames.shape[1:3]
    return Check(
        name, True, f"ready: {len(avatar.loop)} frames at {width}x{height} in {avatar.folder}"
    )


def _engines(config: Config) -> Check:
    """The built engines found and the one the daemon would use (never required: without
    one the checkpoint runs as it is)."""
    name, cfg = "Wav2Lip engines", config.face.wav2lip
    try:
        from streambot.face.factory import configured_avatar
        from streambot.runtime.manifest import Manifest
        from streambot.runtime.select import choose, this_device, wav2lip_inputs

        found = Manifest.load(config.engines.dir).of_kind("wav2lip")
        if not found:
            return Check(
                name, False, f"none in {config.engines.dir}: run python build_engines.py", False
            )
        avatar = configured_avatar(config, cached_only=True)
        inputs = functools.partial(wav2lip_inputs, Path(cfg.checkpoint), avatar.key)
        choice = choose("wav2lip", config.engines.dir, inputs, this_device(cfg.device))
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}", False)
    listed = ", ".join(f"{a.file} ({a.backend} {a.precision})" for a in found)
    if choice.artifact is None:
        return Check(name, False, f"{listed}; none usable: {'; '.join(choice.refused)}", False)
    return Check(name, True, f"{listed}; would use {choice.artifact.file}", False)


def _overlay_font(config: Config) -> str:
    from streambot.stage.overlay.fonts import CJK_PROBE, FontSet, find_font

    path = find_font(config.overlay.font)
    if path is None:
        raise RuntimeError(
            "no font with Chinese glyphs found: reinstall streambot (mplfonts "
            "ships one), install fonts-noto-cjk, or set [overlay] font"
        )
    if not FontSet(path).draws(CJK_PROBE):
        raise RuntimeError(f"{path} has no Chinese glyphs: Chinese captions would show boxes")
    return str(path)


def _script(config: Config) -> str:
    from streambot.catalog import Catalog
    from streambot.script.model import load_script

    catalog = Catalog.load(config.brain.catalog.path or None)
    script = load_script(config.script.path, catalog, config.host.max_reply_chars)
    kinds = sorted({s.kind for s in script.segment})
    return f"{len(script.segment)} segments ({', '.join(kinds)})"


def _tts_server(config: Config) -> str:
    from urllib.parse import urlsplit

    url = urlsplit(config.voice.http.base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=2.0):
        pass
    return f"{url.hostname}:{port} reachable; the local voice speaks when it is not"


def _face_server(config: Config) -> str:
    from streambot.face.factory import triton_face_engine
    from streambot.runtime.export import WAV2LIP_INPUTS, WAV2LIP_OUTPUTS

    cfg = config.face.wav2lip.triton
    engine = triton_face_engine(cfg)
    wire = engine.model_wire()
    missing = [n for n in (*WAV2LIP_INPUTS, *WAV2LIP_OUTPUTS) if n not in wire.types]
    if missing:
        raise ValueError(f"{cfg.model} on {cfg.url} is not a Wav2Lip model (no {missing})")
    types = "/".join(sorted(set(wire.types.values())))
    via = "shared memory" if engine.shared_memory else "the wire"
    return f"{cfg.url} serves {cfg.model}: {types} tensors through {via}"


def run_checks(config: Config) -> list[Check]:
    from streambot import preflight

    local = config.chat.local
    checks = [
        _try("espeak-ng voice", lambda: _espeak(config)),
        _try("video/audio encoders", _encoders, required=config.sinks.file.enabled),
        _try("virtual camera", lambda: _virtualcam(config), config.sinks.virtualcam.enabled),
        *(_config_check(name, probe, config) for name, probe in preflight.checks(config)),
    ]
    if config.voice.backend == "piper":
        checks.append(_try("Piper voice", lambda: _piper(config)))
    if config.voice.backend == "http":
        checks.append(_try("TTS server", lambda: _tts_server(config), required=False))
    if config.overlay.enabled:
        checks.append(_try("overlay font", lambda: _overlay_font(config), required=False))
    if config.script.path:
        checks.append(_try("sales script", lambda: _script(config)))
    if config.face.backend == "wav2lip":
        checks.append(_try("Wav2Lip checkpoint", lambda: _wav2lip_checkpoint(config)))
        checks.append(_avatar(config))
        checks.append(_engines(config))
        if config.face.wav2lip.engine == "triton":  # the local engine stands in: a warning
            checks.append(_try("face server", lambda: _face_server(config), required=False))
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
