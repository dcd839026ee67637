"""``python build_engines.py``: prune, distil, export and record the engines a config uses.

The Wav2Lip face: prune (``--prune``; channels chosen by weight magnitude
or by their activity on the user's avatar, whichever measures closer to the teacher), distil
on the user's avatar and voice for ``--distil-minutes``, measure mouth fidelity against the
teacher before and after, and write the pruned model (torch), its ONNX exports (fp32, int8
when it is faster on this CPU, fp16 for GPUs) and, on a GPU with TensorRT, a TensorRT engine;
each is recorded in ``engines/manifest.json`` with its inputs' checksums and its own fidelity.
An artifact whose inputs and versions are unchanged is skipped.

The voice: each Piper voice's decoder pruned, distilled and exported to ONNX
(compress/voice_build.py). The LLM is reported as not built (with the reason), not faked.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streambot.config import Config, ConfigError, load_config
from streambot.progress import interactive
from streambot.runtime.manifest import (
    Artifact,
    Device,
    Manifest,
    ManifestError,
    sha256_file,
    sha256_json,
)
from streambot.runtime.select import library_versions

log = logging.getLogger(__name__)
EXIT_CONFIG = 2
BUILD_LIBRARIES = ("torch", "onnxruntime", "onnx", "torch_pruning")
KINDS = ("wav2lip", "voice", "llm")
BACKENDS = ("trt", "onnx", "torch")
# A random-weight checkpoint made for tests and benchmarks says so under this key.
RANDOM_WEIGHTS_KEY = "streambot_random_weights"


class BuildError(Exception):
    """The build cannot start; the message names the config key or the extra to install."""


@dataclass
class BuildOptions:
    out: Path = Path("engines")
    only: tuple[str, ...] = KINDS
    prune: float = 0.5
    distil_minutes: float = 3.0
    device: str = "cpu"
    backends: tuple[str, ...] = BACKENDS
    force: bool = False
    dry_run: bool = False
    min_mouth_psnr_db: float = 25.0
    importance: str = "auto"  # "l2", "activation", or "auto": whichever measures closer
    batch: int = 8
    explicit: bool = (
        False  # --only named the kinds: build them even if the config does not use them
    )
    prune_given: float | None = None  # --prune when given; else each config's own prune
    max_voice_mcd_db: float = 4.0  # fidelity floor of a voice engine used by default
    # ... and how many more words (a share) a recogniser may mishear than with the voice's own
    max_voice_wer_rise: float = 0.05
    llm_heads: str = "auto"  # "query": heads within each KV group; "groups": whole KV groups
    llm_drop_layers: int = 0
    max_llm_kl: float = 0.5  # teacher-student KL (nats/token) of an LLM used by default
    # The pruned LLM is judged by its answers: teacher and student each answer this many
    # held-out questions (brain/evaluate.py), built into the daemon's guarded brain ...
    llm_eval_questions: int = 100
    # ... and is a default only within this many points of the teacher's accuracy, and when
    # it writes garbage in no larger a share of answers than the teacher (plus these points)
    max_llm_accuracy_drop: float = 3.0
    max_llm_garbage_rise: float = 0.0
    llm_teacher_answers: int = 200  # answers the teacher writes (cached), for training and KL
    llm_kl_answers: int = 50  # of them held out for KL and perplexity, never trained on


@dataclass
class Row:
    """One line of the summary table."""

    kind: str
    artifact: str
    status: str
    detail: str = ""


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
        files = {"torch": f"wav2lip-{self.tag}.pt", "onnx": f"wav2lip-{self.tag}.onnx",
                 "onnx-fp16": f"wav2lip-{self.tag}-fp16.onnx"}  # fmt: skip
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
        from streambot.face.avatar import AvatarError
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
        "distil_minutes": options.distil_minutes,
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


@dataclass
class Plan:
    rows: list[Row]
    wav2lip: Wav2LipBuild | None = None  # resolved once, for the plan and the build
    voices: list = field(default_factory=list)  # VoiceBuild jobs with something to build
    llm: Any = None  # the LLMBuild job, when it has something to build


def plan(config: Config, options: BuildOptions, manifest: Manifest) -> Plan:
    """What a build would do, without doing it."""
    result = Plan([])
    if "wav2lip" in options.only:
        if config.face.backend != "wav2lip" and not options.explicit:
            result.rows.append(Row("wav2lip", "-", "not needed", "face.backend is not wav2lip"))
        else:
            result.wav2lip = resolve_wav2lip(config, options)
            result.rows += _plan_wav2lip(result.wav2lip, options, manifest)
    if "voice" in options.only:
        result.rows += _plan_voices(config, options, manifest, result)
    if "llm" in options.only:
        result.rows += _plan_llm(config, options, manifest, result)
    return result


def _plan_llm(config: Config, options: BuildOptions, manifest: Manifest, result: Plan):
    from streambot.compress.llm_build import plan_llm, resolve_llm

    if config.brain.backend != "llm" and not options.explicit:
        return [Row("llm", "-", "not needed", "brain.backend is not llm")]
    job = resolve_llm(config, options)
    rows = plan_llm(job, options, manifest)
    if any(r.status == "to build" for r in rows):
        result.llm = job
    return rows


def _plan_voices(config: Config, options: BuildOptions, manifest: Manifest, result: Plan):
    from streambot.compress.voice_build import plan_voice, resolve_voices

    if config.voice.backend != "piper" and not options.explicit:
        return [Row("voice", "-", "not needed", "voice.backend is not piper")]
    rows = []
    if "trt" in options.backends:
        rows.append(Row("voice", "TensorRT", "skipped",
                        "the voice decoder runs in ONNX Runtime (a TensorRT voice engine is "
                        "not built by this version)"))  # fmt: skip
    for job in resolve_voices(config, options):
        planned = plan_voice(job, options, manifest)
        rows += planned
        if any(r.status == "to build" for r in planned):
            result.voices.append(job)
    return rows


def _wanted(options: BuildOptions, output: str) -> bool:
    """Whether ``output`` ("torch", "onnx", "onnx-fp16", "trt") is asked for: the fp16 ONNX
    comes with the ONNX backend (for ONNX Runtime on a GPU) and is TensorRT's input."""
    backend = output.split("-")[0]
    return backend in options.backends or (output == "onnx-fp16" and "trt" in options.backends)


def _plan_wav2lip(build: Wav2LipBuild, options: BuildOptions, manifest: Manifest) -> list[Row]:
    rows = []
    if "trt" in options.backends and build.tensorrt is None:
        rows.append(Row("wav2lip", "TensorRT", "skipped", build.tensorrt_blocker))
    wanted = {output: name for output, name in build.files.items() if _wanted(options, output)}
    gpu = build.tensorrt.device if build.tensorrt else None
    return rows + plan_outputs("wav2lip", wanted, build.inputs, options, manifest, gpu)


def plan_outputs(
    kind: str,
    files: dict[str, str],
    inputs: dict[str, str],
    options: BuildOptions,
    manifest: Manifest,
    gpu: Device | None = None,
) -> list[Row]:
    """One row per output file: to build (and why), or up to date. ``gpu``: the device a
    TensorRT engine ("trt") must have been built for."""
    rows = []
    now = library_versions(BUILD_LIBRARIES)
    for output, name in files.items():
        entry = next((a for a in manifest.artifacts if a.file == name), None)
        if entry is None:
            rows.append(Row(kind, name, "to build", "not built yet"))
            continue
        device = gpu if output == "trt" and gpu is not None else entry.device
        why = manifest.why_unusable(entry, inputs, device, now)
        if options.force:
            rows.append(Row(kind, name, "to build", "--force"))
        elif why is None and (changed := _versions_changed(entry.versions, now)):
            rows.append(Row(kind, name, "to build", f"built with {changed}"))
        elif why is None:
            rows.append(Row(kind, name, "up to date", ""))
        else:
            rows.append(Row(kind, name, "to build", why))
    return rows


def _versions_changed(built_with: dict[str, str], now: dict[str, str]) -> str:
    """The build libraries whose version differs from the one an artifact was built with."""
    changed = [f"{library} {version}, now {now.get(library, 'none')}"
               for library, version in built_with.items()
               if library in BUILD_LIBRARIES and now.get(library) != version]  # fmt: skip
    return "; ".join(changed)


@contextlib.contextmanager
def progress(enabled: bool | None = None) -> Iterator[Any]:
    """rich progress bars on a terminal (``enabled`` None: when stdout is one); plain log
    lines otherwise (None is yielded)."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar:
        yield bar


def distil_ticker(bar: Any, description: str, budget_s: float, every: int = 50):
    """The ``on_step`` of a distillation: the progress bar by elapsed budget, or a log line
    every ``every`` steps when there is no bar."""
    task = bar.add_task(description, total=budget_s) if bar is not None else None
    started = time.monotonic()

    def tick(step: int, loss: float) -> None:
        if bar is not None:
            bar.update(task, completed=min(budget_s, time.monotonic() - started))
        elif step % every == 0:
            log.info("%s: step %d, loss %.4f", description, step, loss)

    return tick


def count_ticker(bar: Any, description: str, total: int, done: int = 0, every: int = 10):
    """``tick(done)`` of a job of ``total`` items (``done`` of them done already): the progress
    bar, or a log line every ``every`` items when there is no bar."""
    task = bar.add_task(description, total=total, completed=done) if bar is not None else None
    if bar is None:
        log.info("%s: %d of %d", description, done, total)

    def tick(done: int) -> None:
        if bar is not None:
            bar.update(task, completed=done)
        elif done % every == 0 or done == total:
            log.info("%s: %d of %d", description, done, total)

    return tick


def build(config: Config, options: BuildOptions) -> list[Row]:
    manifest = Manifest.load(options.out)
    planned = plan(config, options, manifest)
    rows = planned.rows
    if options.dry_run or not any(r.status == "to build" for r in rows):
        return rows
    built = []
    wav2lip_due = any(r.kind == "wav2lip" and r.status == "to build" for r in rows)
    if planned.wav2lip is not None and wav2lip_due:
        built += _build_wav2lip(config, planned.wav2lip, options, manifest)
        manifest.save()  # each engine recorded as soon as it exists
    for job in planned.voices:
        from streambot.compress.voice_build import build_voice_engine

        built += build_voice_engine(config, job, options, manifest)
        manifest.save()
    if planned.llm is not None:
        from streambot.compress.llm_build import build_llm

        built += build_llm(config, planned.llm, options, manifest)
        manifest.save()
    return [r for r in rows if r.status != "to build"] + built


@dataclass
class _Output:
    """One file the build made, before it goes into the manifest."""

    backend: str
    precision: str
    path: Path
    fidelity: dict[str, float]  # this file's own output against the teacher
    device: Device = field(default_factory=Device)
    note: str = ""


def _build_wav2lip(
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
        sentences = catalog_sentences(_catalog(config))
        log.info("wav2lip: the voice speaks %d catalog sentences for the data", len(sentences))
        train, held = frame_sets(job.avatar, build_voice(config), sentences, config.stream.fps)
        log.info("wav2lip: %d training frames, %d held out", len(train), len(held))
        mel, face = held.head(64)
        with torch.no_grad():
            reference = teacher(mel, face).numpy()
        pruned, importance = _prune(teacher, train, (mel, face), reference, options)
        student = pruned.model
        before = importance[pruned.importance]
        budget = options.distil_minutes * 60.0
        tick = distil_ticker(bar, "distilling wav2lip", budget)
        report = distil(teacher, student, train.batches(options.batch), budget_s=budget,
                        resume_path=options.out / ".wav2lip-distil.pt", device=options.device,
                        on_step=tick)  # fmt: skip
        teacher.cpu(), student.cpu()
        with torch.no_grad():
            after = mouth_fidelity(student(mel, face).numpy(), reference)
    shared = {
        "before_distillation": before,
        "after_distillation": after,
        "importance": importance,
        "distillation": {"steps": report.steps, "seconds": round(report.seconds, 1),
                         "first_loss": report.first_loss, "last_loss": report.last_loss,
                         "loss_curve": _curve(report.losses)},
        "teacher": "random weights (speed only: these figures say nothing of quality)"
        if random_teacher else "the configured checkpoint",
        "held_out_frames": len(held),
    }  # fmt: skip
    pruning = {
        "ratio": options.prune,
        "importance": pruned.importance,
        "widths": pruned.config.to_dict(),
        "params_before": pruned.params_before,
        "params_after": pruned.params_after,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    outputs = _export(teacher, pruned, job, train, (mel, face), reference, after, options)
    versions = library_versions(BUILD_LIBRARIES)
    rows = [out for out in outputs if isinstance(out, Row)]  # what was made and not kept
    for out in (out for out in outputs if isinstance(out, _Output)):
        default = out.fidelity["mouth_psnr_db"] >= options.min_mouth_psnr_db
        own = {"this_file": out.fidelity} if out.backend != "torch" else {}
        manifest.put(Artifact(
            "wav2lip", out.path.name, sha256_file(out.path), out.backend, out.precision,
            dict(job.inputs), out.device, versions | _device_versions(out), pruning,
            {**shared, **own}, default=default))  # fmt: skip
        detail = out.note or (
            f"mouth PSNR {before['mouth_psnr_db']:.1f} -> {after['mouth_psnr_db']:.1f} dB, "
            f"SSIM {before['mouth_ssim']:.3f} -> {after['mouth_ssim']:.3f}, "
            f"{pruned.params_after / 1e6:.1f}M params, {pruned.importance} importance"
        )
        if random_teacher:
            detail += "; teacher has random weights"
        if not default:
            detail += (f"; not a default: mouth PSNR {out.fidelity['mouth_psnr_db']:.1f} dB < "
                       f"floor {options.min_mouth_psnr_db:g}")  # fmt: skip
        rows.append(Row("wav2lip", out.path.name, "built", detail))
    return rows


def _curve(losses: Sequence[float], points: int = 20) -> list[float]:
    """The loss curve for the report: ``points`` means over equal stretches of the steps."""
    if not losses:
        return []
    size = max(1, len(losses) // points)
    return [round(sum(chunk) / len(chunk), 5)
            for chunk in (losses[i : i + size] for i in range(0, len(losses), size))]  # fmt: skip


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
    log.info("wav2lip: pruned by %s importance (%s)", best,
             ", ".join(f"{k} {v['mouth_psnr_db']:.1f} dB" for k, v in figures.items()))  # fmt: skip
    return candidates[best], {**figures, "chosen": best}


def _export(teacher, pruned, job: Wav2LipBuild, train, held, reference, after, options):
    """Write each asked-for file of the distilled student, each with its own fidelity (and the
    speed-up over the unpruned teacher on ONNX Runtime, measured in this run)."""
    from streambot.compress.prune import save_pruned
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    files, out = job.files, options.out
    outputs: list[_Output | Row] = []
    if _wanted(options, "torch"):
        path = save_pruned(pruned, out / files["torch"])
        outputs.append(_Output("torch", "fp32", path, after))
    if _wanted(options, "onnx"):
        path = export_wav2lip_onnx(pruned.model, out / files["onnx"])
        engine = OnnxEngine(path)  # one session for its fidelity, its speed and int8's baseline
        speed = _speed_up(teacher, engine, held, options)
        outputs.append(_Output("onnxruntime", "fp32", path,
                               {**_onnx_fidelity(engine, held, reference), **speed}))  # fmt: skip
        if options.device == "cpu":
            outputs += _int8(path, speed["fps"], train, held, reference, options)
    fp16 = None
    if _wanted(options, "onnx-fp16"):
        fp16 = export_wav2lip_onnx(pruned.model, out / files["onnx-fp16"], precision="fp16")
        outputs.append(_Output("onnxruntime", "fp16", fp16,
                               _onnx_fidelity(OnnxEngine(fp16), held, reference)))  # fmt: skip
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
    figures = {**mouth_fidelity(out, reference), "fps": round(int8_fps, 1),
               "fp32_fps": fp32_fps, "fps_batch": float(options.batch)}  # fmt: skip
    note = (f"int8 QDQ {int8_fps:.0f} vs fp32 {fp32_fps:.0f} FPS (bare, batch {options.batch}), "
            f"mouth PSNR {figures['mouth_psnr_db']:.1f} dB")  # fmt: skip
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
    figures = {**mouth_fidelity(frames, reference), "fps": round(fps, 1),
               "fps_batch": float(len(mel))}  # fmt: skip
    return _Output("tensorrt", "fp16", target, figures, device=job.tensorrt.device)


def _catalog(config: Config):
    from streambot.catalog import Catalog

    return Catalog.load(config.brain.catalog.path or None)


def summary(rows: Sequence[Row]) -> str:
    """The summary table (rich renders it; plain text when rich is missing)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return "\n".join(f"{r.kind:8} {r.artifact:24} {r.status:11} {r.detail}" for r in rows)
    table = Table(title="engines")
    for column in ("engine", "artifact", "status", "detail"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.kind, r.artifact, r.status, r.detail)
    console = Console(width=200, record=True)  # wide: a detail is one line to read or grep
    with console.capture() as captured:
        console.print(table)
    return captured.get()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build_engines.py", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="config.toml")
    p.add_argument("--out", default="engines")
    p.add_argument("--only", default="", help="wav2lip,voice,llm (default: what the config uses)")
    p.add_argument("--prune", type=float, default=None,
                   help="pruning ratio (0-1; default 0.5 for the face, [voice.piper] prune "
                        "for the voice)")  # fmt: skip
    p.add_argument(
        "--distil-minutes",
        type=float,
        default=3.0,
        help="distillation time of each engine (the LLM's teacher writing its answers and the "
        "answer evaluation have fixed counts and take their own time, outside it)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--backends", default=",".join(BACKENDS), help="trt,onnx,torch")
    p.add_argument("--min-mouth-psnr", type=float, default=25.0,
                   help="fidelity floor for an engine to be used by default (dB)")  # fmt: skip
    p.add_argument("--max-voice-mcd", type=float, default=4.0,
                   help="fidelity floor for a voice engine to be used by default: its "
                        "mel-cepstral distortion against the voice's own decoder (dB)")  # fmt: skip
    p.add_argument("--max-voice-wer-rise", type=float, default=0.05,
                   help="intelligibility floor for a voice engine to be used by default: how "
                        "many more words (a share, 0.05 = 5 points) a speech recogniser may "
                        "mishear than with the voice's own decoder")  # fmt: skip
    p.add_argument("--llm-heads", default="auto", choices=("auto", "query", "groups"),
                   help="how the LLM loses attention heads: evenly within each KV group, or "
                        "whole KV groups (auto: groups where a model has 8 or more)")  # fmt: skip
    p.add_argument(
        "--llm-drop-layers",
        type=int,
        default=0,
        help="also drop this many LLM layers, the least influential ones",
    )
    p.add_argument("--max-llm-kl", type=float, default=0.5,
                   help="fidelity floor for a pruned LLM to be used by default: KL from "
                        "the original on held-out answers (nats per token)")  # fmt: skip
    p.add_argument("--llm-eval-questions", type=int, default=100,
                   help="held-out questions the pruned LLM and its teacher each answer, "
                        "scored against the catalog (brain/evaluate.py)")  # fmt: skip
    p.add_argument("--max-llm-accuracy-drop", type=float, default=3.0,
                   help="a pruned LLM more than this many points less accurate than its "
                        "teacher on those questions is not used by default")  # fmt: skip
    p.add_argument("--max-llm-garbage-rise", type=float, default=0.0,
                   help="nor one that writes garbage in more answers than its teacher, by "
                        "more than this many points")  # fmt: skip
    p.add_argument(
        "--llm-teacher-answers",
        type=int,
        default=200,
        help="answers the teacher writes for distillation (cached in --out)",
    )
    p.add_argument(
        "--llm-kl-answers", type=int, default=50, help="of them, held out for KL and perplexity"
    )
    p.add_argument("--importance", default="auto", choices=("auto", "l2", "activation"),
                   help="which channels pruning keeps: by weight magnitude, by activity on the "
                        "avatar, or whichever measures closer to the teacher")  # fmt: skip
    p.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    p.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    return p


def _options(args: argparse.Namespace) -> BuildOptions:
    only = tuple(k.strip() for k in args.only.split(",") if k.strip()) or KINDS
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    for value, allowed, flag in ((only, KINDS, "--only"), (backends, BACKENDS, "--backends")):
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise BuildError(f"{flag}: unknown {', '.join(unknown)} (use {','.join(allowed)})")
    if args.prune is not None and not 0.0 < args.prune < 1.0:
        raise BuildError(f"--prune: {args.prune} is not between 0 and 1")
    return BuildOptions(
        out=Path(args.out), only=only, prune=0.5 if args.prune is None else args.prune,
        distil_minutes=args.distil_minutes, device=args.device, backends=backends,
        force=args.force, dry_run=args.dry_run, min_mouth_psnr_db=args.min_mouth_psnr,
        importance=args.importance, explicit=bool(args.only), prune_given=args.prune,
        max_voice_mcd_db=args.max_voice_mcd, max_voice_wer_rise=args.max_voice_wer_rise,
        llm_heads=args.llm_heads, llm_drop_layers=args.llm_drop_layers, max_llm_kl=args.max_llm_kl,
        llm_eval_questions=args.llm_eval_questions,
        max_llm_accuracy_drop=args.max_llm_accuracy_drop,
        max_llm_garbage_rise=args.max_llm_garbage_rise,
        llm_teacher_answers=args.llm_teacher_answers, llm_kl_answers=args.llm_kl_answers,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(message)s")
    try:
        options = _options(args)
        config = load_config(args.config)
        rows = build(config, options)
    except (BuildError, ConfigError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if options.dry_run:
        print("plan (--dry-run: nothing was built):")
    print(summary(rows))
    return 0
