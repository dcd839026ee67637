"""Command line: ``python -m streambot {run,demo,doctor,avatar,obs,engines}``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from importlib import resources
from pathlib import Path

from streambot.config import Config, ConfigError, load_config
from streambot.logs import setup_logging
from streambot.report import format_latency_table
from streambot.store import Store

log = logging.getLogger("streambot")
EXIT_CONFIG = 2


def demo_config(out: Path, fast: bool) -> Config:
    replay = resources.files("streambot.assets").joinpath("demo_chat.jsonl")
    config = Config()
    config.stream.realtime = not fast
    config.chat.local.http = False
    config.chat.local.replay = str(replay)
    config.sinks.file.enabled = True
    config.sinks.file.path = str(out)
    config.sinks.null.enabled = False
    config.store.path = str(out.with_suffix(".db"))
    config.metrics.enabled = False
    config.panel.enabled = False  # a recording: nobody steers it
    return config


def _run_app(config: Config, seconds: float | None) -> int:
    from streambot.app import App  # heavy imports after argument parsing
    from streambot.panel.server import Panel

    async def main() -> None:
        try:
            app = App(config, panel=Panel)
        except ConfigError as exc:  # a path or value the config names is not usable
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        report = await app.run(seconds)
        print(
            f"\nstream: {report.frames} frames in {report.seconds:.1f}s wall "
            f"({report.fps:.1f} fps sustained), {report.late_frames} late frames, "
            f"{report.sink_drops} frames dropped by live sinks, {report.turns} turns"
        )
        for name, why in report.unavailable_sinks.items():
            print(f"sink {name} was unavailable: {why}")
        store = Store(config.store.path)
        print("\n" + format_latency_table(store))
        store.close()

    asyncio.run(main())
    return 0


def _config_or_exit(path: str | None) -> Config:
    """Load the config; on a problem print it (it names the key) and exit with status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_run(args: argparse.Namespace) -> int:
    config = _config_or_exit(args.config)
    setup_logging(config.logging.level)
    return _run_app(config, args.seconds)


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    config = demo_config(out, args.fast)
    db = Path(config.store.path)
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # each demo starts from an empty store
    setup_logging("INFO")
    code = _run_app(config, args.seconds)
    print(f"\nwrote {out} and its event log {db}")
    return code


def cmd_doctor(args: argparse.Namespace) -> int:
    from streambot.doctor import report, run_checks

    config = _config_or_exit(args.config)
    text, healthy = report(run_checks(config))
    print(text)
    print("ready" if healthy else "not ready: fix the FAIL lines above")
    return 0 if healthy else 1


def _face_box(text: str) -> tuple[int, int, int, int]:
    """Parse ``X,Y,W,H`` (pixels of the source image) for --face-box."""
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected X,Y,W,H in whole pixels, got {text!r}"
        ) from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"X,Y must be >= 0 and W,H > 0, got {text!r}")
    return x, y, w, h


def cmd_avatar_prepare(args: argparse.Namespace) -> int:
    """Prepare the avatar exactly as the daemon with this config will load it (same stream
    size, frame rate, pads and cache), so going live finds it ready."""
    config = _config_or_exit(args.config)
    face = config.face.wav2lip
    face.avatar = args.source
    if args.out:
        face.avatar_cache = args.out
    if args.face_box:
        face.face_box = list(args.face_box)
    if args.fps:
        config.stream.fps = args.fps
    try:  # OpenCV is an optional extra
        from streambot.face.avatar_source import AvatarError
        from streambot.face.factory import configured_avatar
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    started = time.perf_counter()
    try:
        avatar = configured_avatar(config)
    except (AvatarError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    y1, y2, x1, x2 = (int(v) for v in avatar.boxes[0])
    n = len(avatar.loop)
    print(f"avatar: {avatar.folder}")
    print(f"face box (padded, frame 0): x={x1} y={y1} w={x2 - x1} h={y2 - y1}")
    height, width = avatar.frames.shape[1:3]
    print(f"frames: {n} at {avatar.fps} fps ({n / avatar.fps:.1f}s loop), {width}x{height}")
    print(f"ready in {time.perf_counter() - started:.2f}s")
    return 0


def cmd_obs_setup(args: argparse.Namespace) -> int:
    """Create the scenes and sources the stage director uses (existing ones are kept)."""
    from streambot.stage.director import obs_controller

    config = _config_or_exit(args.config)
    setup_logging("WARNING")
    try:
        controller = obs_controller(config)
    except ImportError as exc:
        print(f"error: {exc}; pip install 'streambot[stage]'", file=sys.stderr)
        return EXIT_CONFIG
    stream_url = config.obs.stream_url or config.sinks.stream.url
    report = asyncio.run(controller.setup(stream_url))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streambot", description="A 24/7 livestream host.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the host daemon from a config file")
    run.add_argument("--config", default=None, help="config.toml (default: embedded defaults)")
    run.add_argument("--seconds", type=float, default=None, help="stop after N seconds of stream")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="replay the bundled demo chat into an mp4")
    demo.add_argument("--seconds", type=float, default=40.0, help="stream seconds (default 40)")
    demo.add_argument("--out", default="demo.mp4", help="output mp4 (default demo.mp4)")
    demo.add_argument(
        "--fast", action="store_true", help="render faster than real time (no wall-clock pacing)"
    )
    demo.set_defaults(func=cmd_demo)
    doctor = sub.add_parser("doctor", help="check that this machine can run the config")
    doctor.add_argument("--config", default=None, help="config.toml (default: embedded defaults)")
    doctor.set_defaults(func=cmd_doctor)
    _avatar_commands(sub)
    obs = sub.add_parser("obs", help="OBS scenes and sources over obs-websocket")
    obs_sub = obs.add_subparsers(dest="obs_command", required=True)
    obs_setup = obs_sub.add_parser(
        "setup",
        help="create the scenes, caption, product image "
        "and the Media Source that plays the stream sink",
    )
    obs_setup.add_argument("--config", default=None, help="config.toml")
    obs_setup.set_defaults(func=cmd_obs_setup)
    engines = sub.add_parser("engines", help="build the model engines (as build_engines.py)")
    engines_sub = engines.add_subparsers(dest="engines_command", required=True)
    engines_build = engines_sub.add_parser(
        "build", add_help=False, help="prune, distil and export; --help for the flags"
    )
    engines_build.add_argument("rest", nargs=argparse.REMAINDER)
    engines_build.set_defaults(func=cmd_engines_build)
    return parser


def _avatar_commands(sub: argparse._SubParsersAction) -> None:
    """``avatar prepare``: a portrait made ready before going live."""
    avatar = sub.add_parser("avatar", help="prepare a photo or video as a Wav2Lip avatar")
    avatar_sub = avatar.add_subparsers(dest="avatar_command", required=True)
    prepare = avatar_sub.add_parser(
        "prepare", help="detect the face, build the idle loop and cache it (exit 2: no face)"
    )
    prepare.add_argument("source", metavar="IMAGE_OR_VIDEO", help="a portrait photo or video")
    prepare.add_argument(
        "--config",
        default=None,
        help="config.toml whose stream size, fps, pads and avatar cache to prepare for "
        "(default: embedded defaults)",
    )
    prepare.add_argument(
        "--out",
        default=None,
        help="cache folder; the avatar goes in a subfolder named by its hash "
        "(default: face.wav2lip.avatar_cache, else ~/.cache/streambot/avatars)",
    )
    prepare.add_argument(
        "--face-box",
        type=_face_box,
        default=None,
        metavar="X,Y,W,H",
        help="the face in source pixels; skips face detection",
    )
    prepare.add_argument(
        "--fps", type=int, default=None, help="frame rate (default: the config's stream.fps)"
    )
    prepare.set_defaults(func=cmd_avatar_prepare)


def cmd_engines_build(args: argparse.Namespace) -> int:
    """The same code as ``python build_engines.py``."""
    from streambot.compress.build import main as build_main

    return build_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `engines build` hands its flags to build_engines.py's own parser (argparse's REMAINDER
    # does not take flags that come first), every other command parses strictly.
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is cmd_engines_build:
        args.rest = [*extra, *args.rest]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)
