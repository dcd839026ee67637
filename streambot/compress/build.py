"""``python build_engines.py``: prune, distil, export and record the engines a config uses.

One recipe per kind: the Wav2Lip face (compress/wav2lip_build.py), each Piper voice's decoder
(compress/voice_build.py) and the local LLM (compress/llm_build.py); what they share is in
compress/common.py. This module plans them against the manifest (an artifact whose inputs and
versions are unchanged is skipped), runs them, and is the command line, whose defaults are
``BuildOptions``'s own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from streambot.compress.common import (
    BACKENDS,
    EXIT_CONFIG,
    FACE_VOICE_DISTIL_MINUTES,
    KINDS,
    SERVED_BACKENDS,
    BuildError,
    BuildOptions,
    HeadMode,
    Row,
    summary,
)
from streambot.compress.llm_build import build_llm, plan_llm, resolve_llm
from streambot.compress.triton_repo import REPOSITORY, build_triton, plan_triton
from streambot.compress.voice_build import build_voice_engine, plan_voice, resolve_voices
from streambot.compress.wav2lip_build import (
    Wav2LipBuild,
    build_wav2lip,
    plan_wav2lip,
    resolve_wav2lip,
)
from streambot.config import Config, ConfigError, load_config
from streambot.runtime.manifest import (
    Manifest,
    ManifestError,
)

log = logging.getLogger(__name__)
DEFAULTS = BuildOptions()  # the command line's defaults are the options' own


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
            result.rows += plan_wav2lip(result.wav2lip, options, manifest)
            if "triton" in options.backends:
                result.rows += plan_triton(manifest, options)
    if "voice" in options.only:
        result.rows += _plan_voices(config, options, manifest, result)
    if "llm" in options.only:
        result.rows += _plan_llm(config, options, manifest, result)
    return result


def _plan_llm(config: Config, options: BuildOptions, manifest: Manifest, result: Plan):
    if config.brain.backend != "llm" and not options.explicit:
        return [Row("llm", "-", "not needed", "brain.backend is not llm")]
    job = resolve_llm(config, options)
    rows = plan_llm(job, options, manifest)
    if any(r.status == "to build" for r in rows):
        result.llm = job
    return rows


def _plan_voices(config: Config, options: BuildOptions, manifest: Manifest, result: Plan):
    if config.voice.backend != "piper" and not options.explicit:
        return [Row("voice", "-", "not needed", "voice.backend is not piper")]
    rows = []
    if "trt" in options.backends:
        rows.append(
            Row(
                "voice",
                "TensorRT",
                "skipped",
                "the voice decoder runs in ONNX Runtime (a TensorRT voice engine is "
                "not built by this version)",
            )
        )
    for job in resolve_voices(config, options):
        planned = plan_voice(job, options, manifest)
        rows += planned
        if any(r.status == "to build" for r in planned):
            result.voices.append(job)
    return rows


def build(config: Config, options: BuildOptions) -> list[Row]:
    manifest = Manifest.load(options.out)
    planned = plan(config, options, manifest)
    rows = planned.rows
    if options.dry_run or not any(r.status == "to build" for r in rows):
        return rows
    built = []
    rows = [r for r in rows if not r.artifact.startswith(f"{REPOSITORY}/")]  # planned again
    wav2lip_due = any(r.kind == "wav2lip" and r.status == "to build" for r in rows)
    if planned.wav2lip is not None and wav2lip_due:
        built += build_wav2lip(config, planned.wav2lip, options, manifest)
        manifest.save()  # each engine recorded as soon as it exists
    if planned.wav2lip is not None and "triton" in options.backends:
        # after the engines: the repository serves them as they are now
        built += build_triton(manifest, options)
        manifest.save()
    for job in planned.voices:
        built += build_voice_engine(config, job, options, manifest)
        manifest.save()
    if planned.llm is not None:
        built += build_llm(config, planned.llm, options, manifest)
        manifest.save()
    return [r for r in rows if r.status != "to build"] + built


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build_engines.py", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--config", default="config.toml")
    p.add_argument("--out", default="", help="where the engines go (default: [engines] dir)")
    p.add_argument("--only", default="", help="wav2lip,voice,llm (default: what the config uses)")
    p.add_argument(
        "--prune",
        type=float,
        default=None,
        help="pruning ratio (0-1; default 0.5 for the face, [voice.piper] prune for the voice)",
    )
    p.add_argument(
        "--distil-minutes",
        type=float,
        default=None,
        help=f"distillation time of each engine (default {FACE_VOICE_DISTIL_MINUTES:g} for the "
        "face and the voice, [brain.llm] distil_minutes for the LLM; the LLM's teacher writing its "
        "answers and the answer evaluation have fixed counts and take their own time, outside it)",
    )
    p.add_argument(
        "--distil-min-steps",
        type=int,
        default=None,
        help="the LLM's distillation goes on past its minutes until this many steps "
        "(default [brain.llm] distil_min_steps)",
    )
    p.add_argument("--device", default=DEFAULTS.device, choices=("cpu", "cuda"))
    p.add_argument(
        "--backends",
        default=",".join(DEFAULTS.backends),
        help="trt,onnx,torch (the default), and triton: a Triton model repository of the "
        "face engines in <out>/triton",
    )
    _face_and_voice_arguments(p.add_argument_group("the face and the voice"))
    _llm_arguments(p.add_argument_group("the LLM"))
    p.add_argument(
        "--importance",
        default=DEFAULTS.importance,
        choices=("auto", "l2", "activation"),
        help="which channels pruning keeps: by weight magnitude, by activity on the "
        "avatar, or whichever measures closer to the teacher",
    )
    p.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    p.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    return p


def _face_and_voice_arguments(group: argparse._ArgumentGroup) -> None:
    """The fidelity floors a face or voice engine must pass to be used by default."""
    group.add_argument(
        "--min-mouth-psnr",
        type=float,
        default=DEFAULTS.min_mouth_psnr_db,
        help="fidelity floor for an engine to be used by default (dB)",
    )
    group.add_argument(
        "--max-voice-mcd",
        type=float,
        default=DEFAULTS.max_voice_mcd_db,
        help="fidelity floor for a voice engine to be used by default: its "
        "mel-cepstral distortion against the voice's own decoder (dB)",
    )
    group.add_argument(
        "--max-voice-wer-rise",
        type=float,
        default=DEFAULTS.max_voice_wer_rise,
        help="intelligibility floor for a voice engine to be used by default: how "
        "many more words (a share, 0.05 = 5 points) a speech recogniser may "
        "mishear than with the voice's own decoder",
    )


def _llm_arguments(group: argparse._ArgumentGroup) -> None:
    """How the LLM is pruned, and what it must answer to be used by default."""
    group.add_argument(
        "--llm-heads",
        default=DEFAULTS.llm_heads,
        choices=get_args(HeadMode),
        help="how the LLM loses attention heads: evenly within each KV group, or "
        "whole KV groups (auto: groups where a model has 8 or more)",
    )
    group.add_argument(
        "--llm-drop-layers",
        type=int,
        default=None,
        help="also drop this many LLM layers, the least influential ones (default "
        "[brain.llm] drop_layers)",
    )
    group.add_argument(
        "--max-llm-kl",
        type=float,
        default=DEFAULTS.max_llm_kl,
        help="fidelity floor for a pruned LLM to be used by default: KL from "
        "the original on held-out answers (nats per token)",
    )
    group.add_argument(
        "--llm-eval-questions",
        type=int,
        default=DEFAULTS.llm_eval_questions,
        help="held-out questions the pruned LLM and its teacher each answer, "
        "scored against the catalog (brain/evaluate.py)",
    )
    group.add_argument(
        "--max-llm-accuracy-drop",
        type=float,
        default=DEFAULTS.max_llm_accuracy_drop,
        help="a pruned LLM more than this many points less accurate than its "
        "teacher on those questions is not used by default",
    )
    group.add_argument(
        "--max-llm-garbage-rise",
        type=float,
        default=DEFAULTS.max_llm_garbage_rise,
        help="nor one that writes garbage in more answers than its teacher, by "
        "more than this many points",
    )
    group.add_argument(
        "--llm-teacher-answers",
        type=int,
        default=DEFAULTS.llm_teacher_answers,
        help="answers the teacher writes for distillation (cached in --out)",
    )
    group.add_argument(
        "--llm-kl-answers",
        type=int,
        default=DEFAULTS.llm_kl_answers,
        help="of them, held out for KL and perplexity",
    )


def _options(args: argparse.Namespace, engines_dir: str = str(DEFAULTS.out)) -> BuildOptions:
    only = tuple(k.strip() for k in args.only.split(",") if k.strip()) or KINDS
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    known = (*BACKENDS, *SERVED_BACKENDS)
    for value, allowed, flag in ((only, KINDS, "--only"), (backends, known, "--backends")):
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise BuildError(f"{flag}: unknown {', '.join(unknown)} (use {','.join(allowed)})")
    if args.prune is not None and not 0.0 < args.prune < 1.0:
        raise BuildError(f"--prune: {args.prune} is not between 0 and 1")
    if args.distil_min_steps is not None and args.distil_min_steps < 0:
        raise BuildError(f"--distil-min-steps: {args.distil_min_steps} is negative")
    return BuildOptions(
        out=Path(args.out or engines_dir),
        only=only,
        prune=DEFAULTS.prune if args.prune is None else args.prune,
        distil_minutes=args.distil_minutes,
        distil_min_steps=args.distil_min_steps,
        device=args.device,
        backends=backends,
        force=args.force,
        dry_run=args.dry_run,
        min_mouth_psnr_db=args.min_mouth_psnr,
        importance=args.importance,
        explicit=bool(args.only),
        prune_given=args.prune,
        max_voice_mcd_db=args.max_voice_mcd,
        max_voice_wer_rise=args.max_voice_wer_rise,
        llm_heads=args.llm_heads,
        llm_drop_layers=args.llm_drop_layers,
        max_llm_kl=args.max_llm_kl,
        llm_eval_questions=args.llm_eval_questions,
        max_llm_accuracy_drop=args.max_llm_accuracy_drop,
        max_llm_garbage_rise=args.max_llm_garbage_rise,
        llm_teacher_answers=args.llm_teacher_answers,
        llm_kl_answers=args.llm_kl_answers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(message)s")
    try:
        config = load_config(args.config)
        options = _options(args, config.engines.dir)
        rows = build(config, options)
    except (BuildError, ConfigError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if options.dry_run:
        print("plan (--dry-run: nothing was built):")
    print(summary(rows))
    return 0
