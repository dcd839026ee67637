"""Pick the engine a face uses from ``engines/manifest.json`` (``engine = "auto"``).

The fastest usable artifact for this machine wins: on a GPU TensorRT, then ONNX Runtime, then
torch (fp16 first); on a CPU ONNX Runtime (int8 first), then torch. An artifact is usable when
its file is intact, it was built from this checkpoint and this prepared avatar, the build
judged its fidelity good enough, and (TensorRT) it was built for this GPU and TensorRT. Each
one refused gets a log line saying why, and with none usable the caller falls back to the
unpruned checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streambot.runtime.manifest import (
    Artifact,
    Device,
    Manifest,
    ManifestError,
    sha256_file,
    sha256_model,
)

log = logging.getLogger(__name__)

GPU_ORDER = ("tensorrt", "onnxruntime", "torch")
CPU_ORDER = ("onnxruntime", "torch")


@dataclass(frozen=True)
class Choice:
    artifact: Artifact | None
    path: Path | None
    refused: tuple[str, ...]


def this_device(requested: str = "auto") -> Device:
    """The device engines will run on here."""
    try:
        import torch
    except ImportError:
        return Device()
    if requested == "cpu" or not torch.cuda.is_available():
        return Device()
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return Device("cuda", torch.cuda.get_device_name(index), f"{major}.{minor}")


def library_versions(
    modules: Sequence[str] = ("tensorrt", "onnxruntime", "torch"),
) -> dict[str, str]:
    """The installed version of each of ``modules`` (those that import), plus the CUDA and
    cuDNN that torch runs on when it has a GPU."""
    versions = {}
    for module in modules:
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # not installed, or its native libraries are missing
            continue
    return versions | cuda_versions()


def cuda_versions() -> dict[str, str]:
    """``cuda`` and ``cudnn`` as torch sees them, when a CUDA GPU is usable; else nothing."""
    try:
        import torch
    except ImportError:
        return {}
    if not torch.cuda.is_available():
        return {}
    versions = {"cuda": str(torch.version.cuda)}
    cudnn = torch.backends.cudnn.version()
    if cudnn:
        versions["cudnn"] = str(cudnn)
    return versions


def wav2lip_inputs(checkpoint: Path, avatar_key: str) -> dict[str, str]:
    """What a Wav2Lip engine must have been built from to be used with this face."""
    return {"checkpoint": sha256_file(checkpoint), "avatar": avatar_key}


def voice_inputs(model: Path) -> dict[str, str]:
    """What a voice engine must have been built from to stand in for this voice's decoder."""
    return {"voice": sha256_file(model)}


def llm_inputs(model: Path) -> dict[str, str]:
    """What a pruned LLM must have been built from to stand in for this model (a changed
    catalog does not make it stale: prices and stock come from the prompt, not the weights)."""
    return {"model": sha256_model(model)}


def choose(
    kind: str,
    engines_dir: str | Path,
    inputs: Callable[[], Mapping[str, str]],
    device: Device,
    source: str = "",
) -> Choice:
    """The artifact ``kind`` (built for ``source``) to use here, or none; every refusal is
    logged and returned. ``inputs`` is called only when there is a candidate (it hashes)."""
    try:
        manifest = Manifest.load(engines_dir)
    except ManifestError as exc:
        log.warning("built engines ignored: %s", exc)
        return Choice(None, None, (str(exc),))
    if not any(a.source == source for a in manifest.of_kind(kind)):
        return Choice(None, None, ())
    gpu = device.kind == "cuda"
    order = GPU_ORDER if gpu else CPU_ORDER
    # int8 QDQ pays off on a CPU; a GPU runs fp16 best
    precisions = ("fp16", "fp32", "int8") if gpu else ("int8", "fp32", "fp16")
    artifact, refused = manifest.usable(
        kind, inputs(), device, library_versions(), order, precisions, source
    )
    for why in refused:
        log.warning("built %s engine not used: %s", kind, why)
    path = manifest.file_of(artifact) if artifact is not None else None
    return Choice(artifact, path, tuple(refused))
