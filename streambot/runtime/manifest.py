"""``engines/manifest.json``: what ``build_engines.py`` built, from what, for which machine.

One entry per artifact: its kind (``wav2lip``, ``voice``, ``llm``), file and sha256, the
sha256 of every input it was built from (checkpoint, avatar, the config that shaped it), how
it was pruned, its fidelity figures, backend and precision, library versions and the device.
The daemon reads it and uses an artifact only when it is *usable here*: the file is intact, its
inputs are unchanged and, for device-bound backends (TensorRT), the GPU and the library are
the ones it was built for. Otherwise ``why_unusable`` gives one sentence naming the reason,
which the daemon logs before falling back to the next backend.

The file is written atomically (a temporary file renamed over it) and carries a schema
version; a manifest of an unknown schema is refused as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1
MANIFEST_NAME = "manifest.json"
# Backends whose artifacts only run on the device they were built on, with the libraries named
# here at the version they were built with (a TensorRT engine: its GPU model and TensorRT).
# Other recorded versions (torch, CUDA) are for the record and for rebuild decisions.
DEVICE_BOUND: dict[str, tuple[str, ...]] = {"tensorrt": ("tensorrt",)}


class ManifestError(ValueError):
    """The manifest cannot be read or is of a schema this version does not know."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(folder: str | Path) -> str:
    """One digest for a folder (a prepared avatar): every file's relative path and content."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


SAMPLED_ABOVE = 64 << 20  # files larger than this are fingerprinted, not read whole
_SAMPLES, _SAMPLE_BYTES = 16, 1 << 20


def sha256_sampled(path: str | Path) -> str:
    """A fingerprint of a large file read in part: its size, its first 64 KiB (a safetensors
    header: every tensor's name, shape and offset) and 16 spread 1 MiB samples. Checking a
    7B model this way takes milliseconds where reading it takes a minute; any other
    checkpoint of the same shape differs in every sample, though a few flipped bytes between
    samples would go unseen (it tells models apart, it is no integrity check)."""
    size = Path(path).stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(64 << 10))
        for i in range(_SAMPLES):
            f.seek(max(0, (size - _SAMPLE_BYTES) * i // (_SAMPLES - 1)))
            digest.update(f.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def sha256_model_folder(folder: str | Path) -> str:
    """One digest for a model folder (a Hugging Face LLM): every file's relative path and its
    content, large weight files by ``sha256_sampled``."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        small = path.stat().st_size <= SAMPLED_ABOVE
        digest.update((sha256_file(path) if small else sha256_sampled(path)).encode())
    return digest.hexdigest()


def sha256_model(path: str | Path) -> str:
    """The digest of a model: a folder's by ``sha256_model_folder``, one file's (a GGUF) by
    its content, a large one by ``sha256_sampled``."""
    path = Path(path)
    if path.is_dir():
        return sha256_model_folder(path)
    return sha256_file(path) if path.stat().st_size <= SAMPLED_ABOVE else sha256_sampled(path)


def sha256_artifact(path: str | Path) -> str:
    """The checksum the manifest keeps for a built file or folder."""
    return sha256_model_folder(path) if Path(path).is_dir() else sha256_file(path)


def sha256_json(value: Any) -> str:
    """The digest of a JSON-able value (the config section an artifact depends on)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Device:
    """Where an artifact runs: ``cpu``, or a CUDA GPU by name and compute capability."""

    kind: str = "cpu"
    name: str = ""
    capability: str = ""

    def describe(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.name} (sm {self.capability})"


@dataclass
class Artifact:
    kind: str  # "wav2lip", "voice", "llm"
    file: str  # relative to the manifest's folder
    sha256: str
    backend: str  # "tensorrt", "onnxruntime", "torch"
    precision: str  # "fp32", "fp16", "int8"
    inputs: dict[str, str]  # name -> sha256 of what it was built from
    device: Device = field(default_factory=Device)
    versions: dict[str, str] = field(default_factory=dict)  # library -> version
    pruning: dict[str, Any] = field(default_factory=dict)  # ratio, widths, parameter counts
    fidelity: dict[str, Any] = field(default_factory=dict)  # e.g. mouth PSNR / SSIM
    default: bool = False  # the build judged it good enough to be used by "auto"
    built_at: float = field(default_factory=time.time)
    # which of several models of its kind it stands in for, by file name (a voice engine: the
    # voice's .onnx); "" for a kind that has one model (the Wav2Lip face)
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Artifact:
        values = dict(data)
        values["device"] = Device(**values.get("device", {}))
        return cls(**values)


@dataclass
class Manifest:
    folder: Path
    artifacts: list[Artifact] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """The manifest in ``folder`` (empty when there is none yet)."""
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not path.exists():
            return cls(folder)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"{path}: cannot be read: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else None
            raise ManifestError(
                f"{path}: schema {found!r} is not {SCHEMA}; rebuild with "
                "`python build_engines.py --force`"
            )
        try:
            artifacts = [Artifact.from_dict(item) for item in data.get("artifacts", [])]
        except TypeError as exc:
            raise ManifestError(f"{path}: an artifact entry is malformed: {exc}") from None
        return cls(folder, artifacts)

    def save(self) -> Path:
        """Write atomically: readers see the old manifest or the new one, never half of one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"schema": SCHEMA, "artifacts": [a.to_dict() for a in self.artifacts]}
        temporary = self.path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, self.path)
        return self.path

    def put(self, artifact: Artifact) -> None:
        """Add ``artifact``, replacing the entry for the same file."""
        self.artifacts = [a for a in self.artifacts if a.file != artifact.file] + [artifact]

    def of_kind(self, kind: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind == kind]

    def file_of(self, artifact: Artifact) -> Path:
        return self.folder / artifact.file

    def why_unusable(
        self,
        artifact: Artifact,
        inputs: Mapping[str, str],
        device: Device,
        versions: Mapping[str, str],
    ) -> str | None:
        """Why ``artifact`` must not be used here (one sentence), or None when it may."""
        path = self.file_of(artifact)
        if not path.exists():
            return f"{artifact.file} is missing"
        if sha256_artifact(path) != artifact.sha256:
            return f"{artifact.file} changed since it was built (checksum differs)"
        for name, digest in inputs.items():
            built_from = artifact.inputs.get(name)
            if built_from is None:
                return f"{artifact.file} was built without the {name} it needs now"
            if built_from != digest:
                return f"{artifact.file} is stale: the {name} changed since it was built"
        if artifact.backend in DEVICE_BOUND:
            if artifact.device != device:
                return (
                    f"{artifact.file} was built for {artifact.device.describe()}, "
                    f"this machine has {device.describe()}"
                )
            for library in DEVICE_BOUND[artifact.backend]:
                version = artifact.versions.get(library)
                if version is not None and versions.get(library) != version:
                    have = versions.get(library) or "none"
                    return f"{artifact.file} needs {library} {version}, this machine has {have}"
        return None

    def usable(
        self,
        kind: str,
        inputs: Mapping[str, str],
        device: Device,
        versions: Mapping[str, str],
        order: Iterable[str],
        precisions: Iterable[str] = (),
        source: str = "",
    ) -> tuple[Artifact | None, list[str]]:
        """The first usable default artifact of ``kind`` (built for ``source``) in backend
        ``order`` (then in ``precisions`` order within a backend), and why each one before it
        was refused."""
        refused = []
        rank = {backend: i for i, backend in enumerate(order)}
        prefer = {precision: i for i, precision in enumerate(precisions)}
        candidates = sorted(
            (a for a in self.of_kind(kind) if a.backend in rank and a.source == source),
            key=lambda a: (rank[a.backend], prefer.get(a.precision, len(prefer))),
        )
        for artifact in candidates:
            if not artifact.default:
                refused.append(f"{artifact.file} is not a default (its fidelity was too low)")
                continue
            why = self.why_unusable(artifact, inputs, device, versions)
            if why is None:
                return artifact, refused
            refused.append(why)
        return None, refused
