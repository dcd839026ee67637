"""``python build_engines.py``: prune, distil, export and record the engines a config uses.

This version builds the Wav2Lip face: prune (``--prune``), distil on the user's avatar and
voice for ``--distil-minutes``, measure mouth fidelity against the teacher before and after,
save the pruned model (torch) and its ONNX export (ONNX Runtime), and record both in
``engines/manifest.json`` with their inputs' checksums. An artifact whose inputs and versions
are unchanged is skipped. TensorRT and the voice and LLM engines are reported as not built
(with the reason) rather than faked.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
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
    batch: int = 8
    explicit: bool = (
        False  # --only named the kinds: build them even if the config does not use them
    )


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
    files: dict[str, str] = field(default_factory=dict)  # backend -> file name


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
    tag = f"p{round(options.prune * 100):02d}"
    shaping = {"prune": options.prune, "distil_minutes": options.distil_minutes,
               "img_size": 96, "fps": config.stream.fps}  # fmt: skip
    inputs = {
        "checkpoint": sha256_file(checkpoint),
        # the prepared avatar's own content key (source file + preparation settings): the
        # daemon checks the same key at start without hashing gigabytes of frames
        "avatar": avatar.key,
        "build settings": sha256_json(shaping),
    }
    files = {"torch": f"wav2lip-{tag}.pt", "onnx": f"wav2lip-{tag}.onnx"}
    return Wav2LipBuild(checkpoint, avatar, inputs, files)


def _tensorrt_unavailable() -> str:
    from streambot.runtime.base import EngineError
    from streambot.runtime.tensorrt_engine import load_tensorrt

    try:
        load_tensorrt()
    except EngineError as exc:
        return str(exc)
    return "TensorRT engines need the fp16 ONNX export, not made by this version yet"


@dataclass
class Plan:
    rows: list[Row]
    wav2lip: Wav2LipBuild | None = None  # resolved once, for the plan and the build


def plan(config: Config, options: BuildOptions, manifest: Manifest) -> Plan:
    """What a build would do, without doing it."""
    result = Plan([])
    if "wav2lip" in options.only:
        if config.face.backend != "wav2lip" and not options.explicit:
            result.rows.append(Row("wav2lip", "-", "not needed", "face.backend is not wav2lip"))
        else:
            result.wav2lip = resolve_wav2lip(config, options)
            result.rows += _plan_wav2lip(result.wav2lip, options, manifest)
    for kind in ("voice", "llm"):
        if kind in options.only and options.explicit:
            result.rows.append(
                Row(kind, "-", "not built", "this version builds the Wav2Lip face only")
            )
    return result


def _plan_wav2lip(build: Wav2LipBuild, options: BuildOptions, manifest: Manifest) -> list[Row]:
    rows = []
    if "trt" in options.backends:
        rows.append(Row("wav2lip", "TensorRT", "skipped", _tensorrt_unavailable()))
    for backend in ("torch", "onnx"):
        if backend not in options.backends:
            continue
        name = build.files[backend]
        entry = next((a for a in manifest.artifacts if a.file == name), None)
        if entry is None:
            rows.append(Row("wav2lip", name, "to build", "not built yet"))
            continue
        why = manifest.why_unusable(entry, build.inputs, entry.device, entry.versions)
        if options.force:
            rows.append(Row("wav2lip", name, "to build", "--force"))
        elif why is None:
            rows.append(Row("wav2lip", name, "up to date", ""))
        else:
            rows.append(Row("wav2lip", name, "to build", why))
    return rows


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[object]:
    """rich progress bars on a terminal; plain log lines otherwise."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar:
        yield bar


def build(config: Config, options: BuildOptions) -> list[Row]:
    manifest = Manifest.load(options.out)
    planned = plan(config, options, manifest)
    rows = planned.rows
    if options.dry_run or planned.wav2lip is None or not any(r.status == "to build" for r in rows):
        return rows
    built = _build_wav2lip(config, planned.wav2lip, options, manifest)
    manifest.save()
    return [r for r in rows if r.status != "to build"] + built


def _build_wav2lip(
    config: Config, job: Wav2LipBuild, options: BuildOptions, manifest: Manifest
) -> list[Row]:
    try:
        import torch

        from streambot.compress.distill import distil
        from streambot.compress.export import export_wav2lip_onnx
        from streambot.compress.fidelity import mouth_fidelity
        from streambot.compress.prune import prune_wav2lip, save_pruned
        from streambot.compress.wav2lip_data import catalog_sentences, frame_sets
        from streambot.models.wav2lip import Wav2Lip
        from streambot.voice.factory import build_voice
    except ImportError as exc:
        raise BuildError(f"{exc}: pip install torch 'streambot[neural,wav2lip]'") from exc
    raw = torch.load(job.checkpoint, map_location="cpu", weights_only=True)
    random_teacher = bool(raw.get(RANDOM_WEIGHTS_KEY)) if isinstance(raw, dict) else False
    teacher = Wav2Lip.from_checkpoint(raw)
    avatar = job.avatar
    catalog = _catalog(config)
    with _progress(interactive()) as bar:
        sentences = catalog_sentences(catalog)
        log.info("wav2lip: the voice speaks %d catalog sentences for the data", len(sentences))
        train, held = frame_sets(avatar, build_voice(config), sentences, config.stream.fps)
        log.info("wav2lip: %d training frames, %d held out", len(train), len(held))
        pruned = prune_wav2lip(teacher, options.prune)
        student = pruned.model
        mel, face = held.head(64)
        with torch.no_grad():
            reference = teacher(mel, face).numpy()
            before = mouth_fidelity(student(mel, face).numpy(), reference)
        budget = options.distil_minutes * 60.0
        task = bar.add_task("distilling", total=budget) if bar is not None else None
        started = time.monotonic()

        def tick(step: int, loss: float) -> None:
            if bar is not None:
                bar.update(task, completed=min(budget, time.monotonic() - started))
            elif step % 50 == 0:
                log.info("wav2lip: distillation step %d, loss %.4f", step, loss)

        report = distil(teacher, student, train.batches(options.batch), budget_s=budget,
                        resume_path=options.out / ".wav2lip-distil.pt", device=options.device,
                        on_step=tick)  # fmt: skip
        with torch.no_grad():
            after = mouth_fidelity(student(mel, face).numpy(), reference)
    fidelity = {
        "before_distillation": before,
        "after_distillation": after,
        "distillation": {"steps": report.steps, "seconds": round(report.seconds, 1),
                         "first_loss": report.first_loss, "last_loss": report.last_loss},
        "teacher": "random weights (speed only: these figures say nothing of quality)"
        if random_teacher else "the configured checkpoint",
        "held_out_frames": len(held),
    }  # fmt: skip
    good = after["mouth_psnr_db"] >= options.min_mouth_psnr_db
    why_not = (
        ""
        if good
        else f"mouth PSNR {after['mouth_psnr_db']:.1f} dB < floor {options.min_mouth_psnr_db:g}"
    )
    pruning = {
        "ratio": options.prune,
        "widths": pruned.config.to_dict(),
        "params_before": pruned.params_before,
        "params_after": pruned.params_after,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    rows = []
    outputs = []
    if "torch" in options.backends:
        outputs.append(("torch", "fp32", save_pruned(pruned, options.out / job.files["torch"])))
    int8_note = ""
    if "onnx" in options.backends:
        onnx_path = export_wav2lip_onnx(student, options.out / job.files["onnx"])
        outputs.append(("onnxruntime", "fp32", onnx_path))
        if options.device == "cpu":
            int8, int8_note = _int8(onnx_path, train, held, reference, options)
            if int8 is not None:
                outputs.append(("onnxruntime", "int8", int8[0]))
    versions = library_versions(BUILD_LIBRARIES)
    for backend, precision, path in outputs:
        figures, default = fidelity, good
        if precision == "int8":
            figures = {**fidelity, "int8": int8[1]}  # its own fidelity and speed
            default = int8[1]["mouth_psnr_db"] >= options.min_mouth_psnr_db
        manifest.put(Artifact(
            "wav2lip", path.name, sha256_file(path), backend, precision, dict(job.inputs),
            Device(), versions, pruning, figures, default=default))  # fmt: skip
        detail = (f"mouth PSNR {before['mouth_psnr_db']:.1f} -> {after['mouth_psnr_db']:.1f} dB, "
                  f"SSIM {before['mouth_ssim']:.3f} -> {after['mouth_ssim']:.3f}, "
                  f"{pruned.params_after / 1e6:.1f}M params")  # fmt: skip
        if random_teacher:
            detail += "; teacher has random weights"
        if not good:
            detail += f"; not a default: {why_not}"
        if path.name.endswith("-int8.onnx"):
            detail = int8_note
        rows.append(Row("wav2lip", path.name, "built", detail))
    if int8_note and not any(r.artifact.endswith("-int8.onnx") for r in rows):
        rows.append(Row("wav2lip", "int8", "not kept", int8_note))
    return rows


def _int8(onnx_path, train, held, reference, options: BuildOptions):
    """Quantize to int8 QDQ calibrated on the avatar; keep it only if it is faster here.
    Returns ((path, figures) or None, a note for the summary)."""
    from streambot.compress.fidelity import mouth_fidelity
    from streambot.compress.quantize import frames_per_second, quantize_wav2lip
    from streambot.runtime.onnx_engine import OnnxEngine

    def calibration():
        for mel, face in train.batches(options.batch, seed=1):
            yield {"mel": mel.numpy(), "face": face.numpy()}

    path = onnx_path.with_name(onnx_path.stem + "-int8.onnx")
    quantize_wav2lip(onnx_path, path, calibration(), batches=16)
    mel, face = held.head(64)
    sample = {"mel": mel[:8].numpy(), "face": face[:8].numpy()}
    fp32_engine, int8_engine = OnnxEngine(onnx_path), OnnxEngine(path)
    fp32_fps = frames_per_second(fp32_engine, sample)
    int8_fps = frames_per_second(int8_engine, sample)
    out = int8_engine.run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    figures = {**mouth_fidelity(out, reference), "fps_batch8": round(int8_fps, 1),
               "fp32_fps_batch8": round(fp32_fps, 1)}  # fmt: skip
    note = (f"int8 QDQ {int8_fps:.0f} vs fp32 {fp32_fps:.0f} FPS (bare, batch 8), "
            f"mouth PSNR {figures['mouth_psnr_db']:.1f} dB")  # fmt: skip
    if int8_fps < 1.1 * fp32_fps:
        path.unlink(missing_ok=True)
        return None, note + ": not faster here, not kept"
    if figures["mouth_psnr_db"] < options.min_mouth_psnr_db:
        note += f"; not a default: under the {options.min_mouth_psnr_db:g} dB floor"
    return (path, figures), note


def _catalog(config: Config):
    from streambot.brain.catalog import Catalog

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
    p.add_argument("--prune", type=float, default=0.5, help="pruning ratio (0-1)")
    p.add_argument("--distil-minutes", type=float, default=3.0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--backends", default=",".join(BACKENDS), help="trt,onnx,torch")
    p.add_argument("--min-mouth-psnr", type=float, default=25.0,
                   help="fidelity floor for an engine to be used by default (dB)")  # fmt: skip
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
    if not 0.0 < args.prune < 1.0:
        raise BuildError(f"--prune: {args.prune} is not between 0 and 1")
    return BuildOptions(
        out=Path(args.out), only=only, prune=args.prune, distil_minutes=args.distil_minutes,
        device=args.device, backends=backends, force=args.force, dry_run=args.dry_run,
        min_mouth_psnr_db=args.min_mouth_psnr, explicit=bool(args.only),
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
