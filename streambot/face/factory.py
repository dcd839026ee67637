"""Builds the configured face; anything missing for Wav2Lip falls back to the mouth face with
one clear log line, so a half-configured host still goes live."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from streambot.config import Config, TritonFaceConfig, Wav2LipFaceConfig, default_avatar_cache
from streambot.face.base import Face, SlowFacePolicy
from streambot.face.mouth import MouthFace
from streambot.runtime.manifest import sha256_file

if TYPE_CHECKING:  # torch is an optional extra: import it only when the backend is used
    from streambot.face.avatar import PreparedAvatar
    from streambot.models.wav2lip import Wav2Lip
    from streambot.runtime.base import Engine
    from streambot.runtime.triton_engine import TritonEngine

log = logging.getLogger(__name__)


class FaceSetupError(RuntimeError):
    pass


def build_face(config: Config) -> Face:
    s = config.stream
    if config.face.backend == "wav2lip":
        try:
            return build_wav2lip_face(config)
        except FaceSetupError as exc:
            log.warning("Wav2Lip face unavailable, using the mouth face instead: %s", exc)
    return MouthFace(config.face.mouth, s.width, s.height, s.fps)


def slow_face_policy(config: Config, face: Face) -> SlowFacePolicy:
    """``[face] slow``: with "mouth", a mouth face ready to finish the turns of a face that
    renders too slowly (none is needed when the face is the mouth face already)."""
    fallback = None
    if config.face.slow == "mouth" and not isinstance(face, MouthFace):
        s = config.stream
        fallback = MouthFace(config.face.mouth, s.width, s.height, s.fps)
    return SlowFacePolicy(config.face.slow, config.face.slow_floor, fallback)


def _file_digest(path: Path) -> str:
    return sha256_file(path)[:16]


def configured_avatar(config: Config, cached_only: bool = False) -> PreparedAvatar:
    """The avatar ``face.wav2lip`` names, prepared for the stream's size and rate (the cached
    one when ready). ``cached_only``: raise AvatarNotPrepared rather than prepare it. The
    daemon, ``avatar prepare`` and ``doctor`` all come here, so they agree on the cache."""
    from streambot.face.wav2lip import prepare_for_output

    cfg, s = config.face.wav2lip, config.stream
    cache = Path(cfg.avatar_cache) if cfg.avatar_cache else default_avatar_cache()
    box = None
    if cfg.face_box:
        x, y, w, h = cfg.face_box
        box = (x, y, w, h)
    top, bottom, left, right = cfg.pads
    return prepare_for_output(
        cfg.avatar,
        cache,
        s.width,
        s.height,
        face_box=box,
        pads=(top, bottom, left, right),
        fps=s.fps,
        cached_only=cached_only,
    )


def build_wav2lip_face(config: Config) -> Face:
    cfg, s = config.face.wav2lip, config.stream
    if not cfg.checkpoint:
        raise FaceSetupError("no checkpoint configured (face.wav2lip.checkpoint)")
    checkpoint = Path(cfg.checkpoint)
    if not checkpoint.is_file():
        raise FaceSetupError(f"checkpoint not found: {checkpoint}")
    if not cfg.avatar:
        raise FaceSetupError("no avatar configured (face.wav2lip.avatar)")
    try:
        from streambot.face.avatar_source import AvatarError
        from streambot.face.wav2lip import Wav2LipFace
        from streambot.models.wav2lip import CheckpointError, Wav2Lip
        from streambot.runtime.base import EngineError
    except ImportError as exc:
        raise FaceSetupError(
            f"{exc}; install with: pip install 'streambot[neural,wav2lip]'"
        ) from exc
    try:
        model = Wav2Lip.from_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise FaceSetupError(f"{checkpoint}: {exc}") from exc
    try:
        avatar = configured_avatar(config)
    except AvatarError as exc:
        raise FaceSetupError(f"avatar {cfg.avatar}: {exc}") from exc
    try:
        engine = _engine(cfg, model, checkpoint, avatar.key, config.engines.dir)
    except EngineError as exc:
        raise FaceSetupError(str(exc)) from exc
    log.info("Wav2Lip face on %s with avatar %s", engine.name, avatar.folder)
    first_batch, batch = batch_sizes(engine.name, cfg.first_batch, cfg.batch)
    return Wav2LipFace(engine, avatar, s.width, s.height, s.fps, first_batch, batch)


def batch_sizes(engine_name: str, first_batch: int, batch: int) -> tuple[int, int]:
    """Configured sizes, or sizes fitted to the device: a small first batch so the first
    frames reach the stream sooner, then the size that gives the best throughput there."""
    on_gpu = "cuda" in engine_name or "tensorrt" in engine_name
    auto_first, auto_batch = (8, 64) if on_gpu else (4, 8)
    return first_batch or auto_first, batch or auto_batch


def _engine(
    cfg: Wav2LipFaceConfig, model: Wav2Lip, checkpoint: Path, avatar_key: str, engines_dir: str
) -> Engine:
    if cfg.engine == "triton":
        local = _engine(
            cfg.model_copy(update={"engine": "auto"}), model, checkpoint, avatar_key, engines_dir
        )
        return _served(cfg.triton, local)
    if cfg.engine == "auto":
        built = _built_engine(cfg, checkpoint, avatar_key, engines_dir)
        if built is not None:
            return built
        log.info("no built Wav2Lip engine to use; the checkpoint runs as it is (torch)")
    if cfg.engine in ("torch", "auto"):
        from streambot.runtime.torch_engine import TorchEngine

        return TorchEngine(model, ["mel", "face"], ["frame"], device=cfg.device)
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    onnx_path = (
        Path(cfg.onnx_path)
        if cfg.onnx_path
        else (Path(engines_dir) / f"wav2lip-{_file_digest(checkpoint)}.onnx")
    )
    if not onnx_path.is_file():
        log.info("exporting %s to ONNX at %s (once)", checkpoint, onnx_path)
        export_wav2lip_onnx(model, onnx_path)
    return OnnxEngine(onnx_path)


def triton_face_engine(cfg: TritonFaceConfig) -> TritonEngine:
    """The client of the face model ``[face.wav2lip.triton]`` names (the daemon's, doctor's)."""
    from streambot.runtime.export import WAV2LIP_INPUTS, WAV2LIP_OUTPUTS
    from streambot.runtime.triton_engine import TritonEngine

    return TritonEngine(
        cfg.url,
        cfg.model,
        WAV2LIP_INPUTS,
        WAV2LIP_OUTPUTS,
        protocol=cfg.protocol,
        timeout_s=cfg.timeout_s,
        shared_memory=cfg.shared_memory,
    )


def _served(cfg: TritonFaceConfig, local: Engine) -> Engine:
    """The Triton server's engine, ``local`` standing in while it cannot answer."""
    from streambot.circuit import CircuitBreaker
    from streambot.remote import RetryPolicy
    from streambot.runtime.served import ServedEngine

    remote = triton_face_engine(cfg)
    breaker = CircuitBreaker(
        f"face server {cfg.url} ({cfg.model})",
        cfg.retry.failure_threshold,
        cfg.retry.open_seconds,
        f"the local engine {local.name} renders",
    )
    log.info("Wav2Lip face served by Triton at %s, model %s (%s)", cfg.url, cfg.model, cfg.protocol)
    return ServedEngine(remote, local, breaker, RetryPolicy(retries=cfg.retry.retries))


def _built_engine(
    cfg: Wav2LipFaceConfig, checkpoint: Path, avatar_key: str, engines_dir: str
) -> Engine | None:
    """The engine build_engines.py made for this checkpoint and avatar, if one is usable."""
    from streambot.models.wav2lip import Wav2Lip
    from streambot.runtime.select import choose, this_device, wav2lip_inputs

    device = this_device(cfg.device)
    inputs = functools.partial(wav2lip_inputs, checkpoint, avatar_key)
    choice = choose("wav2lip", engines_dir, inputs, device)
    if choice.artifact is None or choice.path is None:
        return None
    backend = choice.artifact.backend
    log.info("Wav2Lip engine from %s: %s (%s)", engines_dir, choice.path.name, backend)
    if backend == "onnxruntime":
        from streambot.runtime.onnx_engine import OnnxEngine

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return OnnxEngine(choice.path, providers if device.kind == "cuda" else providers[1:])
    if backend == "torch":
        from streambot.runtime.torch_engine import TorchEngine

        pruned = Wav2Lip.from_checkpoint(choice.path)
        return TorchEngine(pruned, ["mel", "face"], ["frame"], device=cfg.device)
    if backend == "tensorrt":
        from streambot.runtime.base import EngineError
        from streambot.runtime.tensorrt_engine import TensorRTEngine

        try:
            return TensorRTEngine(choice.path)
        except EngineError as exc:  # e.g. the driver cannot load it after all
            log.warning("built Wav2Lip engine %s not used: %s", choice.path.name, exc)
    return None
