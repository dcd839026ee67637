"""The Wav2Lip face's recipe: prune (``--prune``; channels chosen by weight magnitude or by
their activity on the user's avatar, whichever measures closer to the teacher), distil on the
user's avatar and voice for ``--distil-minutes``, measure mouth fidelity against the teacher
before and after, and write the pruned model (torch), its ONNX exports (fp32, int8 when it is
faster on this CPU, fp16 for GPUs) and, on a GPU with TensorRT, a TensorRT engine; each is
recorded in the manifest with its inputs' checksums and its own fidelity."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streambot.compress.common import (
    BUILD_LIBRARIES,
    RANDOM_WEIGHTS_KEY,
    BuildError,
    BuildOptions,
    Row,
    catalog_of,
    distil_ticker,
    distillation_record,
    plan_outputs,
    progress,
)
from streambot.config import Config
from streambot.runtime.manifest import (
    Artifact,
    Device,
    Manifest,
    sha256_file,
    sha256_json,
)
from streambot.runtime.select import library_versions

log = logging.getLogger(__name__)


@dataclass
class Wav2LipBuild:
    """What the Wav2Lip build needs, resolved from the config (errors name the key)."""

    checkpoint: Path
    avatar: Any  # the PreparedAvatar (imported lazily: OpenCV is an optional extra)
    inputs: dict[str, str]
    tag: str  # "p50": the pruning ratio in file names
    tensorrt: TensorRTTarget | None = None  # where TensorRT can build here, else None
    tensorrt_blocker: str = ""  # why it cannot

    @property
    def files(self) -> dict[str, str]:
        """The artifact file of each output the plan checks (int8 is kept only if it wins)."""
        files = {
            "torch": f"wav2lip-{self.tag}.pt",
            "onnx": f"wav2lip-{self.tag}.onnx",
            "onnx-fp16": f"wav2lip-{self.tag}-fp16.onnx",
        }
        if self.tensorrt is not None:
            files["trt"] = f"wav2lip-{self.tag}-{self.tensorrt.slug}.plan"
        return files


@dataclass(frozen=True)
class TensorRTTarget:
    """The GPU a TensorRT engine is built for (engines run only there)."""

    device: Device

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.device.name.lower()).strip("-") or "gpu"


def resolve_wav2lip(config: Config, options: BuildOptions) -> Wav2LipBuild:
    cfg = config.face.wav2lip
    if not cfg.checkpoint:
        raise BuildError("face.wav2lip.checkpoint: no Wav2Lip checkpoint is configured")
    checkpoint = Path(cfg.checkpoint)
    if not checkpoint.is_file():
        raise BuildError(f"face.wav2lip.checkpoint: {checkpoint} does not exist")
    if not cfg.avatar:
        raise BuildError("face.wav2lip.avatar: no avatar is configured")
    try:
        from streambot.face.avatar_source import AvatarError
        from streambot.face.factory import configured_avatar
    except ImportError as exc:
        raise BuildError(f"{exc}: pip install 'streambot[neural,wav2lip]'") from exc
    try:
        avatar = configured_avatar(config, cached_only=True)
    except AvatarError as exc:
        raise BuildError(
            f"face.wav2lip.avatar: {exc}; prepare it first: python -m streambot avatar prepare "
            f"{cfg.avatar} --config <your config>"
        ) from exc
    shaping = {
        "prune": options.prune,
        "distil_minutes": options.face_voice_distil_minutes,
        "importance": options.importance,
        "img_size": 96,
        "fps": config.stream.fps,
    }
    inputs = {
        "checkpoint": sha256_file(checkpoint),
        # the prepared avatar's own content key (source file + preparation settings): the
        # daemon checks the same key at start without hashing gigabytes of frames
        "avatar": avatar.key,
        "build settings": sha256_json(shaping),
    }
    job = Wav2LipBuild(checkpoint, avatar, inputs, tag=f"p{round(options.prune * 100):02d}")
    if "trt" in options.backends:
        job.tensorrt, job.tensorrt_blocker = _tensorrt_target(options)
    return job


def _tensorrt_target(options: BuildOptions) -> tuple[TensorRTTarget | None, str]:
    """The GPU to build TensorRT engines for, or why there is none."""
    from streambot.runtime.base import EngineError
    from streambot.runtime.select import this_device
    from streambot.runtime.tensorrt_engine import load_tensorrt

    try:
        load_tensorrt()
    except EngineError as exc:
        return None, f"{exc}; the other backends are built"
    if options.device != "cuda":
        return None, "TensorRT builds on a GPU: add --device cuda"
    device = this_device("cuda")
    if device.kind != "cuda":
        return None, "TensorRT needs a CUDA GPU, and torch sees none"
    return TensorRTTarget(device), ""


def asked_for(options: BuildOptions, output: str) -> bool:
    """Whether ``output`` ("torch", "onnx", "onnx-fp16", "trt") is asked for: the fp16 ONNX
    comes with the ONNX backend (for ONNX Runtime on a GPU) and is TensorRT's input; a Triton
    repository serves the ONNX engines."""
    backend = output.split("-")[0]
    if backend == "onnx" and "triton" in options.backends:
        return True
    return backend in options.backends or (output == "onnx-fp16" and "trt" in options.backends)


def plan_wav2lip(build: Wav2LipBuild, options: BuildOptions, manifest: Manifest) -> list[Row]:
    rows = []
    if "trt" in options.backends and build.tensorrt is None:
        rows.append(Row("wav2lip", "TensorRT", "skipped", build.tensorrt_blocker))
    wanted = {output: name for output, name in build.files.items() if asked_for(options, output)}
    gpu = build.tensorrt.device if build.tensorrt else None
    return rows + plan_outputs("wav2lip", wanted, build.inputs, options, manifest, gpu)


@dataclass
class _Output:
    """One file the build made, before it goes into the manifest."""

    backend: str
    precision: str
    path: Path
    fidelity: dict[str, float]  # this file's own output against the teacher
    device: Device = field(default_factory=Device)
    note: str = ""


def build_wav2lip(
    config: Config, job: Wav2LipBuild, options: BuildOptions, manifest: Manifest
) -> list[Row]:
    try:
        import torch

        from streambot.compress.distill import distil
        from streambot.compress.fidelity import mouth_fidelity
        from streambot.compress.wav2lip_data import catalog_sentences, frame_sets
        from streambot.models.wav2lip import Wav2Lip
        from streambot.voice.factory import build_voice
    except ImportError as exc:
        raise BuildError(f"{exc}: pip install torch 'streambot[neural,wav2lip]'") from exc
    raw = torch.load(job.checkpoint, map_location="cpu", weights_only=True)
    random_teacher = bool(raw.get(RANDOM_WEIGHTS_KEY)) if isinstance(raw, dict) else False
    teacher = Wav2Lip.from_checkpoint(raw)
    with progress() as bar:
        sentences = catalog_sentences(catalog_of(config))
        log.info("wav2lip: the voice speaks %d catalog sentences for the data", len(sentences))
        train, held = frame_sets(job.avatar, build_voice(config), sentences, config.stream.fps)
        log.info("wav2lip: %d training frames, %d held out", len(train), len(held))
        mel, face = held.head(64)
        with torch.no_grad():
            reference = teacher(mel, face).numpy()
        pruned, importance = _prune(teacher, train, (mel, face), reference, options)
        student = pruned.model
        before = importance[pruned.importance]
        budget = options.face_voice_distil_minutes * 60.0
        tick = distil_ticker(bar, "distilling wav2lip", budget)
        report = distil(
            teacher,
            student,
            train.batches(options.batch),
            budget_s=budget,
            resume_path=options.out / ".wav2lip-distil.pt",
            device=options.device,
            on_step=tick,
        )
        teacher.cpu()
        student.cpu()
        with torch.no_grad():
            after = mouth_fidelity(student(mel, face).numpy(), reference)
    shared = _shared(before, after, importance, report, random_teacher, len(held))
    pruning = {
        "ratio": options.prune,
        "importance": pruned.importance,
        "widths": pruned.config.to_dict(),
        "params_before": pruned.params_before,
        "params_after": pruned.params_after,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    outputs = _export(teacher, pruned, job, train, (mel, face), reference, after, options)
    rows = [out for out in outputs if isinstance(out, Row)]  # what was made and not kept
    note = "; teacher has random weights" if random_teacher else ""
    versions = library_versions(BUILD_LIBRARIES)
    for out in (out for out in outputs if isinstance(out, _Output)):
        rows.append(_record(out, job, options, manifest, pruned, pruning, shared, versions, note))
    return rows


def _shared(
    before: dict[str, Any],
    after: dict[str, Any],
    importance: dict[str, Any],
    report: Any,
    random_teacher: bool,
    held_frames: int,
) -> dict[str, Any]:
    """The fidelity every engine of one build shares: the mouth before and after distilling,
    each importance tried, the distillation, and what the teacher was."""
    return {
        "before_distillation": before,
        "after_distillation": after,
        "importance": importance,
        "distillation": distillation_record(report),
        "teacher": "random weights (speed only: these figures say nothing of quality)"
        if random_teacher
        else "the configured checkpoint",
        "held_out_frames": held_frames,
    }


def _record(
    out: _Output,
    job: Wav2LipBuild,
    options: BuildOptions,
    manifest: Manifest,
    pruned: Any,
    pruning: dict[str, Any],
    shared: dict[str, Any],
    versions: dict[str, str],
    note: str,
) -> Row:
    """One exported engine in the manifest (a default when its mouth is close enough to the
    teacher's), and its row."""
    before, after = shared["before_distillation"], shared["after_distillation"]
    default = out.fidelity["mouth_psnr_db"] >= options.min_mouth_psnr_db
    own = {"this_file": out.fidelity} if out.backend != "torch" else {}
    manifest.put(
        Artifact(
            "wav2lip",
            out.path.name,
            sha256_file(out.path),
            out.backend,
            out.precision,
            dict(job.inputs),
            out.device,
            versions | _device_versions(out),
            pruning,
            {**shared, **own},
            default=default,
        )
    )
    detail = out.note or (
        f"mouth PSNR {before['mouth_psnr_db']:.1f} -> {after['mouth_psnr_db']:.1f} dB, "
        f"SSIM {before['mouth_ssim']:.3f} -> {after['mouth_ssim']:.3f}, "
        f"{pruned.params_after / 1e6:.1f}M params, {pruned.importance} importance"
    )
    detail += note
    if not default:
        detail += (
            f"; not a default: mouth PSNR {out.fidelity['mouth_psnr_db']:.1f} dB < "
            f"floor {options.min_mouth_psnr_db:g}"
        )
    return Row("wav2lip", out.path.name, "built", detail)


def _device_versions(out: _Output) -> dict[str, str]:
    if out.backend != "tensorrt":
        return {}
    return library_versions(("tensorrt",))


def _prune(teacher, train, held, reference, options: BuildOptions):
    """Prune by L2 magnitude and by channel activity on the avatar (``--importance auto``),
    keep the one closer to the teacher on the held-out frames; also the figures of each."""
    from itertools import islice

    import torch

    from streambot.compress.fidelity import mouth_fidelity
    from streambot.compress.prune import prune_wav2lip

    kinds = ("l2", "activation") if options.importance == "auto" else (options.importance,)
    candidates, figures = {}, {}
    for kind in kinds:
        calibration = None
        if kind == "activation":  # 8 batches of the avatar: channel activity settles by then
            calibration = list(islice(train.batches(options.batch, seed=2), 8))
        result = prune_wav2lip(teacher, options.prune, calibration=calibration)
        with torch.no_grad():
            figures[kind] = mouth_fidelity(result.model(*held).numpy(), reference)
        candidates[kind] = result
    best = max(candidates, key=lambda k: figures[k]["mouth_psnr_db"])
    log.info(
        "wav2lip: pruned by %s importance (%s)",
        best,
        ", ".join(f"{k} {v['mouth_psnr_db']:.1f} dB" for k, v in figures.items()),
    )
    return candidates[best], {**figures, "chosen": best}


def _export(teacher, pruned, job: Wav2LipBuild, train, held, reference, after, options):
    """Write each asked-for file of the distilled student, each with its own fidelity (and the
    speed-up over the unpruned teacher on ONNX Runtime, measured in this run)."""
    from streambot.compress.prune import save_pruned
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    files, out = job.files, options.out
    outputs: list[_Output | Row] = []
    if asked_for(options, "torch"):
        path = save_pruned(pruned, out / files["torch"])
        outputs.append(_Output("torch", "fp32", path, after))
    if asked_for(options, "onnx"):
        path = export_wav2lip_onnx(pruned.model, out / files["onnx"])
        engine = OnnxEngine(path)  # one session for its fidelity, its speed and int8's baseline
        speed = _speed_up(teacher, engine, held, options)
        outputs.append(
            _Output(
                "onnxruntime", "fp32", path, {**_onnx_fidelity(engine, held, reference), **speed}
            )
        )
        if options.device == "cpu":
            outputs += _int8(path, speed["fps"], train, held, reference, options)
    fp16 = None
    if asked_for(options, "onnx-fp16"):
        fp16 = export_wav2lip_onnx(pruned.model, out / files["onnx-fp16"], precision="fp16")
        outputs.append(
            _Output("onnxruntime", "fp16", fp16, _onnx_fidelity(OnnxEngine(fp16), held, reference))
        )
    if job.tensorrt is not None and fp16 is not None:
        outputs.append(_tensorrt(fp16, job, held, reference, options))
    return outputs


def _onnx_fidelity(engine, held, reference) -> dict[str, float]:
    from streambot.compress.fidelity import mouth_fidelity

    mel, face = held
    frames = engine.run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    return mouth_fidelity(frames, reference)


def _speed_up(teacher, student, held, options: BuildOptions) -> dict[str, float]:
    """Bare frames per second of the unpruned teacher and the student, ONNX Runtime fp32,
    ``options.batch`` frames a batch, measured back to back in this run."""
    import tempfile

    from streambot.compress.quantize import frames_per_second
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    mel, face = held
    sample = {"mel": mel[: options.batch].numpy(), "face": face[: options.batch].numpy()}
    with tempfile.TemporaryDirectory() as work:
        teacher_path = export_wav2lip_onnx(teacher, Path(work) / "teacher.onnx")
        teacher_fps = frames_per_second(OnnxEngine(teacher_path), sample)
    student_fps = frames_per_second(student, sample)
    return {
        "fps_batch": float(options.batch),
        "teacher_fps": round(teacher_fps, 1),
        "fps": round(student_fps, 1),
        "speed_up": round(student_fps / teacher_fps, 2),
    }


def _int8(
    onnx_path: Path, fp32_fps: float, train, held, reference, options: BuildOptions
) -> list[_Output | Row]:
    """Quantize to int8 QDQ calibrated on the avatar; keep it only if it is faster here than
    the fp32 engine (``fp32_fps``, measured just before on the same frames)."""
    from streambot.compress.fidelity import mouth_fidelity
    from streambot.compress.quantize import frames_per_second, quantize_wav2lip
    from streambot.runtime.onnx_engine import OnnxEngine

    def calibration():
        for mel, face in train.batches(options.batch, seed=1):
            yield {"mel": mel.numpy(), "face": face.numpy()}

    path = onnx_path.with_name(onnx_path.stem + "-int8.onnx")
    quantize_wav2lip(onnx_path, path, calibration(), batches=16)
    mel, face = held
    sample = {"mel": mel[: options.batch].numpy(), "face": face[: options.batch].numpy()}
    int8_engine = OnnxEngine(path)
    int8_fps = frames_per_second(int8_engine, sample)
    out = int8_engine.run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    figures = {
        **mouth_fidelity(out, reference),
        "fps": round(int8_fps, 1),
        "fp32_fps": fp32_fps,
        "fps_batch": float(options.batch),
    }
    note = (
        f"int8 QDQ {int8_fps:.0f} vs fp32 {fp32_fps:.0f} FPS (bare, batch {options.batch}), "
        f"mouth PSNR {figures['mouth_psnr_db']:.1f} dB"
    )
    if int8_fps < 1.1 * fp32_fps:
        path.unlink(missing_ok=True)
        return [Row("wav2lip", path.name, "not kept", note + ": not faster here")]
    return [_Output("onnxruntime", "int8", path, figures, note=note)]


def _tensorrt(fp16: Path, job: Wav2LipBuild, held, reference, options: BuildOptions) -> _Output:
    """The TensorRT engine of the fp16 ONNX for this GPU, with its own fidelity and speed."""
    from streambot.compress.fidelity import mouth_fidelity
    from streambot.compress.quantize import frames_per_second
    from streambot.runtime.tensorrt_engine import TensorRTEngine, build_engine

    assert job.tensorrt is not None
    target = options.out / job.files["trt"]
    cache = options.out / f"tensorrt-{job.tensorrt.slug}.timing-cache"
    log.info("wav2lip: building the TensorRT engine %s (minutes, once per GPU)", target.name)
    build_engine(fp16, target, cache)
    engine = TensorRTEngine(target)
    mel, face = held
    feed = {"mel": mel.numpy(), "face": face.numpy()}
    frames = engine.run(feed)["frame"]
    fps = frames_per_second(engine, feed)
    figures = {
        **mouth_fidelity(frames, reference),
        "fps": round(fps, 1),
        "fps_batch": float(len(mel)),
    }
    return _Output("tensorrt", "fp16", target, figures, device=job.tensorrt.device)
