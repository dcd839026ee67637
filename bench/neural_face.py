"""Which Wav2Lip a ``bench/neural.py`` leg runs (``--engine unpruned`` or ``built``): the
``[face.wav2lip]`` keys for it, and when a built engine would not be used, the engine
selector's own reasons (the leg then runs the unpruned one and says why)."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streambot.config import Config, load_config


@dataclass
class FaceSetup:
    label: str
    note: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    engines_dir: str = "engines"  # [engines] dir


def face_setup(engine: str, args: argparse.Namespace, work: Path) -> FaceSetup:
    """The ``[face.wav2lip]`` keys for ``--engine unpruned`` or ``built``."""
    cuda = args.device.startswith("cuda")
    unpruned = FaceSetup(
        "unpruned, torch CUDA fp16" if cuda else "unpruned, ONNX Runtime fp32",
        settings=dict(
            checkpoint=str(work / "wav2lip.pth"),
            avatar=str(work / "host.png"),
            avatar_cache=str(work / "avatars"),
            engine="torch" if cuda else "onnx",
            onnx_path=str(work / "wav2lip-unpruned.onnx"),
        ),
    )
    if engine == "unpruned":
        return unpruned
    loaded = load_config(args.built_config) if Path(args.built_config).is_file() else None
    built = loaded.face.wav2lip if loaded is not None else None
    checkpoint = args.checkpoint or (built.checkpoint if built else "")
    avatar = args.avatar or (built.avatar if built else "")
    engines_dir = args.engines_dir or (loaded.engines.dir if loaded is not None else "engines")
    why = _why_no_built(checkpoint, avatar, engines_dir, built, args, work)
    if why:
        unpruned.label = f"built: none usable, ran {unpruned.label}"
        unpruned.note = why
        return unpruned
    settings = dict(checkpoint=checkpoint, avatar=avatar, engine="auto")
    if built is not None:
        settings |= dict(
            avatar_cache=built.avatar_cache or str(work / "avatars"),
            face_box=built.face_box,
            pads=built.pads,
        )
    else:
        settings["avatar_cache"] = str(work / "avatars")
    return FaceSetup("built (engine = auto)", settings=settings, engines_dir=engines_dir)


def _why_no_built(
    checkpoint: str,
    avatar: str,
    engines_dir: str,
    built: Any,
    args: argparse.Namespace,
    work: Path,
) -> str:
    """Why no built Wav2Lip engine would be used (the selector's own reasons), or ""."""
    if not checkpoint or not Path(checkpoint).is_file():
        return f"no checkpoint {checkpoint!r} (--checkpoint or {args.built_config})"
    if not avatar or not Path(avatar).is_file():
        return f"no avatar {avatar!r} (--avatar or {args.built_config})"
    if not (Path(engines_dir) / "manifest.json").is_file():
        return f"{engines_dir}/manifest.json does not exist (run build_engines.py)"
    from streambot.runtime.select import choose, this_device, wav2lip_inputs

    config = Config()
    cfg = config.face.wav2lip
    cfg.avatar = avatar
    cfg.avatar_cache = (built.avatar_cache if built else "") or str(work / "avatars")
    if built is not None:
        cfg.face_box, cfg.pads = built.face_box, built.pads
    config.stream.width, config.stream.height = (int(v) for v in args.size.split("x"))
    from streambot.face.factory import configured_avatar

    key = configured_avatar(config).key
    inputs = functools.partial(wav2lip_inputs, Path(checkpoint), key)
    choice = choose("wav2lip", engines_dir, inputs, this_device(args.device))
    if choice.artifact is None:
        return "; ".join(choice.refused) or f"{engines_dir} has no Wav2Lip engine"
    return ""
