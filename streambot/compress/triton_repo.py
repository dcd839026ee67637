"""A Triton Inference Server model repository of the built face engines (``--backends triton``).

Many rooms share one GPU box through Triton (KServe v2): each Wav2Lip engine the build made
(ONNX fp32, int8, fp16; a TensorRT plan) becomes ``<out>/triton/<engine>/config.pbtxt`` and
``1/model.onnx`` (the ``onnxruntime`` backend) or ``1/model.plan`` (``tensorrt_plan``). The
batch limit is the TensorRT profile's, so one engine shape serves any mix of rooms; the
dynamic batcher joins the rooms' requests (a few milliseconds of queue, two priority levels:
answers above idle frames); the fp16 ONNX and the plan run on GPU instances (the ONNX with
ONNX Runtime's TensorRT accelerator in FP16), fp32 and int8 on CPU instances. Inputs and
outputs are read from the ONNX file served, so they always match the export. The fp16 ONNX is
served with fp16 inputs and output (its fp32 edges cut off), so a request carries half the
bytes; the engine file itself keeps fp32 edges, which every local runtime feeds alike.

Each model is recorded in the manifest as a ``triton`` artifact of the engine it serves (its
fidelity and default are the engine's), stale as soon as that engine is rebuilt. The daemon
never runs one locally: ``[face.wav2lip] engine = "triton"`` calls the server.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streambot.compress.common import BuildOptions, Row
from streambot.runtime.manifest import Artifact, Manifest, sha256_artifact
from streambot.runtime.tensorrt_engine import BATCH_MAX, BATCH_OPT

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)
KIND = "wav2lip"
BACKEND = "triton"
REPOSITORY = "triton"  # the folder under --out that ``tritonserver --model-repository`` takes
QUEUE_DELAY_US = 2000  # how long the batcher may hold a request for others to join it
PRIORITY_LEVELS = 2  # 1: a turn's frames (answers, paid messages); 2: idle frames
# Where each engine runs on the server, and how
_PLATFORMS = {
    "onnxruntime": ("backend", "onnxruntime", "model.onnx"),
    "tensorrt": ("platform", "tensorrt_plan", "model.plan"),
}
_GPU_PRECISIONS = ("fp16",)  # fp32 and int8 ONNX engines are the CPU's (int8 QDQ pays there)
# ONNX element types (onnx.TensorProto's names) as Triton's model-config data types
_DATA_TYPES = {
    "FLOAT": "TYPE_FP32",
    "FLOAT16": "TYPE_FP16",
    "BFLOAT16": "TYPE_BF16",
    "DOUBLE": "TYPE_FP64",
    "INT8": "TYPE_INT8",
    "UINT8": "TYPE_UINT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
}


class TritonRepoError(ValueError):
    """An engine that cannot be served as it is (the message says which and why)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # "TYPE_FP32"
    dims: tuple[int, ...]  # without the batch axis; -1 where a size varies


@dataclass(frozen=True)
class TritonModel:
    """One model of the repository: what ``config.pbtxt`` says."""

    name: str
    backend: str  # "onnxruntime" or "tensorrt"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    gpu: bool
    max_batch_size: int = BATCH_MAX

    def config_text(self) -> str:
        """The model configuration in protobuf text format. Written here rather than through
        tritonclient's ``model_config_pb2`` so the builder needs no Triton package; the tests
        parse it with that schema."""
        key, value, _ = _PLATFORMS[self.backend]
        lines = [
            f'name: "{self.name}"',
            f'{key}: "{value}"',
            f"max_batch_size: {self.max_batch_size}",
            *_tensors("input", self.inputs),
            *_tensors("output", self.outputs),
            "dynamic_batching {",
            f"  preferred_batch_size: [ {BATCH_OPT}, {2 * BATCH_OPT} ]",
            f"  max_queue_delay_microseconds: {QUEUE_DELAY_US}",
            f"  priority_levels: {PRIORITY_LEVELS}",
            f"  default_priority_level: {PRIORITY_LEVELS}",
            "}",
            f"instance_group [ {{ count: 1, kind: {'KIND_GPU' if self.gpu else 'KIND_CPU'} }} ]",
        ]
        if self.gpu and self.backend == "onnxruntime":
            lines += _tensorrt_accelerator()
        return "\n".join(lines) + "\n"


def _tensors(section: str, specs: tuple[TensorSpec, ...]) -> list[str]:
    lines = [f"{section} ["]
    for i, spec in enumerate(specs):
        dims = ", ".join(str(d) for d in spec.dims)
        comma = "," if i < len(specs) - 1 else ""
        lines.append(
            f'  {{ name: "{spec.name}", data_type: {spec.data_type}, dims: [ {dims} ] }}{comma}'
        )
    return [*lines, "]"]


def _tensorrt_accelerator() -> list[str]:
    """ONNX Runtime's TensorRT execution provider in FP16, its engines cached by the server."""
    return [
        "optimization { execution_accelerators {",
        "  gpu_execution_accelerator: [ {",
        '    name: "tensorrt"',
        '    parameters { key: "precision_mode", value: "FP16" }',
        '    parameters { key: "max_workspace_size_bytes", value: "2147483648" }',
        '    parameters { key: "trt_engine_cache_enable", value: "1" }',
        "  } ]",
        "} }",
    ]


def onnx_tensors(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The inputs and outputs of an ONNX graph, without their batch axis (which must vary:
    Triton's batcher stacks requests along it)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        if kind not in _DATA_TYPES:
            raise TritonRepoError(
                f"{path.name}: {value.name} is {kind}, which Triton has no type for"
            )
        axes = list(tensor.shape.dim)
        if not axes or axes[0].HasField("dim_value"):
            raise TritonRepoError(f"{path.name}: {value.name} has no variable batch axis")
        dims = tuple(a.dim_value if a.HasField("dim_value") else -1 for a in axes[1:])
        return TensorSpec(value.name, _DATA_TYPES[kind], dims)

    inputs = tuple(spec(v) for v in graph.input if v.name not in initializers)
    return inputs, tuple(spec(v) for v in graph.output)


def served_engines(manifest: Manifest) -> list[Artifact]:
    """The face engines a repository serves: every ONNX and TensorRT one the build made."""
    return [a for a in manifest.of_kind(KIND) if a.backend in _PLATFORMS and not a.source]


def model_name(engine: Artifact) -> str:
    return Path(engine.file).stem


def _entry_inputs(engine: Artifact) -> dict[str, str]:
    """What a Triton model depends on: its engine's own inputs and the engine file itself."""
    return {**engine.inputs, "engine": engine.sha256}


def plan_triton(manifest: Manifest, options: BuildOptions) -> list[Row]:
    """One row per engine the repository serves: its model to write, or up to date."""
    rows = []
    for engine in served_engines(manifest):
        name = f"{REPOSITORY}/{model_name(engine)}"
        entry = next((a for a in manifest.artifacts if a.file == name), None)
        why = (
            "not written yet"
            if entry is None
            else manifest.why_unusable(entry, _entry_inputs(engine), entry.device, {})
        )
        if options.force:
            why = "--force"
        rows.append(Row(KIND, name, "to build" if why else "up to date", why or ""))
    return rows


def build_triton(manifest: Manifest, options: BuildOptions) -> list[Row]:
    """Write the model of each engine whose model is missing or stale, and record it; a row
    for every engine served."""
    planned = {r.artifact: r for r in plan_triton(manifest, options)}
    rows = []
    for engine in served_engines(manifest):
        name = f"{REPOSITORY}/{model_name(engine)}"
        if planned[name].status != "to build":
            rows.append(planned[name])
            continue
        try:
            folder = write_model(manifest, engine, options.out / REPOSITORY)
        except TritonRepoError as exc:
            rows.append(Row(KIND, name, "skipped", str(exc)))
            continue
        manifest.put(
            Artifact(
                KIND,
                name,
                sha256_artifact(folder),
                BACKEND,
                engine.precision,
                _entry_inputs(engine),
                engine.device,
                dict(engine.versions),
                dict(engine.pruning),
                {**engine.fidelity, "serves": engine.file},
                default=engine.default,
            )
        )
        rows.append(Row(KIND, name, "built", f"serves {engine.file} ({_where(engine)})"))
    return rows


def _on_gpu(engine: Artifact) -> bool:
    return engine.backend == "tensorrt" or engine.precision in _GPU_PRECISIONS


def _where(engine: Artifact) -> str:
    kind = "GPU" if _on_gpu(engine) else "CPU"
    return f"{engine.backend} {engine.precision} on {kind} instances"


def write_model(manifest: Manifest, engine: Artifact, repository: Path) -> Path:
    """``repository/<engine>/config.pbtxt`` and ``1/model.*`` (a hard link to the engine when
    the file system allows, else a copy; the fp16 ONNX with fp16 edges), written beside and
    renamed into place."""
    source, wire = manifest.file_of(engine), None
    if engine.backend == "onnxruntime" and engine.precision == "fp16":
        repository.mkdir(parents=True, exist_ok=True)
        wire = source = fp16_edges(source, repository / f".{model_name(engine)}.fp16.onnx")
    try:
        inputs, outputs = onnx_tensors(source if wire else _onnx_of(manifest, engine))
        model = TritonModel(model_name(engine), engine.backend, inputs, outputs, _on_gpu(engine))
        folder = place_model(model, source, repository)
    finally:
        if wire is not None:
            wire.unlink(missing_ok=True)
    log.info("triton: %s serves %s", folder, engine.file)
    return folder


def fp16_edges(source: Path, target: Path) -> Path:
    """``source`` (fp32 in and out, fp16 inside) with its edge Casts removed: its inputs
    and output are the fp16 tensors the graph computes on."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    cut = []
    for value in graph.input:
        users = [n for n in graph.node if value.name in n.input]
        if not users or not all(_is_cast(n, fp16) for n in users):
            raise TritonRepoError(f"{source.name}: input {value.name} is not cast to fp16 first")
        for cast in users:
            _rename(graph, cast.output[0], value.name)
        cut += users
        value.type.tensor_type.elem_type = fp16
    for value in graph.output:
        cast = next((n for n in graph.node if value.name in n.output), None)
        if cast is None or not _is_cast(cast, fp32):
            raise TritonRepoError(f"{source.name}: output {value.name} is not cast from fp16 last")
        inner = cast.input[0]
        cut.append(cast)
        _rename(graph, inner, value.name)
        value.type.tensor_type.elem_type = fp16
    for node in cut:
        graph.node.remove(node)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def _is_cast(node: onnx.NodeProto, to: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == to for a in node.attribute)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every use of tensor ``old`` in ``graph``'s nodes now names ``new``."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
    for info in [v for v in graph.value_info if v.name == old]:
        graph.value_info.remove(info)


def place_model(model: TritonModel, source: Path, repository: Path) -> Path:
    """``repository/<model>/`` with ``model``'s configuration and ``source`` as version 1."""
    folder = repository / model.name
    temporary = repository / f".{model.name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    (temporary / "1").mkdir(parents=True)
    target = temporary / "1" / _PLATFORMS[model.backend][2]
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links here
        shutil.copy2(source, target)
    (temporary / "config.pbtxt").write_text(model.config_text(), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    temporary.rename(folder)
    return folder


def _onnx_of(manifest: Manifest, engine: Artifact) -> Path:
    """The ONNX file whose inputs and outputs ``engine`` has: itself, or for a TensorRT plan
    the fp16 ONNX it was built from."""
    if engine.backend == "onnxruntime":
        return manifest.file_of(engine)
    for other in served_engines(manifest):
        if (other.backend, other.precision, other.inputs) == ("onnxruntime", "fp16", engine.inputs):
            return manifest.file_of(other)
    raise TritonRepoError(f"{engine.file}: the fp16 ONNX it was built from is not in the manifest")
